// A million files (issue 12): the figures of the issue's table at a size set by env var, each
// beside what a user would otherwise pick, measured in the same run. Runs alone
// (`node dist/bench/tree-scale.js`, writes bench/results/tree-scale.json) or from
// bench/run.ts (BENCH_PARTS=tree) through `run()`.
//
// The volume is made as a user makes it: a tree of real small files on disk, imported through
// the CLI (restic backs the same tree up first: the import's baseline). Then, each from a cold
// process with the page cache dropped: open (time + peak RSS), ls of a 10k-entry directory,
// stat, cat, snapshot take/list/ls (beside the local file system and restic on the same tree);
// then two writers each make offline ops and merge (in one process, raw hypercore beside it).
//
// Sizes: BENCH_TREE_FILES (default 100000; 1000000 is the issue's goal), laid out as
// directories of BENCH_TREE_DIR_SIZE (10000) entries under /flat plus a share BENCH_TREE_DEEP
// (0.1) of the files in a tree 6 deep (/deep/a*/b*/c*/d*/e*, fan-out 4: 1024 leaf dirs).
// BENCH_TREE_PARTS: comma list of import,cold,snapshot,merge,join,merge-prep,merge-run,cold-stat (default all but merge-prep/-run; join: bench/tree-join.ts; cold-stat: bench/tree-cold-stat.ts). BENCH_TREE_SRC: a
// directory to keep the source tree in between runs (made once per size). BENCH_TREE_PROFILE=1:
// the import runs under --cpu-prof and its profile summary goes into the row's note.
// BENCH_TREE_PROFILE_MERGE=DIR: each merge round is sampled into DIR/merge-SEED.cpuprofile (summary in its row;
// BENCH_TREE_PROFILE=1 alone: into the work dir's prof/).
// BENCH_TREE_KEEP=1 keeps the work dir; BENCH_TREE_REUSE=DIR runs the other parts on a kept one.
// BENCH_TREE_CLI_TIMEOUT_S (600): a cold CLI command taking longer is stopped and reported so.
// Merge: BENCH_TREE_OPS (10000 offline ops per writer), BENCH_TREE_COMMIT_MS (100: ops are
// logged as the mount logs them, one entry per commit window), BENCH_TREE_WORST (1: also merge
// with one entry per op, next to raw hypercore replication of the same blocks).
// A/B of a merge on the very same logs (builds compared back to back): BENCH_TREE_PARTS=merge-prep
// (with import, or BENCH_TREE_REUSE) copies the imported volume to BENCH_TREE_MERGE_DIR/a, starts a
// second writer BENCH_TREE_MERGE_DIR/b from its state, logs BENCH_TREE_OPS offline ops on each as
// the mount does, closes both; BENCH_TREE_PARTS=merge-run (alone: no import, no source tree) merges a
// fresh copy of that dir (both opened from their checkpoints, shards cold, page cache dropped) in
// one process and reports wall, CPU, index bytes read, shard loads (BENCH_TREE_PROFILE=1: the
// profile, kept in BENCH_TREE_MERGE_DIR/prof). Same BENCH_TREE_FILES/DIR_SIZE/DEEP/OPS for both.
//
// Other helpers add figures as a part: a function (ctx) => Promise<Row[]> in PARTS below.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { randomBytes } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { DataPaths } from '../src/data-paths.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { bazilBin, dropCaches, has, log } from './procs.js'
import { profileTo, summarizeProfile } from './profile-summary.js'
import { joinPart } from './tree-join.js'
import { STAT_PATHS, inProcessRows, inProcessStats, mountStatRows, randomPaths } from './tree-stat.js'
import { printRows, writeResults, type Row } from './row.js'
import { encodeState, openSealedState, sealState } from '../src/tree/state-file.js'
import { commitSlices, indexReads } from '../src/tree/index-store.js'
import { coldStatRows } from './tree-cold-stat.js'
export type { Row }

const FILES = Number(process.env.BENCH_TREE_FILES ?? 100_000)
const DIR_SIZE = Number(process.env.BENCH_TREE_DIR_SIZE ?? 10_000)
const DEEP_SHARE = Number(process.env.BENCH_TREE_DEEP ?? 0.1)
const OPS = Number(process.env.BENCH_TREE_OPS ?? 10_000)
const COMMIT_MS = Number(process.env.BENCH_TREE_COMMIT_MS ?? 100)
const WORST = process.env.BENCH_TREE_WORST !== '0'
const PROFILE = process.env.BENCH_TREE_PROFILE === '1'
/** A directory: each merge round's replication + apply is sampled (node:inspector) into a .cpuprofile there, summarized in its row. */
const PROFILE_MERGE = process.env.BENCH_TREE_PROFILE_MERGE ?? null

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')

// ---- the tree of files ---------------------------------------------------------------------

/** Where the files go: directories of DIR_SIZE under /flat, the deep share spread over 1024 leaves 6 deep. */
export interface Layout {
  flatDirs: number
  deepFiles: number
  /** Each directory (relative, no leading slash) with how many files it holds. */
  dirs: { rel: string; files: number }[]
}

export function layout(files: number, dirSize = DIR_SIZE, deepShare = DEEP_SHARE): Layout {
  const deepFiles = Math.round(files * deepShare)
  const flat = files - deepFiles
  const flatDirs = Math.ceil(flat / dirSize)
  const dirs: { rel: string; files: number }[] = []
  for (let d = 0; d < flatDirs; d++) dirs.push({ rel: `flat/d${d}`, files: Math.min(dirSize, flat - d * dirSize) })
  if (deepFiles > 0) {
    const leaves = 1024
    for (let l = 0; l < leaves; l++) {
      const n = Math.floor(deepFiles / leaves) + (l < deepFiles % leaves ? 1 : 0)
      if (n === 0) continue
      const k = [4 ** 4, 4 ** 3, 4 ** 2, 4, 1].map((m) => Math.floor(l / m) % 4)
      dirs.push({ rel: `deep/a${k[0]}/b${k[1]}/c${k[2]}/d${k[3]}/e${k[4]}`, files: n })
    }
  }
  return { flatDirs, deepFiles, dirs }
}

/** Writes the tree: small files of 64..4159 bytes, each with its own content. Made once per size when BENCH_TREE_SRC is set. */
function makeTree(root: string, lay: Layout): { files: number; bytes: number; secs: number } {
  const marker = path.join(root, '.made')
  if (fs.existsSync(marker)) return { ...JSON.parse(fs.readFileSync(marker, 'utf8')), secs: 0 }
  fs.rmSync(root, { recursive: true, force: true })
  const t = performance.now()
  let n = 0, bytes = 0
  const pad = randomBytes(4096).toString('base64')
  for (const d of lay.dirs) {
    const dir = path.join(root, 'tree', d.rel)
    fs.mkdirSync(dir, { recursive: true })
    for (let f = 0; f < d.files; f++) {
      const body = `${d.rel}/f${f} ${n}\n` + pad.slice(0, (n * 7919) % 4096 + 64 - 20)
      fs.writeFileSync(path.join(dir, `f${f}`), body)
      bytes += Buffer.byteLength(body)
      n++
    }
  }
  fs.writeFileSync(marker, JSON.stringify({ files: n, bytes }))
  return { files: n, bytes, secs: (performance.now() - t) / 1000 }
}

// ---- processes -----------------------------------------------------------------------------

interface Timed { secs: number; rssMiB: number | null; stdout: string; /** user + system CPU seconds (GNU time), or null. */ cpuSecs?: number | null }

/** A command from a cold start: page cache dropped, wall time until exit, peak RSS (GNU time). */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutS?: number): Timed {
  dropCaches()
  const rssFile = path.join(os.tmpdir(), `bazil-bench-rss-${process.pid}`)
  const gnuTime = fs.existsSync('/usr/bin/time')
  const [c, a] = gnuTime ? ['/usr/bin/time', ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]] : [cmd, args]
  const t = performance.now()
  const r = spawnSync(c, a, { env, encoding: 'utf8', maxBuffer: 1 << 30, ...(timeoutS ? { timeout: timeoutS * 1000, killSignal: 'SIGKILL' as const } : {}) })
  const secs = (performance.now() - t) / 1000
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`${cmd} ${args.join(' ')} stopped after ${timeoutS} s`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr ?? '').slice(-2000)}`)
  let rssMiB: number | null = null
  let cpuSecs: number | null = null
  if (gnuTime) {
    const [rss, user, sys] = fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number)
    rssMiB = rss! / 1024
    cpuSecs = user! + sys!
    fs.rmSync(rssFile, { force: true })
  }
  return { secs, rssMiB, stdout: r.stdout, cpuSecs }
}

/** Least time a CLI command may take here before it is stopped and reported as such (BENCH_TREE_CLI_TIMEOUT_S, default 600). */
const CLI_TIMEOUT_S = Number(process.env.BENCH_TREE_CLI_TIMEOUT_S ?? 600)

const bazil = (data: string, args: string[], nodeArgs: string[] = []): Timed => timed(process.execPath, [...nodeArgs, bazilBin, `--data-dir=${data}`, ...args], process.env, args[1] === 'import' ? undefined : CLI_TIMEOUT_S)

export function uptime(): string {
  return spawnSync('uptime', { encoding: 'utf8' }).stdout.trim().replace(/^.*load average: /, 'load ')
}

/** What each part gets: where things are, and the rows to add to. */
export interface Ctx {
  tmp: string
  /** The source tree on disk (imported into the volume as `/`): `${src}/flat/d0/f7` is `/flat/d0/f7`. */
  src: string
  lay: Layout
  /** Data dir of the node that imported the volume `v`. */
  dataA: string
  /** restic repository of the same tree (null: restic not installed). */
  restic: { env: NodeJS.ProcessEnv } | null
  rows: Row[]
}

// ---- import ---------------------------------------------------------------------------------

async function importPart(ctx: Ctx): Promise<void> {
  const { rows, src } = ctx
  if (ctx.restic) {
    spawnSync('restic', ['init', '--quiet'], { env: ctx.restic.env })
    const r = timed('restic', ['backup', '--quiet', src], ctx.restic.env)
    ctx.restic.env.BENCH_RESTIC_BACKUP_SECS = String(r.secs)
  }
  spawnSync(process.execPath, [bazilBin, `--data-dir=${ctx.dataA}`, 'create'], { stdio: 'ignore' })
  spawnSync(process.execPath, [bazilBin, `--data-dir=${ctx.dataA}`, 'volume', 'create', 'v'], { stdio: 'ignore' })
  const profDir = path.join(ctx.tmp, 'prof')
  log(`importing ${FILES} files through the CLI (${uptime()})`)
  const r = bazil(ctx.dataA, ['volume', 'import', 'v', src], PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])
  const fps = FILES / r.secs
  let note = `peak RSS ${r.rssMiB?.toFixed(0)} MiB; ${uptime()}`
  if (PROFILE) {
    const main = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]
    if (main) {
      const s = summarizeProfile(main, { top: 8 })
      note += `; main thread busy ${s.busySecs.toFixed(1)} s of ${s.wallSecs.toFixed(1)}: ${s.packages}; ${s.functions}`
    }
  }
  const name = `import ${FILES} small files through the CLI (volume import)`
  const resticSecs = ctx.restic ? Number(ctx.restic.env.BENCH_RESTIC_BACKUP_SECS) : null
  rows.push({
    name, value: fps, unit: 'files/s', target: 5000, ok: fps >= 5000, note,
    ...(resticSecs !== null ? { baseline: 'restic backup', baselineValue: FILES / resticSecs, ratio: fps / (FILES / resticSecs) } : { baseline: 'restic backup', note: `${note}; restic not installed` }),
  })
}

// ---- cold reads ----------------------------------------------------------------------------

/** The child process that opens the volume: timings and its own peak RSS. */
async function openChild(dataDir: string, dir: string, file: string, src: string, profFile: string): Promise<void> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const node = await Node.open(DataDir.open(dataDir))
  const vol = await node.volume('v')
  const openMs = performance.now() - t0
  const c1 = process.cpuUsage(c0)
  const loadsAfterOpen = vol.tree.shardStats.loads
  let t = performance.now()
  // What `volume ls` does for each entry: stat it and format a line.
  const lines = vol.tree.readdir(dir).map((e) => `${e.kind === 'dir' ? e.name + '/' : e.name} ${e.size}`)
  const lsColdMs = performance.now() - t
  t = performance.now()
  vol.tree.readdir(dir).map((e) => `${e.kind === 'dir' ? e.name + '/' : e.name} ${e.size}`)
  const lsWarmMs = performance.now() - t
  t = performance.now()
  const st = vol.tree.stat(file)
  const statMs = performance.now() - t
  // What a user feels: random paths, the first stat of each and then warm (tree-stat.ts).
  const stats = await inProcessStats((p) => vol.tree.stat(p), randomPaths(layout(FILES).dirs, STAT_PATHS), src, profFile)
  const out = {
    stats, openMs, openCpuMs: (c1.user + c1.system) / 1000, lsColdMs, lsWarmMs, statMs, entries: lines.length, statOk: st.kind === 'file',
    loadsAfterOpen, fromCheckpoint: vol.opened.fromCheckpoint, shards: vol.tree.shardStats, rssMiB: process.resourceUsage().maxRSS / 1024,
  }
  await node.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

function child(args: string[]): Record<string, number | boolean | object> {
  dropCaches()
  const script = fileURLToPath(import.meta.url)
  const r = spawnSync(process.execPath, [...process.execArgv, script, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`child ${args.join(' ')} failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

const sampleDir = (lay: Layout): string => (lay.flatDirs > 0 ? 'flat/d0' : lay.dirs[0]!.rel)
const sampleFile = (lay: Layout): string => `${lay.dirs[lay.dirs.length - 1]!.rel}/f0`

async function coldPart(ctx: Ctx): Promise<void> {
  const { rows, lay, src, dataA } = ctx
  const dir = sampleDir(lay), file = sampleFile(lay)
  const r = child(['--open', dataA, '/' + dir, '/' + file, src, path.join(ctx.tmp, 'prof', 'stat-in-process.cpuprofile')])
  const entries = r.entries as number
  rows.push({ name: `open the volume of ${FILES} files (in-process, cold cache)`, value: (r.openMs as number) / 1000, unit: 's', target: 1, ok: (r.openMs as number) <= 1000, note: `cpu ${((r.openCpuMs as number) / 1000).toFixed(2)} s; from checkpoint: ${r.fromCheckpoint}; shard loads at open: ${r.loadsAfterOpen}; ${JSON.stringify(r.shards)}; ${uptime()}` })
  rows.push({ name: 'peak RSS of the opening process (open + ls + stat)', value: r.rssMiB as number, unit: 'MiB', target: 300, ok: (r.rssMiB as number) <= 300 })
  rows.push({ name: `ls of a ${entries}-entry directory, warm (in-process, after a first ls)`, value: r.lsWarmMs as number, unit: 'ms', target: 100, ok: (r.lsWarmMs as number) <= 100, note: `first ls after open: ${(r.lsColdMs as number).toFixed(1)} ms` })
  rows.push({ name: 'stat of one path (in-process, the first after the open)', value: r.statMs as number, unit: 'ms', target: 1, ok: (r.statMs as number) <= 1 })
  rows.push(...inProcessRows(r.stats as Record<string, unknown>, uptime()))
  try {
    rows.push(...await mountStatRows(dataA, src, ctx.tmp, file, randomPaths(lay.dirs, STAT_PATHS), uptime))
  } catch (err) {
    rows.push({ name: 'stat through a FUSE mount: FAILED', value: NaN, unit: 'ms', note: (err as Error).message.split('\n')[0]!.slice(0, 300) })
  }

  const ls = bazil(dataA, ['volume', 'ls', '-l', 'v', '/' + dir])
  const lsLocal = timed('ls', ['-l', path.join(src, dir)])
  rows.push({ name: `volume ls -l of a ${entries}-entry directory, cold CLI process`, value: ls.secs, unit: 's', target: 1, ok: ls.secs <= 1, baseline: 'ls -l on the local file system, cold cache', baselineValue: lsLocal.secs, ratio: ls.secs / lsLocal.secs, note: `peak RSS ${ls.rssMiB?.toFixed(0)} MiB` })
  if (ctx.restic) {
    const rl = timed('restic', ['ls', '--no-lock', 'latest', path.join(src, dir)], ctx.restic.env)
    rows.push({ name: `volume ls -l of a ${entries}-entry directory, cold CLI process`, value: ls.secs, unit: 's', baseline: 'restic ls latest DIR', baselineValue: rl.secs, ratio: ls.secs / rl.secs })
  }
  const cat = bazil(dataA, ['volume', 'cat', 'v', '/' + file])
  const catLocal = timed('cat', [path.join(src, file)])
  rows.push({ name: 'volume cat of one small file, cold CLI process', value: cat.secs, unit: 's', target: 1.5, ok: cat.secs <= 1.5, baseline: 'cat on the local file system, cold cache', baselineValue: catLocal.secs, ratio: cat.secs / catLocal.secs, note: `peak RSS ${cat.rssMiB?.toFixed(0)} MiB` })
  if (ctx.restic) {
    const rd = timed('restic', ['dump', '--no-lock', 'latest', path.join(src, file)], ctx.restic.env)
    rows.push({ name: 'volume cat of one small file, cold CLI process', value: cat.secs, unit: 's', baseline: 'restic dump latest FILE', baselineValue: rd.secs, ratio: cat.secs / rd.secs })
  }
  const st = bazil(dataA, ['volume', 'ls', '-l', 'v', '/' + file])
  const stLocal = timed('stat', [path.join(src, file)])
  rows.push({ name: 'volume ls -l of one file (stat), cold CLI process', value: st.secs, unit: 's', baseline: 'stat on the local file system, cold cache', baselineValue: stLocal.secs, ratio: st.secs / stLocal.secs })
}

// ---- snapshots -----------------------------------------------------------------------------

async function snapshotPart(ctx: Ctx): Promise<void> {
  const { rows, lay, dataA } = ctx
  const dir = sampleDir(lay)
  const name = `s${Date.now()}`
  const take = bazil(dataA, ['volume', 'snapshot', 'create', 'v', name])
  // A second take: the first after an import (or a manifest of before) also names the earlier snapshots.
  const take2 = bazil(dataA, ['volume', 'snapshot', 'create', 'v', `${name}b`])
  const again = ctx.restic ? timed('restic', ['backup', '--quiet', ctx.src], ctx.restic.env) : null
  // Missed: a third take under --cpu-prof, its summary in the row (what bounds it).
  const takeProf = take2.secs > 1 ? profiled(ctx, 'take', ['volume', 'snapshot', 'create', 'v', `${name}c`]) : ''
  rows.push({
    name: `take a snapshot of the ${FILES}-file volume, cold CLI process`, value: take2.secs, unit: 's', target: 1, ok: take2.secs <= 1,
    note: `cpu ${cpu(take2)}; the first take ${take.secs.toFixed(2)} s (cpu ${cpu(take)}); ${uptime()}${takeProf}`,
    ...(again ? { baseline: 'restic backup of the unchanged tree', baselineValue: again.secs, ratio: take2.secs / again.secs } : {}),
  })
  const list = bazil(dataA, ['volume', 'snapshot', 'list', 'v'])
  const rlist = ctx.restic ? timed('restic', ['snapshots', '--no-lock', '--quiet'], ctx.restic.env) : null
  rows.push({ name: 'list snapshots, cold CLI process', value: list.secs, unit: 's', ...(rlist ? { baseline: 'restic snapshots', baselineValue: rlist.secs, ratio: list.secs / rlist.secs } : {}) })
  const live = bazil(dataA, ['volume', 'ls', '-l', 'v', '/' + dir])
  const snapName = `volume ls -l --snapshot of a ${lay.dirs[0]!.files}-entry directory, cold CLI process`
  try {
    const snap = bazil(dataA, ['volume', 'ls', '-l', '--snapshot', name, 'v', '/' + dir])
    // "About the live ls": more than 1.2x the live one (wall and CPU) is a miss, profiled.
    const miss = snap.secs > 1.2 * live.secs && (snap.cpuSecs ?? 0) > 1.2 * (live.cpuSecs ?? 0)
    const prof = miss ? profiled(ctx, 'snapshot-ls', ['volume', 'ls', '-l', '--snapshot', name, 'v', '/' + dir]) : ''
    rows.push({ name: snapName, value: snap.secs, unit: 's', baseline: 'the live directory, same run', baselineValue: live.secs, ratio: snap.secs / live.secs, ok: !miss, note: `cpu ${cpu(snap)} (live ${cpu(live)}); peak RSS ${snap.rssMiB?.toFixed(0)} MiB (live ${live.rssMiB?.toFixed(0)})${prof}` })
  } catch (err) {
    rows.push({ name: snapName, value: NaN, unit: 's', baseline: 'the live directory, same run', baselineValue: live.secs, note: (err as Error).message.split('\n')[0]!.slice(0, 200) })
  }
}

const cpu = (t: Timed): string => (t.cpuSecs == null ? '?' : `${t.cpuSecs.toFixed(2)} s`)

/** The bazil command run again under --cpu-prof (cold cache): '; profile FILE: …' for a row's note. */
function profiled(ctx: Ctx, label: string, args: string[]): string {
  const dir = path.join(ctx.tmp, 'prof', `${label}-${Date.now()}`)
  try {
    const r = bazil(ctx.dataA, args, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
    const file = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f))[0]
    if (!file) return '; no profile written'
    const s = summarizeProfile(file, { top: 10 })
    return `; profiled run ${r.secs.toFixed(2)} s (cpu ${cpu(r)}), ${file}: main thread busy ${s.busySecs.toFixed(2)} s; by package: ${s.packages}; by function: ${s.functions}`
  } catch (err) {
    return `; profile failed: ${(err as Error).message.split('\n')[0]!.slice(0, 200)}`
  }
}

// ---- merge ---------------------------------------------------------------------------------

/** Waits for `cond`; live application (driven by replication events) does the work, `vols` get explicit refreshes. */
export async function waitFor(cond: () => boolean, vols: Volume[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await Promise.all(vols.map((v) => v.refresh()))
    await new Promise((r) => setTimeout(r, 5))
  }
}

const caughtUp = (v: Volume, o: Volume): boolean => v.replayState().every((s) => s.applied >= (o.writers.get(s.writer)?.length ?? 0))

const fakeHash = (n: number): string => n.toString(16).padStart(64, '0')

function fakeWrite(vol: Volume, p: string, n: number): void {
  vol.mutate((t) => t.writeFile(p, { hash: fakeHash(n), size: n % 100_000 }), (st) => ({ op: 'write', path: st.path, size: st.size, hash: st.content?.hash }))
}

/**
 * Each writer makes OPS ops while apart: rewrites, creates, renames, chmods across the
 * imported directories. `commitMs` null: one entry per op; else an entry whenever `commitMs`
 * passed since the last one (what the mount does). Returns the entries written.
 */
async function offlineOps(vol: Volume, lay: Layout, seed: number, commitMs: number | null): Promise<number> {
  const dirs = lay.dirs
  const len0 = vol.log.length
  let last = performance.now()
  for (let i = 0; i < OPS; i++) {
    const dk = (i * 7 + seed * 13) % dirs.length
    const d = dirs[dk]!
    const p = `/${d.rel}/f${(i * 3 + seed) % d.files}`
    try {
      switch (i % 4) {
        case 0: fakeWrite(vol, p, 10_000_000 * seed + i); break
        case 1: fakeWrite(vol, `/${d.rel}/new-${seed}-${i}`, 10_000_000 * seed + i); break
        case 2: vol.setattr(p, { mode: 0o600 + seed }); break
        case 3: {
          const from = dirs[((i - 2) * 7 + seed * 13) % dirs.length]! // where op i-2 created it
          vol.rename(`/${from.rel}/new-${seed}-${i - 2}`, `/${dirs[(dk + 1) % dirs.length]!.rel}/moved-${seed}-${i}`)
          break
        }
      }
    } catch {
      // a path the other ops already moved: skip, as a user would get ENOENT
    }
    if (commitMs === null || performance.now() - last >= commitMs) {
      await vol.flush()
      last = performance.now()
    }
  }
  await vol.flush()
  return vol.log.length - len0
}

/** Raw hypercore replication of two logs of the given block sizes, both ways at once, in one process: the transport alone. */
async function rawReplication(tmp: string, sizesA: number[], sizesB: number[]): Promise<number> {
  const { default: Corestore } = await import('corestore')
  const sa = new Corestore(path.join(tmp, 'raw-a')), sb = new Corestore(path.join(tmp, 'raw-b'))
  const fill = async (store: InstanceType<typeof Corestore>, sizes: number[]) => {
    const core = store.get({ name: 'log' })
    await core.ready()
    for (let i = 0; i < sizes.length; i += 100) await core.append(sizes.slice(i, i + 100).map((n) => randomBytes(n)))
    return core
  }
  const ca = await fill(sa, sizesA), cb = await fill(sb, sizesB)
  const ra = sb.get({ key: ca.key }), rb = sa.get({ key: cb.key })
  await Promise.all([ra.ready(), rb.ready()])
  const t = performance.now()
  const s1 = sa.replicate(true), s2 = sb.replicate(false)
  s1.pipe(s2).pipe(s1)
  const d1 = ra.download({ start: 0, end: -1 }), d2 = rb.download({ start: 0, end: -1 })
  while (ra.contiguousLength < sizesA.length || rb.contiguousLength < sizesB.length) await new Promise((r) => setTimeout(r, 2))
  const ms = performance.now() - t
  d1.destroy(); d2.destroy(); s1.destroy(); s2.destroy()
  await sa.close(); await sb.close()
  return ms
}

async function blockSizes(vol: Volume, from: number): Promise<number[]> {
  const out: number[] = []
  for (let i = from; i < vol.log.core.length; i++) out.push((await vol.log.core.get(i))!.length)
  return out
}

/**
 * Whether two replicas hold the same state, without walking the whole tree (a walk of 1M
 * files as JSON took > 12 min): the same heads in every shard (the index is a function of
 * them), and the same answers for a sample of the paths the ops touched and of the rest.
 * Returns true, or what differs.
 */
function sameState(a: Volume, b: Volume, lay: Layout, seed: number): true | string {
  const heads = (v: Volume): string => JSON.stringify([...v.tree.shardHeads()].filter(([, h]) => h.length > 0).map(([n, h]) => [n, [...h].sort()]).sort((x, y) => (x[0] < y[0] ? -1 : 1)))
  if (heads(a) !== heads(b)) return 'shard heads differ'
  const paths: string[] = []
  for (let i = 0; i < 2_000; i++) {
    const d = lay.dirs[(i * 7919) % lay.dirs.length]!
    paths.push(`/${d.rel}/f${(i * 104_729) % d.files}`)
  }
  // The ops' own names (offlineOps), both writers' seeds.
  for (const s of [seed, seed + 1]) {
    for (let i = 0; i < OPS; i += 97) {
      const d = lay.dirs[(i * 7 + s * 13) % lay.dirs.length]!
      paths.push(`/${d.rel}/f${(i * 3 + s) % d.files}`, `/${d.rel}/new-${s}-${i}`, `/${lay.dirs[(((i * 7 + s * 13) % lay.dirs.length) + 1) % lay.dirs.length]!.rel}/moved-${s}-${i}`)
    }
  }
  for (const p of paths) {
    const x = JSON.stringify(a.tree.lookup(p)), y = JSON.stringify(b.tree.lookup(p))
    if (x !== y) return `${p}: ${x} vs ${y}`
  }
  const top = (v: Volume): string => JSON.stringify(v.tree.readdir('/').map((s) => [s.path, s.mode, s.size]))
  if (top(a) !== top(b)) return 'the root listings differ'
  return true
}

/** Summary of a merge round's profile, for its row. */
function profileNote(file: string): string {
  const s = summarizeProfile(file, { top: 25 })
  return `; profile ${file}: main thread busy ${s.busySecs.toFixed(2)} s of ${s.wallSecs.toFixed(2)} s; by package: ${s.packages}; by function: ${s.functions}`
}

/** Logs each row as it comes (a 1M run cut short keeps what it measured). */
function mergeRows(ctx: Ctx, part = 'merge'): { push: (...r: Row[]) => void } {
  return { push: (...r: Row[]): void => { for (const x of r) { ctx.rows.push(x); log(`${part}: ${x.name}: ${x.value} ${x.unit} (${x.note ?? ''})`) } } }
}

/** Two opened nodes of one volume, each a writer, and a way to connect their stores (one process, streams piped). */
interface Pair { nodeA: Node; a: Volume; nodeB: Node; b: Volume; connect: () => () => void }

async function openPair(dirA: string, dirB: string): Promise<Pair> {
  const nodeA = await Node.open(DataDir.open(dirA))
  const a = await nodeA.volume('v')
  const nodeB = await Node.open(DataDir.open(dirB))
  const b = await nodeB.volume('v')
  const connect = (): (() => void) => {
    const s1 = nodeA.store.replicate(true), s2 = nodeB.store.replicate(false)
    s1.pipe(s2).pipe(s1)
    return () => { s1.destroy(); s2.destroy() }
  }
  return { nodeA, a, nodeB, b, connect }
}

/**
 * A second writer `dirB` of the imported volume in `dirA`, started from a's saved state as
 * `volume connect` does (replaying the history takes ~20 min at 1M here: the join part
 * measures both ways), then caught up with what came after it. Returns the pair, disconnected.
 */
async function secondWriter(ctx: Ctx, dirA: string, dirB: string, rows: { push: (...r: Row[]) => void }): Promise<Pair> {
  fs.rmSync(dirB, { recursive: true, force: true }) // a second writer left by an earlier run on a kept dir
  const ddA = DataDir.open(dirA)
  const ddB = DataDir.create(dirB)
  const entry = ddA.volumeEntry('v')
  if (entry.storageOnly) throw new Error('the imported volume is storage-only')
  // B's own 'default' key is another: the volume's key goes in under another name.
  ddB.addSharingKey('bench', ddA.sharingKey(entry.sharing))
  ddB.addVolume({ ...entry, sharing: 'bench' })
  const pair = await openPair(dirA, dirB)
  const { a, b, nodeB } = pair
  try {
    await a.addWriter(b.log.key)
    await b.addWriter(a.log.key)
    // b writes only once the root's log admits its node (spec/protocol.md, "Writer logs"); b sees that at the first sync.
    await a.admitNode(nodeB.dir.publicKey)
    const t = performance.now()
    const cpuSync = process.cpuUsage()
    const aHex = a.log.key.toString('hex')
    const sealed = sealState(encodeState(await a.saveState()), a.stateKey, a.id)
    b.pauseApply(true)
    const disconnect = pair.connect()
    const bLog = b.writers.get(aHex)!
    log(`merge: a's state saved and sealed in ${((performance.now() - t) / 1000).toFixed(1)} s (${(sealed.length / 2 ** 20).toFixed(1)} MiB)`)
    while (bLog.core.contiguousLength < a.log.length) await new Promise((r) => setTimeout(r, 5))
    log(`merge: b downloaded a's log (${a.log.length} entries) at ${((performance.now() - t) / 1000).toFixed(1)} s`)
    await b.adoptState(openSealedState(sealed, b.stateKey, b.id))
    log(`merge: b adopted a's state at ${((performance.now() - t) / 1000).toFixed(1)} s`)
    b.pauseApply(false)
    await waitFor(() => caughtUp(b, a), [a, b], 3_600_000)
    const syncCpu = process.cpuUsage(cpuSync)
    rows.push({ name: `second writer: first sync of the ${FILES}-file volume's metadata from a's state (save, download, adopt, checkpoint; one process, no network)`, value: (performance.now() - t) / 1000, unit: 's', note: `cpu ${((syncCpu.user + syncCpu.system) / 1e6).toFixed(1)} s; ${uptime()}` })
    disconnect()
    return pair
  } catch (err) {
    await closePair(pair)
    throw err
  }
}

async function closePair(p: Pair): Promise<void> {
  await p.nodeA.close()
  await p.nodeB.close()
}

/**
 * Connects the pair until each has applied all of the other's log; checks they hold the same
 * state. What it cost: wall, CPU (user + system of this process: both writers), the index
 * bytes read (index-store.ts `indexReads`), shard loads, and (profFile) a profile summary.
 */
async function timedMerge(p: Pair, lay: Layout, seed: number, profFile: string | null): Promise<{ secs: number; cpuSecs: number; note: string }> {
  const { a, b } = p
  const before = [{ ...a.stats }, { ...b.stats }]
  const loads0 = [a.tree.shardStats.loads, b.tree.shardStats.loads]
  const reads0 = { ...indexReads }
  if (profFile) fs.mkdirSync(path.dirname(profFile), { recursive: true })
  const stopProfile = await profileTo(profFile)
  const cpu0 = process.cpuUsage()
  const t = performance.now()
  const disconnect = p.connect()
  await waitFor(() => caughtUp(a, b) && caughtUp(b, a), [], 600_000)
  const secs = (performance.now() - t) / 1000
  const cpu = process.cpuUsage(cpu0)
  await stopProfile()
  const prof = profFile ? profileNote(profFile) : ''
  disconnect()
  const cost = [a, b].map((v, k) => `${'ab'[k]}: read ${((v.stats.readMs - before[k]!.readMs) / 1000).toFixed(2)} s + apply ${((v.stats.applyMs - before[k]!.applyMs) / 1000).toFixed(2)} s in ${v.stats.applyCalls - before[k]!.applyCalls} calls, shard loads ${v.tree.shardStats.loads - loads0[k]!}`).join('; ')
  const read = `index read (both) ${((indexReads.bytes - reads0.bytes) / 2 ** 20).toFixed(1)} MiB in ${indexReads.reads - reads0.reads} reads`
  const same = sameState(a, b, lay, seed)
  if (same !== true) throw new Error(`the writers did not converge: ${same}`)
  const cpuSecs = (cpu.user + cpu.system) / 1e6
  return { secs, cpuSecs, note: `same state: ${same}; cpu (both writers, one process) ${cpuSecs.toFixed(2)} s; ${read}; ${cost}; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; ${uptime()}${prof}` }
}

/** A second writer gets the imported volume, then both work apart and merge (one process, streams piped). */
async function mergePart(ctx: Ctx): Promise<void> {
  const { lay, tmp } = ctx
  const rows = mergeRows(ctx)
  const pair = await secondWriter(ctx, ctx.dataA, path.join(tmp, 'b'), rows)
  const { a, b } = pair
  try {
    /** Both writers work apart, then reconnect until each has applied all of the other's log. */
    const mergeRound = async (label: string, commitMs: number | null, seed: number): Promise<{ sizes: number[][] }> => {
      const from = [a.log.length, b.log.length]
      const t = performance.now()
      const entries = [await offlineOps(a, lay, seed, commitMs), await offlineOps(b, lay, seed + 1, commitMs)]
      rows.push({ name: `${OPS} offline ops on each writer, ${label}`, value: (performance.now() - t) / 2000, unit: 's per writer', note: `${entries[0]} + ${entries[1]} log entries` })
      const profDir = PROFILE_MERGE ?? (PROFILE ? path.join(tmp, 'prof') : null)
      const m = await timedMerge(pair, lay, seed, profDir !== null ? path.join(profDir, `merge-${seed}.cpuprofile`) : null)
      rows.push({ name: `merge ${OPS}+${OPS} ops on both, ${label} (replication + apply, wall)`, value: m.secs, unit: 's', target: 2, ok: m.secs <= 2, note: `${entries[0]} + ${entries[1]} entries; ${m.note}` })
      return { sizes: [await blockSizes(a, from[0]!), await blockSizes(b, from[1]!)] }
    }
    await mergeRound(`logged as the mount does (an entry per ${COMMIT_MS} ms)`, COMMIT_MS, 1)
    if (WORST) {
      const { sizes } = await mergeRound('one entry per op (worst case)', null, 3)
      const rawMs = await rawReplication(tmp, sizes[0]!, sizes[1]!)
      const merge = ctx.rows[ctx.rows.length - 1]!
      rows.push({ name: `raw hypercore replication of the same ${sizes[0]!.length}+${sizes[1]!.length} blocks, both ways, one process`, value: rawMs / 1000, unit: 's', note: `merge / raw replication = ${(merge.value / (rawMs / 1000)).toFixed(2)}` })
    }
  } finally {
    await closePair(pair)
  }
}

/** A copy of a data dir that opens as its own store (corestore refuses a copied CORESTORE marker: the copy is the only one used). */
function copyDataDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true })
  fs.rmSync(new DataPaths(to).corestoreMarker, { force: true })
}

/** Where merge-prep leaves its writers and merge-run copies them from (BENCH_TREE_MERGE_DIR; default: the work dir's merge-prep). */
const mergeDir = (ctx: Ctx): string => process.env.BENCH_TREE_MERGE_DIR ?? path.join(ctx.tmp, 'merge-prep')

/** What merge-prep made, in MERGE_DIR/prep.json (merge-run checks it against its own settings). */
interface Prepared { files: number; dirSize: number; deep: number; ops: number; commitMs: number; seed: number; entries: number[] }

/**
 * merge-prep: the imported volume copied to MERGE_DIR/a, a second writer MERGE_DIR/b started
 * from its state, then OPS offline ops on each logged as the mount does (an entry per
 * COMMIT_MS), both closed (their checkpoints hold the ops, not the other's). merge-run then
 * merges the very same logs on any build, as often as wanted.
 */
async function mergePrepPart(ctx: Ctx): Promise<void> {
  const dir = mergeDir(ctx)
  const rows = mergeRows(ctx, 'merge-prep')
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const dirA = path.join(dir, 'a'), dirB = path.join(dir, 'b')
  copyDataDir(ctx.dataA, dirA)
  const pair = await secondWriter(ctx, dirA, dirB, rows)
  const seed = 1
  let entries: number[]
  try {
    const t = performance.now()
    entries = [await offlineOps(pair.a, ctx.lay, seed, COMMIT_MS), await offlineOps(pair.b, ctx.lay, seed + 1, COMMIT_MS)]
    rows.push({ name: `${OPS} offline ops on each writer, an entry per ${COMMIT_MS} ms`, value: (performance.now() - t) / 2000, unit: 's per writer', note: `${entries[0]} + ${entries[1]} log entries; prepared in ${dir}` })
  } finally {
    await closePair(pair)
  }
  const prep: Prepared = { files: FILES, dirSize: DIR_SIZE, deep: DEEP_SHARE, ops: OPS, commitMs: COMMIT_MS, seed, entries }
  fs.writeFileSync(path.join(dir, 'prep.json'), JSON.stringify(prep))
}

/**
 * merge-run: a fresh copy of what merge-prep made (MERGE_DIR/a and b), both opened from their
 * checkpoints (shards cold), connected in this process until each has applied the other's
 * log. One row: wall, and in its note CPU, index bytes read, shard loads (and the profile
 * with BENCH_TREE_PROFILE=1 or BENCH_TREE_PROFILE_MERGE). The copy is removed after.
 */
async function mergeRunPart(ctx: Ctx): Promise<void> {
  const dir = mergeDir(ctx)
  const prepFile = path.join(dir, 'prep.json')
  if (!fs.existsSync(prepFile)) throw new Error(`${dir} holds no prepared merge (run BENCH_TREE_PARTS=merge-prep first)`)
  const prep = JSON.parse(fs.readFileSync(prepFile, 'utf8')) as Prepared
  if (prep.files !== FILES || prep.dirSize !== DIR_SIZE || prep.deep !== DEEP_SHARE || prep.ops !== OPS) {
    throw new Error(`${dir} was prepared with BENCH_TREE_FILES=${prep.files} BENCH_TREE_DIR_SIZE=${prep.dirSize} BENCH_TREE_DEEP=${prep.deep} BENCH_TREE_OPS=${prep.ops}: run with the same`)
  }
  const run = path.join(ctx.tmp, `merge-run-${process.pid}-${Date.now()}`)
  copyDataDir(path.join(dir, 'a'), path.join(run, 'a'))
  copyDataDir(path.join(dir, 'b'), path.join(run, 'b'))
  dropCaches()
  try {
    const cpu0 = process.cpuUsage()
    const t = performance.now()
    const pair = await openPair(path.join(run, 'a'), path.join(run, 'b'))
    const c = process.cpuUsage(cpu0)
    const openNote = `open both ${((performance.now() - t) / 1000).toFixed(2)} s (cpu ${((c.user + c.system) / 1e6).toFixed(2)} s)`
    const profDir = PROFILE_MERGE ?? (PROFILE ? path.join(dir, 'prof') : null)
    const profFile = (what: string): string | null => (profDir !== null ? path.join(profDir, `${what}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`) : null)
    try {
      const m = await timedMerge(pair, ctx.lay, prep.seed, profFile('merge-run'))
      mergeRows(ctx, 'merge-run').push({
        name: `merge ${OPS}+${OPS} prepared offline ops at ${FILES} files (an entry per ${prep.commitMs} ms), both writers in one process (replication + apply, wall)`, value: m.secs, unit: 's', target: 2, ok: m.secs <= 2,
        note: `${prep.entries[0]} + ${prep.entries[1]} entries; ${openNote}; ${m.note}`,
      })
    } finally {
      // Each writer's checkpoint (as a snapshot take asks for) writes every bucket the merge
      // touched; the server goes on meanwhile: the longest stall of the event loop is what a mount sees.
      const ckProf = profFile('merge-checkpoint')
      if (ckProf) fs.mkdirSync(path.dirname(ckProf), { recursive: true })
      const stopCkProfile = await profileTo(ckProf)
      // One writer after the other (they share this process; each would be on its own server): each one's stalls.
      const cpu2 = process.cpuUsage()
      const w2 = bytesWritten()
      const t2 = performance.now()
      const seen: string[] = []
      for (const [k, v] of [pair.a, pair.b].entries()) {
        Object.assign(commitSlices, { firstMs: 0, longestMs: 0, longestStep: 0 })
        const stalls = monitorEventLoopDelay({ resolution: 5 })
        stalls.enable()
        // The histogram counts from its timer's first tick: a stall before that would not show.
        await new Promise((resolve) => setTimeout(resolve, 20))
        const t = performance.now()
        await v.checkpoint()
        stalls.disable()
        seen.push(`${'ab'[k]}: ${((performance.now() - t) / 1000).toFixed(2)} s, longest event-loop stall ${(stalls.max / 1e6).toFixed(0)} ms (p99 ${(stalls.percentile(99) / 1e6).toFixed(0)} ms; first step, the tree read at once, ${commitSlices.firstMs.toFixed(0)} ms; longest later step ${commitSlices.longestMs.toFixed(0)} ms, step ${commitSlices.longestStep})`)
      }
      const written2 = bytesWritten() - w2
      const c2 = process.cpuUsage(cpu2)
      const ckSecs = (performance.now() - t2) / 1000
      await stopCkProfile()
      mergeRows(ctx, 'merge-run').push({
        name: 'checkpoint of each writer after the merge, one after the other (each writes the index buckets the merge touched; the event loop runs between its slices)', value: ckSecs, unit: 's',
        note: `cpu ${((c2.user + c2.system) / 1e6).toFixed(2)} s; ${(written2 / 2 ** 20).toFixed(1)} MiB written; ${seen.join('; ')}; ${uptime()}${ckProf ? profileNote(ckProf) : ''}`,
      })
      const closeProf = profFile('merge-close')
      if (closeProf) fs.mkdirSync(path.dirname(closeProf), { recursive: true })
      const stopProfile = await profileTo(closeProf)
      const cpu1 = process.cpuUsage()
      const t1 = performance.now()
      await closePair(pair)
      const cc = process.cpuUsage(cpu1)
      const secs = (performance.now() - t1) / 1000
      await stopProfile()
      mergeRows(ctx, 'merge-run').push({
        name: `close of both writers after their checkpoint`, value: secs, unit: 's',
        note: `cpu ${((cc.user + cc.system) / 1e6).toFixed(2)} s; ${uptime()}${closeProf ? profileNote(closeProf) : ''}`,
      })
    }
  } finally {
    fs.rmSync(run, { recursive: true, force: true })
  }
}

/** Bytes this process has written by write calls (Linux /proc/self/io `wchar`; NaN elsewhere): what a commit writes. */
function bytesWritten(): number {
  try {
    return Number(/^wchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))?.[1] ?? NaN)
  } catch {
    return NaN
  }
}

// ---- the run -------------------------------------------------------------------------------

/** The parts, in order; each adds rows (one failing leaves the others' figures). Add yours here. */
export const PARTS: Record<string, (ctx: Ctx) => Promise<void>> = {
  import: importPart,
  cold: coldPart,
  'cold-stat': async (ctx) => { ctx.rows.push(...coldStatRows(ctx.dataA, ctx.src, sampleDir(ctx.lay), sampleFile(ctx.lay), uptime)) },
  snapshot: snapshotPart,
  merge: mergePart,
  'merge-prep': mergePrepPart,
  'merge-run': mergeRunPart,
  join: joinPart,
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  const wanted = (process.env.BENCH_TREE_PARTS ?? Object.keys(PARTS).filter((p) => !p.startsWith('merge-')).join(',')).split(',').map((x) => x.trim()).filter(Boolean)
  for (const p of wanted) if (!PARTS[p]) throw new Error(`BENCH_TREE_PARTS: unknown part "${p}" (${Object.keys(PARTS).join(', ')})`)
  // BENCH_TREE_REUSE: the work dir of a run kept with BENCH_TREE_KEEP=1 (or cut short): its volume and restic repository, no import.
  const reuse = process.env.BENCH_TREE_REUSE
  // merge-run alone needs neither the volume nor the source tree: only what merge-prep left.
  const needsVolume = wanted.some((p) => p !== 'merge-run')
  if (needsVolume && !wanted.includes('import') && !reuse) throw new Error('BENCH_TREE_PARTS: the other parts need "import" (it makes the volume), or BENCH_TREE_REUSE')
  const tmp = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-tree-scale-'))
  try {
    const lay = layout(FILES)
    const srcRoot = process.env.BENCH_TREE_SRC ? path.join(process.env.BENCH_TREE_SRC, `files-${FILES}-${DIR_SIZE}-${DEEP_SHARE}`) : path.join(tmp, 'src')
    if (needsVolume) {
      log(`making ${FILES} files in ${lay.dirs.length} directories (${lay.flatDirs} of ${DIR_SIZE}, ${lay.deepFiles} files 6 deep) in ${srcRoot}`)
      const made = makeTree(srcRoot, lay)
      if (made.files !== FILES) throw new Error(`the source tree holds ${made.files} files, not ${FILES}`)
      log(`tree made in ${made.secs.toFixed(0)} s (${(made.bytes / 2 ** 20).toFixed(0)} MiB)`)
    }
    const ctx: Ctx = {
      tmp, lay, rows, src: path.join(srcRoot, 'tree'), dataA: path.join(tmp, 'a'),
      restic: has('restic') ? { env: { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: path.join(tmp, 'restic'), RESTIC_CACHE_DIR: path.join(tmp, 'restic-cache') } } : null,
    }
    let logged = 0
    for (const p of wanted) {
      log(`part ${p} (${uptime()})`)
      try {
        await PARTS[p]!(ctx)
      } catch (err) {
        if (p === 'import') throw err
        log(`part ${p} failed: ${err instanceof Error ? err.stack : String(err)}`)
        rows.push({ name: `tree ${p}: FAILED`, value: NaN, unit: '', note: (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300) })
      }
      // What is measured so far survives a run cut short (a 1M-file run takes most of an hour here).
      for (const r of rows.slice(logged)) log(`row: ${r.name}: ${r.value} ${r.unit}${r.baseline ? ` [${r.baseline}: ${r.baselineValue}]` : ''}${r.note ? ` (${r.note})` : ''}`)
      logged = rows.length
    }
  } finally {
    if (process.env.BENCH_TREE_KEEP === '1' || reuse) log(`kept ${tmp}`)
    else fs.rmSync(tmp, { recursive: true, force: true })
  }
  return rows
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--open')
  if (i >= 0) return openChild(process.argv[i + 1]!, process.argv[i + 2]!, process.argv[i + 3]!, process.argv[i + 4]!, process.argv[i + 5]!)
  const rows = await run()
  printRows(rows)
  writeResults(repoRoot, 'tree-scale', { files: FILES }, rows)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
