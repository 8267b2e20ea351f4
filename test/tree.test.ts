import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Tree, TreeError, type ShardChange, type ReadTree } from '../src/tree/index.js'

const h = (n: number): string => n.toString(16).padStart(64, '0')
const ref = (n: number, size = n) => ({ hash: h(n), size })
const ACTORS = ['aa'.repeat(16), 'bb'.repeat(16), 'cc'.repeat(16), 'dd'.repeat(16)]

function dump(t: ReadTree): string {
  return [...t.walk()].map((s) => `${s.path} ${s.kind} ${s.mode.toString(8)} ${s.content?.hash.replace(/^0+/, '') ?? s.target ?? ''}`).join('\n')
}

function code(c: string) {
  return (e: unknown) => e instanceof TreeError && e.code === c
}

/** Writers plus the full history of each one's changes, so any replica can be fed any order. */
class Net {
  trees: Tree[]
  logs: ShardChange[][]
  constructor(n: number) {
    this.trees = ACTORS.slice(0, n).map((a) => Tree.create(a))
    this.logs = this.trees.map(() => [])
  }
  collect(): void {
    this.trees.forEach((t, i) => this.logs[i].push(...t.takeChanges()))
  }
  /** Every writer receives every other writer's history (already-applied changes are ignored). */
  sync(): void {
    this.collect()
    this.trees.forEach((t, i) => {
      for (let j = this.logs.length - 1; j >= 0; j--) if (j !== i) t.applyChanges(this.logs[j])
    })
  }
  all(): ShardChange[] {
    this.collect()
    return this.logs.flat()
  }
  /** Asserts all writers and fresh replicas fed every change in several orders show one view. */
  converged(): string {
    this.sync()
    const views = this.trees.map(dump)
    const all = this.all()
    const orders = [all, [...all].reverse(), shuffle(all, 7)]
    for (const order of orders) {
      const fresh = Tree.create(ACTORS[3])
      fresh.applyChanges(order)
      views.push(dump(fresh))
      fresh.free()
    }
    // One change at a time, newest first: every change arrives before its dependencies.
    const slow = Tree.create(ACTORS[3])
    for (const c of [...all].reverse()) slow.applyChanges([c])
    views.push(dump(slow))
    slow.free()
    for (const v of views) assert.equal(v, views[0])
    return views[0]
  }
  free(): void { for (const t of this.trees) t.free() }
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

test('single writer: create, stat, readdir, walk, defaults', () => {
  const t = Tree.create(ACTORS[0])
  const d = t.mkdir('/docs')
  assert.equal(d.kind, 'dir'); assert.equal(d.mode, 0o755); assert.equal(d.path, '/docs')
  const f = t.writeFile('docs/a.txt', ref(1, 100), { mtime: 5 })
  assert.ok(f.ctime > 5, 'ctime: when the file was made')
  assert.deepEqual({ ...f, id: '', ctime: 0 }, { id: '', kind: 'file', name: 'a.txt', parent: d.id, path: '/docs/a.txt', mode: 0o644, mtime: 5, atime: 5, ctime: 0, uid: -1, gid: -1, size: 100, content: { hash: h(1), size: 100 } })
  const l = t.symlink('/docs/link', 'a.txt')
  assert.equal(l.mode, 0o777); assert.equal(l.target, 'a.txt'); assert.equal(l.size, 5)
  t.writeFile('/docs/b', ref(2))
  assert.deepEqual(t.readdir('/docs').map((s) => s.name), ['a.txt', 'b', 'link'])
  assert.deepEqual(t.readdir('/').map((s) => s.path), ['/docs'])
  assert.deepEqual([...t.walk()].map((s) => s.path), ['/', '/docs', '/docs/a.txt', '/docs/b', '/docs/link'])
  assert.equal(t.stat('/').kind, 'dir')
  assert.equal(t.stat('/docs/a.txt/').id, f.id)
  assert.equal(t.statId(f.id)?.path, '/docs/a.txt')
  const f2 = t.writeFile('/docs/a.txt', ref(3, 7), { mode: 0o600 })
  assert.equal(f2.id, f.id); assert.equal(f2.size, 7); assert.equal(f2.mode, 0o600)
  assert.equal(t.setattr('/docs/a.txt', { mode: 0o640, mtime: 9 }).mode, 0o640)
  assert.equal(t.stat('/docs/a.txt').mtime, 9)
  assert.equal(t.setattr('/', { mode: 0o700 }).mode, 0o700)
  assert.equal(t.lookup('/nope'), null)
  assert.equal(t.lookup('/docs/a.txt/x'), null)
  assert.ok(t.takeChanges().length > 0)
  assert.deepEqual(t.takeChanges(), [])
  assert.deepEqual(t.conflicts(), [])
  t.free()
})

test('single writer: rename and remove, and the errno table', () => {
  const t = Tree.create(ACTORS[0])
  t.mkdir('/a'); t.mkdir('/a/b'); t.mkdir('/e'); t.mkdir('/full'); t.writeFile('/full/x', ref(1))
  t.writeFile('/f', ref(1)); t.writeFile('/g', ref(2)); t.symlink('/s', '/f')
  // errors
  assert.throws(() => t.stat('/missing'), code('ENOENT'))
  assert.throws(() => t.stat('/f/x'), code('ENOTDIR'))
  assert.throws(() => t.readdir('/f'), code('ENOTDIR'))
  assert.throws(() => t.mkdir('/a'), code('EEXIST'))
  assert.throws(() => t.mkdir('/'), code('EEXIST'))
  assert.throws(() => t.mkdir('/nope/x'), code('ENOENT'))
  assert.throws(() => t.mkdir('/f/x'), code('ENOTDIR'))
  assert.throws(() => t.writeFile('/a', ref(1)), code('EISDIR'))
  assert.throws(() => t.writeFile('/', ref(1)), code('EISDIR'))
  assert.throws(() => t.symlink('/f', 'x'), code('EEXIST'))
  assert.throws(() => t.unlink('/a'), code('EISDIR'))
  assert.throws(() => t.unlink('/missing'), code('ENOENT'))
  assert.throws(() => t.rmdir('/f'), code('ENOTDIR'))
  assert.throws(() => t.rmdir('/a'), code('ENOTEMPTY'))
  assert.throws(() => t.rmdir('/'), code('EPERM'))
  assert.throws(() => t.rename('/a', '/a/b/c'), code('EINVAL'))
  assert.throws(() => t.rename('/a', '/a/c'), code('EINVAL'))
  assert.throws(() => t.rename('/a', '/f'), code('ENOTDIR'))
  assert.throws(() => t.rename('/f', '/a'), code('EISDIR'))
  assert.throws(() => t.rename('/e', '/full'), code('ENOTEMPTY'))
  assert.throws(() => t.rename('/missing', '/x'), code('ENOENT'))
  assert.throws(() => t.rename('/f', '/missing/x'), code('ENOENT'))
  assert.throws(() => t.rename('/', '/x'), code('EINVAL'))
  for (const bad of ['a//b', '/a/./b', '../x', 'a/..', 'x\0y', 'n'.repeat(256)]) {
    assert.throws(() => t.lookup(bad), (e: unknown) => e instanceof TreeError && e.code === 'EINVAL' && e.path === bad && e.message.includes('EINVAL'))
  }
  assert.doesNotThrow(() => t.lookup('n'.repeat(255)))
  assert.throws(() => t.writeFile('/h', { hash: 'XYZ', size: 1 }), code('EINVAL'))
  assert.throws(() => t.setattr('/f', { mode: -1 }), code('EINVAL'))
  assert.throws(() => Tree.create('not hex'), code('EINVAL'))
  // rename replaces a file target; a dir replaces an empty dir; same path is a no-op
  const f = t.stat('/f')
  t.rename('/f', '/g')
  assert.equal(t.lookup('/f'), null)
  assert.equal(t.stat('/g').id, f.id); assert.equal(t.stat('/g').content?.hash, h(1))
  t.rename('/g', '/g')
  const a = t.stat('/a')
  t.rename('/a', '/e')
  assert.equal(t.stat('/e').id, a.id); assert.equal(t.stat('/e/b').kind, 'dir')
  t.rename('/e/b', '/b2')
  t.rename('/s', '/e/s2')
  assert.equal(t.stat('/e/s2').target, '/f')
  assert.deepEqual(t.readdir('/').map((s) => s.name), ['b2', 'e', 'full', 'g'])
  t.unlink('/e/s2'); t.rmdir('/e'); t.unlink('/g')
  assert.deepEqual(t.readdir('/').map((s) => s.name), ['b2', 'full'])
  assert.equal(t.statId(f.id), null)
  t.free()
})

test('concurrent edits of one file: winner keeps the name, the other is a conflict copy; unlink of the copy settles', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/d'); a.writeFile('/d/f', ref(1)); n.sync()
  a.writeFile('/d/f', ref(2)); b.writeFile('/d/f', ref(3))
  n.converged()
  for (const t of [a, b]) {
    const names = t.readdir('/d').map((s) => s.name)
    assert.equal(names.length, 2)
    assert.ok(names.includes('f'))
    const copy = names.find((x) => x !== 'f')!
    assert.match(copy, /^f\.conflict-(aaaaaaaa|bbbbbbbb)$/)
    const c = t.conflicts()
    assert.equal(c.length, 1); assert.equal(c[0].path, '/d/f')
    assert.deepEqual(c[0].versions.map((v) => v.hash).sort(), [h(2), h(3)])
    assert.deepEqual(c[0].versions.map((v) => v.path), ['/d/f', '/d/' + copy])
    assert.equal(t.stat('/d/' + copy).content?.hash, c[0].versions[1].hash)
    assert.throws(() => t.writeFile('/d/' + copy, ref(9)), code('EPERM'))
  }
  assert.deepEqual(a.conflicts(), b.conflicts())
  const copy = a.readdir('/d').find((s) => s.name !== 'f')!
  assert.equal(a.statId(copy.id)?.path, copy.path)
  a.unlink(copy.path)
  n.converged()
  assert.deepEqual(b.conflicts(), [])
  assert.deepEqual(b.readdir('/d').map((s) => s.name), ['f'])
  n.free()
})

test('three concurrent edits: two conflict copies, same on all replicas', () => {
  const n = new Net(3)
  n.trees[0].writeFile('/f', ref(1)); n.sync()
  n.trees.forEach((t, i) => t.writeFile('/f', ref(10 + i)))
  const view = n.converged()
  assert.equal(view.split('\n').length, 4)
  assert.equal(n.trees[2].conflicts()[0].versions.length, 3)
  n.free()
})

test('edit concurrent with delete: the file survives with the edit; a later delete removes it', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.writeFile('/f', ref(1)); n.sync()
  a.unlink('/f'); b.writeFile('/f', ref(2))
  n.converged()
  for (const t of [a, b]) assert.equal(t.stat('/f').content?.hash, h(2))
  a.unlink('/f')
  n.converged()
  for (const t of [a, b]) assert.equal(t.lookup('/f'), null)
  n.free()
})

test('two creates of one name survive: file/file, dir/dir, file/dir', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.writeFile('/x', ref(1)); b.writeFile('/x', ref(2))
  a.mkdir('/d'); b.mkdir('/d'); a.writeFile('/d/in-a', ref(3)); b.writeFile('/d/in-b', ref(4))
  a.writeFile('/m', ref(5)); b.mkdir('/m')
  n.converged()
  for (const t of [a, b]) {
    const names = t.readdir('/').map((s) => s.name)
    assert.equal(names.length, 6, names.join(','))
    for (const base of ['x', 'd', 'm']) {
      assert.ok(names.includes(base))
      assert.ok(names.some((x) => /^(x|d|m)\.conflict-(aaaaaaaa|bbbbbbbb)$/.test(x) && x.startsWith(base + '.')))
    }
    assert.deepEqual([...t.walk()].filter((s) => s.name.startsWith('in-')).map((s) => s.name).sort(), ['in-a', 'in-b'])
    // the loser's name says whose it is
    const dLoser = t.readdir('/').find((s) => s.name.startsWith('d.conflict-'))!
    const inside = t.readdir(dLoser.path)[0].name
    assert.equal(dLoser.name, inside === 'in-a' ? 'd.conflict-aaaaaaaa' : 'd.conflict-bbbbbbbb')
  }
  // renaming the loser away settles the name conflict
  const loser = a.readdir('/').find((s) => s.name.startsWith('x.conflict-'))!
  a.rename(loser.path, '/y')
  n.converged()
  assert.deepEqual(b.readdir('/').filter((s) => /^[xy]/.test(s.name)).map((s) => s.name), ['x', 'y'])
  n.free()
})

test('A-into-B concurrent with B-into-A: no cycle, nothing lost, same everywhere', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/A'); a.mkdir('/B'); a.writeFile('/A/fa', ref(1)); a.writeFile('/B/fb', ref(2)); n.sync()
  a.rename('/A', '/B/A'); b.rename('/B', '/A/B')
  const view = n.converged()
  const paths = view.split('\n').map((l) => l.split(' ')[0])
  assert.equal(paths.length, 5)
  assert.ok(paths.some((p) => p.endsWith('/fa')) && paths.some((p) => p.endsWith('/fb')))
  assert.ok(paths.includes('/A/B') || paths.includes('/B/A'), view)
  // the view stays editable: move things around afterwards
  const inner = paths.includes('/A/B') ? '/A/B' : '/B/A'
  a.rename(inner, '/C')
  n.converged()
  // the move undone by cycle breaking stays undone: the outer dir stays at the root
  assert.deepEqual(b.readdir('/').map((s) => s.name).sort(), [inner.split('/')[1], 'C'].sort())
  n.free()
})

test('three-way move cycle across three writers', () => {
  const n = new Net(3)
  const [a, b, c] = n.trees
  a.mkdir('/A'); a.mkdir('/B'); a.mkdir('/C'); a.writeFile('/C/f', ref(1)); n.sync()
  a.rename('/A', '/B/A'); b.rename('/B', '/C/B'); c.rename('/C', '/A/C')
  const view = n.converged()
  assert.equal(view.split('\n').length, 5)
  assert.ok(view.includes('/f file'))
  n.free()
})

test('delete dir concurrent with create inside: the new file and its dir survive', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/d'); a.writeFile('/d/old', ref(1)); n.sync()
  a.unlink('/d/old'); a.rmdir('/d'); b.writeFile('/d/new', ref(2))
  n.converged()
  for (const t of [a, b]) assert.deepEqual(t.readdir('/d').map((s) => s.name), ['new'])
  // once the survivor goes, the deleted dir goes with it
  b.unlink('/d/new')
  n.converged()
  for (const t of [a, b]) assert.equal(t.lookup('/d'), null)
  n.free()
})

test('rename concurrent with edit: the renamed file carries the edit; chmod and write both apply', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/d'); a.writeFile('/f', ref(1)); a.writeFile('/g', ref(1)); n.sync()
  a.rename('/f', '/d/renamed'); b.writeFile('/f', ref(2))
  a.setattr('/g', { mode: 0o600 }); b.writeFile('/g', ref(3))
  n.converged()
  for (const t of [a, b]) {
    assert.equal(t.lookup('/f'), null)
    assert.equal(t.stat('/d/renamed').content?.hash, h(2))
    assert.equal(t.stat('/g').mode, 0o600)
    assert.equal(t.stat('/g').content?.hash, h(3))
  }
  n.free()
})

test('applyChanges is idempotent and rejects garbage', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/d'); a.writeFile('/d/f', ref(1)); n.sync()
  const before = dump(b)
  b.applyChanges(n.all()); b.applyChanges(n.all())
  assert.equal(dump(b), before)
  assert.throws(() => b.applyChanges([{ shard: 'zz', change: new Uint8Array(1) }]), code('EINVAL'))
  assert.throws(() => b.applyChanges([{ shard: '00', change: new Uint8Array([1, 2, 3]) }]), code('EINVAL'))
  n.free()
})

test('snapshots: take, mutate, the snapshot view is unchanged and replicates', () => {
  const n = new Net(2)
  const [a, b] = n.trees
  a.mkdir('/d'); a.writeFile('/d/f', ref(1)); a.writeFile('/g', ref(2))
  a.snapshot('s1', 1000)
  const then = dump(a)
  assert.throws(() => a.snapshot('s1'), code('EEXIST'))
  assert.throws(() => a.snapshot('a/b'), code('EINVAL'))
  a.writeFile('/d/f', ref(3)); a.unlink('/g'); a.rename('/d', '/e'); a.mkdir('/new')
  assert.deepEqual(a.snapshots(), [{ name: 's1', time: 1000 }])
  const s = a.at('s1')
  assert.equal(dump(s), then)
  assert.equal(s.stat('/d/f').content?.hash, h(1))
  assert.deepEqual(s.readdir('/').map((x) => x.name), ['d', 'g'])
  assert.throws(() => a.at('nope'), code('ENOENT'))
  n.sync()
  assert.deepEqual(b.snapshots(), [{ name: 's1', time: 1000 }])
  assert.equal(dump(b.at('s1')), then)
  assert.notEqual(dump(b), then)
  n.free()
})

test('scale smoke: 10k files in 100 dirs', () => {
  const t = Tree.create(ACTORS[0])
  const changes: ShardChange[] = []
  let t0 = performance.now()
  for (let d = 0; d < 100; d++) t.mkdir(`/d${d}`)
  t.mkdir('/big')
  let k = 0
  for (let batch = 0; batch < 4; batch++) {
    for (let i = 0; i < 2250; i++, k++) t.writeFile(`/d${k % 100}/f${k}`, ref(k + 1, 100))
    changes.push(...t.takeChanges())
  }
  for (let i = 0; i < 1000; i++) t.writeFile(`/big/f${i}`, ref(i + 1, 10))
  changes.push(...t.takeChanges())
  const createMs = performance.now() - t0
  const bytes = changes.reduce((s, c) => s + c.change.length, 0)

  global.gc?.()
  const heap0 = process.memoryUsage()
  const fresh = Tree.create(ACTORS[1])
  t0 = performance.now()
  fresh.applyChanges(changes)
  const applyMs = performance.now() - t0
  t0 = performance.now()
  const big = fresh.readdir('/big')
  const readdirMs = performance.now() - t0
  t0 = performance.now()
  let stats = 0
  for (let i = 0; i < 1000; i++) if (fresh.lookup(`/d${i % 100}/f${i}`)) stats++
  const lookupMs = performance.now() - t0
  const heap1 = process.memoryUsage()
  assert.equal(big.length, 1000)
  assert.equal(stats, 1000)
  assert.equal([...fresh.walk()].length, 1 + 101 + 10000)
  const mib = (x: number) => (x / 2 ** 20).toFixed(1)
  console.log(`# scale: ${changes.length} changes, ${mib(bytes)} MiB; create ${createMs.toFixed(0)} ms; ` +
    `applyChanges into fresh tree ${applyMs.toFixed(0)} ms; readdir 1k ${readdirMs.toFixed(1)} ms; 1000 lookups ${lookupMs.toFixed(1)} ms; ` +
    `heap +${mib(heap1.heapUsed - heap0.heapUsed)} MiB, rss +${mib(heap1.rss - heap0.rss)} MiB (rss ${mib(heap1.rss)} MiB)`)
  t.free(); fresh.free()
})

test('resolve with three versions: theirs is ambiguous, a version is named by its hash', () => {
  const net = new Net(3)
  const [a, b, c] = net.trees
  a.writeFile('/f', ref(1))
  net.sync()
  a.writeFile('/f', ref(0xa1))
  b.writeFile('/f', ref(0xb2))
  c.writeFile('/f', ref(0xc3))
  net.sync()
  assert.equal(a.versions('/f').length, 3)
  assert.throws(() => a.resolve('/f', 'theirs'), (e: unknown) => e instanceof TreeError && e.code === 'EINVAL' && /2 different versions.*--keep=HASH/.test(e.message))
  assert.throws(() => a.resolve('/f', h(0xdd).slice(0, 8)), code('EINVAL'))
  assert.throws(() => a.resolve('/f', '00000000'), (e: unknown) => e instanceof TreeError && /several versions/.test(e.message))
  a.resolve('/f', h(0xc3))
  net.sync()
  for (const t of net.trees) {
    assert.equal(t.stat('/f').content!.hash, h(0xc3))
    assert.deepEqual(t.conflicts(), [])
  }
  net.converged()
  // Two others with one content: theirs is not ambiguous.
  b.writeFile('/g', ref(5))
  net.sync()
  a.writeFile('/g', ref(6))
  b.writeFile('/g', ref(7))
  c.writeFile('/g', ref(7))
  net.sync()
  a.resolve('/g', 'theirs')
  net.sync()
  for (const t of net.trees) assert.equal(t.stat('/g').content!.hash, h(7))
})
