// Times (issue 13): atime kept and settable, ctime derived and moved by metadata changes, the
// root's real times; through the tree (replicated to a second writer and to fresh replicas),
// the index on disk (a reopened node) and a real mount driven by coreutils' touch and stat.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as Automerge from '@automerge/automerge'
import { omitApart, utimensTimes, UTIME_NOW_MS as NOW, UTIME_OMIT_MS as OMIT } from '../src/mount/times.js'
import { relatimeDue } from '../src/mount/access-times.js'
import { Tree } from '../src/tree/index.js'
import { row, unrow, ActorTable } from '../src/tree/checkpoint.js'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const ref = { hash: '11'.repeat(32), size: 3 }

/** `stat` of a path in the mount: [atime, mtime, ctime] in whole seconds. */
async function times(dir: string, p: string): Promise<[number, number, number]> {
  const out = (await sh(dir, `stat -c '%X %Y %Z' ${JSON.stringify(p)}`)).trim().split(' ').map(Number)
  return [out[0]!, out[1]!, out[2]!]
}

test('atime is kept, set alone, and replicated; ctime follows metadata changes, writes and moves', () => {
  let clock = 1_000_000
  const a = Tree.create(A, { clock: () => clock })
  const b = Tree.create(B, { clock: () => clock })
  try {
    a.mkdir('/d')
    a.writeFile('/d/f', ref, { mtime: 500 })
    // Before anything sets it, atime is the mtime; ctime is when the node was made.
    let st = a.stat('/d/f')
    assert.deepEqual([st.atime, st.mtime, st.ctime], [500, 500, 1_000_000])
    clock = 2_000_000
    // Folded into the creation (same flush): one record, atime in c, ctime left at the creation.
    a.setattr('/d/f', { atime: 700 })
    st = a.stat('/d/f')
    assert.deepEqual([st.atime, st.mtime, st.ctime], [700, 500, 1_000_000])
    b.applyChanges(a.takeChanges())
    assert.deepEqual(((s) => [s.atime, s.mtime, s.ctime])(b.stat('/d/f')), [700, 500, 1_000_000])
    clock = 2_500_000
    b.setattr('/d/f', { atime: 710 }) // a later edit: keys atime and ctime
    assert.deepEqual(((s) => [s.atime, s.ctime])(b.stat('/d/f')), [710, 2_500_000])
    a.applyChanges(b.takeChanges())
    assert.deepEqual(((s) => [s.atime, s.ctime])(a.stat('/d/f')), [710, 2_500_000])
    // Later edits: keys of their own. A move and a write move ctime, a chmod too.
    clock = 3_000_000
    b.rename('/d/f', '/d/g')
    assert.equal(b.stat('/d/g').ctime, 3_000_000)
    clock = 4_000_000
    b.setattr('/d/g', { mode: 0o600 })
    assert.equal(b.stat('/d/g').ctime, 4_000_000)
    assert.equal(b.stat('/d/g').atime, 710)
    a.applyChanges(b.takeChanges())
    assert.deepEqual(((s) => [s.atime, s.ctime, s.mode])(a.stat('/d/g')), [710, 4_000_000, 0o600])
    // Concurrent atimes: one winner on both.
    clock = 5_000_000
    a.setattr('/d/g', { atime: 800 })
    b.setattr('/d/g', { atime: 900 })
    const ca = a.takeChanges()
    const cb = b.takeChanges()
    a.applyChanges(cb)
    b.applyChanges(ca)
    assert.equal(a.stat('/d/g').atime, b.stat('/d/g').atime)
    assert.ok([800, 900].includes(a.stat('/d/g').atime))
    // The root: times of its own in the meta shard.
    clock = 6_000_000
    a.setattr('/', { mtime: 1234, atime: 1200 })
    b.applyChanges(a.takeChanges())
    assert.deepEqual(((s) => [s.atime, s.mtime, s.ctime])(b.stat('/')), [1200, 1234, 6_000_000])
  } finally {
    a.free()
    b.free()
  }
})

test('utimens times: UTIME_OMIT and UTIME_NOW with our fuse-native build, and the reading of a build without the fix', () => {
  assert.deepEqual(utimensTimes(NOW, OMIT, 5, true), { atime: 5 })
  assert.deepEqual(utimensTimes(OMIT, NOW, 5, true), { mtime: 5 })
  assert.deepEqual(utimensTimes(NOW, 9000, 5, true), { atime: 5, mtime: 9000 })
  assert.deepEqual(utimensTimes(OMIT, OMIT, 5, true), {})
  // Without the fix both arrive as 1073: beside a real time it was an omit (touch -a -d, tar x).
  assert.deepEqual(utimensTimes(9000, NOW, 5, false), { atime: 9000 })
  assert.deepEqual(utimensTimes(NOW, 9000, 5, false), { mtime: 9000 })
  assert.deepEqual(utimensTimes(NOW, NOW, 5, false), { atime: 5, mtime: 5 })
})

test('index rows carry atime and ctime; rows without them read as before', () => {
  const t = Tree.create(A, { clock: () => 42 })
  try {
    t.writeFile('/f', ref, { mtime: 7 })
    t.setattr('/f', { atime: 9 })
    t.takeChanges()
    const n = t.exportState().nodes.find((x) => x.loc.name === 'f')!
    const actors = new ActorTable()
    const r = row(n, actors)
    assert.equal(r.length, 11)
    assert.deepEqual(unrow(JSON.parse(JSON.stringify(r)), actors.list, 3), n)
    const plain = { ...n }
    delete plain.atime
    delete plain.ctime
    const r9 = row(plain, actors)
    assert.equal(r9.length, 9)
    assert.deepEqual(unrow(r9, actors.list, 3), plain)
    assert.throws(() => unrow([...r.slice(0, 10), 'x'] as never, actors.list, 3), /bad attributes/)
  } finally {
    t.free()
  }
})

test('a directory\'s mtime and ctime move when an entry is created, removed or renamed in it; replicated', () => {
  let clock = 1_000_000
  const a = Tree.create(A, { clock: () => clock })
  const b = Tree.create(B, { clock: () => clock })
  const dirTimes = (t: Tree, p: string): [number, number] => ((s) => [s.mtime, s.ctime])(t.stat(p))
  try {
    a.mkdir('/d')
    a.mkdir('/e')
    a.setattr('/d', { mtime: 10 })
    a.setattr('/e', { mtime: 10 })
    b.applyChanges(a.takeChanges())
    clock = 2_000_000
    a.writeFile('/d/f', ref)
    assert.deepEqual(dirTimes(a, '/d'), [2_000_000, 2_000_000], 'create')
    assert.equal(a.stat('/').mtime, 1_000_000, 'the root: mkdir of /d and /e in it')
    clock = 3_000_000
    a.writeFile('/d/f', ref)
    assert.equal(a.stat('/d').mtime, 2_000_000, 'a new version of a file is no change of its directory')
    a.mkdir('/d/sub')
    a.writeFile('/d/sub/g', ref)
    assert.deepEqual(dirTimes(a, '/d'), [3_000_000, 3_000_000], 'mkdir')
    b.applyChanges(a.takeChanges())
    assert.deepEqual(dirTimes(b, '/d'), [3_000_000, 3_000_000], 'replicated')
    assert.equal(b.stat('/d/sub').mtime, 3_000_000)
    assert.equal(b.stat('/').mtime, 1_000_000)
    clock = 4_000_000
    b.rename('/d/f', '/e/f')
    assert.deepEqual([b.stat('/d').mtime, b.stat('/e').mtime], [4_000_000, 4_000_000], 'rename: both directories')
    clock = 5_000_000
    b.unlink('/e/f')
    b.symlink('/d/s', 'x')
    clock = 6_000_000
    b.link('/d/sub/g', '/e/h')
    assert.throws(() => b.rmdir('/d/sub'), /ENOTEMPTY/)
    assert.deepEqual([b.stat('/d').mtime, b.stat('/e').mtime], [5_000_000, 6_000_000], 'unlink, symlink, link')
    clock = 7_000_000
    b.unlink('/d/sub/g')
    b.rmdir('/d/sub')
    assert.deepEqual(dirTimes(b, '/d'), [7_000_000, 7_000_000], 'rmdir')
    // A utimens after the entries changed, in the same flush: its time stays (tar x sets a
    // directory's times after filling it).
    b.writeFile('/d/late', ref)
    b.setattr('/d', { mtime: 1234 })
    clock = 8_000_000
    b.setattr('/', { mtime: 4321 })
    a.applyChanges(b.takeChanges())
    for (const t of [a, b]) {
      assert.equal(t.stat('/d').mtime, 1234)
      assert.equal(t.stat('/e').mtime, 6_000_000)
      assert.equal(t.stat('/').mtime, 4321)
    }
    // ... and one after the utimens moves it again.
    clock = 9_000_000
    b.setattr('/d', { mtime: 1235 })
    b.writeFile('/d/later', ref)
    a.applyChanges(b.takeChanges())
    assert.equal(a.stat('/d').mtime, 9_000_000)
    assert.deepEqual(a.audit(), [])
  } finally {
    a.free()
    b.free()
  }
})

test('entries made in one directory cost one mtime put per flush, not one per entry', () => {
  let clock = 1_000_000
  const t = Tree.create(A, { clock: () => clock })
  try {
    t.mkdir('/d')
    t.takeChanges()
    const id = t.stat('/d').id
    clock++
    for (let i = 0; i < 300; i++) t.writeFile(`/d/f${i}`, ref)
    clock++
    t.writeFiles(Array.from({ length: 300 }, (_, i) => ({ path: `/d/g${i}`, content: ref })))
    for (let i = 0; i < 100; i++) t.unlink(`/d/f${i}`)
    const puts = t.takeChanges().flatMap((c) => Automerge.decodeChange(c.change).ops).filter((op) => op.key === 'mtime' && op.action === 'set')
    // New records carry their mtime in their creation (\`init\`): the directory's is the one put.
    assert.equal(puts.length, 1)
    assert.equal(puts[0]!.value, clock)
    assert.equal(t.stat('/d').mtime, clock)
    // A directory made in the same flush takes its mtime in its creation: no put of its own.
    t.mkdir('/n')
    for (let i = 0; i < 10; i++) t.writeFile(`/n/f${i}`, ref)
    const more = t.takeChanges().flatMap((c) => Automerge.decodeChange(c.change).ops).filter((op) => op.key === 'mtime')
    assert.equal(more.length, 0)
    assert.equal(t.stat('/n').mtime, clock)
  } finally {
    t.free()
  }
})

describe('times through a mount', { skip: !haveFuse }, () => {
  let m: MountedVolume
  before(async () => { m = await MountedVolume.open('bazil-posix-times-') })
  after(async () => { await m?.close() })

  test('touch -a, touch -m, chmod and the root, as stat shows them, and after a reopen', async () => {
    await sh(m.mnt, `echo abc > f && touch -d '2001-02-03 04:05:06 UTC' f`)
    const made = Math.floor(Date.now() / 1000)
    const t2001 = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000
    let [at, mt, ct] = await times(m.mnt, 'f')
    assert.deepEqual([at, mt], [t2001, t2001])
    assert.ok(ct >= made - 5, `ctime ${ct} is the change's time, not the mtime`)
    await sh(m.mnt, `touch -a -d '2010-01-01 00:00:00 UTC' f`)
    ;[at, mt] = await times(m.mnt, 'f')
    assert.deepEqual([at, mt], [Date.UTC(2010, 0, 1) / 1000, t2001], 'touch -a -d sets atime alone')
    await sh(m.mnt, `touch -m -d '2005-01-01 00:00:00 UTC' f`)
    ;[at, mt] = await times(m.mnt, 'f')
    assert.deepEqual([at, mt], [Date.UTC(2010, 0, 1) / 1000, Date.UTC(2005, 0, 1) / 1000], 'touch -m -d sets mtime alone')
    if (omitApart()) {
      // utimensat(atime UTIME_NOW, mtime UTIME_OMIT): the mtime stays.
      await sh(m.mnt, 'touch -a f')
      ;[at, mt] = await times(m.mnt, 'f')
      assert.equal(mt, Date.UTC(2005, 0, 1) / 1000)
      assert.ok(at >= made - 5)
    } else {
      console.warn('posix-times: fuse-native lacks the utime-omit-apart fix (run node scripts/build-fuse-native.mjs): touch -a without -d not checked')
    }
    // chmod moves ctime, not mtime.
    const before = (await times(m.mnt, 'f'))[2]
    await sh(m.mnt, 'chmod 600 f')
    const after = await times(m.mnt, 'f')
    assert.equal(after[1], Date.UTC(2005, 0, 1) / 1000)
    assert.ok(after[2] >= before)
    assert.ok(m.vol.tree.stat('/f').ctime >= after[2] * 1000)
    // The root has real times (never 1970), and settable ones.
    const [, rootM] = await times(m.mnt, '.')
    assert.ok(rootM > Date.UTC(2020, 0, 1) / 1000, `root mtime ${rootM}`)
    await sh(m.mnt, `touch -m -d '2003-03-03 00:00:00 UTC' .`)
    assert.equal((await times(m.mnt, '.'))[1], Date.UTC(2003, 2, 3) / 1000)
    // Reopened (the index on disk, then a replay of the log): the same times.
    await m.reopen()
    const st = m.vol.tree.stat('/f')
    assert.deepEqual([st.mtime, st.mode], [Date.UTC(2005, 0, 1), 0o600])
    assert.ok(st.atime >= Date.UTC(2010, 0, 1), `atime ${st.atime} kept`)
    assert.equal(m.vol.tree.stat('/').mtime, Date.UTC(2003, 2, 3))
    assert.equal((await times(m.mnt, 'f'))[1], Date.UTC(2005, 0, 1) / 1000)
  })

  test('a directory\'s mtime and ctime move with its entries: create, mkdir, mkfifo, ln, ln -s, mv, rm, rmdir', async () => {
    const old = Date.UTC(2001, 0, 1) / 1000
    await sh(m.mnt, `mkdir -p dt/a dt/b && echo x > dt/a/keep`)
    const cases: [string, string[]][] = [
      ['echo y > dt/a/new', ['dt/a']],
      ['mkdir dt/a/sub', ['dt/a']],
      ['mkfifo dt/a/fifo', ['dt/a']],
      ['ln dt/a/keep dt/b/hard', ['dt/b']],
      ['ln -s keep dt/a/sym', ['dt/a']],
      ['mv dt/a/new dt/b/moved', ['dt/a', 'dt/b']],
      ['mv dt/b/moved dt/b/renamed', ['dt/b']],
      ['rm dt/b/renamed dt/b/hard', ['dt/b']],
      ['rmdir dt/a/sub', ['dt/a']],
      ['echo z > rootfile', ['.']],
    ]
    for (const [op, dirs] of cases) {
      await sh(m.mnt, `touch -m -d @${old} dt/a dt/b .`)
      const before = Math.floor(Date.now() / 1000)
      await sh(m.mnt, op)
      for (const d of dirs) {
        const [, mt, ct] = await times(m.mnt, d)
        assert.ok(mt >= before - 1, `${op}: ${d} mtime ${mt} moved`)
        assert.ok(ct >= mt, `${op}: ${d} ctime ${ct} >= mtime ${mt}`)
      }
      // A write into an existing file is no change of its directory.
      if (op === 'echo y > dt/a/new') {
        await sh(m.mnt, `touch -m -d @${old} dt/a && echo more >> dt/a/new`)
        assert.equal((await times(m.mnt, 'dt/a'))[1], old, 'append: directory untouched')
      }
    }
    // Kept across a reopen (the index on disk and the log agree).
    const [, mt] = await times(m.mnt, 'dt/a')
    await m.reopen()
    assert.equal((await times(m.mnt, 'dt/a'))[1], mt)
  })
})

test('relatime: a read records its time when atime is not after mtime or ctime, or a day old', () => {
  const now = Date.UTC(2026, 0, 10)
  const day = 24 * 3600 * 1000
  assert.equal(relatimeDue({ atime: now - 10, mtime: now - 10, ctime: now - 10 }, now), true, 'never read since written')
  assert.equal(relatimeDue({ atime: now - 20, mtime: now - 10, ctime: now - 30 }, now), true, 'written after the last read')
  assert.equal(relatimeDue({ atime: now - 20, mtime: now - 30, ctime: now - 10 }, now), true, 'changed after the last read')
  assert.equal(relatimeDue({ atime: now - 10, mtime: now - 30, ctime: now - 30 }, now), false, 'read since the last change: no new write')
  assert.equal(relatimeDue({ atime: now - day, mtime: now - 2 * day, ctime: now - 2 * day }, now), true, 'a day old')
})

describe('atime on read through a mount', { skip: !haveFuse }, () => {
  let plain: MountedVolume
  let withAtime: MountedVolume
  before(async () => {
    plain = await MountedVolume.open('bazil-posix-noatime-')
    withAtime = await MountedVolume.open('bazil-posix-atime-', { atime: true })
  })
  after(async () => {
    await plain?.close()
    await withAtime?.close()
  })

  const old = Date.UTC(2010, 0, 1)
  const setup = `mkdir d && echo hello > d/f && touch -a -d @${old / 1000} d/f d`

  test('by default (noatime) reading writes nothing', async () => {
    await sh(plain.mnt, setup)
    const ops = (await plain.vol.tree.stat('/d/f')).atime
    await sh(plain.mnt, 'cat d/f >/dev/null && ls d >/dev/null')
    assert.equal(plain.vol.tree.stat('/d/f').atime, ops)
    assert.equal(plain.vol.tree.stat('/d').atime, old)
  })

  test('--atime: the first read records its time, without a ctime change; a read again does not', async () => {
    const m = withAtime
    await sh(m.mnt, setup)
    // The kernel sends RELEASE after close() returns and the commit of `echo` runs in the
    // background: read the tree once it holds what the shell wrote (the mount's own stat
    // shows the spooled write's times meanwhile).
    await m.mount.flushAll()
    const before = m.vol.tree.stat('/d/f')
    assert.equal(before.atime, old)
    const t0 = Date.now()
    await sh(m.mnt, 'cat d/f >/dev/null && ls d >/dev/null')
    const read = m.vol.tree.stat('/d/f')
    assert.ok(read.atime >= t0, `atime ${read.atime} recorded by the read`)
    assert.equal(read.ctime, before.ctime, 'an access is no metadata change')
    assert.equal(read.mtime, before.mtime)
    assert.ok(m.vol.tree.stat('/d').atime >= t0, 'a listing records the directory\'s atime')
    // Read again: atime is after mtime and ctime and not a day old, so nothing is written.
    await new Promise((r) => setTimeout(r, 20))
    await sh(m.mnt, 'cat d/f >/dev/null')
    assert.equal(m.vol.tree.stat('/d/f').atime, read.atime)
    // A write makes the next read record again; kept across a reopen (logged like any op).
    await new Promise((r) => setTimeout(r, 20))
    await sh(m.mnt, 'echo more >> d/f && cat d/f >/dev/null')
    await m.mount.flushAll()
    const again = m.vol.tree.stat('/d/f')
    assert.ok(again.atime > read.atime && again.atime >= again.mtime, 'read after the write recorded')
    await m.reopen()
    assert.equal(m.vol.tree.stat('/d/f').atime, again.atime)
  })
})
