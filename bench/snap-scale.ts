// Snapshots at scale (issue 12), at the tree and its index on disk: taking one here (its meta
// change + an index commit), and listing a directory inside a snapshot another writer took
// (replicated): derived from the index on disk (src/tree/snapshot-views.ts), saved by the
// next commit, read after a reopen; each beside the live listing of the same directory in the
// same run, and (BENCH_SNAP_FULL=1, default at <= 200k files) the view built from every shard
// at the snapshot's heads, which is what a replicated snapshot cost before.
//
// BENCH_SNAP_FILES (100000) files in directories of 10,000 built in memory; or
// BENCH_SNAP_INDEX=FILE.ckpt: a COPY of a volume's index (its checkpoint file and the directory
// of segments beside it, e.g. of the kept 1M volume); it is written to. BENCH_SNAP_EDITS (100):
// the other writer's edits before its snapshot.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Tree, type ShardChange } from '../src/tree/index.js'
import { IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { printRows, writeResults, type Row } from './row.js'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const FILES = Number(process.env.BENCH_SNAP_FILES ?? 100_000)
const EDITS = Number(process.env.BENCH_SNAP_EDITS ?? 100)
const INDEX = process.env.BENCH_SNAP_INDEX
const OTHER = 'a1'.repeat(16)
const HERE = 'b2'.repeat(16)

const ms = (t0: number): number => performance.now() - t0
const load = (): string => os.loadavg().map((x) => x.toFixed(2)).join(', ')

/** An index of FILES files in /big0.. (10k each), written to `file`; returns its extra. */
function build(file: string, dir: string): unknown {
  const t = Tree.create(HERE)
  for (let i = 0; i < FILES; i++) {
    const d = `/big${Math.floor(i / 10_000)}`
    if (i % 10_000 === 0) t.mkdir(d)
    t.writeFile(`${d}/f${i}`, { hash: (i + 1).toString(16).padStart(64, '0'), size: i })
    if (i % 5_000 === 4_999) t.takeChanges()
  }
  t.takeChanges()
  commitTreeIndex(file, dir, t, null)
  t.free()
  return null
}

/** The biggest directory of a tree (what is listed), by a walk of the root's children. */
function bigDir(t: Tree): string {
  let best = { path: '/', n: -1 }
  for (const s of t.readdir('/')) {
    if (s.kind !== 'dir') continue
    for (const c of t.readdir(s.path)) {
      if (c.kind !== 'dir') continue
      const n = t.readdir(c.path).length
      if (n > best.n) best = { path: c.path, n }
    }
    const n = t.readdir(s.path).length
    if (n > best.n) best = { path: s.path, n }
  }
  return best.path
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  let file: string
  let dir: string
  let tmp: string | null = null
  if (INDEX) {
    file = INDEX
    dir = INDEX.replace(/\.ckpt$/, '')
  } else {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-snap-scale-'))
    file = path.join(tmp, 'v.ckpt')
    dir = path.join(tmp, 'v')
    const t0 = performance.now()
    build(file, dir)
    console.error(`built ${FILES} files in ${(ms(t0) / 1000).toFixed(1)} s`)
  }
  try {
    // The other writer: opened from the same index (it only reads it), edits a directory and takes a snapshot.
    let t0 = performance.now()
    const here = openTreeIndex(file, dir, HERE)
    const extra = here.extra
    const b = here.tree
    const D = process.env.BENCH_SNAP_DIR ?? bigDir(b)
    const n = b.readdir(D).length
    console.error(`opened in ${(ms(t0) / 1000).toFixed(2)} s; listing ${D} (${n} entries); load ${load()}`)
    const other = openTreeIndex(file, dir, OTHER).tree
    for (let i = 0; i < EDITS; i++) other.writeFile(`${D}/other-${i}`, { hash: (i + 7).toString(16).padStart(64, '0'), size: i })
    other.snapshot('other')
    const changes: ShardChange[] = other.takeChanges()
    // Baseline: the live directory, first listing after open (same index, same process).
    t0 = performance.now()
    const liveN = b.readdir(D).length
    const liveFirst = ms(t0)
    t0 = performance.now()
    b.readdir(D)
    const liveWarm = ms(t0)
    // The snapshot arrives (with the other writer's edits), and is listed: derived from the index on disk.
    t0 = performance.now()
    b.applyChanges(changes)
    const applyMs = ms(t0)
    t0 = performance.now()
    const snapN = b.at('other').readdir(D).length
    const derivedFirst = ms(t0)
    t0 = performance.now()
    b.at('other').readdir(D)
    const derivedWarm = ms(t0)
    if (snapN !== liveN + EDITS) throw new Error(`snapshot lists ${snapN} entries, expected ${liveN + EDITS}`)
    rows.push({ name: `ls ${n}-entry dir in a replicated snapshot, first (derived in memory)`, value: derivedFirst, unit: 'ms', baseline: 'the live dir, first ls after open', baselineValue: liveFirst, ratio: derivedFirst / liveFirst, note: `warm ${derivedWarm.toFixed(1)} vs live ${liveWarm.toFixed(1)} ms; its ${EDITS} edits applied in ${applyMs.toFixed(0)} ms` })
    // What it cost before: the view built from every shard at the snapshot's heads.
    const full = process.env.BENCH_SNAP_FULL === undefined ? FILES <= 200_000 && !INDEX : process.env.BENCH_SNAP_FULL === '1'
    if (full) {
      const ref = openTreeIndex(file, dir, HERE).tree
      ref.setSavedSnapshots({ named: null, view: () => null }) // no index state: at() builds from the shards
      ref.applyChanges(changes)
      t0 = performance.now()
      ref.at('other').readdir(D)
      const fullMs = ms(t0)
      rows.push({ name: `ls ${n}-entry dir in a replicated snapshot, built from the shards (before)`, value: fullMs, unit: 'ms', baseline: 'derived', baselineValue: derivedFirst, ratio: fullMs / derivedFirst })
      ref.free()
    }
    other.free()
    // The next commit saves the derived view; after a reopen it is read like the live index.
    t0 = performance.now()
    const bytes = commitTreeIndex(file, dir, b, extra)
    const commitMs = ms(t0)
    b.free()
    t0 = performance.now()
    const back = openTreeIndex(file, dir, HERE).tree
    const openMs = ms(t0)
    t0 = performance.now()
    back.at('other').readdir(D)
    const savedFirst = ms(t0)
    t0 = performance.now()
    back.readdir(D)
    const liveFirst2 = ms(t0)
    rows.push({ name: 'commit after a replicated snapshot (saves its derived view)', value: commitMs, unit: 'ms', note: `${(bytes / 2 ** 20).toFixed(1)} MiB written` })
    rows.push({ name: `ls ${n}-entry dir in that snapshot after a reopen (saved view)`, value: savedFirst, unit: 'ms', baseline: 'the live dir, first ls, same process', baselineValue: liveFirst2, ratio: savedFirst / liveFirst2, note: `open ${openMs.toFixed(0)} ms; shards loaded: ${back.shardStats.loads}` })
    // Taking one here: its meta change, then the index commit that saves its view.
    const manifestBefore = fs.statSync(file).size
    t0 = performance.now()
    back.snapshot('here')
    const changeMs = ms(t0)
    back.takeChanges()
    commitTreeIndex(file, dir, back, extra)
    const takeMs = ms(t0)
    rows.push({ name: 'take a snapshot here (meta change + index commit)', value: takeMs, unit: 'ms', target: 1000, ok: takeMs <= 1000, note: `meta change ${changeMs.toFixed(0)} ms; manifest ${(manifestBefore / 2 ** 20).toFixed(2)} -> ${(fs.statSync(file).size / 2 ** 20).toFixed(2)} MiB` })
    t0 = performance.now()
    back.at('here').readdir(D)
    rows.push({ name: `ls ${n}-entry dir in the snapshot taken here, first`, value: ms(t0), unit: 'ms', baseline: 'the live dir, first ls', baselineValue: liveFirst2, ratio: ms(t0) / liveFirst2 })
    if (!(back.view.diskBase instanceof IndexFiles)) throw new Error('not read from the index on disk')
    back.free()
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
  }
  return rows
}

async function main(): Promise<void> {
  const l = load()
  const rows = await run()
  printRows(rows, 70)
  console.log(`files ${INDEX ? `(index ${INDEX})` : FILES}; load at start ${l}, at end ${load()}`)
  writeResults(repoRoot, 'snap-scale', { files: INDEX ? null : FILES, index: INDEX ?? null, edits: EDITS }, rows)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
