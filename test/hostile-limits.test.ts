// Hostile entries are bounded (issue 9, finding 4): op bombs (run-length columns), deflate
// bombs and oversized entries are rejected before Automerge sees them, by every replica alike,
// and replaying the worst entry a writer can build blocks the event loop only briefly.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import * as A from '@automerge/automerge'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { CHANGE_LIMITS, Tree, entryGroups, readChangeHeader } from '../src/tree/index.js'
import { tempDir } from './helpers.js'
import { deflateBomb, nestedBomb, opBomb, wideChange } from './hostile-changes.js'

const W = Buffer.alloc(32, 0xab)
const WH = W.toString('hex')

test('an op bomb (a million ops in 80 bytes) and a deflate bomb are rejected before Automerge, naming the limit', () => {
  const t = Tree.create(WH)
  try {
    const bomb = opBomb(W, 1_000_000)
    assert.ok(bomb.length < 100)
    const zbomb = deflateBomb(W, 64 * 1024 * 1024)
    assert.ok(zbomb.length < 100_000, `${zbomb.length}`)
    const t0 = performance.now()
    const rejected = t.apply([
      { shard: 'a0', change: bomb, writer: WH, tag: 'e1' },
      { shard: 'a1', change: zbomb, writer: WH, tag: 'e2' },
      { shard: 'a2', change: opBomb(W, 100_000, { compress: true }), writer: WH, tag: 'e3' },
      { shard: 'a3', change: deflateBomb(W, 512 * 1024), writer: WH, tag: 'e4' },
    ])
    const ms = performance.now() - t0
    assert.deepEqual(rejected.map((r) => r.tag), ['e1', 'e2', 'e3', 'e4'])
    for (const r of rejected) assert.match(r.reason, /entry over its limits/)
    assert.match(rejected[0].reason, /more ops than/)
    assert.match(rejected[1].reason, /inflates beyond the \d+ bytes left of the entry/)
    assert.match(rejected[3].reason, /inflates beyond 32x/)
    assert.equal(t.heldCount, 0)
    console.log(`# four bombs rejected in ${ms.toFixed(1)} ms`)
  } finally { t.free() }
})

test('limits are per entry: changes of one entry share them, an entry over them is rejected whole, others apply', () => {
  const t = Tree.create(WH)
  try {
    const half = Math.floor(CHANGE_LIMITS.entryOps / 2 / CHANGE_LIMITS.rootOpWeight) // ops on the root map count rootOpWeight
    const a = opBomb(W, half, { key: 'a' }), b = opBomb(W, half, { key: 'b' })
    // Alone, each fits; together in one entry they do not: the whole entry is rejected.
    const r1 = t.apply([{ shard: 'b0', change: a, writer: WH, tag: 'x' }, { shard: 'b1', change: b, writer: WH, tag: 'x' }])
    assert.deepEqual(r1.map((r) => [r.shard, r.tag]).sort(), [['b0', 'x'], ['b1', 'x']])
    // In two entries they apply (and the rejection above was not remembered against them).
    const r2 = t.apply([{ shard: 'b0', change: a, writer: WH, tag: 'y' }, { shard: 'b1', change: b, writer: WH, tag: 'z' }])
    assert.deepEqual(r2, [])
    // A compressed change within the ratio applies, and is given to Automerge uncompressed.
    const big = wideChange(W, Array.from({ length: 50 }, (_, i) => `key${i}`), { valueBytes: 100, compress: true })
    assert.equal(big[8], 2)
    const h = readChangeHeader(big)
    assert.equal(h.chunk[8], 1)
    assert.deepEqual(t.apply([{ shard: 'b2', change: big, writer: WH, tag: 'w' }]), [])
  } finally { t.free() }
})

test('a local batch of any size is cut into changes and entry groups that every replica accepts', () => {
  let k = 0
  const t = Tree.create(WH, { random: (n) => '55' + (k++).toString(16).padStart(n * 2 - 2, '0') }) // one shard
  try {
    for (let i = 0; i < 3000; i++) t.symlink(`/s${i}`, 'x'.repeat(4096))
    const changes = t.takeChanges()
    assert.ok(changes.length >= 6, `${changes.length} changes`)
    const groups = entryGroups(changes)
    assert.ok(groups.length >= 2)
    const r = Tree.create('cd'.repeat(32))
    try {
      groups.forEach((g, k) => assert.deepEqual(r.apply(g.map((c) => ({ ...c, writer: WH, tag: `e${k}` }))), []))
      assert.equal(r.readdir('/').length, 3000)
    } finally { r.free() }
  } finally { t.free() }
})

/** The longest event-loop block while `fn` runs, in ms. */
async function maxStall(fn: () => Promise<unknown>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 5 })
  h.enable()
  try {
    await fn()
  } finally {
    h.disable()
  }
  return h.max / 1e6
}

test('replaying the worst entries a writer can build blocks the event loop briefly: bombs rejected, the largest accepted entries bounded', async () => {
  const { dir, cleanup } = tempDir()
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const me = vol.log.key
    const ops = CHANGE_LIMITS.entryOps - CHANGE_LIMITS.changeOps
    const rootOps = Math.floor(ops / CHANGE_LIMITS.rootOpWeight)
    const ids = (n: number, p: string) => Array.from({ length: n }, (_, i) => p + i.toString(16).padStart(30, '0'))
    // Worst accepted: as many ops as allowed (one op bomb of new maps; records that do not decode), values as big as allowed.
    const bodies = [
      { name: 'op bomb, 2^22 ops', changes: [{ shard: 'c0', change: opBomb(me, 2 ** 22) }] },
      { name: 'deflate bomb, 64 MiB', changes: [{ shard: 'c1', change: deflateBomb(me, 64 * 1024 * 1024) }] },
      { name: 'largest op bomb accepted', changes: [{ shard: 'c2', change: opBomb(me, rootOps) }] },
      { name: 'largest nested op bomb accepted', changes: [{ shard: 'c5', change: nestedBomb(me, ops - CHANGE_LIMITS.rootOpWeight) }] },
      { name: 'most records accepted', changes: [{ shard: 'c3', change: wideChange(me, ids(rootOps, 'c3')) }] },
      { name: 'largest values accepted', changes: [{ shard: 'c4', change: wideChange(me, ids(120, 'c4'), { valueBytes: 8000 }) }] },
      { name: 'most changes accepted', changes: manyChanges(me, Math.floor(CHANGE_LIMITS.entryOps / (CHANGE_LIMITS.changeOps + CHANGE_LIMITS.rootOpWeight))) },
    ]
    const seqs = await vol.log.append(bodies.map((b) => ({ time: 1, ops: [], changes: b.changes })))
    // The unbounded case for comparison, on the machine as loaded now: Automerge applying an op
    // bomb 1/16 the size of the first entry's (which 322f4e8 applied whole, blocking ~16x this).
    const ref = A.init<unknown>({ actor: 'ee'.repeat(32) })
    const t0 = performance.now()
    A.getBackend(ref).applyChanges([opBomb(Buffer.alloc(32, 0xee), 2 ** 18)])
    const unbounded = performance.now() - t0
    A.free(ref)

    const stall = await maxStall(() => vol.refresh())
    const reasons = new Map(vol.skipped.map((s) => [s.seq, s.reason]))
    assert.match(reasons.get(seqs[0]) ?? '', /entry over its limits.*more ops/)
    assert.match(reasons.get(seqs[1]) ?? '', /entry over its limits.*inflates beyond/)
    for (const s of seqs.slice(2)) assert.equal(reasons.get(s), undefined, `entry ${s} (${bodies[s - 1].name}) skipped: ${reasons.get(s)}`)
    const verifyStall = await maxStall(async () => {
      const v = await vol.verify()
      assert.deepEqual(v.errors.map((e) => e.seq), seqs.slice(0, 2))
    })
    console.log(`# longest event-loop block: replay ${stall.toFixed(0)} ms, log verify ${verifyStall.toFixed(0)} ms; Automerge alone on a 2^18-op bomb: ${unbounded.toFixed(0)} ms (the 2^22-op entry would take ~16x that)`)
    // Bounds that hold on a loaded 2-core machine (the target, 100 ms, is for a quiet one): under
    // the unbounded reference as measured now, and a generous absolute one.
    assert.ok(stall < Math.max(1000, unbounded), `replay blocked the event loop for ${stall.toFixed(0)} ms (reference ${unbounded.toFixed(0)} ms)`)
    assert.ok(verifyStall < Math.max(1000, unbounded), `verify blocked the event loop for ${verifyStall.toFixed(0)} ms (reference ${unbounded.toFixed(0)} ms)`)
  } finally {
    await node.close()
    cleanup()
  }
})

/** `n` one-op changes over 16 shards, each naming its predecessor in its shard (seq order). */
function manyChanges(actor: Buffer, n: number): { shard: string; change: Buffer }[] {
  const out: { shard: string; change: Buffer }[] = []
  for (let i = 0; i < n; i++) {
    const deps = i >= 16 ? [Buffer.from(readChangeHeader(out[i - 16].change).hash, 'hex')] : []
    out.push({ shard: (0xd0 + (i % 16)).toString(16), change: opBomb(actor, 1, { key: `k${i}`, seq: Math.floor(i / 16) + 1, deps }) })
  }
  return out
}
