import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import Corestore from 'corestore'
import { batchMissingNodes } from '../src/logs/merkle-batch.js'

type MissingNodes = (session: unknown, index: number, length: number) => Promise<number>

// hypercore's MerkleTree, as the replicator calls it.
const { MerkleTree } = createRequire(import.meta.url)('hypercore/lib/merkle-tree.js') as { MerkleTree: { missingNodes: MissingNodes } }

test('missingNodes in one read batch gives hypercore\'s answer for every block of a sparse copy, and replication still completes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-merkle-batch-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const original = MerkleTree.missingNodes
  batchMissingNodes()
  const batched = MerkleTree.missingNodes
  assert.notEqual(batched, original, 'installed')
  batchMissingNodes()
  assert.equal(MerkleTree.missingNodes, batched, 'installing again changes nothing')

  const a = new Corestore(path.join(dir, 'a')), b = new Corestore(path.join(dir, 'b'))
  t.after(async () => { await a.close(); await b.close() })
  const src = a.get({ name: 'log' })
  await src.ready()
  const blocks = 777
  for (let i = 0; i < blocks; i += 50) await src.append(Array.from({ length: Math.min(50, blocks - i) }, (_, k) => Buffer.from(`block ${i + k}`)))
  const copy = b.get({ key: src.key })
  await copy.ready()
  const s1 = a.replicate(true), s2 = b.replicate(false)
  s1.pipe(s2).pipe(s1)
  t.after(() => { s1.destroy(); s2.destroy() })
  // A sparse copy: some scattered blocks held, most not (what a download in progress looks like).
  for (const i of [0, 1, 5, 64, 100, 255, 256, 300, 511, 512, 700, 776]) await copy.get(i)
  const state = (copy as unknown as { core: { state: unknown } }).core.state
  const length = (state as { length: number }).length
  assert.equal(length, blocks)
  let missing = 0
  for (const len of [1, 2, 3, 100, 256, 257, 512, 700, blocks]) {
    for (let i = 0; i < blocks; i++) {
      const want = await original(state, 2 * i, len)
      const got = await batched(state, 2 * i, len)
      assert.equal(got, want, `block ${i} at length ${len}`)
      if (want > 0) missing++
    }
  }
  assert.ok(missing > 1000, `blocks with nodes missing above them: ${missing}`)
  // The whole log downloads through the replaced method.
  await copy.download({ start: 0, end: blocks }).done()
  assert.equal(copy.contiguousLength, blocks)
  assert.equal((await copy.get(blocks - 1))!.toString(), `block ${blocks - 1}`)
})
