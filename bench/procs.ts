// Processes for the benchmarks that drive bazil as a user does: the CLI, servers, a DHT node,
// their output lines with arrival times, the control socket, CPU seconds from /proc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { callRemote } from '../src/control/client.js'
import { connect } from '../src/control/frames.js'
import type { Args, Op, Results } from '../src/control/requests.js'

export const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
export const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

// ---- small tools ---------------------------------------------------------------------------

export const now = (): number => performance.now()
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
export const log = (msg: string): void => {
  if (process.env.BENCH_QUIET !== '1') process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

export function syncDisks(): void {
  spawnSync('sync')
}

let dropWarned = false

/**
 * sync(1), then drop the page cache (`echo 3 > /proc/sys/vm/drop_caches`, root only): before
 * each timed figure that reads from disk, so no contender reads what an earlier one left warm.
 * Returns whether the cache was dropped (false when not permitted: said once on stderr).
 */
export function dropCaches(): boolean {
  spawnSync('sync')
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
    return true
  } catch (err) {
    if (!dropWarned) log(`page cache NOT dropped (${(err as Error).message}): figures may read warm data`)
    dropWarned = true
    return false
  }
}

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** A UDP port nobody uses (for the DHT node): a TCP probe on the same number is good enough here. */
export async function freeUdpPort(): Promise<number> {
  const dgram = await import('node:dgram')
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port
      s.close(() => resolve(port))
    })
  })
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSecs(pid: number | undefined): number {
  if (!pid) return 0
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100/s)
  } catch {
    return 0
  }
}

/**
 * CPU seconds per thread of a process so far, summed by thread name (the main thread as
 * "main"; libuv's pool as "libuv-worker", V8's helpers as "V8 ..."), from /proc.
 */
export function threadCpu(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>()
  if (!pid) return out
  let tids: string[] = []
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const name = Number(tid) === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[0-9]+$/, '').trim()
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100)
    } catch {
      // the thread ended
    }
  }
  return out
}

/** CPU seconds of a process and all its descendants (Syncthing's monitor runs the real one as a child). */
export function treeCpuSecs(pid: number | undefined): number {
  if (!pid) return 0
  const kids = new Map<number, number[]>()
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)])
    } catch {
      // gone
    }
  }
  let sum = 0
  const walk = (p: number): void => {
    sum += cpuSecs(p)
    for (const k of kids.get(p) ?? []) walk(k)
  }
  walk(pid)
  return sum
}

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** `bazil ARGS` as the user runs it. */
export function bazil(dataDir: string, args: string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bazilBin, `--data-dir=${dataDir}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, BAZIL_DATA_DIR: '' } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

export async function ok(dataDir: string, args: string[], input?: Buffer): Promise<string> {
  const r = await bazil(dataDir, args, input)
  if (r.code !== 0) throw new Error(`bazil ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

/**
 * One op of the typed control API through a server's socket (spec/control.md), what the CLI
 * does minus starting a Node process: for polling during the convergence measurement.
 */
export async function callOp<O extends Op>(dataDir: string, op: O, args: Args<O>): Promise<Results[O]> {
  const sock = await connect(dataDir)
  if (!sock) throw new Error(`no server answers on the control socket of ${dataDir}`)
  return callRemote(sock, op, args)
}

export interface Proc {
  child: ChildProcess
  /** Lines with the time (ms, performance.now()) they arrived. */
  lines: { t: number; line: string }[]
  text(): string
  stop(): Promise<void>
}

let procSeq = 0

/** Spawns a long-running process and keeps its output lines with arrival times. */
export function startProc(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  const lines: { t: number; line: string }[] = []
  let partial = ''
  const onData = (d: Buffer): void => {
    const t = now()
    const parts = (partial + d.toString()).split('\n')
    partial = parts.pop()!
    for (const line of parts) lines.push({ t, line })
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  return {
    child,
    lines,
    text: () => lines.map((l) => l.line).join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      await exited
      clearTimeout(timer)
      const dir = process.env.BENCH_SYNC_LOG_DIR
      if (dir) {
        fs.mkdirSync(dir, { recursive: true })
        const name = `${String(++procSeq).padStart(2, '0')}-${path.basename(cmd)}-${child.pid}.log`
        fs.writeFileSync(path.join(dir, name), `${cmd} ${args.join(' ')}\n` + lines.map((l) => `+${(l.t / 1000).toFixed(3)} ${l.line}`).join('\n') + '\n')
      }
    }
  }
}

export async function waitLine(p: Proc, re: RegExp, what: string, timeoutMs = 60_000): Promise<number> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const hit = p.lines.find((l) => re.test(l.line))
    if (hit) return hit.t
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${what}: the process exited:\n${p.text().slice(-3000)}`)
    if (Date.now() > end) throw new Error(`${what}: timed out:\n${p.text().slice(-3000)}`)
    await sleep(20)
  }
}

export function startServer(dataDir: string, dhtPort: number, level = 'debug'): Proc {
  const prof = process.env.BENCH_SYNC_CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_SYNC_CPU_PROF}`, `--cpu-prof-name=${path.basename(dataDir)}-${Date.now()}.cpuprofile`] : []
  // For `perf record` (BENCH_SYNC_PERF): JIT code named in /tmp/perf-PID.map.
  if (process.env.BENCH_SYNC_PERF) prof.push('--perf-basic-prof-only-functions', '--interpreted-frames-native-stack')
  // BENCH_SERVER_NODE_FLAGS: node/V8 flags for the servers (e.g. what V8's compilers cost them).
  if (process.env.BENCH_SERVER_NODE_FLAGS) prof.push(...process.env.BENCH_SERVER_NODE_FLAGS.split(' ').filter(Boolean))
  return startProc(process.execPath, [...prof, bazilBin, `--data-dir=${dataDir}`, 'server', 'run', `--log-level=${level}`, `--bootstrap=127.0.0.1:${dhtPort}`], { ...process.env, BAZIL_DATA_DIR: '' })
}

export const serverUp = (p: Proc): Promise<number> => waitLine(p, /listening on .*control\.sock/, 'bazil server start')
