// `stat` as a user feels it at scale (issue 12: "stat ≤ 1 ms"), for the cold part of
// bench/tree-scale.ts: 1,000 random paths of the volume, stat'ed in-process (the first stat of
// each after the open, then again warm) and through a real FUSE mount of the volume in another
// process (the first stat after the mount, each path's first, then again once the kernel's 1 s
// entry/attr cache has expired: bazil answers every one), each beside `stat` of the same paths
// in the source tree on the local file system in the same run. The in-process passes and the
// mount process's passes are sampled (V8 profiler): their summaries go into the rows' notes.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { VolumeMount } from '../src/mount/mount.js'
import { Rand } from '../torture/rand.js'
import { dropCaches, sleep } from './procs.js'
import { monotonicMicros, profileTo, summarizeProfile } from './profile-summary.js'
import type { Row } from './row.js'

/** Paths stat'ed per pass. */
export const STAT_PATHS = Number(process.env.BENCH_TREE_STAT_PATHS ?? 1000)
/** Longer than the mount's entry/attr cache (CACHE_SECONDS, 1 s): the warm pass reaches bazil. */
const KERNEL_CACHE_MS = 1100

/** `n` paths of files (relative, no leading slash) drawn at random (seeded) over the layout's directories, weighted by their files. */
export function randomPaths(dirs: { rel: string; files: number }[], n: number, seed = 12): string[] {
  const r = new Rand(seed)
  const total = dirs.reduce((a, d) => a + d.files, 0)
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    let k = r.int(total)
    const d = dirs.find((x) => (k < x.files ? true : ((k -= x.files), false)))!
    out.push(`${d.rel}/f${k}`)
  }
  return out
}

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN
}

/** One pass: each path's stat time (ms), the pass's span (µs, CLOCK_MONOTONIC: profiles' clock) and this process's CPU (ms). */
export interface Pass { ms: number[]; span: [number, number]; cpuMs: number }

export function statPass(stat: (p: string) => unknown, paths: string[]): Pass {
  const ms: number[] = []
  const c0 = process.cpuUsage()
  const a = monotonicMicros()
  for (const p of paths) {
    const t = performance.now()
    stat(p)
    ms.push(performance.now() - t)
  }
  const b = monotonicMicros()
  const c = process.cpuUsage(c0)
  return { ms, span: [a, b], cpuMs: (c.user + c.system) / 1000 }
}

/** What a sampled span of a profile says, for a row's note. */
export function profileSummary(file: string, span?: [number, number]): string {
  const s = summarizeProfile(file, { top: 8, span })
  return `profile ${path.basename(file)}: main thread busy ${s.busySecs.toFixed(2)} s of ${s.wallSecs.toFixed(2)} s; ${s.packages}; ${s.functions}`
}

/**
 * In the opened process (tree-scale's `--open` child): the first stat of each path, then
 * again warm, sampled into `profFile`; then the same paths under `src` with fs.statSync
 * (the child dropped the page cache before it started: the first pass reads the disk).
 */
export async function inProcessStats(stat: (p: string) => unknown, paths: string[], src: string, profFile: string | null): Promise<Record<string, unknown>> {
  fs.mkdirSync(path.dirname(profFile ?? '.'), { recursive: true })
  const stop = await profileTo(profFile)
  const first = statPass((p) => stat('/' + p), paths)
  const warm = statPass((p) => stat('/' + p), paths)
  await stop()
  const local1 = statPass((p) => fs.statSync(path.join(src, p)), paths)
  const local2 = statPass((p) => fs.statSync(path.join(src, p)), paths)
  return {
    first, warm, local1, local2,
    prof1: profFile ? profileSummary(profFile, first.span) : null,
    prof2: profFile ? profileSummary(profFile, warm.span) : null,
  }
}

const fmt = (x: number): string => x.toFixed(3)
const dist = (p: Pass): string => `p50 ${fmt(pct(p.ms, 0.5))} ms, p99 ${fmt(pct(p.ms, 0.99))} ms, max ${fmt(Math.max(...p.ms))} ms, cpu ${fmt(p.cpuMs / p.ms.length)} ms per stat`

/** The rows of the in-process passes (`r`: what inProcessStats returned in the child). */
export function inProcessRows(r: Record<string, unknown>, load: string): Row[] {
  const [first, warm, local1, local2] = [r.first, r.warm, r.local1, r.local2] as Pass[]
  const n = first!.ms.length
  const row = (what: string, p: Pass, local: Pass, prof: unknown): Row => {
    const v = pct(p.ms, 0.5), b = pct(local.ms, 0.5)
    return {
      name: `stat of ${n} random paths in-process, ${what}: p50`, value: v, unit: 'ms', target: 1, ok: v <= 1,
      baseline: `fs.statSync of the same paths in the source tree, ${what}: p50`, baselineValue: b, ratio: v / b,
      note: `bazil ${dist(p)}; local ${dist(local)}; ${load}${prof ? `; ${prof}` : ''}`,
    }
  }
  return [row('the first stat of each after the open', first!, local1!, r.prof1), row('warm (each the second time)', warm!, local2!, r.prof2)]
}

// ---- through a FUSE mount ------------------------------------------------------------------

const script = (): string => path.join(path.dirname(fileURLToPath(import.meta.url)), 'tree-stat.js')

/**
 * The mount process (`node tree-stat.js --mount DATA MOUNTPOINT SPOOL`): opens the node,
 * mounts volume `v`, prints `mounted`; then on stdin `prof FILE` starts sampling, `stop`
 * writes the profile, `cpu` prints its CPU time (ms); stdin closed: unmounts and exits.
 */
async function mountChild(data: string, mnt: string, spool: string): Promise<void> {
  const node = await Node.open(DataDir.open(data))
  const vol = await node.volume('v')
  const mount = new VolumeMount(vol, mnt, { spoolDir: spool })
  await mount.mount()
  process.stdout.write('mounted\n')
  let stop: (() => Promise<void>) | null = null
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [cmd, arg] = line.split(' ')
    if (cmd === 'prof') stop = await profileTo(arg!)
    else if (cmd === 'stop') await stop?.()
    else if (cmd === 'cpu') {
      const c = process.cpuUsage()
      process.stdout.write(`cpu ${(c.user + c.system) / 1000}\n`)
      continue
    }
    process.stdout.write('ok\n')
  }
  await mount.unmount()
  await node.close()
}

/** The probe process (`node tree-stat.js --probe LIST`): stats each absolute path of LIST (one a line) and prints a Pass. */
function probeChild(list: string): void {
  const paths = fs.readFileSync(list, 'utf8').split('\n').filter(Boolean)
  process.stdout.write(JSON.stringify(statPass((p) => fs.statSync(p), paths)) + '\n')
}

function probe(paths: string[], listFile: string): Pass {
  fs.writeFileSync(listFile, paths.join('\n') + '\n')
  const r = spawnSync(process.execPath, [script(), '--probe', listFile], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`stat probe failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Pass
}

/** The three passes over `root` (another process stats): the first stat of `firstPath`, each path's first, then each again after the kernel's cache expired. */
async function passes(root: string, firstPath: string, paths: string[], listFile: string, around: (run: () => Pass) => Promise<Pass & { cpu?: number; prof?: string }>): Promise<(Pass & { cpu?: number; prof?: string })[]> {
  const first = await around(() => probe([path.join(root, firstPath)], listFile))
  const p1 = await around(() => probe(paths.map((p) => path.join(root, p)), listFile))
  await sleep(KERNEL_CACHE_MS)
  const p2 = await around(() => probe(paths.map((p) => path.join(root, p)), listFile))
  return [first, p1, p2]
}

/**
 * Mounts the volume of `data` in a process of its own (page cache dropped before), stats
 * through it from another process, then the same paths in `src` (page cache dropped before).
 */
export async function mountStatRows(data: string, src: string, work: string, firstPath: string, paths: string[], load: () => string): Promise<Row[]> {
  const mnt = path.join(work, 'stat-mnt'), spool = path.join(work, 'stat-spool'), profDir = path.join(work, 'prof')
  fs.mkdirSync(mnt, { recursive: true })
  fs.mkdirSync(profDir, { recursive: true })
  const listFile = path.join(work, 'stat-paths.txt')
  dropCaches()
  const t0 = performance.now()
  const child = spawn(process.execPath, [script(), '--mount', data, mnt, spool], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => {
    const r = await lines.next()
    if (r.done) throw new Error('the mount process exited')
    return r.value as string
  }
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  let bz: (Pass & { cpu?: number; prof?: string })[]
  let mountSecs: number
  try {
    if ((await next()) !== 'mounted') throw new Error('the mount process did not mount')
    mountSecs = (performance.now() - t0) / 1000
    const send = async (cmd: string): Promise<string> => {
      child.stdin!.write(cmd + '\n')
      return next()
    }
    const cpu = async (): Promise<number> => Number((await send('cpu')).split(' ')[1])
    let k = 0
    bz = await passes(mnt, firstPath, paths, listFile, async (run) => {
      const prof = path.join(profDir, `stat-mount-${++k}.cpuprofile`)
      await send(`prof ${prof}`)
      const c0 = await cpu()
      const p = run()
      const c1 = await cpu()
      await send('stop')
      return { ...p, cpu: c1 - c0, prof }
    })
  } finally {
    child.stdin!.end()
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    await exited
    clearTimeout(timer)
    spawnSync('umount', ['-l', mnt], { stdio: 'ignore' })
  }
  dropCaches()
  const local = await passes(src, firstPath, paths, listFile, async (run) => run())
  const n = paths.length
  const note = (p: Pass & { cpu?: number; prof?: string }, l: Pass): string =>
    `bazil ${dist(p)} (the prober's), the mount process's cpu ${fmt(p.cpu! / p.ms.length)} ms per stat; local ${dist(l)}; ${load()}; mount ${profileSummary(p.prof!, p.span)}`
  const row = (name: string, p: Pass & { cpu?: number; prof?: string }, l: Pass, what: string, target?: number): Row => {
    const v = pct(p.ms, 0.5), b = pct(l.ms, 0.5)
    return { name, value: v, unit: 'ms', ...(target !== undefined ? { target, ok: v <= target } : {}), baseline: `stat of the same paths on the local file system, ${what}`, baselineValue: b, ratio: v / b, note: note(p, l) }
  }
  return [
    { ...row(`stat through a FUSE mount of the volume: the first after the mount (/${firstPath})`, bz[0]!, local[0]!, 'the first after a cache drop'), note: `mount ready ${mountSecs.toFixed(2)} s after start (cache dropped); ${note(bz[0]!, local[0]!)}` },
    row(`stat through a FUSE mount: ${n} random paths, each the first time, p50`, bz[1]!, local[1]!, 'cold cache, each the first time: p50'),
    row(`stat through a FUSE mount: the same ${n} paths again, kernel cache expired (bazil answers), p50`, bz[2]!, local[2]!, 'warm: p50', 1),
  ]
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [mode, ...args] = process.argv.slice(2)
  const done = mode === '--mount' ? mountChild(args[0]!, args[1]!, args[2]!) : mode === '--probe' ? Promise.resolve(probeChild(args[0]!)) : Promise.reject(new Error(`tree-stat: unknown mode ${mode}`))
  done.then(() => process.exit(0), (err) => {
    console.error(err)
    process.exit(1)
  })
}
