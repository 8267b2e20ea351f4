// A damaged mounts.json (issue 9, finding 7) is an error naming the file and what to do; the
// server still starts and serves everything else.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { bazil, startServer, tempDir } from './helpers.js'

const hasFuse = fs.existsSync('/dev/fuse')

test('a damaged mounts.json is reported at start (naming the file and what to do); the server serves the rest', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    await bazil(data, ['volume', 'create', 'v'])
    const file = path.join(data, 'mounts.json')
    fs.writeFileSync(file, '{"version": 1, "mounts": [{"volume": "v", "mountp')
    const server = await startServer(data)
    try {
      await new Promise((r) => setTimeout(r, 200))
      assert.match(server.log(), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(not JSON.*fix it or delete it`))
      assert.equal((await bazil(data, ['volume', 'mkdir', 'v', 'still-served'])).code, 0)
      assert.match((await bazil(data, ['volume', 'ls', 'v'])).stdout, /still-served/)
      if (hasFuse) {
        // Mounting would overwrite the file: refused with the same message, nothing mounted.
        const mnt = path.join(dir, 'mnt')
        fs.mkdirSync(mnt)
        const m = await bazil(data, ['volume', 'mount', 'v', mnt])
        assert.equal(m.code, 1)
        assert.match(m.stderr, /mounts\.json is damaged/)
        assert.deepEqual(JSON.parse((await bazil(data, ['status', '--json'])).stdout).mounts, [])
      }
    } finally {
      assert.equal(await server.stop('SIGTERM'), 0, server.log())
    }
  } finally {
    cleanup()
  }
})
