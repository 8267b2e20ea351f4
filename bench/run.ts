// `npm run bench`: bazil's speed and size figures next to baselines measured in the same run.
//
// Writes bench/results/latest.json (machine-readable) and prints a markdown table.
// Sizes can be scaled down for a quick look: BENCH_BIG_MIB (default 1024),
// BENCH_SMALL_FILES (default 10000), BENCH_DEDUP_MIB (default 100), BENCH_FUSE_MIB;
// BENCH_SKIP_FUSE=1 / BENCH_SKIP_TREE=1 / BENCH_SKIP_SYNC=1 leave out the mount, tree-scale
// and peer sync parts (the sync part has its own sizes: bench/sync-bench.ts).
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/fs/local-copy.js'
import { Chunker } from '../src/fs/cas/index.js'
import { run as runFuseBench } from './fuse-bench.js'
import { run as runTreeScale } from './tree-scale.js'
import { run as runSyncBench } from './sync-bench.js'
import type { Row } from './row.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024)
const SMALL_FILES = Number(process.env.BENCH_SMALL_FILES ?? 10000)
const DEDUP_MIB = Number(process.env.BENCH_DEDUP_MIB ?? 100)
const MiB = 1024 * 1024

const rows: Row[] = []

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function timeCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  syncDisks()
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`)
  return secs
}

/** Every contender starts with nothing dirty in the page cache (sources stay warm for all). */
function syncDisks(): void {
  spawnSync('sync')
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
  const secs = timeCmd('sh', ['-c', `cp -r "${src}" "${dest}" && sync`])
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
  rows.push({ name: `import ${BIG_MIB} MiB random file`, value: bz, unit: 'MB/s', baseline: 'dd conv=fdatasync', baselineValue: mb / dd, ratio: bz / (mb / dd) })
  rows.push({ name: `import ${BIG_MIB} MiB random file`, value: bz, unit: 'MB/s', baseline: 'cp -r + sync', baselineValue: mb / cp, ratio: bz / (mb / cp) })
  if (restic !== null) rows.push({ name: `import ${BIG_MIB} MiB random file`, value: bz, unit: 'MB/s', baseline: 'restic backup', baselineValue: mb / restic, ratio: bz / (mb / restic) })
  fs.rmSync(srcDir, { recursive: true, force: true })
}

async function benchSmallImport(work: string): Promise<void> {
  const srcDir = path.join(work, 'small')
  makeSmallFiles(srcDir, SMALL_FILES)
  const cp = cpSecs(work, srcDir, 'small')
  const restic = resticSecs(work, srcDir, 'small')
  const bazil = bazilImportSecs(work, srcDir, 'small')
  const fps = SMALL_FILES / bazil
  const name = `import ${SMALL_FILES} small files`
  rows.push({ name, value: fps, unit: 'files/s', baseline: 'cp -r + sync', baselineValue: SMALL_FILES / cp, ratio: fps / (SMALL_FILES / cp) })
  if (restic !== null) rows.push({ name, value: fps, unit: 'files/s', baseline: 'restic backup', baselineValue: SMALL_FILES / restic, ratio: fps / (SMALL_FILES / restic) })
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
    rows.push({ name: `dedupe: 1-byte insert at start of ${DEDUP_MIB} MiB`, value: s2.bytes - s1.bytes, unit: 'bytes added', baseline: 'file size', baselineValue: total, ratio: (s2.bytes - s1.bytes) / total })
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

function table(): string {
  const lines = ['| benchmark | bazil | unit | baseline | baseline value | ratio | note |', '|---|---|---|---|---|---|---|']
  const f = (x: number | undefined) => (x === undefined ? '' : x >= 100 ? x.toFixed(0) : x.toFixed(3))
  for (const r of rows) lines.push(`| ${r.name} | ${f(r.value)} | ${r.unit} | ${r.baseline ?? ''} | ${f(r.baselineValue)} | ${f(r.ratio)} | ${r.note ?? ''} |`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-'))
  try {
    benchChunker()
    await benchDedupe(work)
    await benchSmallImport(work)
    await benchBigImport(work)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  // The mount (issue 4) and the directory state at scale (issue 3): their own modules.
  if (process.env.BENCH_SKIP_FUSE !== '1' && fs.existsSync('/dev/fuse')) rows.push(...(await runFuseBench()))
  if (process.env.BENCH_SKIP_TREE !== '1') rows.push(...(await runTreeScale()))
  if (process.env.BENCH_SKIP_SYNC !== '1') rows.push(...(await runSyncBench()))
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    params: { BIG_MIB, SMALL_FILES, DEDUP_MIB },
    rows
  }
  fs.mkdirSync(path.join(repoRoot, 'bench', 'results'), { recursive: true })
  fs.writeFileSync(path.join(repoRoot, 'bench', 'results', 'latest.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(table())
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
})
