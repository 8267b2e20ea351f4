// The cache (issue 11, src/cas/cache.ts): how fast eviction gives disk space back, and how
// well the budget holds under a mix of reads, pins and writes. In one process: a "desktop"
// content store (real ChunkStore, Cas with a sharing key) and a "laptop" store that reads it
// on demand (RemoteStores over a corestore replication stream), with the laptop's ContentCache.
//
// eviction: the desktop stores BENCH_CACHE_MIB (default 256) MiB in 4 MiB files; the laptop
//   fetches every pack into its copy; then the budget drops to 0 and the time until every
//   pack is cleared and compacted (RocksDB gives the space back) is taken. Baseline in the same
//   run: `rm -rf` of the same bytes as 4 MiB plain files on the same disk, then sync(1). `du` of
//   the laptop's corestore before and after says how much came back.
// accuracy: budget BENCH_CACHE_BUDGET_MIB (default 32); the laptop reads the desktop's files in
//   a skewed random order (a quarter of the files get half the reads), pins a file every 8
//   reads (never evicted, outside the budget) and writes a 1 MiB file of its own every 4
//   (own store: not cache). After every step: the cache's accounting (cached bytes, i.e. held
//   minus pinned, against the budget) and `du` of the laptop's corestore against what it must
//   hold (budget + pinned + written) plus what it held before the first read.
//
// Runs alone (`node dist/bench/cache-bench.js`, writes bench/results/cache.json) or from
// bench/run.ts through run().
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import Corestore from 'corestore'
import { Cas, ChunkStore, RemoteStores, type FileRef } from '../src/cas/index.js'
import { ContentCache } from '../src/cas/cache.js'
import { addressesOf, type PinSet } from '../src/cas/cache-holds.js'
import { writeBudget } from '../src/cas/cache-size.js'
import type { Row } from './row.js'
import { createLogger } from '../src/log.js'
import { log, now, repoRoot } from './procs.js'
export type { Row }

const MiB = 1024 * 1024
const FILE_MIB = 4

function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sk', dir], { encoding: 'utf8' })
  return Number(r.stdout.split('\t')[0]) * 1024
}

interface Scene {
  work: string
  desktop: { store: Corestore; chunks: ChunkStore; cas: Cas }
  laptop: { store: Corestore; chunks: ChunkStore; cas: Cas; remote: RemoteStores; cache: ContentCache; dir: string }
  pins: Set<string>
  close(): Promise<void>
}

async function scene(work: string, budgetMiB: number): Promise<Scene> {
  const key = randomBytes(32)
  const dstore = new Corestore(path.join(work, 'desktop'))
  const dchunks = await ChunkStore.open(dstore, { tableFile: null })
  const ldir = path.join(work, 'laptop')
  fs.mkdirSync(ldir, { recursive: true })
  const lstore = new Corestore(path.join(ldir, 'corestore'))
  const lchunks = await ChunkStore.open(lstore, { tableFile: null })
  const remote = new RemoteStores(lstore, 10_000, { sourcesFile: null })
  remote.serve(lchunks)
  const logger = createLogger(process.env.BENCH_CACHE_LOG === 'debug' ? 'debug' : 'warn')
  remote.log = logger
  const a = dstore.replicate(true)
  const b = lstore.replicate(false)
  a.pipe(b).pipe(a)
  await remote.add('desktop', { cas: dchunks.casKey, index: dchunks.indexKey })
  const pins = new Set<string>()
  const pinSet: PinSet = { pinnedAddresses: async () => pins }
  writeBudget(path.join(ldir, 'cache.json'), { bytes: budgetMiB * MiB })
  const cache = await ContentCache.open(lstore, remote, { configFile: path.join(ldir, 'cache.json'), ledgerFile: path.join(ldir, 'cache-ledger'), dataDir: ldir, pins: pinSet }, logger)
  return {
    work,
    desktop: { store: dstore, chunks: dchunks, cas: new Cas(dchunks, key) },
    laptop: { store: lstore, chunks: lchunks, cas: new Cas(lchunks, key), remote, cache, dir: ldir },
    pins,
    close: async () => {
      await cache.close()
      await remote.close()
      a.destroy()
      b.destroy()
      await lchunks.close()
      await lstore.close()
      await dchunks.close()
      await dstore.close()
    }
  }
}

async function writeFiles(cas: Cas, mib: number): Promise<FileRef[]> {
  const refs: FileRef[] = []
  for (let i = 0; i < mib / FILE_MIB; i++) refs.push(await cas.writeBuffer(randomBytes(FILE_MIB * MiB), true))
  return refs
}

async function readAll(cas: Cas, ref: FileRef): Promise<void> {
  for await (const _ of cas.readFile(ref)) {
    // through: the packs are now held in the laptop's copy
  }
}

async function eviction(work: string): Promise<Row[]> {
  const mib = Number(process.env.BENCH_CACHE_MIB ?? 256)
  const s = await scene(path.join(work, 'evict'), mib * 2)
  try {
    const refs = await writeFiles(s.desktop.cas, mib)
    await s.desktop.chunks.flush()
    for (const r of refs) await readAll(s.laptop.cas, r)
    const before = await s.laptop.cache.status()
    const corestore = path.join(s.laptop.dir, 'corestore')
    const duBefore = duBytes(corestore)
    const t0 = now()
    await s.laptop.cache.setBudget({ bytes: 0 })
    spawnSync('sync')
    const secs = (now() - t0) / 1000
    const after = await s.laptop.cache.status()
    const duAfter = duBytes(corestore)
    // Baseline: the same bytes as plain files, deleted.
    const plain = path.join(work, 'plain')
    fs.mkdirSync(plain)
    for (let i = 0; i < mib / FILE_MIB; i++) fs.writeFileSync(path.join(plain, `f${i}`), randomBytes(FILE_MIB * MiB))
    spawnSync('sync')
    const t1 = now()
    spawnSync('rm', ['-rf', plain])
    spawnSync('sync')
    const rmSecs = (now() - t1) / 1000
    const gibs = before.heldBytes / 1024 ** 3 / secs
    const rmGibs = (mib * MiB) / 1024 ** 3 / rmSecs
    log(`cache eviction: ${(before.heldBytes / MiB).toFixed(1)} MiB in ${secs.toFixed(2)} s; du ${(duBefore / MiB).toFixed(1)} -> ${(duAfter / MiB).toFixed(1)} MiB; rm -rf ${rmSecs.toFixed(2)} s`)
    return [
      { name: `cache: eviction of ${mib} MiB (clear + compaction)`, value: gibs, unit: 'GiB/s', baseline: 'rm -rf of the same bytes as files', baselineValue: rmGibs, ratio: gibs / rmGibs },
      { name: 'cache: disk space back after eviction', value: (duBefore - duAfter) / MiB, unit: 'MiB', baseline: 'bytes evicted', baselineValue: (before.heldBytes - after.heldBytes) / MiB, ratio: (duBefore - duAfter) / (before.heldBytes - after.heldBytes), note: `du of the laptop's corestore ${(duBefore / MiB).toFixed(1)} -> ${(duAfter / MiB).toFixed(1)} MiB` }
    ]
  } finally {
    await s.close()
  }
}

async function accuracy(work: string): Promise<Row[]> {
  const budgetMiB = Number(process.env.BENCH_CACHE_BUDGET_MIB ?? 32)
  const mib = budgetMiB * 4
  const s = await scene(path.join(work, 'mix'), budgetMiB)
  try {
    const refs = await writeFiles(s.desktop.cas, mib)
    await s.desktop.chunks.flush()
    const corestore = path.join(s.laptop.dir, 'corestore')
    const du0 = duBytes(corestore)
    const hot = refs.slice(0, Math.max(1, refs.length >> 2))
    let written = 0
    let maxCached = 0
    let maxExcess = 0
    let steps = 0
    const pinned = new Set<number>()
    for (let i = 0; i < refs.length * 3; i++) {
      const ref = Math.random() < 0.5 ? hot[Math.floor(Math.random() * hot.length)]! : refs[Math.floor(Math.random() * refs.length)]!
      await readAll(s.laptop.cas, ref)
      if (i % 8 === 7 && pinned.size < refs.length / 8) {
        const j = Math.floor(Math.random() * refs.length)
        pinned.add(j)
        await addressesOf(s.laptop.cas, [refs[j]!], s.pins)
        await readAll(s.laptop.cas, refs[j]!)
      }
      if (i % 4 === 3) {
        await s.laptop.cas.writeBuffer(randomBytes(MiB), true)
        written += MiB
      }
      const st = await s.laptop.cache.status()
      await s.laptop.chunks.flush()
      const du = duBytes(corestore) - du0
      maxCached = Math.max(maxCached, st.cachedBytes)
      maxExcess = Math.max(maxExcess, du - (st.budgetBytes + st.pinnedBytes + written))
      steps++
    }
    const st = await s.laptop.cache.status()
    log(`cache accuracy: ${steps} steps, max cached ${(maxCached / MiB).toFixed(2)} MiB of ${budgetMiB}, pinned ${(st.pinnedBytes / MiB).toFixed(1)} MiB, written ${(written / MiB).toFixed(0)} MiB, disk beyond budget+pinned+written at most ${(maxExcess / MiB).toFixed(1)} MiB`)
    return [
      { name: `cache: max cached / budget (${budgetMiB} MiB; ${steps} reads of ${mib} MiB with pins and writes)`, value: maxCached / (budgetMiB * MiB), unit: 'ratio', target: 1, ok: maxCached <= budgetMiB * MiB },
      { name: 'cache: disk beyond budget + pinned + written, at most', value: Math.max(0, maxExcess) / MiB, unit: 'MiB', note: 'du of the laptop\'s corestore after every step, minus its size before the first read (RocksDB write-ahead log and SST slack)' }
    ]
  } finally {
    await s.close()
  }
}

export async function run(): Promise<Row[]> {
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-cache-'))
  try {
    return [...(await eviction(work)), ...(await accuracy(work))]
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rows = await run()
  fs.mkdirSync(path.join(repoRoot, 'bench', 'results'), { recursive: true })
  fs.writeFileSync(path.join(repoRoot, 'bench', 'results', 'cache.json'), JSON.stringify(rows, null, 2) + '\n')
  for (const r of rows) console.log(`${r.name}: ${r.value.toFixed(3)} ${r.unit}${r.baselineValue !== undefined ? ` (${r.baseline}: ${r.baselineValue.toFixed(3)})` : ''}`)
}
