// Opening a data dir does not read the pack table (src/cas/chunk-store.ts `lazyTable`): a
// command that reads only the tree (ls, stat) never loads it; the first content read, write
// or collection loads it, and finds everything as before.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { collectGarbage } from '../src/gc.js'
import { toFileRef } from '../src/volume/volume.js'
import { tempDir } from './helpers.js'

async function read(node: Node, p: string): Promise<string> {
  const vol = await node.volume('v')
  const st = vol.tree.stat(p)
  const parts: Buffer[] = []
  for await (const c of vol.cas.readFile(toFileRef(st.content!), st.path)) parts.push(Buffer.from(c))
  return Buffer.concat(parts).toString()
}

test('the pack table is loaded at the first content read or write, not at open', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    let node = await Node.open(DataDir.create(root))
    let vol = await node.createVolume('v', 'default')
    await vol.writeFile('/a', Buffer.from('first file\n'))
    await vol.writeFile('/b', Buffer.from('second file\n'))
    const stored = (await node.chunks.stats()).chunks
    await node.close()

    node = await Node.open(DataDir.open(root))
    try {
      vol = await node.volume('v')
      assert.equal(node.chunks.tableLoaded, false, 'not loaded by the open')
      assert.deepEqual(vol.tree.readdir('/').map((s) => s.name).sort(), ['a', 'b'])
      assert.equal(node.chunks.tableLoaded, false, 'not loaded by a listing')
      assert.equal(await read(node, '/a'), 'first file\n')
      assert.equal(node.chunks.tableLoaded, true)
    } finally {
      await node.close()
    }

    // A write first: the table is loaded before the put looks for duplicates.
    node = await Node.open(DataDir.open(root))
    try {
      vol = await node.volume('v')
      await vol.writeFile('/c', Buffer.from('first file\n'))
      assert.equal(node.chunks.tableLoaded, true)
      assert.equal((await node.chunks.stats()).chunks, stored, 'the same content is stored once')
    } finally {
      await node.close()
    }

    // A collection first (its lookups are synchronous).
    node = await Node.open(DataDir.open(root))
    try {
      vol = await node.volume('v')
      vol.unlink('/b')
      await vol.flush()
      await collectGarbage(node, { graceMs: 0 })
      assert.equal(await read(node, '/a'), 'first file\n')
      assert.equal(await read(node, '/c'), 'first file\n')
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})
