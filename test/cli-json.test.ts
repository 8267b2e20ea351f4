// Commands a script would read answer in JSON with --json: create, sharing add, snapshot rm
// (the rest are checked where each command is tested).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { bazil, tempDir } from './helpers.js'

test('create, sharing add and volume snapshot rm print their result as JSON with --json', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const d = path.join(dir, 'n')
    const created = await bazil(d, ['create', '--json'])
    assert.equal(created.code, 0, created.stderr)
    const c = JSON.parse(created.stdout) as { dataDir: string; publicKey: string }
    assert.equal(c.dataDir, d)
    assert.match(c.publicKey, /^[a-z0-9]{52}$/)
    const added = await bazil(d, ['sharing', 'add', '--json', 'friends'], randomBytes(32))
    assert.equal(added.code, 0, added.stderr)
    assert.deepEqual(JSON.parse(added.stdout), { name: 'friends' })
    for (const argv of [['volume', 'create', 'v'], ['volume', 'snapshot', 'create', 'v', 's1']]) assert.equal((await bazil(d, argv)).code, 0)
    const rm = await bazil(d, ['volume', 'snapshot', 'rm', '--json', 'v', 's1'])
    assert.equal(rm.code, 0, rm.stderr)
    assert.deepEqual(JSON.parse(rm.stdout), { volume: 'v', name: 's1' })
  } finally {
    cleanup()
  }
})
