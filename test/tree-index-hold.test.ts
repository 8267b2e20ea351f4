// A batch holding the on-disk index's cache (IndexFiles.hold, Tree.holdIndex: replay holds it
// across the windows of a pass): each bucket a batch needs is read once, however small the
// cache; the changes applied in one window are seen by the next; a commit in the middle of a
// held batch moves reads to the new index; released, the cache is bounded again; and an index
// left by a batch cut short (nothing committed) opens as the last commit, the logs' newer
// entries replayed over it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'

const ACTORS = ['a1'.repeat(16), 'b2'.repeat(16)]
const DIRS = 12
const FILES = 60

const files = (t: Tree): IndexFiles => {
  const f = t.view.diskBase
  assert.ok(f instanceof IndexFiles)
  return f
}

/** A tree of DIRS directories of FILES files committed to disk, and a second writer's windows of changes touching every directory in each window. */
function setup(dir: string): { file: string; idx: string; windows: ShardChange[][]; ref: Tree } {
  const file = path.join(dir, 't.ckpt')
  const idx = path.join(dir, 't')
  const origin = Tree.create(ACTORS[0])
  for (let d = 0; d < DIRS; d++) {
    origin.mkdir(`/d${d}`)
    for (let f = 0; f < FILES; f++) origin.writeFile(`/d${d}/f${f}`, { hash: String(d * 1000 + f).padStart(64, '0'), size: f })
  }
  const base = origin.takeChanges()
  commitTreeIndex(file, idx, origin, {})
  origin.free()
  // The other writer: rewrites, creates, renames within and across directories, removals.
  const other = Tree.create(ACTORS[1])
  other.applyChanges(base)
  const ref = Tree.create(ACTORS[1])
  ref.applyChanges(base)
  const windows: ShardChange[][] = []
  for (let w = 0; w < 4; w++) {
    for (let d = 0; d < DIRS; d++) {
      other.writeFile(`/d${d}/f${w}`, { hash: String(900000 + w * 100 + d).padStart(64, '0'), size: 5000 + w })
      other.writeFile(`/d${d}/new${w}`, { hash: String(800000 + w * 100 + d).padStart(64, '0'), size: w })
      other.rename(`/d${d}/f${10 + w}`, `/d${(d + 1) % DIRS}/moved-${d}-${w}`)
      other.rename(`/d${d}/f${20 + w}`, `/d${d}/renamed-${w}`)
      other.unlink(`/d${d}/f${30 + w}`)
    }
    windows.push(other.takeChanges())
  }
  for (const w of windows) ref.applyChanges(w)
  other.free()
  return { file, idx, windows, ref }
}

test('a held batch reads each bucket once, sees its earlier windows, and follows a commit in its middle', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { file, idx, windows, ref } = setup(dir)
    const want = canonicalDump(ref)

    // Not held, a cache of one byte: every window reads the buckets again.
    const { tree: loose } = openTreeIndex(file, idx, ACTORS[0])
    files(loose).cacheBytes = 1
    const looseReads: number[] = []
    for (const w of windows) {
      const before = files(loose).reads
      loose.applyChanges(w)
      looseReads.push(files(loose).reads - before)
    }
    assert.deepEqual(canonicalDump(loose), want)
    assert.ok(looseReads.slice(1).every((n) => n > 0), `without a hold, later windows read again: ${looseReads.join(', ')}`)

    // Held across the windows, the same small bound outside a hold: later windows read only
    // what the earlier ones did not (the new names' lookups find nothing new to read).
    const { tree: held } = openTreeIndex(file, idx, ACTORS[0])
    files(held).cacheBytes = 1
    const release = held.holdIndex()
    const heldReads: number[] = []
    for (const [i, w] of windows.entries()) {
      const before = files(held).reads
      held.applyChanges(w)
      heldReads.push(files(held).reads - before)
      // What one window changed is what the next one builds on (renames of files it created, removals).
      for (let d = 0; d < DIRS; d++) assert.equal(held.stat(`/d${d}/f${i}`).size, 5000 + i)
    }
    assert.deepEqual(canonicalDump(held), want)
    const total = heldReads.reduce((a, b) => a + b, 0)
    assert.ok(total < looseReads.reduce((a, b) => a + b, 0), `held: ${heldReads.join(', ')}; loose: ${looseReads.join(', ')}`)
    assert.ok(heldReads.slice(1).every((n, i) => n <= heldReads[0] && n < looseReads[i + 1]), `held windows after the first read less: ${heldReads.join(', ')}`)
    // The same reads again inside the hold: nothing more from disk.
    const again = files(held).reads
    for (let d = 0; d < DIRS; d++) held.readdir(`/d${d}`)
    const listed = files(held).reads
    for (let d = 0; d < DIRS; d++) held.readdir(`/d${d}`)
    assert.equal(files(held).reads, listed, 'listings read within a hold are kept')
    assert.ok(listed >= again)

    // A commit in the middle of the hold: reads go to the new index, which answers the same.
    commitTreeIndex(file, idx, held, { mid: true })
    files(held).cacheBytes = 1
    assert.deepEqual(canonicalDump(held), want)
    release()
    release() // a second release changes nothing
    assert.deepEqual(canonicalDump(held), want)

    // Released: the cache is bounded again (a re-read of a directory reads from disk).
    const { tree: after } = openTreeIndex(file, idx, ACTORS[0])
    files(after).cacheBytes = 1
    // (Read from the base itself: the view keeps the entries and name tables it built; the
    // base keeps the answers of name lookups by count, so the pages are what is counted.)
    const dirs = Array.from({ length: DIRS }, (_, d) => ref.stat(`/d${d}`).id)
    const list = (): void => { for (const d of dirs) assert.ok([...files(after).children(d)].length > 0) }
    const r = after.holdIndex()
    list()
    const kept = files(after).reads
    list()
    assert.equal(files(after).reads, kept)
    r()
    list()
    assert.ok(files(after).reads > kept, 'released, a small cache drops what the hold kept')
    assert.deepEqual(canonicalDump(after), want)
    for (const t of [loose, held, after, ref]) t.free()
  } finally {
    cleanup()
  }
})

test('a batch cut short leaves the index as last committed: reopened, the same windows apply over it', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { file, idx, windows, ref } = setup(dir)
    const { tree: t } = openTreeIndex(file, idx, ACTORS[0])
    const release = t.holdIndex()
    t.applyChanges(windows[0])
    t.applyChanges(windows[1])
    // The process dies here: nothing was committed (the hold is never released).
    void release
    const { tree: back } = openTreeIndex(file, idx, ACTORS[0])
    for (const w of windows) back.applyChanges(w)
    assert.deepEqual(canonicalDump(back), canonicalDump(ref))
    assert.deepEqual(back.audit(), [])
    for (const x of [t, back, ref]) x.free()
  } finally {
    cleanup()
  }
})
