// Record format version 2 (spec/tree.md "Documents"): a new record is the map and one key `c`
// (2 Automerge ops instead of 8); edits assign the version 1 keys, which override c's initial
// values. Volumes mixing version 1 records (old writers) and version 2 records converge.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as A from '@automerge/automerge'

// Every record read from patches is compared with a full read (read when tree.ts loads).
process.env.BAZIL_TREE_CHECK_PATCHED = '1'
const { Tree, canonicalDump } = await import('../src/tree/index.js')
const { checkProperty, runTreeSchedule, scheduleArb, stats } = await import('./tree-schedules.js')
type ShardChange = { shard: string; change: Uint8Array }

const W1 = 'aa'.repeat(32)
const W2 = 'bb'.repeat(32)
const R = 'cc'.repeat(32)
const h = (n: number): string => n.toString(16).padStart(64, '0')
const RUNS = Number(process.env.BAZIL_PROPERTY_RUNS ?? 300)

function opts(k: number, recordVersion: 1 | 2) {
  let t = 1_000_000
  let r = 0
  return { clock: () => (t += 3), random: (n: number) => h(k * 1_000_000 + ++r).slice(-2 * n), recordVersion }
}

/** The ops of every change, decoded. */
function ops(changes: ShardChange[]): { action: string; key?: string; value?: unknown }[] {
  return changes.flatMap((c) => A.decodeChange(c.change).ops as { action: string; key?: string; value?: unknown }[])
}

test('property: writers of version 1 and version 2 records converge, nothing lost', () => {
  // Writer 0 writes version 1 records (an old writer), writers 1 and 2 version 2; every replica
  // edits records of both formats (moves, writes, chmod, unlink, resolve).
  checkProperty(fc.property(scheduleArb, (list) => { runTreeSchedule(list, (k) => ({ recordVersion: k === 0 ? 1 : 2 })) }), RUNS)
  console.log(`# mixed-format schedules: ${JSON.stringify(stats)}`)
})

test('a version 2 record is the map and c (2 ops); it reads as the same node as a version 1 record', () => {
  const trees = [1, 2].map((v) => Tree.create(W1, opts(0, v as 1 | 2)))
  const changes: ShardChange[][] = []
  for (const t of trees) {
    t.mkdir('/d', { mode: 0o700, mtime: 5 })
    t.writeFile('/d/f', { hash: h(1), size: 10 }, { mode: 0o600, mtime: 1.5 })
    t.symlink('/d/l', 'f')
    t.writeFile('/d/empty', { hash: h(2), size: 0 })
    changes.push(t.takeChanges())
  }
  assert.deepEqual(canonicalDump(trees[1]), canonicalDump(trees[0]))
  // Beside the records: the root's mtime (mkdir of /d in it), one op in `meta` (spec/tree.md "Times").
  const records = (list: ShardChange[]): ShardChange[] => list.filter((c) => c.shard !== 'meta')
  assert.equal(ops(changes[0]).length - ops(records(changes[0])).length, 1)
  assert.equal(ops(records(changes[0])).length, 4 * 8 - 1, 'version 1: 8 ops per record (a dir has no content)')
  assert.equal(ops(records(changes[1])).length, 4 * 2, 'version 2: 2 ops per record')
  const c = ops(changes[1]).find((o) => o.key === 'c')!
  assert.match(String(c.value), /^\[2,"dir","a{64}",\d+,\{"loc":\["0{32}","d"\],"mode":448,"mtime":\d+\}\]$/) // mtime: its entries' latest creation (folded)
  // A fresh replica reads both alike, from the changes and from patches.
  for (const list of changes) {
    const r = Tree.create(R)
    r.applyChanges(list)
    assert.deepEqual(canonicalDump(r), canonicalDump(trees[0]))
    assert.deepEqual(r.problems(), [])
    r.free()
  }
  for (const t of trees) t.free()
})

test('edits of a version 2 record by another writer override its initial values; a deleted key falls back to them', () => {
  const a = Tree.create(W1, opts(0, 2))
  a.mkdir('/d')
  a.writeFile('/d/f', { hash: h(1), size: 1 }, { mode: 0o600 })
  const base = a.takeChanges()
  const b = Tree.create(W2, opts(1, 2))
  b.applyChanges(base)
  b.setattr('/d/f', { mode: 0o640, mtime: 7 })
  b.writeFile('/d/f', { hash: h(2), size: 2 })
  b.rename('/d/f', '/g')
  const edits = b.takeChanges()
  assert.ok(!ops(edits).some((o) => o.key === 'c' || o.key === 'v'), 'edits assign version 1 keys only')
  a.applyChanges(edits)
  for (const t of [a, b]) {
    const st = t.stat('/g')
    assert.equal(st.mode, 0o640)
    assert.equal(st.size, 2)
    assert.deepEqual(t.versions('/g').map((v) => v.writer), [W2])
  }
  assert.deepEqual(canonicalDump(a), canonicalDump(b))
  // Concurrent writes of a version 2 record's content: both count (a conflict), as in version 1.
  a.writeFile('/g', { hash: h(3), size: 3 })
  b.writeFile('/g', { hash: h(4), size: 4 })
  const fromA = a.takeChanges()
  const fromB = b.takeChanges()
  a.applyChanges(fromB)
  b.applyChanges(fromA)
  assert.deepEqual(canonicalDump(a), canonicalDump(b))
  assert.equal(a.conflicts().length, 1)
  // A writer deleting the `mode` key (no honest writer does): the record reads c's mode again.
  const id = a.stat('/d').id
  const raw = A.getBackend(A.init<unknown>({ actor: W2 }))
  const shard = id.slice(0, 2)
  raw.applyChanges([...base, ...edits, ...fromA, ...fromB].filter((c) => c.shard === shard).map((c) => c.change))
  raw.put(raw.getWithType('_root', id)![1] as string, 'mode', 0o711, 'int')
  raw.commit(null, null)
  const put = { shard, change: raw.getLastLocalChange()! }
  raw.delete(raw.getWithType('_root', id)![1] as string, 'mode')
  raw.commit(null, null)
  const del = { shard, change: raw.getLastLocalChange()! }
  a.applyChanges([put])
  assert.equal(a.stat('/d').mode, 0o711)
  a.applyChanges([del])
  assert.equal(a.stat('/d').mode, 0o755, 'the initial mode of c')
  a.free()
  b.free()
})

test('version 2 records that do not decode are problems; a c naming another creator is rejected', () => {
  const owner = Tree.create(W1, opts(0, 2))
  owner.mkdir('/d')
  const base = owner.takeChanges()
  const shard = base[0].shard
  // One hostile document: each case is its next change.
  const raw = A.getBackend(A.init<unknown>({ actor: W2 }))
  raw.applyChanges(base.filter((c) => c.shard === shard).map((c) => c.change))
  const put = (id: string, rec: Record<string, unknown>): ShardChange => {
    raw.putObject('_root', id, rec as Record<string, never>)
    raw.commit(null, null)
    return { shard, change: raw.getLastLocalChange()! }
  }
  const idIn = (n: number): string => shard + h(n).slice(-30)
  const init = { loc: ['0'.repeat(32), 'x'], mode: 0o644, mtime: 1 }
  const cases: [Record<string, unknown>, RegExp | null][] = [
    [{ c: JSON.stringify([3, 'file', W2, 1, init]) }, /unknown record version/],
    [{}, /unknown record version/],
    [{ c: JSON.stringify([2, 'door', W2, 1, init]) }, /unknown kind/], // fifo, socket, chardev, blockdev are kinds since issue 13
    [{ c: JSON.stringify([2, 'file', W2, 1, { ...init, loc: ['0'.repeat(32), 'a/b'] }]) }, /bad name/],
    [{ c: JSON.stringify([2, 'file', W2, 1, { ...init, mode: 0o17777 }]) }, /bad mode/],
    // Initial values a later version adds (owners, xattrs) are ignored by this reader.
    [{ c: JSON.stringify([2, 'file', W2, 1, { ...init, uid: 1000, xattr: { 'user.a': 'b' } }]) }, null],
  ]
  const r = Tree.create(R)
  r.applyChanges(base)
  cases.forEach(([rec, why], i) => {
    const rejected = r.apply([{ ...put(idIn(i + 1), rec), writer: W2 }])
    assert.deepEqual(rejected, [])
    const p = r.problems().find((x) => x.id === idIn(i + 1))
    if (why) assert.match(p?.reason ?? 'decoded', why, `case ${i}`)
    else assert.equal(p, undefined, `case ${i}: ${p?.reason}`)
  })
  assert.equal(r.stat('/x').kind, 'file')
  // c names its creator: a change whose c names another actor is rejected before it applies.
  const forger = A.getBackend(A.init<unknown>({ actor: W2 }))
  forger.putObject('_root', idIn(99), { c: JSON.stringify([2, 'file', W1, 1, init]) })
  forger.commit(null, null)
  const forged = { shard, change: forger.getLastLocalChange()! }
  const rejected = r.apply([{ ...forged, writer: W2 }])
  assert.equal(rejected.length, 1)
  assert.match(rejected[0].reason, /claims another writer/)
  // The claim is found by a scan of the value's bytes: quotes, brackets and commas escaped in an
  // earlier element, or whitespace, do not move it; the real writer field decides.
  const tricky = (who: string): string[] => [
    JSON.stringify([2, 'fi"le,]', who, 1, init]),
    JSON.stringify([2, `","${W2}",`, who, 1, init]),
    JSON.stringify([2, ['[', ']'], who, 1, init]),
    `[2, "file", "${who}", 1, {}]`,
  ]
  for (const [i, text] of tricky(W1).entries()) {
    const f = A.getBackend(A.init<unknown>({ actor: W2 }))
    f.putObject('_root', idIn(80 + i), { c: text })
    f.commit(null, null)
    const got = r.apply([{ shard, change: f.getLastLocalChange()!, writer: W2 }])
    assert.equal(got.length, 1, `tricky ${i}: ${text}`)
    assert.match(got[0].reason, /claims another writer/)
  }
  for (const [i, text] of tricky(W2).entries()) {
    assert.deepEqual(r.apply([{ ...put(idIn(90 + i), { c: text }), writer: W2 }]), [], `own claim ${i}: ${text}`)
  }
  // c as an object (it would read back as no string any check saw): rejected.
  const objer = A.getBackend(A.init<unknown>({ actor: W2 }))
  objer.putObject('_root', idIn(98), { c: { a: 1 } })
  objer.commit(null, null)
  const obj = { shard, change: objer.getLastLocalChange()! }
  assert.equal(r.apply([{ ...obj, writer: W2 }]).length, 1)
  r.free()
  owner.free()
})

test('a creation folded with a later move writes the moved loc beside c', () => {
  const t = Tree.create(W1, opts(0, 2))
  t.mkdir('/d')
  t.writeFile('/f', { hash: h(1), size: 1 })
  t.rename('/f', '/d/g')
  t.setattr('/d/g', { mode: 0o600 })
  const changes = t.takeChanges()
  const keys = ops(changes).map((o) => o.key).filter((k) => k !== undefined && k.length < 32)
  // The root's mtime (mkdir, and the move out of it) is one key of `meta`; /d's goes into its creation.
  assert.deepEqual(keys.sort(), ['c', 'c', 'loc', 'root.mtime'])
  const r = Tree.create(R)
  r.applyChanges(changes)
  assert.deepEqual(canonicalDump(r), canonicalDump(t))
  assert.deepEqual(r.problems(), [])
  r.free()
  t.free()
})

test('new records into an empty shard are one change (bulk-create.ts); replicas read them as written one by one', () => {
  const a = Tree.create(W1, opts(0, 2))
  const b = Tree.create(W1, opts(0, 2))
  a.mkdir('/d')
  b.mkdir('/d')
  for (let i = 0; i < 300; i++) a.writeFile(`/d/f${i}`, { hash: h(i + 1), size: i })
  a.rename('/d/f7', '/d/g7') // folded into its creation
  a.setattr('/d/f8', { mode: 0o600 })
  const firstAll = a.takeChanges()
  const first = firstAll.filter((c) => c.shard !== 'meta') // beside: the root's mtime
  assert.equal(first.length, 1, 'one change: the directory and its files, into their empty shard')
  assert.equal(ops(first).length, 301 * 2 + 1, 'the folded move writes loc beside c')
  // The same edits into a shard that already has a change: one record at a time, 64 per change.
  b.takeChanges()
  for (let i = 0; i < 300; i++) b.writeFile(`/d/f${i}`, { hash: h(i + 1), size: i })
  assert.equal(b.takeChanges().length, Math.ceil(300 / 64))
  // Later edits of bulk-created records, and more records into the now non-empty shard.
  a.unlink('/d/f9')
  a.writeFile('/d/f10', { hash: h(999), size: 1 })
  a.writeFile('/d/new', { hash: h(1000), size: 1 })
  const second = a.takeChanges()
  const r = Tree.create(R)
  r.applyChanges([...second, ...firstAll].reverse())
  assert.deepEqual(canonicalDump(r), canonicalDump(a))
  assert.deepEqual(r.problems(), [])
  assert.equal(r.stat('/d/g7').size, 7)
  assert.equal(r.stat('/d/f8').mode, 0o600)
  assert.equal(r.lookup('/d/f9'), null)
  for (const t of [a, b, r]) t.free()
})
