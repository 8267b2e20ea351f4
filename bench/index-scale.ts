// The derived index on disk at scale: open, ls, stat, snapshot, peak RSS, cold CLI commands,
// each next to the same volume opened from a whole-file checkpoint (version 2: the index
// rebuilt in memory at every open, what bazil did before) in the same run.
//
// Layout as issue 12 names it: BENCH_INDEX_FILES files (default 100000) as dirs of 10k
// entries (/big0, /big1, ...) plus a tree 6 deep (/t/a*/b*/c*/d*/e*, 4 wide) holding the last
// 10k. Metadata only (fake content refs). BENCH_INDEX_BASELINE=0 skips the baseline. Runs alone (`node dist/bench/index-scale.js`,
// writes bench/results/index-scale.json) or from bench/run.ts through `run()`.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { encodeTreeState } from '../src/tree/index.js'
import { openTreeIndex } from '../src/tree/index-store.js'
import type { Volume } from '../src/volume/volume.js'
import { checkpointPath, indexFilesPath } from '../src/volume/checkpoint-file.js'
import type { Row } from './row.js'

const FILES = Number(process.env.BENCH_INDEX_FILES ?? 100_000)
/** 0: no whole-file checkpoint baseline (at 1M it needs GiBs and minutes per open). */
const BASELINE = process.env.BENCH_INDEX_BASELINE !== '0'
const BIG = 10_000
const TREE = Math.min(10_000, FILES)
const BIGS = Math.max(1, Math.floor((FILES - TREE) / BIG))

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

const fakeHash = (n: number): string => n.toString(16).padStart(64, '0')

function fakeWrite(vol: Volume, p: string, n: number): void {
  vol.mutate((t) => t.writeFile(p, { hash: fakeHash(n), size: n % 100_000 }), (st) => ({ op: 'write', path: st.path, size: st.size, hash: st.content?.hash }))
}

/** The leaf dirs of the 6-deep tree. */
function leaves(): string[] {
  let level = ['/t']
  for (const c of 'abcde') level = level.flatMap((p) => [0, 1, 2, 3].map((i) => `${p}/${c}${i}`))
  return level
}

async function build(vol: Volume): Promise<void> {
  let n = 1
  for (let b = 0; b < BIGS; b++) {
    vol.mkdir(`/big${b}`)
    for (let i = 0; i < BIG; i++) {
      fakeWrite(vol, `/big${b}/f${i}`, n++)
      await vol.maybeFlush()
    }
    await vol.flush()
    // Bounds the builder's memory: the index goes to disk as it grows.
    if (b % 10 === 9) await vol.checkpoint()
  }
  const ls = leaves()
  const made = new Set<string>()
  for (const leaf of ls) {
    const parts = leaf.split('/').filter(Boolean)
    for (let i = 1; i <= parts.length; i++) {
      const p = '/' + parts.slice(0, i).join('/')
      if (!made.has(p)) {
        vol.mkdir(p)
        made.add(p)
      }
    }
  }
  for (let i = 0; i < TREE; i++) {
    fakeWrite(vol, `${ls[i % ls.length]}/f${i}`, n++)
    await vol.maybeFlush()
  }
  await vol.writeFile('/t/small', Buffer.from('a small file\n'))
  await vol.flush()
}

/** In a child: open, ls cold and warm, stats, (with `snap`) a snapshot and a listing inside it; its own peak RSS. */
async function child(dataDir: string, snap: boolean): Promise<void> {
  const t0 = performance.now()
  const node = await Node.open(DataDir.open(dataDir))
  const vol = await node.volume('v')
  const openMs = performance.now() - t0
  const rssOpen = process.memoryUsage().rss / 2 ** 20
  let t = performance.now()
  const n = vol.tree.readdir('/big0').length
  const lsColdMs = performance.now() - t
  t = performance.now()
  vol.tree.readdir('/big0')
  const lsWarmMs = performance.now() - t
  const deep = `${leaves()[7]}/f7`
  t = performance.now()
  vol.tree.stat(deep)
  const statColdMs = performance.now() - t
  t = performance.now()
  for (let i = 0; i < 1000; i++) vol.tree.stat(`/big${i % BIGS}/f${(i * 7919) % BIG}`)
  const statMs = (performance.now() - t) / 1000
  let snapMs = NaN, snapLsMs = NaN, snapN = 0
  if (snap) {
    t = performance.now()
    // Until its checkpoint: then its view is read from the index like the live one.
    await vol.snapshot('s1')
    snapMs = performance.now() - t
    t = performance.now()
    snapN = vol.tree.at('s1').readdir('/big0').length
    snapLsMs = performance.now() - t
  }
  const out = {
    openMs, rssOpen, lsColdMs, lsWarmMs, statColdMs, statMs, snapMs, snapLsMs, n, snapN, fromCheckpoint: vol.opened.fromCheckpoint,
    load: os.loadavg()[0], rssMiB: process.resourceUsage().maxRSS / 1024,
  }
  await node.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

function runChild(dataDir: string, snap: boolean): Record<string, number> {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', dataDir, ...(snap ? ['--snap'] : [])], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

function cli(dataDir: string, args: string[]): { s: number; rssMiB: number } {
  const t = performance.now()
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, bazilBin, '--data-dir', dataDir, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 })
  const s = (performance.now() - t) / 1000
  if (r.status !== 0) throw new Error(`bazil ${args.join(' ')} failed: ${r.stderr}`)
  return { s, rssMiB: Number(r.stderr.trim().split('\n').pop()) / 1024 }
}

/** The index as written (the checkpoint manifest and its files), and the same state as a whole-file checkpoint (version 2). */
function saveStates(dataDir: string, volumeId: string, tmp: string, baseline: boolean): { index: string; legacy: string } {
  const index = path.join(tmp, 'state-index'), legacy = path.join(tmp, 'state-legacy')
  fs.cpSync(path.join(dataDir, 'index'), index, { recursive: true })
  if (!baseline) return { index, legacy }
  const file = checkpointPath(dataDir, volumeId)
  const { tree, extra } = openTreeIndex(file, indexFilesPath(dataDir, volumeId), 'ff'.repeat(32))
  fs.mkdirSync(legacy)
  fs.writeFileSync(path.join(legacy, path.basename(file)), encodeTreeState(tree.exportState(), extra))
  tree.free()
  return { index, legacy }
}

/** Puts a saved state in place (a data dir cannot be copied: the store refuses a moved copy). */
function useState(dataDir: string, state: string): void {
  fs.rmSync(path.join(dataDir, 'index'), { recursive: true, force: true })
  fs.cpSync(state, path.join(dataDir, 'index'), { recursive: true })
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-index-scale-'))
  try {
    const dir = path.join(tmp, 'data')
    DataDir.create(dir)
    let t = performance.now()
    const node = await Node.open(DataDir.open(dir))
    const vol = await node.createVolume('v', 'default')
    await build(vol)
    const id = vol.record.id
    rows.push({ name: `build ${FILES} files (${BIGS} dirs of ${BIG} + a tree 6 deep), in-process`, value: (performance.now() - t) / 1000, unit: 's' })
    t = performance.now()
    await node.close()
    const du = (p: string): number => fs.readdirSync(p).reduce((s, f) => s + fs.statSync(path.join(p, f)).size, 0) / 2 ** 20
    rows.push({ name: 'close (index commit)', value: (performance.now() - t) / 1000, unit: 's', note: `index ${du(indexFilesPath(dir, id)).toFixed(1)} MiB` })
    const states = saveStates(dir, id, tmp, BASELINE)
    if (BASELINE) rows.push({ name: 'whole-file checkpoint of the same volume (baseline)', value: fs.statSync(path.join(states.legacy, `${id}.ckpt`)).size / 2 ** 20, unit: 'MiB' })
    const fresh = (state: string): string => {
      useState(dir, state)
      return dir
    }
    // The snapshot (a log entry) comes last.
    const none = { openMs: NaN, rssOpen: NaN, lsColdMs: NaN, lsWarmMs: NaN, statColdMs: NaN, statMs: NaN, rssMiB: NaN, fromCheckpoint: 1 }
    const old = BASELINE ? runChild(fresh(states.legacy), false) : none
    const clis = cliRows(() => fresh(states.index), BASELINE ? () => fresh(states.legacy) : null)
    const ix = runChild(fresh(states.index), true)
    if (!ix.fromCheckpoint || !old.fromCheckpoint) throw new Error('a child did not open from its checkpoint')
    const cmp = (name: string, a: number, b: number, unit: string, target?: number): void => {
      rows.push({ name, value: a, unit, ...(target !== undefined ? { target, ok: a <= target } : {}), note: `whole-file checkpoint ${b.toFixed(unit === 's' ? 3 : 1)} ${unit} (ratio ${(b / a).toFixed(1)}); load ${ix.load.toFixed(1)}` })
    }
    cmp(`open (node + volume), ${FILES} files`, ix.openMs / 1000, old.openMs / 1000, 's', 1)
    cmp('RSS after open', ix.rssOpen, old.rssOpen, 'MiB')
    cmp(`ls of a ${ix.n}-entry directory, first after open`, ix.lsColdMs / 1000, old.lsColdMs / 1000, 's', 1)
    cmp(`ls of a ${ix.n}-entry directory, warm`, ix.lsWarmMs / 1000, old.lsWarmMs / 1000, 's', 0.1)
    cmp('stat of a path 7 deep, first', ix.statColdMs, old.statColdMs, 'ms', 1)
    cmp('stat, warm average over 1000 paths', ix.statMs, old.statMs, 'ms', 1)
    rows.push({ name: 'take a snapshot (its log entry + an index checkpoint)', value: ix.snapMs / 1000, unit: 's', target: 1, ok: ix.snapMs <= 1000 })
    rows.push({ name: `ls of the ${ix.snapN}-entry directory in .snap/s1 (first)`, value: ix.snapLsMs / 1000, unit: 's', note: `the live one: ${(ix.lsColdMs / 1000).toFixed(3)} s` })
    cmp('peak RSS of the process (open, ls, stats; index: + snapshot)', ix.rssMiB, old.rssMiB, 'MiB', 300)
    rows.push(...clis)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return rows
}

function cliRows(index: () => string, legacy: (() => string) | null): Row[] {
  const rows: Row[] = []
  for (const [label, args, target] of [
      [`cold CLI: bazil volume ls of a ${BIG}-entry directory`, ['volume', 'ls', 'v', '/big0'], 1],
      ['cold CLI: bazil volume cat of one small file', ['volume', 'cat', 'v', '/t/small'], 1],
    ] as [string, string[], number][]) {
      const run1 = (d: string): { s: number; rssMiB: number } => cli(d, args)
      const b = legacy ? run1(legacy()) : { s: NaN, rssMiB: NaN }
      const a = run1(index())
      rows.push({ name: label, value: a.s, unit: 's', target, ok: a.s <= target, note: `whole-file checkpoint ${b.s.toFixed(2)} s; peak RSS ${a.rssMiB.toFixed(0)} vs ${b.rssMiB.toFixed(0)} MiB` })
  }
  return rows
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child')
  if (i >= 0) return child(process.argv[i + 1], process.argv.includes('--snap'))
  const rows = await run()
  for (const r of rows) {
    const v = r.unit === 'MiB' || r.unit === 'ms' ? r.value.toFixed(2) : r.value.toFixed(3)
    console.log(`${r.name.padEnd(66)} ${v.padStart(9)} ${r.unit}${r.target !== undefined ? `  (target ≤ ${r.target}: ${r.ok ? 'ok' : 'MISSED'})` : ''}${r.note ? `  ${r.note}` : ''}`)
  }
  const out = path.join(repoRoot, 'bench', 'results', 'index-scale.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version }, files: FILES, rows }, null, 2) + '\n')
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
