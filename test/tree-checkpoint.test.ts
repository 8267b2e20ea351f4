// The Tree's replication rules (change headers, authors, held changes) and its checkpoint
// state: round trips, rejection of damaged files, lazy shards, resolve.
import { test } from 'node:test'
import { randomBytes } from 'node:crypto'
import assert from 'node:assert/strict'
import { deflateRawSync } from 'node:zlib'
import * as A from '@automerge/automerge'
import { Tree, TreeError, canonicalDump, decodeTreeState, encodeTreeState, readChangeHeader } from '../src/tree/index.js'
import { hash } from '../src/crypto.js'

const ACTORS = ['aa'.repeat(16), 'bb'.repeat(16), 'cc'.repeat(16)]
const ref = (n: number) => ({ hash: n.toString(16).padStart(64, '0'), size: n })

test('change headers: actor, seq, deps and hash as Automerge has them; compressed chunks; garbage rejected', () => {
  let d = A.init<Record<string, number>>({ actor: ACTORS[0] })
  d = A.change(d, (x) => { x.a = 1 })
  d = A.change(d, (x) => { x.b = 2 })
  const change = A.getLastLocalChange(d)!
  const { hash, actor, seq, deps } = readChangeHeader(change)
  const h = { hash, actor, seq, deps }
  const decoded = A.decodeChange(change)
  assert.deepEqual(h, { hash: decoded.hash, actor: decoded.actor, seq: decoded.seq, deps: decoded.deps })
  // Same change as a type-2 (deflated) chunk: same hash.
  assert.equal(change[8], 1)
  let at = 9
  while (change[at] & 0x80) at++
  const z = deflateRawSync(change.subarray(at + 1))
  const len: number[] = []
  for (let n = z.length; ; ) { const b = n & 0x7f; n >>>= 7; if (n) len.push(b | 0x80); else { len.push(b); break } }
  const compressed = Buffer.concat([Buffer.from(change.subarray(0, 8)), Buffer.from([2, ...len]), z])
  const c = readChangeHeader(compressed)
  assert.deepEqual({ hash: c.hash, actor: c.actor, seq: c.seq, deps: c.deps }, h)
  assert.deepEqual(Buffer.from(c.chunk), Buffer.from(change)) // given to Automerge uncompressed
  for (const bad of [new Uint8Array(3), Buffer.from('85 6f 4a 83 00 00 00 00 01 05 00'.replace(/ /g, ''), 'hex'), Buffer.concat([Buffer.from(change), Buffer.from([0])])]) {
    assert.throws(() => readChangeHeader(bad))
  }
})

test('a change Automerge refuses is rejected, and so is everything built on it, in any order and after a checkpoint', () => {
  // A forked writer: two trees with one actor make different changes with the same seq.
  // Once one is in, Automerge refuses the other (duplicate seq), and what builds on it.
  const same = (n: number) => '77'.repeat(n) // one node id for both: the changes land in one shard
  const a = Tree.create(ACTORS[0], { random: same }), fork = Tree.create(ACTORS[0], { random: same })
  a.writeFile('/f', ref(1))
  const good = a.takeChanges()
  fork.writeFile('/f', ref(2))
  const forked = fork.takeChanges()
  fork.setattr('/f', { mode: 0o600 }) // the same shard: depends on the forked change
  const next = fork.takeChanges()
  const shard = next.find((c) => c.shard !== 'meta')!.shard
  const pick = (cs: typeof good) => cs.find((c) => c.shard === shard)!.change
  const feed = (t: Tree, c: Uint8Array, tag: string) => t.apply([{ shard, change: c, writer: ACTORS[0], tag }])
  for (const order of [['bad', 'next'], ['next', 'bad']]) {
    const t = Tree.create(ACTORS[1])
    assert.ok(good.some((c) => c.shard === shard))
    t.applyChanges(good)
    const rejected = order.flatMap((k) => (k === 'bad' ? feed(t, pick(forked), 'w:1') : feed(t, pick(next), 'w:2')))
    assert.deepEqual(rejected.map((r) => r.tag).sort(), ['w:1', 'w:2'], `order ${order}`)
    assert.match(rejected.find((r) => r.tag === 'w:2')!.reason, /builds on change [0-9a-f]{8}, which does not apply/)
    assert.equal(t.heldCount, 0)
    // Remembered across a checkpoint: a later copy of the dependent is rejected at once.
    const restored = Tree.restore(ACTORS[1], decodeTreeState(encodeTreeState(t.exportState(), null)).state)
    assert.equal(feed(restored, pick(next), 'w:2').length, 1)
    assert.equal(restored.heldCount, 0)
    t.free(); restored.free()
  }
  a.free(); fork.free()
})

test('a change by another actor than its writer is rejected; one with missing deps is held until they come', () => {
  const a = Tree.create(ACTORS[0]), b = Tree.create(ACTORS[1])
  a.mkdir('/d')
  a.writeFile('/d/f', ref(1))
  const first = a.takeChanges()
  a.setattr('/d/f', { mode: 0o600 }) // same shard as /d/f: this change depends on the first
  const second = a.takeChanges()
  // Written as by writer bb: rejected, nothing applied.
  const forged = b.apply(first.map((c) => ({ ...c, writer: ACTORS[1], tag: 'x:1' })))
  assert.equal(forged.length, first.length)
  assert.match(forged[0].reason, /actor/)
  assert.equal(forged[0].tag, 'x:1')
  assert.equal(b.lookup('/d'), null)
  // Second before first: held, then applied when the first arrives.
  assert.deepEqual(b.apply(second.map((c) => ({ ...c, writer: ACTORS[0] }))), [])
  assert.equal(b.lookup('/d/f'), null)
  assert.equal(b.heldCount, 1)
  // Held changes survive a checkpoint.
  const restored = Tree.restore(ACTORS[1], decodeTreeState(encodeTreeState(b.exportState(), null)).state)
  assert.equal(restored.heldCount, b.heldCount)
  assert.deepEqual(restored.apply(first.map((c) => ({ ...c, writer: ACTORS[0] }))), [])
  assert.equal(restored.heldCount, 0)
  assert.equal(restored.stat('/d/f').content?.hash, ref(1).hash)
  assert.equal(restored.stat('/d/f').mode, 0o600)
  a.free(); b.free(); restored.free()
})

test('checkpoint state round-trips: same view, cold shards loaded only to write or merge, damage detected', () => {
  const a = Tree.create(ACTORS[0]), b = Tree.create(ACTORS[1])
  for (let d = 0; d < 10; d++) {
    a.mkdir(`/d${d}`)
    for (let f = 0; f < 20; f++) a.writeFile(`/d${d}/f${f}`, ref(d * 100 + f + 1))
  }
  b.applyChanges(a.takeChanges())
  b.writeFile('/d1/f1', ref(9999)); a.writeFile('/d1/f1', ref(8888))
  b.applyChanges(a.takeChanges())
  b.snapshot('s', 5)
  const extra = { any: ['json', 1] }
  const bytes = encodeTreeState(b.exportState(), extra)
  const { state, extra: back } = decodeTreeState(bytes)
  assert.deepEqual(back, extra)
  const r = Tree.restore(ACTORS[1], state)
  assert.deepEqual(canonicalDump(r), canonicalDump(b))
  assert.deepEqual(r.conflicts(), b.conflicts())
  assert.deepEqual(r.audit(), [])
  assert.equal(r.shardStats.hot, 0)
  assert.equal(r.stat('/d3/f3').size, 304)
  assert.equal(r.shardStats.hot, 0, 'reads load nothing')
  r.setattr('/d3/f3', { mode: 0o600 })
  r.takeChanges()
  assert.equal(r.shardStats.hot, 1, 'a write loads one shard')
  assert.equal(canonicalDump(r.at('s')).length, canonicalDump(b.at('s')).length)
  r.evict()
  assert.equal(r.shardStats.hot, 0)
  // Merging into the restored tree: only the changed shards load, and it converges.
  a.writeFile('/d2/f2', ref(7777))
  const more = a.takeChanges()
  r.applyChanges(more); b.applyChanges(more)
  assert.equal(r.stat('/d2/f2').content?.hash, ref(7777).hash)
  assert.ok(r.shardStats.hot <= 2)
  // Damage anywhere is detected; unknown versions refused.
  for (const at of [0, 4, 20, bytes.length >> 1, bytes.length - 1]) {
    const bad = Buffer.from(bytes)
    bad[at] ^= 0x01
    assert.throws(() => decodeTreeState(bad), /checkpoint|version/)
  }
  a.free(); b.free(); r.free()
})

test('checkpoint version 1 (all node rows in the header) is still read', () => {
  // Random ids (not placed near their directory): 2,500 files in / stay in 256 top-level shards, no split (a v1 checkpoint has no shard field).
  const a = Tree.create(ACTORS[0], { nodeId: () => randomBytes(16).toString('hex') })
  for (let i = 0; i < 2500; i++) a.writeFile(`/f${i}`, ref(i + 1)) // more than one node blob
  const v2 = encodeTreeState(a.exportState(), { x: 1 })
  assert.equal(v2[4], 2)
  // Rewrite it as version 1: rows from the node blobs back into the header.
  const hlen = v2.readUInt32BE(5)
  const header = JSON.parse(v2.subarray(9, 9 + hlen).toString())
  const body = v2.subarray(0, v2.length - 32)
  const blobBytes = (header.nodeBlobs as number[]).reduce((x, y) => x + y, 0)
  let at = body.length - blobBytes
  const rest = body.subarray(9 + hlen, at)
  header.nodes = []
  for (const n of header.nodeBlobs as number[]) { header.nodes.push(...JSON.parse(body.subarray(at, at + n).toString())); at += n }
  delete header.nodeBlobs
  const json = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(4); len.writeUInt32BE(json.length)
  const v1body = Buffer.concat([Buffer.from('BZTC'), Buffer.from([1]), len, json, rest])
  const v1 = Buffer.concat([v1body, hash(v1body)])
  const r = Tree.restore(ACTORS[1], decodeTreeState(v1).state)
  assert.deepEqual(canonicalDump(r), canonicalDump(a))
  a.free(); r.free()
})

test('resolve: mine, theirs, both; errors name the path', () => {
  const mk = () => {
    const a = Tree.create(ACTORS[0]), b = Tree.create(ACTORS[1])
    a.writeFile('/f', ref(1)); b.applyChanges(a.takeChanges())
    a.writeFile('/f', ref(2)); b.writeFile('/f', ref(3))
    const ca = a.takeChanges(), cb = b.takeChanges()
    a.applyChanges(cb); b.applyChanges(ca)
    return { a, b }
  }
  let { a, b } = mk()
  assert.equal(a.conflicts().length, 1)
  a.resolve('/f', 'mine')
  assert.deepEqual(a.conflicts(), [])
  assert.equal(a.stat('/f').content?.hash, ref(2).hash)
  b.applyChanges(a.takeChanges())
  assert.deepEqual(canonicalDump(b), canonicalDump(a))
  a.free(); b.free()
  ;({ a, b } = mk())
  const copy = a.conflicts()[0].versions[1].path
  a.resolve(copy, 'theirs')
  assert.equal(a.stat('/f').content?.hash, ref(3).hash)
  assert.throws(() => a.resolve('/f', 'theirs'), (e: unknown) => e instanceof TreeError && e.code === 'EINVAL' && /not a file in conflict/.test(e.message))
  a.free(); b.free()
  ;({ a, b } = mk())
  // The winner is bb's (higher actor): keeping mine (aa's) under the name turns bb's into a file named for bb.
  assert.equal(a.stat('/f').content?.hash, ref(3).hash)
  const r = a.resolve('/f', 'both')
  assert.equal(r.created.length, 1)
  assert.deepEqual(a.conflicts(), [])
  assert.equal(a.stat('/f').content?.hash, ref(2).hash)
  assert.equal(r.created[0].path, '/f.conflict-bbbbbbbb')
  assert.equal(a.stat('/f.conflict-bbbbbbbb').content?.hash, ref(3).hash)
  b.applyChanges(a.takeChanges())
  assert.deepEqual(canonicalDump(b), canonicalDump(a))
  assert.throws(() => a.resolve('/nope', 'mine'), (e: unknown) => e instanceof TreeError && e.code === 'ENOENT')
  a.free(); b.free()
})
