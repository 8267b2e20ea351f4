// Hard links at the Tree level (spec/tree.md "Hard links", rule 1 "Names of a linked node"):
// one node, several names; POSIX semantics locally, and concurrent edits through different
// names, a rename of one name while another is unlinked elsewhere, a link into a directory
// deleted concurrently: nothing lost, every replica alike. Random schedules with links run in
// test/convergence.test.ts and the other schedule tests (tree-schedules.ts has a `link` op);
// here a schedule mix heavy in links.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import fc from 'fast-check'
import * as A from '@automerge/automerge'

process.env.BAZIL_TREE_CHECK_PATCHED = '1'
const { Tree, TreeError, canonicalDump } = await import('../src/tree/index.js')
const { commitTreeIndex, openTreeIndex } = await import('../src/tree/index-store.js')
const { checkProperty, runTreeSchedule, opArb, stats } = await import('./tree-schedules.js')
const { tempDir } = await import('./helpers.js')
type Tree = import('../src/tree/index.js').Tree
type ShardChange = { shard: string; change: Uint8Array }
type ReadTree = import('../src/tree/index.js').ReadTree

const W1 = 'aa'.repeat(32)
const W2 = 'bb'.repeat(32)
const W3 = 'cc'.repeat(32)
const h = (n: number): string => n.toString(16).padStart(64, '0')
const RUNS = Number(process.env.BAZIL_PROPERTY_RUNS ?? 120)

function opts(k: number, recordVersion: 1 | 2 = 2) {
  let t = 1_000_000 + k
  let r = 0
  return { clock: () => (t += 3), random: (n: number) => h(k * 1_000_000 + ++r).slice(-2 * n), recordVersion }
}

/** Exchanges every change between the trees (each applies the others'). */
function sync(...trees: Tree[]): void {
  const all = trees.map((t) => t.takeChanges())
  trees.forEach((t, k) => all.forEach((c, j) => { if (j !== k && c.length > 0) t.applyChanges(c) }))
}

function names(t: ReadTree): Record<string, { id: string; nlink: number; hash: string }> {
  const out: Record<string, { id: string; nlink: number; hash: string }> = {}
  for (const s of t.walk('/')) if (s.kind === 'file') out[s.path] = { id: s.id, nlink: s.nlink ?? 1, hash: s.content?.hash ?? '' }
  return out
}

function same(...trees: Tree[]): void {
  for (const t of trees.slice(1)) assert.deepEqual(canonicalDump(t), canonicalDump(trees[0]))
  for (const t of trees) {
    assert.deepEqual(t.audit(), [])
    assert.deepEqual(t.problems(), [])
  }
  for (const t of trees.slice(1)) assert.deepEqual(names(t), names(trees[0]))
}

test('a hard link is one node with two names: shared id, nlink, content and attributes; unlink of one name leaves the other', () => {
  for (const v of [1, 2] as const) {
    const t = Tree.create(W1, opts(0, v))
    t.mkdir('/d')
    t.writeFile('/a', { hash: h(1), size: 1 }, { mode: 0o600 })
    const st = t.link('/a', '/d/b')
    const a = t.stat('/a')
    assert.equal(st.id, a.id, 'one inode')
    assert.equal(st.nlink, 2)
    assert.equal(t.stat('/a').nlink, 2)
    t.writeFile('/d/b', { hash: h(2), size: 2 })
    assert.equal(t.stat('/a').content?.hash, h(2), 'a write through one name shows through the other')
    t.setattr('/a', { mode: 0o640 })
    assert.equal(t.stat('/d/b').mode, 0o640)
    assert.ok(t.stat('/a').ctime >= st.ctime)
    assert.throws(() => t.link('/a', '/d/b'), (e) => e instanceof TreeError && e.code === 'EEXIST')
    assert.throws(() => t.link('/d', '/e'), (e) => e instanceof TreeError && e.code === 'EPERM')
    assert.throws(() => t.link('/', '/e'), (e) => e instanceof TreeError && e.code === 'EPERM')
    assert.throws(() => t.link('/nope', '/e'), (e) => e instanceof TreeError && e.code === 'ENOENT')
    // A replica reads the same, from the changes (v1 and v2 records alike).
    const r = Tree.create(W2, opts(1))
    sync(t, r)
    same(t, r)
    // Unlink the first name: the node stays under its second.
    t.unlink('/a')
    assert.equal(t.lookup('/a'), null)
    assert.equal(t.stat('/d/b').nlink, 1)
    assert.equal(t.stat('/d/b').content?.hash, h(2))
    assert.equal(t.statId(a.id)?.path, '/d/b', 'the node id stands for a name still shown')
    sync(t, r)
    same(t, r)
    t.unlink('/d/b')
    assert.deepEqual(names(t), {})
    assert.equal(t.statId(a.id), null)
    sync(t, r)
    same(t, r)
    t.free()
    r.free()
  }
})

test('rename of one name; rename onto another name of the same node does nothing; rename over a linked name unlinks only that name', () => {
  const t = Tree.create(W1, opts(0))
  t.mkdir('/d')
  t.writeFile('/a', { hash: h(1), size: 1 })
  t.link('/a', '/b')
  t.rename('/b', '/d/c')
  assert.deepEqual(Object.keys(names(t)).sort(), ['/a', '/d/c'])
  t.rename('/a', '/d/c')
  assert.deepEqual(Object.keys(names(t)).sort(), ['/a', '/d/c'], 'POSIX: rename between two links of one file is a no-op')
  t.writeFile('/x', { hash: h(9), size: 1 })
  t.rename('/x', '/a')
  const n = names(t)
  assert.equal(n['/a'].hash, h(9))
  assert.equal(n['/a'].nlink, 1)
  assert.equal(n['/d/c'].hash, h(1))
  assert.equal(n['/d/c'].nlink, 1)
  const r = Tree.create(W2, opts(1))
  sync(t, r)
  same(t, r)
  t.free()
  r.free()
})

test('concurrent: both names unlinked on two peers keeps the file (each left it another name), then a last unlink removes it', () => {
  const [t1, t2] = [Tree.create(W1, opts(0)), Tree.create(W2, opts(1))]
  t1.writeFile('/a', { hash: h(1), size: 1 })
  t1.link('/a', '/b')
  sync(t1, t2)
  t1.unlink('/a')
  t2.unlink('/b')
  sync(t1, t2)
  same(t1, t2)
  const n = names(t1)
  assert.equal(Object.keys(n).length, 1, 'one name stays: the latest removal')
  assert.equal(Object.values(n)[0].hash, h(1))
  t2.unlink(Object.keys(n)[0])
  sync(t1, t2)
  same(t1, t2)
  assert.deepEqual(names(t1), {})
  t1.free()
  t2.free()
})

test('concurrent: rename of one name while the other is unlinked elsewhere; writes through different names conflict as one file', () => {
  const [t1, t2, t3] = [Tree.create(W1, opts(0)), Tree.create(W2, opts(1)), Tree.create(W3, opts(2))]
  t1.mkdir('/d')
  t1.writeFile('/a', { hash: h(1), size: 1 })
  t1.link('/a', '/b')
  sync(t1, t2, t3)
  t1.rename('/b', '/d/b2')
  t2.unlink('/a')
  sync(t1, t2, t3)
  same(t1, t2, t3)
  assert.deepEqual(Object.keys(names(t1)), ['/d/b2'])
  assert.equal(names(t1)['/d/b2'].hash, h(1))
  // Two peers write through two names at once: one node, two versions, a copy beside each name.
  t1.link('/d/b2', '/c')
  sync(t1, t2, t3)
  t1.writeFile('/c', { hash: h(2), size: 1 })
  t2.writeFile('/d/b2', { hash: h(3), size: 1 })
  sync(t1, t2, t3)
  same(t1, t2, t3)
  const paths = [...t1.walk('/')].map((s) => s.path)
  assert.equal(paths.filter((p) => p.includes('.conflict-')).length, 2, 'a copy beside each name')
  assert.equal(t1.versions('/c').length, 2)
  // Resolving through either name settles the node.
  t3.resolve('/c', h(3))
  sync(t1, t2, t3)
  same(t1, t2, t3)
  assert.equal(names(t1)['/c'].hash, h(3))
  assert.equal(names(t1)['/d/b2'].hash, h(3))
  assert.equal([...t1.walk('/')].filter((s) => s.path.includes('.conflict-')).length, 0)
  for (const t of [t1, t2, t3]) t.free()
})

test('concurrent: a link into a directory deleted on another peer keeps the directory and the name; the last name unlinked vs a write revives it', () => {
  const [t1, t2] = [Tree.create(W1, opts(0)), Tree.create(W2, opts(1))]
  t1.mkdir('/d')
  t1.writeFile('/a', { hash: h(1), size: 1 })
  sync(t1, t2)
  t1.link('/a', '/d/x')
  t2.rmdir('/d')
  sync(t1, t2)
  same(t1, t2)
  assert.deepEqual(Object.keys(names(t1)).sort(), ['/a', '/d/x'])
  // The last name unlinked while another peer writes: the write wins (rule 1), at that name.
  t1.unlink('/a')
  sync(t1, t2)
  t1.unlink('/d/x')
  t2.writeFile('/d/x', { hash: h(5), size: 1 })
  sync(t1, t2)
  same(t1, t2)
  assert.deepEqual(Object.keys(names(t1)), ['/d/x'])
  assert.equal(names(t1)['/d/x'].hash, h(5))
  t1.free()
  t2.free()
})

test('snapshots keep every name; the on-disk index reads linked nodes back', () => {
  const { dir, cleanup } = tempDir()
  try {
    const t = Tree.create(W1, opts(0))
    t.mkdir('/d')
    t.writeFile('/a', { hash: h(1), size: 1 })
    t.link('/a', '/d/b')
    t.link('/a', '/d/c')
    t.snapshot('s')
    t.unlink('/d/c')
    t.unlink('/a')
    assert.deepEqual(Object.keys(names(t.at('s'))).sort(), ['/a', '/d/b', '/d/c'])
    assert.equal(t.at('s').stat('/a').nlink, 3)
    const file = path.join(dir, 't.ckpt')
    const files = path.join(dir, 't')
    commitTreeIndex(file, files, t, {})
    const before = { dump: canonicalDump(t), names: names(t) }
    const { tree } = openTreeIndex(file, files, W1)
    assert.deepEqual({ dump: canonicalDump(tree), names: names(tree) }, before)
    assert.deepEqual(tree.audit(), [])
    assert.equal(tree.stat('/d/b').nlink, 1)
    assert.deepEqual(Object.keys(names(tree.at('s'))).sort(), ['/a', '/d/b', '/d/c'])
    // Edits after reopening: a new link, a rename of a further name.
    tree.link('/d/b', '/e')
    tree.rename('/d/b', '/f')
    assert.deepEqual(Object.keys(names(tree)).sort(), ['/e', '/f'])
    assert.deepEqual(tree.audit(), [])
    t.free()
    tree.free()
  } finally {
    cleanup()
  }
})

test('a change whose name or name removal claims another writer is rejected (authorship)', () => {
  const t = Tree.create(W1, opts(0))
  t.writeFile('/a', { hash: h(1), size: 1 })
  const base = t.takeChanges()
  const id = t.stat('/a').id
  const shard = base[0].shard
  for (const [key, value] of [
    [`ln.${'1'.repeat(16)}`, JSON.stringify([1, '0'.repeat(32), 'b', W1, 5, null, null])],
    ['lx.loc', JSON.stringify([1, W1, 5])],
  ]) {
    let doc = A.init<Record<string, Record<string, unknown>>>({ actor: W2 })
    doc = A.applyChanges(doc, base.filter((c) => c.shard === shard).map((c) => c.change))[0]
    doc = A.change(doc, (d) => { d[id][key] = new A.ImmutableString(value) })
    const forged: ShardChange = { shard, change: A.getLastLocalChange(doc)! }
    const r = Tree.create(W3, opts(2))
    r.applyChanges(base)
    const rejected = r.apply([{ ...forged, writer: W2 }])
    assert.equal(rejected.length, 1, `${key}: rejected`)
    assert.match(rejected[0].reason, /naming writer/)
    r.free()
  }
  t.free()
})

test(`property: ${RUNS} schedules heavy in hard links converge, nothing lost, link counts match the names shown`, () => {
  const linky = fc.array(fc.oneof(
    { weight: 3, arbitrary: opArb },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('link' as const), w: fc.nat(2), file: fc.nat(20), dir: fc.nat(20), name: fc.nat(3) }) },
  ), { minLength: 1, maxLength: 40, size: 'max' })
  checkProperty(fc.property(linky, (list) => { runTreeSchedule(list) }), RUNS)
  console.log(`# link schedules: ${JSON.stringify(stats)}`)
  assert.ok(stats.withLinks > RUNS / 4, 'schedules reach links')
})

