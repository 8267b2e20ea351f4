// Where new records go (spec/tree.md "Shard layout", "Placement") and what an apply re-reads
// ("Applying changes"): a file's id shares its directory's first NEAR_DIGITS hex digits, so one
// directory's records sit in few shards and a merge into cold shards loads those, not every
// shard of the volume; records with concurrent values are re-read only when an applied change
// wrote a value on them. The property runs the convergence schedules with placement on and
// splits at different sizes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { NEAR_DIGITS, Tree, canonicalDump, nodeIdNear, readChangeHeader, type Kind, type ShardChange } from '../src/tree/index.js'
import { checkProperty, runTreeSchedule, scheduleArb, stats } from './tree-schedules.js'

const RUNS = Number(process.env.BAZIL_PROPERTY_PLACEMENT_RUNS ?? 200)
const [A, B, C] = ['aa'.repeat(32), 'bb'.repeat(32), 'cc'.repeat(32)]
const h = (n: number): string => n.toString(16).padStart(64, '0')
/** Deterministic random hex per writer (a hash of a counter). */
const hashes = (k: number) => {
  let r = 0
  return (n: number): string => createHash('sha256').update(`${k}:${r++}`).digest('hex').slice(0, 2 * n)
}
const shardsOf = (t: Tree): Map<string, number> => {
  const m = new Map<string, number>()
  for (const n of t.exportState().nodes) m.set(n.shard ?? n.id.slice(0, 2), (m.get(n.shard ?? n.id.slice(0, 2)) ?? 0) + 1)
  return m
}

test(`property: ${RUNS} schedules with records placed near their directory (splitting at 1, 2, never) converge, nothing lost`, () => {
  const near = (k: number) => {
    // The schedules' ids are hashes: place them with the library's rule, deterministically.
    const random = hashes(k)
    return { splitAt: [1, 2, 1_000_000][k], random, nodeId: (parent: string, kind: Kind) => nodeIdNear(parent, kind, random) }
  }
  checkProperty(fc.property(scheduleArb, (ops) => { runTreeSchedule(ops, near) }), RUNS)
  console.log(`# ${JSON.stringify(stats)}`)
})

test('a file takes its directory\'s first hex digits; a directory\'s id is random; by default (no opts.random) ids are placed', () => {
  const t = Tree.create(A)
  const d = t.mkdir('/d')
  const e = t.mkdir('/d/e')
  assert.notEqual(e.id.slice(0, NEAR_DIGITS), '0'.repeat(NEAR_DIGITS))
  for (let i = 0; i < 50; i++) {
    const f = t.writeFile(`/d/f${i}`, { hash: h(i + 1), size: i })
    assert.equal(f.id.slice(0, NEAR_DIGITS), d.id.slice(0, NEAR_DIGITS))
    assert.match(f.id, /^[0-9a-f]{32}$/)
  }
  assert.equal(t.symlink('/d/l', 'x').id.slice(0, NEAR_DIGITS), d.id.slice(0, NEAR_DIGITS))
  assert.equal(t.writeFile('/top', { hash: h(1), size: 1 }).id.slice(0, NEAR_DIGITS), '0'.repeat(NEAR_DIGITS)) // the root's files
  t.free()
})

test('one directory of 2,000 files fills the shards on its prefix\'s path and below, not every shard; a merge of its changes into cold shards loads those', () => {
  const random = hashes(7)
  const a = Tree.create(A, { splitAt: 64, random, nodeId: (p, k) => nodeIdNear(p, k, random) })
  const dirs = ['/x', '/y', '/z'].map((p) => a.mkdir(p))
  for (let i = 0; i < 2000; i++) for (const d of ['/x', '/y', '/z']) a.writeFile(`${d}/f${i}`, { hash: h(i + 1), size: i })
  a.takeChanges()
  const shards = shardsOf(a)
  const prefix = dirs[0]!.id.slice(0, NEAR_DIGITS)
  const ofX = [...shards.keys()].filter((s) => prefix.startsWith(s) || s.startsWith(prefix))
  // Every record of /x sits in a shard on its prefix's path or below it; none exceeds splitAt except the deepest.
  const xs = a.readdir('/x')
  for (const s of xs) assert.ok(ofX.some((sh) => s.id.startsWith(sh)), `record ${s.id} of /x outside ${prefix}'s shards`)
  const b = Tree.restore(B, a.exportState(), { splitAt: 64 })
  for (let i = 0; i < 300; i++) a.setattr(`/x/f${(i * 7) % 2000}`, { mode: 0o600 })
  const changes = a.takeChanges().map((c) => ({ ...c, writer: A }))
  b.evict()
  assert.deepEqual(b.apply(changes), [])
  const loaded = b.shardStats.loads
  assert.ok(loaded <= ofX.length, `loaded ${loaded} shards, /x spans ${ofX.length} of ${shards.size}`)
  assert.ok(loaded < shards.size / 2, `loaded ${loaded} of ${shards.size} shards`)
  assert.equal(JSON.stringify(canonicalDump(a)), JSON.stringify(canonicalDump(b)))
  a.free(); b.free()
})

test('records with concurrent values: a further losing value shows after an apply that also touches other records; one that writes no value on them leaves them alone', () => {
  let r = 0
  const random = (n: number): string => h(++r).slice(-2 * n)
  const a = Tree.create(A, { random })
  a.mkdir('/d')
  a.writeFile('/d/f', { hash: h(1), size: 1 })
  a.writeFile('/d/g', { hash: h(2), size: 2 })
  const base = a.takeChanges()
  const mk = (actor: string, k: number) => {
    let q = 0
    const t = Tree.create(actor, { random: (n) => h(k * 1000 + ++q).slice(-2 * n) })
    t.applyChanges(base)
    return t
  }
  const b = mk(B, 1), c = mk(C, 2)
  b.writeFile('/d/f', { hash: h(10), size: 10 })
  const fromB = b.takeChanges()
  a.writeFile('/d/f', { hash: h(11), size: 11 })
  a.takeChanges()
  a.applyChanges(fromB) // /d/f now has two concurrent values on a
  assert.equal(a.versions('/d/f').length, 2)
  c.writeFile('/d/f', { hash: h(12), size: 12 }) // a third, concurrent with both
  c.writeFile('/d/g', { hash: h(13), size: 13 })
  c.writeFile('/d/new', { hash: h(14), size: 14 })
  const fromC = c.takeChanges()
  const headers = fromC.map((x: ShardChange) => readChangeHeader(x.change))
  assert.ok(headers.some((x) => x.valueObjs.length >= 2), 'the change names the records it writes content on')
  a.applyChanges(fromC)
  assert.deepEqual(a.versions('/d/f').map((v) => v.size).sort((x, y) => x - y), [10, 11, 12])
  // A rename of the conflicted file (no value written on content/del) still shows.
  const d = Tree.create(B, { random: (n) => h(9000 + ++r).slice(-2 * n) })
  d.applyChanges([...base, ...fromB])
  d.rename('/d/f', '/d/f2')
  a.applyChanges(d.takeChanges())
  assert.equal(a.versions('/d/f2').length, 3)
  // The losing value arriving last, alone (Automerge emits no patch for it): cc has its own and bb's, then aa's.
  const [x, y, z] = [A, B, C].map((w, k) => {
    const t = Tree.create(w, { random: hashes(20 + k) })
    t.applyChanges(base)
    return t
  })
  z.writeFile('/d/f', { hash: h(21), size: 21 })
  z.takeChanges()
  y.writeFile('/d/f', { hash: h(22), size: 22 })
  z.applyChanges(y.takeChanges())
  x.writeFile('/d/f', { hash: h(23), size: 23 })
  z.applyChanges(x.takeChanges())
  assert.deepEqual(z.versions('/d/f').map((v) => v.size).sort((p, q) => p - q), [21, 22, 23])
  for (const t of [a, b, c, d, x, y, z]) t.free()
})
