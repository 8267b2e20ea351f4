// A closet's replicas of peers' stores (closet.ts StoreMirrors) when a node's store keys change
// (it migrated its store to packs, or was set up again): the record in mirrors.json is
// replaced, the new cores are followed and the old ones let go; the same after a restart.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import { StoreMirrors } from '../src/net/closet.js'
import { DataPaths } from '../src/data-paths.js'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { tempDir } from './helpers.js'

test('a mirror whose node offers new store keys is replaced, in mirrors.json and in what is followed', async () => {
  const { dir, cleanup } = tempDir()
  const store = new Corestore(path.join(dir, 'corestore'))
  let mirrors = new StoreMirrors(store, dir)
  try {
    const node = randomBytes(32)
    const before = { node, cas: randomBytes(32), index: randomBytes(32) }
    const after = { node, cas: randomBytes(32), index: randomBytes(32) }
    assert.equal(await mirrors.mirror(before), true)
    assert.equal(await mirrors.mirror(before), false, 'the same keys again: nothing new')
    const old = mirrors.get(node)!
    assert.equal(await mirrors.mirror(after), true, 'new keys: a new replica')
    assert.equal(old.cas.closed, true, 'the old replica\'s cores are let go')
    assert.equal(mirrors.list().length, 1)
    assert.ok(mirrors.get(node)!.replica.cas.equals(after.cas))
    assert.equal(mirrors.ownerOf(before.cas), null)
    const file = JSON.parse(fs.readFileSync(new DataPaths(dir).mirrors, 'utf8')) as { stores: { node: string; cas: string; index: string }[] }
    assert.deepEqual(file.stores.map((s) => [s.node, s.cas, s.index]), [[encodeKey(node), encodeKey(after.cas), encodeKey(after.index)]])
    // After a restart, the new replica is what is held.
    await mirrors.close()
    mirrors = new StoreMirrors(store, dir)
    await mirrors.load()
    assert.ok(mirrors.get(node)!.replica.index.equals(after.index))
    assert.equal(mirrors.ownerOf(after.cas)?.node.equals(node), true)
  } finally {
    await mirrors.close()
    await store.close()
    cleanup()
  }
})
