// Shard splits (spec/tree.md "Shard layout"): a creator puts a new record one hex digit deeper
// once the shard it would go to holds `splitAt` records (as it knows them), and readers take a
// record from whichever shard on its id's path holds it, the shallowest if several do. So
// peers that split at different moments (or never: old volumes, old peers' checkpoints) read
// the same records. The property runs the convergence schedules with writers splitting at
// different sizes; the rest: an old 256-shard volume continuing with splits, checkpoints
// across versions, and hostile changes in the shapes a split allows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as A from '@automerge/automerge'
import { CHECKPOINT_VERSION, Tree, canonicalDump, decodeTreeState, encodeTreeState, type ShardChange } from '../src/tree/index.js'
import { checkProperty, runTreeSchedule, scheduleArb, stats } from './tree-schedules.js'

const RUNS = Number(process.env.BAZIL_PROPERTY_SPLIT_RUNS ?? 300)
const OWNER = 'aa'.repeat(32)
const HOSTILE = 'bb'.repeat(32)
const REPLICA = 'cc'.repeat(32)
const h = (n: number): string => n.toString(16).padStart(64, '0')
const deep = (shards: string[]): string[] => shards.filter((s) => s !== 'meta' && s.length > 2)

test(`property: ${RUNS} schedules where the writers split shards at different sizes (1, 2, never) converge, nothing lost`, () => {
  let split = 0
  // Ids spread over only 2 top-level shards (the schedules' random ids start with 0 or 1 after
  // this mask) so that a few records fill a shard: every schedule splits somewhere.
  const narrow = (k: number) => {
    let r = 0
    const random = (n: number): string => {
      const x = ++r
      return n === 16 ? (x % 2).toString() + h(k * 1_000_000 + x).slice(-31) : h(k * 1_000_000 + x).slice(-2 * n)
    }
    return { splitAt: [1, 2, 1_000_000][k], random }
  }
  checkProperty(fc.property(scheduleArb, (ops) => {
    const shards = runTreeSchedule(ops, narrow)
    if (shards.some((s) => deep(s).length > 0)) split++
  }), RUNS)
  console.log(`# split schedules: ${split} of ${RUNS} used deeper shards; ${JSON.stringify(stats)}`)
  assert.ok(split > RUNS / 2, `only ${split} of ${RUNS} schedules split a shard`)
})

/** Creates `n` files in /d with node ids all in top-level shard "ab". */
function fill(t: Tree, n: number, from = 0): void {
  for (let i = from; i < from + n; i++) t.writeFile(`/d/f${i}`, { hash: h(i + 1), size: i })
}

/** Node ids "ab" + a counter from `start` (all in top-level shard "ab"); other random values from a counter. */
function abIds(start = 0): (bytes: number) => string {
  let r = start
  return (n) => (n === 16 ? 'ab' : '').padEnd(2 * n - 12, '0') + (r++).toString(16).padStart(12, '0')
}

/** The shard holding the record of the node at `path`. */
function home(t: Tree, path: string): string {
  const id = t.stat(path).id
  return t.exportState().nodes.find((n) => n.id === id)!.shard ?? id.slice(0, 2)
}

test('an old volume (every record in its 2-digit shard) continues with splits; a replica that never split reads the same', () => {
  const old = Tree.create(OWNER, { random: abIds(), splitAt: 1_000_000 }) // as before splits: one shard "ab"
  const replica = Tree.create(REPLICA, { splitAt: 1_000_000 })
  try {
    old.mkdir('/d')
    fill(old, 20)
    const before = old.takeChanges()
    assert.deepEqual(deep(Object.keys(old.heads())), [])
    // Its checkpoint (no record deeper than its top-level shard) keeps the previous version, read as before.
    const ckpt = encodeTreeState(old.exportState(), null)
    assert.equal(ckpt[4], 2)
    // The same volume opened by a writer that splits at 8 records per shard.
    const next = Tree.restore(OWNER, decodeTreeState(ckpt).state, { random: abIds(1000), splitAt: 8 })
    try {
      fill(next, 30, 100)
      next.writeFile('/d/f3', { hash: h(999), size: 1 }) // an old record: edited in place, in "ab"
      const after = next.takeChanges()
      const made = deep(after.map((c) => c.shard))
      assert.ok(made.length > 0 && made.every((s) => s.startsWith('ab')), `new records went deeper: ${[...new Set(made)]}`)
      assert.ok(after.some((c) => c.shard === 'ab'), 'the old record is edited in its own shard')
      replica.applyChanges([...after, ...before].reverse())
      assert.deepEqual(canonicalDump(replica), canonicalDump(next))
      assert.equal(replica.stat('/d/f3').content!.hash, h(999))
      assert.deepEqual(replica.problems(), [])
      // The replica (which never splits) edits a record that lives in a deeper shard: its change goes there.
      assert.ok(home(replica, '/d/f129').length > 2)
      assert.equal(home(replica, '/d/f129'), home(next, '/d/f129'))
      replica.setattr('/d/f129', { mode: 0o600 })
      const edit = replica.takeChanges()
      assert.deepEqual(edit.map((c) => c.shard), [home(next, '/d/f129')])
      next.applyChanges(edit)
      assert.equal(next.stat('/d/f129').mode, 0o600)
      // A checkpoint with records in deeper shards is the new version, and keeps where each record lives.
      const ckpt3 = encodeTreeState(next.exportState(), null)
      assert.equal(ckpt3[4], CHECKPOINT_VERSION)
      const again = Tree.restore(OWNER, decodeTreeState(ckpt3).state)
      try {
        again.setattr('/d/f128', { mode: 0o640 })
        const e2 = again.takeChanges()
        assert.deepEqual(e2.map((c) => c.shard), [home(next, '/d/f128')])
        replica.applyChanges(e2)
        assert.equal(replica.stat('/d/f128').mode, 0o640)
        assert.deepEqual(canonicalDump(again), canonicalDump(replica))
      } finally { again.free() }
    } finally { next.free() }
  } finally {
    old.free()
    replica.free()
  }
})

test('writers that split at different moments (one offline) end identical; shards stay near the split size', () => {
  const a = Tree.create(OWNER, { random: abIds(), splitAt: 16 })
  const b = Tree.create(HOSTILE, { random: abIds(0x100000), splitAt: 16 })
  try {
    a.mkdir('/d')
    fill(a, 10)
    b.applyChanges(a.takeChanges())
    // Apart: a splits after 6 more, b (offline) after its own 6; both go on.
    fill(a, 40, 100)
    fill(b, 40, 200)
    const ca = a.takeChanges(), cb = b.takeChanges()
    b.applyChanges(ca)
    a.applyChanges(cb)
    assert.deepEqual(canonicalDump(a), canonicalDump(b))
    assert.equal(a.readdir('/d').length, 90)
    // Each writer put 16 records in "ab" as it knew it (11 shared, 5 each): 21 in all, then went deeper.
    const inAb = a.exportState().nodes.filter((n) => n.shard === undefined).length
    assert.equal(inAb, 21)
    assert.deepEqual(b.exportState().nodes.filter((n) => n.shard === undefined).length, 21)
    assert.deepEqual(a.problems(), [])
  } finally {
    a.free()
    b.free()
  }
})

/** A raw Automerge change of one shard by `actor`, putting a record under `id`. */
function rawRecord(actor: string, shard: string, id: string, name: string, base: ShardChange[] = []): ShardChange {
  const handle = A.getBackend(A.init<unknown>({ actor }))
  const mine = base.filter((c) => c.shard === shard).map((c) => c.change)
  if (mine.length > 0) handle.applyChanges(mine)
  handle.putObject('_root', id, { v: 1, kind: 'file', loc: JSON.stringify([1, '0'.repeat(32), name, actor, 1, null, null]), mode: 0o644, mtime: 1, by: actor })
  handle.commit(null, null)
  return { shard, change: handle.getLastLocalChange()! }
}

test('hostile: a record for an existing node put in a deeper shard is ignored in any order; one in a shallower shard counts, for every replica alike', () => {
  const owner = Tree.create(OWNER, { random: abIds(), splitAt: 2 })
  try {
    owner.mkdir('/d')
    fill(owner, 4)
    const base = owner.takeChanges()
    const deepNode = owner.readdir('/d').find((s) => home(owner, `/d/${s.name}`).length > 2)!
    const shallowNode = owner.readdir('/d').find((s) => home(owner, `/d/${s.name}`) === 'ab')!
    // (1) A copy of a node living in "ab" put into "ab" + its next digit: shadowed, whatever the order.
    const shadow = rawRecord(HOSTILE, shallowNode.id.slice(0, 3), shallowNode.id, 'hijack')
    // (2) A record for a node living in a deeper shard put into its top-level shard "ab": the shallowest counts.
    const takeover = rawRecord(HOSTILE, 'ab', deepNode.id, 'taken', base)
    const results: string[][] = []
    for (const order of [[...base, shadow, takeover], [takeover, shadow, ...base], [shadow, ...base.slice().reverse(), takeover]]) {
      for (const batched of [true, false]) {
        const r = Tree.create(REPLICA)
        try {
          if (batched) assert.deepEqual(r.apply(order.map((c) => ({ ...c, writer: c === shadow || c === takeover ? HOSTILE : OWNER }))), [])
          else for (const c of order) assert.deepEqual(r.apply([{ ...c, writer: c === shadow || c === takeover ? HOSTILE : OWNER }]), [])
          assert.equal(r.stat(`/d/${shallowNode.name}`).id, shallowNode.id)
          assert.equal(r.lookup('/hijack'), null)
          assert.ok(r.problems().some((p) => p.id === shallowNode.id && p.shard === shallowNode.id.slice(0, 3) && /shadowed/.test(p.reason)))
          assert.ok(r.problems().some((p) => p.id === deepNode.id && /shadowed/.test(p.reason)))
          results.push(canonicalDump(r))
        } finally { r.free() }
      }
    }
    for (const d of results) assert.deepEqual(d, results[0])
    assert.ok(results[0].some((l) => l.startsWith('/taken\t')), 'the shallow record counts')
  } finally { owner.free() }
})

test('hostile: changes naming no shard are rejected with a reason (the entry\'s other changes apply); a record off its shard\'s path is ignored', () => {
  const owner = Tree.create(OWNER)
  const r = Tree.create(REPLICA)
  try {
    owner.writeFile('/f', { hash: h(1), size: 1 })
    const [good] = owner.takeChanges()
    for (const bad of ['zz', 'AB', 'a', '123456789', '', 'ab/c', 'x'.repeat(300)]) {
      const out = r.apply([{ shard: bad, change: good.change, writer: OWNER, tag: 'e:1' }])
      assert.equal(out.length, 1, `shard ${JSON.stringify(bad)}`)
      assert.match(out[0].reason, /names no shard/)
      assert.ok(out[0].reason.length < 200)
    }
    assert.deepEqual(r.apply([{ ...good, writer: OWNER, tag: 'e:2' }, { shard: 'nope', change: good.change, writer: OWNER, tag: 'e:2' }]).map((x) => x.shard), ['nope'])
    assert.equal(r.stat('/f').content!.hash, h(1))
    // A record in shard "abc" under an id that does not start with "abc".
    const off = rawRecord(HOSTILE, 'abc', 'abd' + '0'.repeat(29), 'off')
    assert.deepEqual(r.apply([{ ...off, writer: HOSTILE }]), [])
    assert.equal(r.lookup('/off'), null)
    assert.ok(r.problems().some((p) => p.shard === 'abc' && /not a node id of this shard/.test(p.reason)))
  } finally {
    owner.free()
    r.free()
  }
})

test('a snapshot taken after splits reads records from every shard they live in', () => {
  const t = Tree.create(OWNER, { random: abIds(), splitAt: 3 })
  try {
    t.mkdir('/d')
    fill(t, 12)
    t.snapshot('s1')
    t.writeFile('/d/f0', { hash: h(500), size: 1 })
    fill(t, 3, 50)
    const snap = t.at('s1')
    assert.equal(snap.readdir('/d').length, 12)
    assert.equal(snap.stat('/d/f11').content!.hash, h(12))
    assert.equal(snap.stat('/d/f0').content!.hash, h(1))
    const r = Tree.create(REPLICA)
    try {
      r.applyChanges(t.takeChanges())
      assert.deepEqual(canonicalDump(r.at('s1')), canonicalDump(snap))
    } finally { r.free() }
  } finally { t.free() }
})
