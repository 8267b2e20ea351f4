// Snapshot records whose heads are stored apart, in parts (src/tree/snapshot-heads.ts,
// spec/tree.md "Snapshots"): a 1M-file volume's ~21k shard heads fit neither one change nor one
// log entry. The view is the same as a record naming every head gives, on the taker and on a
// peer, from the shards and from the index on disk; a later snapshot writes only the parts that
// changed since.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import * as A from '@automerge/automerge'
import { Tree, canonicalDump } from '../src/tree/index.js'
import { commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { PART_BATCH_BYTES, headsParts, partsToWrite } from '../src/tree/snapshot-heads.js'
import { decodeSnapshot, encodeSnapshot } from '../src/tree/model.js'
import { tempDir } from './helpers.js'

const WA = 'a1'.repeat(16)
const B = 'b2'.repeat(16)
const META_CHANGE_LIMIT = 1024 * 1024

/** Bytes of the meta changes among `changes`. */
const metaBytes = (changes: { shard: string; change: Uint8Array }[]): number => changes.filter((c) => c.shard === 'meta').reduce((n, c) => n + c.change.byteLength, 0)

test('a snapshot whose heads are stored in parts reads as the state it was taken at, here and on a peer, and a later one writes only what changed', () => {
  const { dir, cleanup } = tempDir()
  try {
    // Random ids spread the files over every top-level shard: many parts.
    const a = Tree.create(WA, { snapshotInline: 0, nodeId: () => [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16)).join('') })
    const b = Tree.create(B)
    for (let d = 0; d < 4; d++) {
      a.mkdir(`/d${d}`)
      for (let f = 0; f < 100; f++) a.writeFile(`/d${d}/f${f}`, { hash: (d * 1000 + f + 1).toString(16).padStart(64, '0'), size: f })
    }
    const log = a.takeChanges()
    a.snapshot('s1')
    const dump1 = canonicalDump(a)
    const first = a.takeChanges()
    const rec = decodeSnapshot(a.snapshotRecords()[0]!.text)
    assert.ok(rec.parts && rec.parts.length > 100, `format 2 record with its parts (${rec.parts?.length})`)
    // A few edits in one directory, then a second snapshot: only the parts holding changed heads are new.
    for (let f = 0; f < 3; f++) a.writeFile(`/d1/f${f}`, { hash: 'ab'.repeat(32), size: 9 })
    log.push(...first, ...a.takeChanges())
    a.snapshot('s2')
    const dump2 = canonicalDump(a)
    const second = a.takeChanges()
    log.push(...second)
    assert.ok(metaBytes(second) < metaBytes(first) / 2, `the second snapshot wrote ${metaBytes(second)} bytes of meta changes, the first ${metaBytes(first)}`)
    for (let f = 0; f < 3; f++) a.writeFile(`/d2/f${f}`, { hash: 'cd'.repeat(32), size: 9 })
    assert.deepEqual(canonicalDump(a.at('s1')), dump1)
    assert.deepEqual(canonicalDump(a.at('s2')), dump2)
    assert.deepEqual(a.snapshots().map((s) => s.name), ['s1', 's2'])
    // A peer: the same views, listed the same.
    b.applyChanges([...log, ...a.takeChanges()])
    assert.deepEqual(b.snapshots().map((s) => s.name), ['s1', 's2'])
    assert.deepEqual(canonicalDump(b.at('s1')), dump1)
    assert.deepEqual(canonicalDump(b.at('s2')), dump2)
    // From the index on disk (saved and derived views), after a reopen.
    const file = path.join(dir, 'b.ckpt')
    const files = path.join(dir, 'b')
    commitTreeIndex(file, files, b, null)
    const back = openTreeIndex(file, files, B).tree
    assert.deepEqual(canonicalDump(back.at('s1')), dump1)
    assert.deepEqual(canonicalDump(back.at('s2')), dump2)
    // Removed: not listed, ENOENT; the name can be taken again.
    back.removeSnapshot('s1')
    assert.deepEqual(back.snapshots().map((s) => s.name), ['s2'])
    assert.throws(() => back.at('s1'), /ENOENT/)
    for (const t of [a, b, back]) t.free()
  } finally {
    cleanup()
  }
})

test('the heads of ~21k shards (1M files) go in parts that fit a change each; the record stays small', () => {
  const heads: Record<string, string[]> = { meta: ['0'.repeat(64)] }
  const hex = '0123456789abcdef'
  for (let i = 0; i < 21_000; i++) {
    let name = ''
    for (let k = 0, x = i * 2654435761; k < 4 + (i % 5); k++, x = Math.floor(x / 16)) name += hex[x % 16]
    // Shards written by two writers apart have two heads.
    heads[name] = i % 3 === 0 ? [(i + 1).toString(16).padStart(64, '0'), (i + 2).toString(16).padStart(64, 'f')] : [(i + 1).toString(16).padStart(64, '0')]
  }
  const whole = encodeSnapshot({ time: 1, writer: WA, heads })
  assert.ok(whole.length > META_CHANGE_LIMIT, `a record naming every head: ${whole.length} bytes`)
  const parts = headsParts(heads)
  const record = encodeSnapshot({ time: 1, writer: WA, heads: null, parts: parts.map((p) => p.digest) })
  assert.ok(record.length < 64 * 1024, `the record: ${record.length} bytes`)
  const batches = partsToWrite({}, parts)
  for (const batch of batches) assert.ok(batch.reduce((s, p) => s + p.text.length, 0) <= PART_BATCH_BYTES)
  assert.equal(batches.flat().length, parts.length)
  // Every shard in exactly one part.
  const back: Record<string, string[]> = {}
  for (const p of parts) Object.assign(back, JSON.parse(p.text))
  assert.deepEqual(Object.keys(back).sort(), Object.keys(heads).sort())
})

test('heads parts from a hostile writer: a record naming another writer is rejected; a part value that does not hash to its key is ignored', () => {
  const OWNER = 'aa'.repeat(32), HOSTILE = 'bb'.repeat(32)
  const owner = Tree.create(OWNER, { snapshotInline: 0 })
  const replica = Tree.create('cc'.repeat(32))
  try {
    for (let f = 0; f < 20; f++) owner.writeFile(`/f${f}`, { hash: (f + 1).toString(16).padStart(64, '0'), size: f })
    const base = owner.takeChanges()
    const metaBase = base.filter((c) => c.shard === 'meta').map((c) => c.change)
    owner.snapshot('s')
    const dump = canonicalDump(owner)
    const snap = owner.takeChanges()
    const { parts } = decodeSnapshot(owner.snapshotRecords()[0]!.text)
    // Concurrently with the snapshot, the hostile writer puts garbage under every part's key (the winner by actor order), and a record naming the owner.
    const raw = A.getBackend(A.init<unknown>({ actor: HOSTILE }))
    if (metaBase.length > 0) raw.applyChanges(metaBase)
    for (const d of parts!) raw.put('_root', `snapheads.${d}`, '{"00":["' + 'f'.repeat(64) + '"]}', 'str')
    raw.commit(null, null)
    const garbage = { shard: 'meta', change: raw.getLastLocalChange()! }
    const raw2 = A.getBackend(A.init<unknown>({ actor: HOSTILE }))
    if (metaBase.length > 0) raw2.applyChanges(metaBase)
    raw2.put('_root', 'snap.forged', JSON.stringify([2, Date.now(), OWNER, { parts }]), 'str')
    raw2.commit(null, null)
    const forged = { shard: 'meta', change: raw2.getLastLocalChange()! }
    replica.applyChanges([...base, ...snap])
    const rejected = replica.apply([{ ...garbage, writer: HOSTILE, tag: 'garbage' }, { ...forged, writer: HOSTILE, tag: 'forged' }])
    assert.deepEqual(rejected.map((r) => r.tag), ['forged'])
    assert.match(rejected[0]!.reason, /naming writer aaaaaaaa/)
    assert.deepEqual(replica.snapshots().map((s) => s.name), ['s'])
    assert.deepEqual(canonicalDump(replica.at('s')), dump)
  } finally {
    owner.free()
    replica.free()
  }
})
