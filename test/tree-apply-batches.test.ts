// How a replay cuts a window of entries into Tree.apply calls (src/tree/apply-batches.ts):
// every entry whole in one call, calls within one entry's limits, by shard; and the outcome
// (state, rejected entries) is that of applying the entries one call each in log order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CHANGE_LIMITS, Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { batchesByShard, windowEntry, type WindowEntry } from '../src/tree/apply-batches.js'
import { opBomb } from './hostile-changes.js'

const [A, B] = ['aa'.repeat(32), 'bb'.repeat(32)]
const h = (n: number): string => n.toString(16).padStart(64, '0')

test('property: batches keep every entry whole and in one batch, within the limits, ordered by first shard', () => {
  const entryArb = fc.record({
    shards: fc.array(fc.constantFrom('a0', 'a1', 'b2', 'c3', 'c3f', 'meta'), { minLength: 0, maxLength: 3 }),
    ops: fc.integer({ min: 1, max: 40 }),
    bytes: fc.integer({ min: 1, max: 40 }),
  })
  fc.assert(fc.property(fc.array(entryArb, { maxLength: 60 }), fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 100 }), (list, maxOps, maxBytes) => {
    const entries: WindowEntry<string>[] = list.map((e, i) => ({ ...e, changes: e.shards.map((s, k) => `${i}:${k}:${s}`) }))
    const batches = batchesByShard(entries, maxOps, maxBytes)
    const where = new Map<string, number>()
    let changes = 0
    for (const e of entries) changes += e.changes.length
    for (let bi = 0; bi < batches.length; bi++) for (const c of batches[bi]!) where.set(c, bi)
    assert.equal(where.size, changes)
    let lastFirst = ''
    for (const b of batches) {
      assert.ok(b.length > 0)
      const ids: number[] = []
      for (const c of b) {
        const i = Number(c.split(':')[0])
        if (!ids.includes(i)) ids.push(i)
      }
      let ops = 0
      let bytes = 0
      for (const i of ids) {
        // Each entry's changes in its order, together.
        const mine: string[] = []
        for (const c of b) if (c.startsWith(`${i}:`)) mine.push(c)
        assert.deepEqual(mine, entries[i]!.changes)
        ops += entries[i]!.ops
        bytes += entries[i]!.bytes
        const first = [...entries[i]!.shards].sort()[0] ?? ''
        assert.ok(first >= lastFirst, `${first} after ${lastFirst}`)
        lastFirst = first
      }
      if (ids.length > 1) assert.ok(ops <= maxOps && bytes <= maxBytes, `${ops} ops, ${bytes} bytes`)
    }
  }), { numRuns: 300 })
})

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

test('property: a window applied in batches by shard ends as the entries applied one by one in log order (rejections too)', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 20, max: 400 }), fc.integer({ min: 0, max: 1 }), (seed, maxOps, hostile) => {
    const { base, entries } = scene(60, seed)
    // A hostile entry: a change over its entry's limits, among honest ones (rejected whole, alone).
    const tagged = entries.map((e, i) => e.map((c) => ({ ...c, writer: A, tag: `${A}:${i + 1}` })))
    if (hostile) tagged.splice(seed % tagged.length, 0, [{ shard: 'a0', change: opBomb(Buffer.from(A, 'hex'), CHANGE_LIMITS.entryOps), writer: A, tag: `${A}:999` }])
    const one = Tree.create(B)
    const batched = Tree.create(B)
    try {
      one.applyChanges(base)
      batched.applyChanges(base)
      // Plain loops around Tree.apply (V8 20 crashed in its deoptimizer in two runs with it inside array-builtin callbacks; cause not proven).
      const rejectedOne: (string | undefined)[] = []
      for (const e of tagged) for (const r of one.apply(e)) rejectedOne.push(r.tag)
      rejectedOne.sort()
      const window: WindowEntry<(typeof tagged)[number][number]>[] = []
      for (const e of tagged) window.push(windowEntry(e))
      const rejected: (string | undefined)[] = []
      for (const b of batchesByShard(window, maxOps, CHANGE_LIMITS.entryBytes)) for (const r of batched.apply(b)) rejected.push(r.tag)
      rejected.sort()
      assert.deepEqual(rejected, rejectedOne)
      assert.equal(rejected.length, hostile)
      assert.deepEqual(canonicalDump(batched), canonicalDump(one))
      assert.equal(batched.heldCount, 0)
    } finally {
      one.free()
      batched.free()
    }
  }), { numRuns: 40 })
})
