// Opening a data dir whose content store fails to load (here: a pack the index doesn't cover
// that can't be decoded) fails with that error every time: the failed open does not keep the
// data dir's lock. A damaged pack-index block fails the first use of the pack table (loaded
// then, not at open: src/cas/chunk-store.ts `lazyTable`), every time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { PACK_INDEX_CORE_NAME, PACKS_CORE_NAME } from '../src/cas/chunk-store.js'
import { bazil, tempDir } from './helpers.js'

/** A new data dir whose packs core holds a block that is not a pack (and, if asked, whose pack index holds one that is not an index block). */
async function damage(data: string, indexToo: boolean): Promise<DataDir> {
  assert.equal((await bazil(data, ['create'])).code, 0)
  const dd = DataDir.open(data)
  const store = new Corestore(dd.paths.corestore)
  const packs = store.get({ name: PACKS_CORE_NAME })
  const index = store.get({ name: PACK_INDEX_CORE_NAME })
  await packs.ready()
  await index.ready()
  await packs.append(Buffer.from('not a pack'))
  if (indexToo) await index.append(Buffer.from('not an index block'))
  await store.close()
  return dd
}

test('a store that fails to load fails the same way on the next open (no lock kept)', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await damage(data, false)

    const first = await Node.open(DataDir.open(data)).then(() => null, (err: Error) => err)
    assert.ok(first, 'the damaged store must not open')
    assert.match(first.message, /pack 0 \(not indexed\)/)
    const second = await Node.open(DataDir.open(data)).then(() => null, (err: Error) => err)
    assert.ok(second)
    assert.equal(second.message, first.message)
  } finally {
    cleanup()
  }
})

test('a damaged pack-index block fails every use of the pack table, not the open', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    const dd = await damage(data, true)
    fs.rmSync(dd.paths.packTable, { force: true })

    const node = await Node.open(DataDir.open(data))
    try {
      const first = await node.chunks.stats().then(() => null, (err: Error) => err)
      assert.ok(first, 'the damaged table must not load')
      assert.match(first.message, /pack-index block 0/)
      const second = await node.chunks.has(Buffer.alloc(32)).then(() => null, (err: Error) => err)
      assert.equal(second?.message, first.message)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})
