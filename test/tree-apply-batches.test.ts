// How a replay applies a window of entries (Tree.applySteps: by shard, in steps of at most a
// given number of ops, entries checked whole first): the outcome (state, rejected entries) is
// that of applying the entries one call each in log order, whatever the steps, and also when
// the steps stop half way and the rest goes to another copy of the tree.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CHANGE_LIMITS, Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { opBomb } from './hostile-changes.js'

const [A, B] = ['aa'.repeat(32), 'bb'.repeat(32)]
const h = (n: number): string => n.toString(16).padStart(64, '0')

/** Writer A's entries of one op each (some renames across directories: two shards), over a tree B holds too. */
function scene(ops: number, seed: number): { base: ShardChange[]; entries: ShardChange[][] } {
  const a = Tree.create(A, { splitAt: 16 })
  for (let d = 0; d < 6; d++) {
    a.mkdir(`/d${d}`)
    for (let f = 0; f < 20; f++) a.writeFile(`/d${d}/f${f}`, { hash: h(d * 100 + f + 1), size: f })
  }
  const base = a.takeChanges()
  const entries: ShardChange[][] = []
  for (let i = 0; i < ops; i++) {
    const d = (i * 5 + seed) % 6
    try {
      switch ((i + seed) % 4) {
        case 0: a.writeFile(`/d${d}/f${i % 20}`, { hash: h(10_000 + i), size: i }); break
        case 1: a.writeFile(`/d${d}/n${i}`, { hash: h(20_000 + i), size: i }); break
        case 2: a.setattr(`/d${d}/f${(i * 3) % 20}`, { mode: 0o600 }); break
        case 3: a.rename(`/d${d}/f${(i * 7) % 20}`, `/d${(d + 1) % 6}/m${i}`); break
      }
    } catch { /* moved away already */ }
    const e = a.takeChanges()
    if (e.length > 0) entries.push(e)
  }
  a.free()
  return { base, entries }
}

test('property: a window applied in steps by shard ends as the entries applied one by one in log order (rejections too)', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 6 }), (seed, stepOps, hostile, switchAt) => {
    const { base, entries } = scene(60, seed)
    // A hostile entry: a change over its entry's limits, among honest ones (rejected whole, alone).
    const tagged = entries.map((e, i) => e.map((c) => ({ ...c, writer: A, tag: `${A}:${i + 1}` })))
    if (hostile) tagged.splice(seed % tagged.length, 0, [{ shard: 'a0', change: opBomb(Buffer.from(A, 'hex'), CHANGE_LIMITS.entryOps), writer: A, tag: `${A}:999` }])
    const one = Tree.create(B)
    const stepped = Tree.create(B)
    try {
      for (const t of [one, stepped]) t.applyChanges(base)
      // Plain loops around Tree.apply (V8 20 crashed in its deoptimizer in two runs with it inside array-builtin callbacks; cause not proven).
      const rejectedOne: (string | undefined)[] = []
      for (const e of tagged) for (const r of one.apply(e)) rejectedOne.push(r.tag)
      rejectedOne.sort()
      const window: (typeof tagged)[number] = []
      for (const e of tagged) for (const c of e) window.push(c)
      const rejected: (string | undefined)[] = []
      let steps = stepped.applySteps(window, stepOps)
      let r = steps.next()
      for (let i = 0; r !== null; i++) {
        for (const x of r) rejected.push(x.tag)
        if (i === switchAt) {
          // Stopped here (as replay does when its tree is replaced): what is left, in new steps.
          const rest = steps.remaining()
          steps.close()
          steps = stepped.applySteps(rest, 1 + ((stepOps * 7) % 400))
        }
        r = steps.next()
      }
      rejected.sort()
      assert.deepEqual(rejected, rejectedOne)
      assert.equal(rejected.length, hostile)
      assert.equal(stepped.heldCount, 0)
      assert.deepEqual(canonicalDump(stepped), canonicalDump(one))
    } finally {
      one.free()
      stepped.free()
    }
  }), { numRuns: 40 })
})
