// The server: one per data dir, a 0600 control socket, commands routed through it, clean stop.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { bazil, startServer, tempDir } from './helpers.js'

test('commands route through a running server; a second server is refused; SIGTERM stops cleanly', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    const mountless = await bazil(data, ['volume', 'mount', 'v', dir])
    assert.equal(mountless.code, 1)
    assert.match(mountless.stderr, /needs a running server: start `bazil server run`/)
    const down = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
    assert.equal(down.server.running, false)

    const server = await startServer(data)
    try {
      const sock = path.join(data, 'control.sock')
      assert.equal(fs.statSync(sock).mode & 0o777, 0o600)

      const second = await bazil(data, ['server', 'run'])
      assert.equal(second.code, 1)
      assert.match(second.stderr, /already running/)

      // Commands that need the corestore work while the server holds it: they run in the server.
      assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
      const src = path.join(dir, 'src')
      fs.mkdirSync(src)
      fs.writeFileSync(path.join(src, 'greeting'), 'hello, world\n')
      // A relative SRCDIR is resolved against the client's working directory, not the server's.
      const rel = path.relative(process.cwd(), src)
      const imp = await bazil(data, ['volume', 'import', 'v', rel])
      assert.equal(imp.code, 0, imp.stderr)
      assert.equal((await bazil(data, ['volume', 'cat', 'v', 'greeting'])).stdout, 'hello, world\n')
      const missing = await bazil(data, ['volume', 'cat', 'v', 'nope'])
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /^bazil: .*nope/)

      const up = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
      assert.equal(up.server.running, true)
      assert.deepEqual(up.volumes, ['v'])

      // Garbage on the control socket is answered and logged; the server stays up.
      for (const junk of [Buffer.from('hello'), Buffer.from([0x52, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x52, 0, 0, 0, 3, 1, 2, 3])]) {
        await new Promise<void>((resolve) => {
          const c = net.createConnection(sock, () => c.end(junk))
          c.on('error', () => resolve())
          c.on('close', () => resolve())
          c.resume()
        })
      }
      assert.equal((await bazil(data, ['volume', 'ls', 'v'])).stdout, 'greeting\n')
    } finally {
      const code = await server.stop('SIGTERM')
      assert.equal(code, 0, server.log())
    }
    assert.ok(!fs.existsSync(path.join(data, 'control.sock')))
    // After the server stops, the same commands open the data dir directly.
    assert.equal((await bazil(data, ['volume', 'cat', 'v', 'greeting'])).stdout, 'hello, world\n')
  } finally {
    cleanup()
  }
})

test('a stale socket left by a killed server does not block the next start', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    const first = await startServer(data)
    await first.stop('SIGKILL')
    assert.ok(fs.existsSync(path.join(data, 'control.sock')))
    const status = await bazil(data, ['status'])
    assert.match(status.stdout, /server: not running/)
    const second = await startServer(data)
    assert.equal(await second.stop('SIGINT'), 0)
  } finally {
    cleanup()
  }
})
