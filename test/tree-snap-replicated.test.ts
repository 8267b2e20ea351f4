// Snapshots taken by another writer (spec/tree.md "Snapshots", "The index on disk"): their view
// is derived from the index on disk and the records that differ between its state and the
// snapshot's heads (src/tree/snapshot-views.ts), in memory before the next commit and saved
// by it; it shows what the writer saw when it took the snapshot, and what a view built from
// every shard at the snapshot's heads shows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'
import { Nodes, until } from './writers-helpers.js'
import type { Volume } from '../src/volume/volume.js'
import { randomOp, rng } from './tree-random.js'

const A = 'a1'.repeat(16)
const B = 'b2'.repeat(16)
const R = 'c3'.repeat(16)

test('a snapshot taken by another writer: derived from the index on disk (in memory, then saved by a commit), the same view as built from the shards', () => {
  const { dir, cleanup } = tempDir()
  try {
    for (const seed of [11, 12, 13, 14]) {
      const r = rng(seed)
      const file = path.join(dir, `b${seed}.ckpt`)
      const files = path.join(dir, `b${seed}`)
      const a = Tree.create(A)
      let b = Tree.create(B)
      const logA: ShardChange[] = []
      const logB: ShardChange[] = []
      let seenA = 0
      let seenB = 0
      let n = 0
      const snaps = new Map<string, string[]>()
      let derived = 0
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 6; i++) randomOp(a, r, n++)
        for (let i = 0; i < 4; i++) randomOp(b, r, n++)
        if (r() < 0.3) {
          a.snapshot(`a${round}`)
          snaps.set(`a${round}`, canonicalDump(a))
        }
        logA.push(...a.takeChanges())
        logB.push(...b.takeChanges())
        if (r() < 0.6) {
          b.applyChanges(logA.slice(seenA))
          seenA = logA.length
        }
        if (r() < 0.4) {
          a.applyChanges(logB.slice(seenB))
          seenB = logB.length
        }
        if (round === 0 || r() < 0.3) commitTreeIndex(file, files, b, { round })
        if (r() < 0.2) {
          b.free()
          b = openTreeIndex(file, files, B).tree
          // Its own edits since the commit are in logB: the reopened tree catches up like a replay.
          b.applyChanges(logB)
          b.applyChanges(logA.slice(0, seenA))
        }
        // Every snapshot b holds reads as its writer saw it, before and after the next commit.
        for (const name of b.snapshots().map((s) => s.name)) {
          const view = b.at(name)
          assert.deepEqual(canonicalDump(view), snaps.get(name), `seed ${seed} round ${round}: ${name}`)
          derived++
        }
      }
      assert.ok(derived > 0 && snaps.size > 0, `seed ${seed}: snapshots were read`)
      // Everything exchanged: b's views (derived, then saved by a commit, then read after a reopen) are the views built from the shards.
      b.applyChanges(logA.slice(seenA))
      const ref = Tree.create(R)
      ref.applyChanges([...logA, ...logB])
      const held = new Map([...snaps.keys()].map((name) => [name, b.at(name)]))
      for (const name of snaps.keys()) {
        assert.deepEqual(canonicalDump(ref.at(name)), snaps.get(name), `seed ${seed}: ${name} built from the shards`)
        assert.deepEqual(canonicalDump(b.at(name)), snaps.get(name), `seed ${seed}: ${name} derived`)
      }
      commitTreeIndex(file, files, b, null)
      // A view handed out before the commit is read again over the new index (its old segments are gone).
      for (const [name, v] of held) assert.deepEqual(canonicalDump(v), snaps.get(name), `seed ${seed}: ${name} held across a commit`)
      const back = openTreeIndex(file, files, B).tree
      const saved = (back.view.diskBase as IndexFiles).manifest
      for (const name of snaps.keys()) assert.deepEqual(canonicalDump(back.at(name)), snaps.get(name), `seed ${seed}: ${name} saved`)
      assert.equal(back.shardStats.hot, 0, 'saved views of replicated snapshots load no shard')
      assert.ok(saved.memo !== undefined)
      for (const t of [a, b, ref, back]) t.free()
    }
  } finally {
    cleanup()
  }
})

test('through real logs: a snapshot another writer took is listed here from the index on disk, before and after this node checkpoints and reopens', async (t) => {
  const { c, vols: [a, b] } = await Nodes.writers(2)
  t.after(() => c.close())
  for (let i = 0; i < 20; i++) a.mkdir(`/d${i}`)
  await a.flush()
  await until('b applies a', [a, b], () => b.tree.lookup('/d19') !== null)
  assert.ok(await b.checkpoint(), 'b has an index on disk')
  a.mkdir('/d0/in-snap')
  await a.snapshot('by-a')
  a.mkdir('/d0/after')
  await a.flush()
  await until('b holds the snapshot and what followed', [a, b], () => b.tree.snapshots().some((s) => s.name === 'by-a') && b.tree.lookup('/d0/after') !== null)
  const names = (v: Volume): string[] => v.view('by-a').readdir('/d0').map((s) => s.name)
  assert.deepEqual(names(b), ['in-snap'])
  assert.deepEqual(names(b), names(a))
  // Closing checkpoints (saving the derived view); reopened, the view is read from disk: no shard loaded.
  const again = await (await c.restart(1)).volume('v')
  assert.deepEqual(names(again), ['in-snap'])
  assert.equal(again.tree.shardStats.hot, 0, 'read from the saved view')
})
