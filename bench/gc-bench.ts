// Garbage collection (issue 11, spec/gc.md): how long a store with 90% garbage takes to
// collect, how fast content is dropped, how much disk comes back; beside `restic prune` on the
// same data in the same run (restic: `forget` of the snapshot that held the deleted files,
// then `prune`, its defaults).
//
// BENCH_GC_MIB (default 1024) MiB of random data in 4 MiB files and ~10% in 100 KiB files are
// imported into a fresh data dir (not timed); a snapshot is taken; 90% of the bytes are deleted
// (the big files but every tenth) and the snapshot removed; then `collectGarbage` (grace 0)
// runs and is timed, with `du` of the data dir before and after. Every remaining file is then
// read back and compared (not timed). restic: the same directory backed up, the same files
// deleted, backed up again, the first snapshot forgotten, `restic prune` timed, `du` of the
// repository before and after.
//
// What bounds each: CPU seconds (every thread: RocksDB's compaction threads included) against
// wall seconds of the timed part, for bazil (process.cpuUsage) and restic (/usr/bin/time);
// BENCH_GC_PROFILE=1 also samples bazil's main thread during the collection (node:inspector,
// summarized by bench/profile-summary.ts; a sampling profiler costs a few %).
//
// Runs alone (`node dist/bench/gc-bench.js`, writes bench/results/gc.json) or from
// bench/run.ts through run() (BENCH_PARTS=gc). At 10 GiB (BENCH_GC_MIB=10240) it needs ~3.3x
// that free in BENCH_DIR (the source, the data dir, the restic repository).
import { spawnSync } from 'node:child_process'
import inspector from 'node:inspector/promises'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHash, randomBytes } from 'node:crypto'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { collectGarbage, diskUsage } from '../src/gc.js'
import { toFileRef } from '../src/volume/volume.js'
import type { Row } from './row.js'
import { dropCaches, has, log, repoRoot } from './procs.js'
import { summarizeProfile } from './profile-summary.js'
export type { Row }

const MiB = 1024 * 1024
const GiB = 1024 * MiB

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** The source tree: big files (4 MiB) and small ones (100 KiB); returns path -> sha256. */
function makeSource(root: string, mib: number): Map<string, string> {
  const out = new Map<string, string>()
  fs.mkdirSync(path.join(root, 'big'), { recursive: true })
  fs.mkdirSync(path.join(root, 'small'), { recursive: true })
  const bigCount = Math.max(10, Math.round((mib * 0.9) / 4))
  for (let i = 0; i < bigCount; i++) {
    const data = randomBytes(4 * MiB)
    fs.writeFileSync(path.join(root, 'big', `f${i}`), data)
    out.set(`/big/f${i}`, sha(data))
  }
  const smallCount = Math.max(10, Math.round((mib * 0.1 * 1024) / 100))
  for (let i = 0; i < smallCount; i++) {
    const data = randomBytes(100 * 1024)
    fs.writeFileSync(path.join(root, 'small', `f${i}`), data)
    out.set(`/small/f${i}`, sha(data))
  }
  return out
}

/** The files deleted: all but every tenth, of both kinds: 90% of the bytes. */
function deleted(files: Map<string, string>): Set<string> {
  const out = new Set<string>()
  let i = 0
  for (const p of files.keys()) {
    if (i++ % 10 !== 0) out.add(p)
  }
  return out
}

function restic(repo: string, args: string[], cwd?: string): string {
  const r = spawnSync('restic', ['-r', repo, '--no-cache', '-q', ...args], { cwd, env: { ...process.env, RESTIC_PASSWORD: 'bench' }, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`restic ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

/** restic ARGS under /usr/bin/time: its CPU seconds (user + system, every thread). */
function resticTimed(repo: string, args: string[]): { cpuSecs: number | null } {
  if (!fs.existsSync('/usr/bin/time')) {
    restic(repo, args)
    return { cpuSecs: null }
  }
  const r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', 'restic', '-r', repo, '--no-cache', '-q', ...args], { env: { ...process.env, RESTIC_PASSWORD: 'bench' }, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`restic ${args.join(' ')}: ${r.stderr}`)
  const m = /CPU ([\d.]+) ([\d.]+)/.exec(r.stderr)
  return { cpuSecs: m ? Number(m[1]) + Number(m[2]) : null }
}

/** Samples the main thread while `fn` runs (node:inspector); returns fn's result and the profile's summary. */
async function profiled<T>(fn: () => Promise<T>, file: string): Promise<{ result: T; summary: string }> {
  const session = new inspector.Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  let result: T
  try {
    result = await fn()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    fs.writeFileSync(file, JSON.stringify(profile))
    session.disconnect()
  }
  const s = summarizeProfile(file, { top: 10 })
  return { result, summary: `main thread busy ${s.busySecs.toFixed(2)} s of ${s.wallSecs.toFixed(2)} s; by package: ${s.packages}; by function: ${s.functions}` }
}

export async function run(): Promise<Row[]> {
  const mib = Number(process.env.BENCH_GC_MIB ?? 1024)
  const work = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'bazil-gc-bench-'))
  const rows: Row[] = []
  try {
    const src = path.join(work, 'src')
    const files = makeSource(src, mib)
    const gone = deleted(files)
    let goneBytes = 0
    for (const p of gone) goneBytes += fs.statSync(path.join(src, p)).size
    log(`gc bench: ${mib} MiB in ${files.size} files, deleting ${gone.size} (${(goneBytes / MiB).toFixed(0)} MiB)`)

    // bazil
    const root = path.join(work, 'bazil')
    let node = await Node.open(DataDir.create(root))
    try {
      const vol = await node.createVolume('v', 'default')
      await importDir(vol, src)
      vol.snapshot('before')
      await vol.flush()
    } finally {
      await node.close()
    }
    const duFull = diskUsage(root)
    node = await Node.open(DataDir.open(root))
    let secs = 0
    let cpuSecs = 0
    let profile: string | null = null
    let report
    try {
      const vol = await node.volume('v')
      for (const p of gone) vol.unlink(p)
      vol.removeSnapshot('before')
      await vol.flush()
      dropCaches()
      const cpu0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      if (process.env.BENCH_GC_PROFILE === '1') {
        const p = await profiled(() => collectGarbage(node, { graceMs: 0 }), path.join(work, 'gc.cpuprofile'))
        report = p.result
        profile = p.summary
      } else report = await collectGarbage(node, { graceMs: 0 })
      spawnSync('sync')
      secs = Number(process.hrtime.bigint() - t0) / 1e9
      const cpu = process.cpuUsage(cpu0)
      cpuSecs = (cpu.user + cpu.system) / 1e6
      // Every remaining file reads back byte-exact (not timed).
      for (const [p, hash] of files) {
        if (gone.has(p)) continue
        const st = vol.tree.stat(p)
        const parts: Buffer[] = []
        for await (const c of vol.cas.readFile(toFileRef(st.content!), p)) parts.push(c)
        if (sha(Buffer.concat(parts)) !== hash) throw new Error(`gc bench: ${p} does not read back after the collection`)
      }
    } finally {
      await node.close()
    }
    // du of the closed data dir before the deletes and after the collection (an open store's
    // du also counts RocksDB's log replayed at open, which its next flush drops).
    const duAfter = diskUsage(root)
    const freed = duFull - duAfter
    log(`gc bench: bazil gc ${secs.toFixed(2)} s, removed ${(report.removed.bytes / MiB).toFixed(0)} MiB, du (closed) ${(duFull / MiB).toFixed(0)} -> ${(duAfter / MiB).toFixed(0)} MiB (open, in the run: ${(report.disk.before / MiB).toFixed(0)} -> ${(report.disk.after! / MiB).toFixed(0)} MiB); walk ${report.phases.walk} ms, rewrite ${report.phases.rewrite} ms, RocksDB compaction ${report.phases.compact} ms; CPU ${cpuSecs.toFixed(2)} s (all threads)`)
    if (profile) log(`gc bench: profile of the collection: ${profile}`)

    // restic
    let rSecs: number | undefined
    let rFreed: number | undefined
    let rCpu: number | null = null
    if (has('restic')) {
      const repo = path.join(work, 'restic')
      restic(repo, ['init'])
      restic(repo, ['backup', '.'], src)
      const first = (JSON.parse(restic(repo, ['snapshots', '--json'])) as { short_id: string }[])[0]!.short_id
      for (const p of gone) fs.rmSync(path.join(src, p))
      restic(repo, ['backup', '.'], src)
      restic(repo, ['forget', first])
      const before = diskUsage(repo)
      dropCaches()
      const t0 = process.hrtime.bigint()
      rCpu = resticTimed(repo, ['prune']).cpuSecs
      spawnSync('sync')
      rSecs = Number(process.hrtime.bigint() - t0) / 1e9
      rFreed = before - diskUsage(repo)
      log(`gc bench: restic prune ${rSecs.toFixed(2)} s (CPU ${rCpu?.toFixed(2) ?? '?'} s, all threads), du ${(before / MiB).toFixed(0)} -> ${((before - rFreed) / MiB).toFixed(0)} MiB`)
    }
    const base = (value: number | undefined, higherIsBetter: boolean, v: number): Partial<Row> => value === undefined
      ? { note: 'restic not installed' }
      : { baseline: 'restic prune', baselineValue: Number(value.toFixed(3)), ratio: Number((higherIsBetter ? v / value : value / v).toFixed(3)) }
    rows.push({ name: `gc: collect ${mib} MiB with 90% garbage (s)`, value: Number(secs.toFixed(2)), unit: 's', ...base(rSecs, false, secs), note: 'ratio: restic time / bazil time' })
    rows.push({ name: 'gc: content dropped (GiB/s)', value: Number((report.removed.bytes / GiB / secs).toFixed(3)), unit: 'GiB/s', ...(rSecs === undefined ? {} : base(goneBytes / GiB / rSecs, true, report.removed.bytes / GiB / secs)) })
    rows.push({ name: 'gc: disk returned, share of the deleted bytes (du)', value: Number((freed / goneBytes).toFixed(3)), unit: 'ratio', ...(rFreed === undefined ? {} : base(rFreed / goneBytes, true, freed / goneBytes)), target: 0.9, ok: freed / goneBytes >= 0.9 })
    rows.push({ name: 'gc: data dir after / before (du, closed)', value: Number((duAfter / duFull).toFixed(3)), unit: 'ratio', note: `${(duFull / MiB).toFixed(0)} -> ${(duAfter / MiB).toFixed(0)} MiB` })
    rows.push({ name: 'gc: CPU seconds per wall second of the collection (all threads)', value: Number((cpuSecs / secs).toFixed(2)), unit: 'ratio', ...(rCpu === null || rSecs === undefined ? {} : { baseline: 'restic prune', baselineValue: Number((rCpu / rSecs).toFixed(2)) }), note: `bazil ${cpuSecs.toFixed(1)} s CPU in ${secs.toFixed(1)} s${rCpu === null ? '' : `; restic ${rCpu.toFixed(1)} s CPU in ${rSecs!.toFixed(1)} s`}; 2 cores: 2.0 = CPU-bound on both` })
    if (profile) rows.push({ name: 'gc: main-thread profile of the collection', value: 0, unit: '', note: profile })
    rows.push({ name: 'gc: live bytes moved (rewritten packs)', value: Number((report.moved.bytes / MiB).toFixed(1)), unit: 'MiB', note: `${report.packs.rewritten} of ${report.packs.total} packs rewritten; walk ${report.phases.walk} ms, rewrite ${report.phases.rewrite} ms, RocksDB compaction ${report.phases.compact} ms` })
    return rows
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const rows = await run()
  const out = path.join(repoRoot, 'bench', 'results')
  fs.mkdirSync(out, { recursive: true })
  fs.writeFileSync(path.join(out, 'gc.json'), JSON.stringify(rows, null, 2) + '\n')
  for (const r of rows) console.log(`${r.name}: ${r.value} ${r.unit}${r.baseline ? ` (${r.baseline} ${r.baselineValue}, ratio ${r.ratio})` : ''}${r.note ? ` — ${r.note}` : ''}`)
}
