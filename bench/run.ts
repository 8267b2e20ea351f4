// `npm run bench`: bazil's speed and size figures next to baselines measured in the same run.
//
// Writes bench/results/latest.json (machine-readable) and prints a markdown table.
// Sizes can be scaled down for a quick look: BENCH_BIG_MIB (default 1024),
// BENCH_SMALL_FILES (default 10000), BENCH_DEDUP_MIB (default 100); the other parts have their
// own (bench/README.md lists every variable). BENCH_PARTS picks parts, a comma list of
// chunker,dedupe,import-small,import-big,fuse,peer-read,cache,gc,tree,tree-merge,index,snap,sync,cli (default all);
// BENCH_SKIP_FUSE=1 / BENCH_SKIP_TREE=1 / BENCH_SKIP_SYNC=1 still leave one out.
// Every timed figure starts with the page cache dropped (when permitted) and ends with sync(1).
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { Chunker } from '../src/cas/index.js'
import { run as runFuseBench } from './fuse-bench.js'
import { run as runTreeScale } from './tree-scale.js'
import { run as runTreeMerge } from './tree-merge.js'
import { run as runIndexScale } from './index-scale.js'
import { run as runSnapScale } from './snap-scale.js'
import { run as runSyncBench } from './sync-bench.js'
import { run as runPeerReadBench } from './peer-read-bench.js'
import { run as runCacheBench } from './cache-bench.js'
import { run as runGcBench } from './gc-bench.js'
import { run as runCliLatency } from './cli-latency.js'
import { dropCaches } from './procs.js'
import type { Row } from './row.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024)
const SMALL_FILES = Number(process.env.BENCH_SMALL_FILES ?? 10000)
const DEDUP_MIB = Number(process.env.BENCH_DEDUP_MIB ?? 100)
const MiB = 1024 * 1024
const ALL_PARTS = ['chunker', 'dedupe', 'import-small', 'import-big', 'fuse', 'peer-read', 'cache', 'gc', 'tree', 'tree-merge', 'index', 'snap', 'sync', 'cli']
const PARTS = new Set((process.env.BENCH_PARTS ?? ALL_PARTS.join(',')).split(',').map((x) => x.trim()).filter(Boolean))
for (const p of PARTS) if (!ALL_PARTS.includes(p)) throw new Error(`BENCH_PARTS: unknown part "${p}" (${ALL_PARTS.join(', ')})`)
if (process.env.BENCH_SKIP_FUSE === '1') PARTS.delete('fuse')
if (process.env.BENCH_SKIP_TREE === '1') PARTS.delete('tree')
if (process.env.BENCH_SKIP_SYNC === '1') PARTS.delete('sync')

const rows: Row[] = []

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/** A command's wall time from a dropped page cache until it exits and sync(1) returns. */
function timeCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  dropCaches()
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  spawnSync('sync')
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`)
  return secs
}

function makeBigFile(file: string, mib: number): void {
  const fd = fs.openSync(file, 'w')
  for (let i = 0; i < mib; i++) fs.writeSync(fd, randomBytes(MiB), 0, MiB)
  fs.closeSync(fd)
}

function makeSmallFiles(root: string, n: number): number {
  let bytes = 0
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, `d${Math.floor(i / 100)}`)
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true })
    const size = 512 + Math.floor(Math.random() * 8192)
    fs.writeFileSync(path.join(dir, `f${i}.txt`), randomBytes(size))
    bytes += size
  }
  return bytes
}

function bazilImportSecs(work: string, src: string, tag: string): number {
  const data = path.join(work, `bazil-${tag}`)
  execFileSync(process.execPath, [bazilBin, `--data-dir=${data}`, 'create'], { stdio: 'ignore' })
  execFileSync(process.execPath, [bazilBin, `--data-dir=${data}`, 'volume', 'create', 'v'], { stdio: 'ignore' })
  const secs = timeCmd(process.execPath, [bazilBin, `--data-dir=${data}`, 'volume', 'import', 'v', src])
  fs.rmSync(data, { recursive: true, force: true })
  return secs
}

function resticSecs(work: string, src: string, tag: string): number | null {
  if (!has('restic')) return null
  const repo = path.join(work, `restic-${tag}`)
  const env = { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: path.join(work, 'restic-cache') }
  execFileSync('restic', ['init', '--quiet'], { env, stdio: 'ignore' })
  const secs = timeCmd('restic', ['backup', '--quiet', src], env)
  fs.rmSync(repo, { recursive: true, force: true })
  return secs
}

function cpSecs(work: string, src: string, tag: string): number {
  const dest = path.join(work, `cp-${tag}`)
  const secs = timeCmd('cp', ['-r', src, dest])
  fs.rmSync(dest, { recursive: true, force: true })
  return secs
}

async function benchBigImport(work: string): Promise<void> {
  const srcDir = path.join(work, 'big')
  fs.mkdirSync(srcDir)
  const file = path.join(srcDir, 'big.bin')
  makeBigFile(file, BIG_MIB)
  const mb = (BIG_MIB * MiB) / 1e6
  const dd = timeCmd('dd', [`if=${file}`, `of=${path.join(work, 'dd.out')}`, 'bs=1M', 'conv=fdatasync', 'status=none'])
  fs.rmSync(path.join(work, 'dd.out'))
  const cp = cpSecs(work, srcDir, 'big')
  const restic = resticSecs(work, srcDir, 'big')
  const bazil = bazilImportSecs(work, srcDir, 'big')
  const bz = mb / bazil
  const name = `import ${BIG_MIB} MiB random file (bazil volume import)`
  if (restic !== null) rows.push({ name, value: bz, unit: 'MB/s', baseline: 'restic backup', baselineValue: mb / restic, ratio: bz / (mb / restic), target: 1.5, ok: bz / (mb / restic) >= 1.5 })
  else rows.push({ name, value: bz, unit: 'MB/s', baseline: 'restic backup', note: 'restic is not installed: no baseline' })
  rows.push({ name, value: bz, unit: 'MB/s', baseline: 'dd bs=1M conv=fdatasync', baselineValue: mb / dd, ratio: bz / (mb / dd) })
  rows.push({ name, value: bz, unit: 'MB/s', baseline: 'cp -r + sync', baselineValue: mb / cp, ratio: bz / (mb / cp) })
  fs.rmSync(srcDir, { recursive: true, force: true })
}

async function benchSmallImport(work: string): Promise<void> {
  const srcDir = path.join(work, 'small')
  makeSmallFiles(srcDir, SMALL_FILES)
  const cp = cpSecs(work, srcDir, 'small')
  const restic = resticSecs(work, srcDir, 'small')
  const bazil = bazilImportSecs(work, srcDir, 'small')
  const fps = SMALL_FILES / bazil
  const name = `import ${SMALL_FILES} small files (bazil volume import)`
  if (restic !== null) rows.push({ name, value: fps, unit: 'files/s', baseline: 'restic backup', baselineValue: SMALL_FILES / restic, ratio: fps / (SMALL_FILES / restic), target: 1, ok: fps / (SMALL_FILES / restic) >= 1 })
  else rows.push({ name, value: fps, unit: 'files/s', baseline: 'restic backup', note: 'restic is not installed: no baseline' })
  rows.push({ name, value: fps, unit: 'files/s', baseline: 'cp -r + sync', baselineValue: SMALL_FILES / cp, ratio: fps / (SMALL_FILES / cp) })
  fs.rmSync(srcDir, { recursive: true, force: true })
}

async function benchDedupe(work: string): Promise<void> {
  const dir = DataDir.create(path.join(work, 'dedup-data'))
  const node = await Node.open(dir)
  try {
    const vol = await node.createVolume('v', 'default')
    const src = path.join(work, 'dedup')
    fs.mkdirSync(src)
    const original = randomBytes(DEDUP_MIB * MiB)
    fs.writeFileSync(path.join(src, 'f.bin'), original)
    await importDir(vol, src)
    const s0 = await node.chunks.stats()
    await importDir(vol, src)
    const s1 = await node.chunks.stats()
    fs.writeFileSync(path.join(src, 'f.bin'), Buffer.concat([Buffer.from([42]), original]))
    await importDir(vol, src)
    const s2 = await node.chunks.stats()
    const total = DEDUP_MIB * MiB
    rows.push({ name: `dedupe: re-import of the same ${DEDUP_MIB} MiB`, value: s1.bytes - s0.bytes, unit: 'bytes added', baseline: 'file size', baselineValue: total, ratio: (s1.bytes - s0.bytes) / total })
    rows.push({ name: `dedupe: 1-byte insert at start of ${DEDUP_MIB} MiB`, value: s2.bytes - s1.bytes, unit: 'bytes added', baseline: 'file size', baselineValue: total, ratio: (s2.bytes - s1.bytes) / total, target: 0.01, ok: (s2.bytes - s1.bytes) / total < 0.01 })
  } finally {
    await node.close()
  }
}

function benchChunker(): void {
  const data = randomBytes(256 * MiB)
  const chunker = new Chunker(randomBytes(32))
  const t0 = process.hrtime.bigint()
  let n = 0
  for (const _ of chunker.split(data)) n++
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  rows.push({ name: 'chunker alone (256 MiB in memory)', value: data.length / 1e6 / secs, unit: 'MB/s', note: `${n} chunks, avg ${(data.length / n / 1024).toFixed(1)} KiB` })
}

/** The figures without their notes, for bench/README.md's Results. */
function compactTable(): string {
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '' : x === 0 ? '0' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2))
  const lines = ['| figure | bazil | baseline, same run | ratio | target |', '|---|---|---|---|---|']
  for (const r of rows) {
    const base = r.baseline ? `${r.baseline}${r.baselineValue === undefined ? '' : `: ${f(r.baselineValue)} ${r.unit}`}` : ''
    const target = r.target === undefined ? '' : `${f(r.target)}: ${r.ok ? 'met' : 'missed'}`
    lines.push(`| ${r.name} | ${Number.isNaN(r.value) ? (r.note ?? '') : `${f(r.value)} ${r.unit}`} | ${base} | ${f(r.ratio)} | ${target} |`)
  }
  return lines.join('\n')
}

function table(): string {
  const lines = ['| benchmark | bazil | unit | baseline (same run) | baseline value | ratio | target | note |', '|---|---|---|---|---|---|---|---|']
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '' : x === 0 ? '0' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2))
  const t = (r: Row): string => (r.target === undefined ? '' : `${f(r.target)}: ${r.ok ? 'met' : 'missed'}`)
  for (const r of rows) lines.push(`| ${r.name} | ${f(r.value)} | ${r.unit} | ${r.baseline ?? ''} | ${f(r.baselineValue)} | ${f(r.ratio)} | ${t(r)} | ${(r.note ?? '').replace(/\|/g, '\\|')} |`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const load: string[] = [`start: ${uptime()}`]
  /** Writes bench/results/latest.json with the rows so far. */
  const save = () => {
    const result = {
      date: new Date().toISOString(),
      secs: Math.round((Date.now() - t0) / 1000),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      pageCacheDropped: cacheDropped,
      load,
      params: { PARTS: [...PARTS].join(','), ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_') || k.startsWith('CAS_'))), BIG_MIB, SMALL_FILES, DEDUP_MIB },
      rows
    }
    fs.mkdirSync(path.join(repoRoot, 'bench', 'results'), { recursive: true })
    fs.writeFileSync(path.join(repoRoot, 'bench', 'results', 'latest.json'), JSON.stringify({ ...result, markdown: compactTable() }, null, 2) + '\n')
    return result
  }
  const cacheDropped = dropCaches()
  const t0 = Date.now()
  const step = async (part: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
    if (!PARTS.has(part)) return
    const t = Date.now()
    console.error(`[bench] ${part}`)
    try {
      await fn()
    } catch (err) {
      // One part failing leaves the others' figures: the row says what failed.
      console.error(`[bench] ${part} failed: ${err instanceof Error ? err.stack : String(err)}`)
      rows.push({ name: `${part}: FAILED`, value: NaN, unit: '', note: (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300) })
    }
    load.push(`after ${part} (${((Date.now() - t) / 1000).toFixed(0)} s): ${uptime()}`)
    save() // what is measured so far survives a run cut short
  }
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-'))
  try {
    await step('chunker', benchChunker)
    await step('dedupe', () => benchDedupe(work))
    await step('import-small', () => benchSmallImport(work))
    await step('import-big', () => benchBigImport(work))
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  // The mount, reads from peers, the directory state at scale, peer sync: their own modules.
  await step('fuse', async () => {
    if (fs.existsSync('/dev/fuse')) rows.push(...(await runFuseBench()))
    else rows.push({ name: 'mount', value: NaN, unit: '', note: 'skipped: /dev/fuse is missing' })
  })
  await step('peer-read', async () => {
    if (fs.existsSync('/dev/fuse')) rows.push(...(await runPeerReadBench()))
    else rows.push({ name: 'read from peers through the mount', value: NaN, unit: '', note: 'skipped: /dev/fuse is missing' })
  })
  await step('cache', async () => rows.push(...(await runCacheBench())))
  await step('gc', async () => rows.push(...(await runGcBench())))
  await step('sync', async () => rows.push(...(await runSyncBench())))
  await step('tree', async () => rows.push(...(await runTreeScale())))
  await step('tree-merge', async () => rows.push(...(await runTreeMerge())))
  await step('index', async () => rows.push(...(await runIndexScale())))
  await step('snap', async () => rows.push(...(await runSnapScale())))
  await step('cli', async () => rows.push(...(await runCliLatency())))
  const result = save()
  console.log(table())
  console.log(`\n${new Date().toISOString().slice(0, 16)} UTC, ${result.secs} s, page cache ${cacheDropped ? 'dropped before each timed figure' : 'NOT dropped (not permitted)'}; load: ${load.join('; ')}`)
}

/** `uptime`'s load averages (the machine is shared: say what else ran). */
function uptime(): string {
  return spawnSync('uptime', { encoding: 'utf8' }).stdout.trim().replace(/^.*load average: /, 'load ')
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
})
