// The torture sections' view of a node: the real `bazil` binary with a time limit (a hang is
// a finding), what a crash looks like, and a canonical listing of a directory tree.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bazilBin } from '../test/helpers.js'

export interface CliRun {
  args: string[]
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stdoutBuf: Buffer
  stderr: string
  ms: number
  timedOut: boolean
}

/** A child's exit and its whole output; killed with SIGKILL after `timeoutMs` (then timedOut is set). */
interface Collected { code: number | null; signal: NodeJS.Signals | null; out: Buffer; err: string; timedOut: boolean }

function spawnCollect(args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BAZIL_DATA_DIR: '', BAZIL_DEBUG: '', ...env }
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out: Buffer.concat(out), err: Buffer.concat(err).toString(), timedOut })
    })
  })
}

/** `bazil --data-dir=DIR ARGS`, killed after `timeoutMs` (then timedOut is set). */
export async function bazilRun(dataDir: string, args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<CliRun> {
  const t0 = Date.now()
  const r = await spawnCollect([bazilBin, `--data-dir=${dataDir}`, ...args], timeoutMs, env)
  return { args, code: r.code, signal: r.signal, stdout: r.out.toString(), stdoutBuf: r.out, stderr: r.err, ms: Date.now() - t0, timedOut: r.timedOut }
}

/**
 * Why a run counts as a crash, or null: a signal, a hang, an exit status other than 0 and 1,
 * or a failure that is not the CLI's one-line `bazil: ...` error (a stack trace, an abort).
 */
export function crashOf(r: CliRun): string | null {
  const what = `bazil ${r.args.join(' ')}`
  if (r.timedOut) return `${what}: hung (killed after ${r.ms} ms)`
  if (r.signal !== null) return `${what}: killed by ${r.signal}: ${r.stderr.trim().slice(0, 300)}`
  if (r.code !== 0 && r.code !== 1) return `${what}: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) /.test(l) && !/^\(Use `node --trace/.test(l))
  // One `bazil: ...` line; a command whose close failed too adds close's line after it.
  if (r.code === 1 && (lines.length === 0 || lines.length > 2 || !lines.every((l) => l.startsWith('bazil: ')))) return `${what}: exit 1 without a one-line error: ${r.stderr.trim().slice(0, 500)}`
  if (/\n\s+at .*:\d+:\d+\)?\n/.test(r.stderr)) return `${what}: stack trace on stderr: ${r.stderr.trim().slice(0, 500)}`
  return null
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

/**
 * A directory tree, canonically: path -> `d`, `f SIZE SHA256` or `l -> TARGET`, sorted by
 * path (bytes). `skip` leaves names out at any depth (e.g. `.snap`).
 */
export function listTree(root: string, skip: string[] = []): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (rel: string): void => {
    const names = fs.readdirSync(path.join(root, rel)).filter((n) => !skip.includes(n))
    for (const name of names) {
      const p = rel === '' ? name : `${rel}/${name}`
      const full = path.join(root, p)
      const st = fs.lstatSync(full)
      if (st.isSymbolicLink()) out.set(p, `l -> ${fs.readlinkSync(full)}`)
      else if (st.isDirectory()) {
        out.set(p, 'd')
        walk(p)
      } else out.set(p, `f ${st.size} ${sha256(fs.readFileSync(full))}`)
    }
  }
  walk('')
  return new Map([...out].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))))
}

/** The lines in which two listings differ, `-` for `want` only and `+` for `got` only. */
export function treeDiff(want: Map<string, string>, got: Map<string, string>): string[] {
  const d: string[] = []
  for (const [p, v] of want) if (got.get(p) !== v) d.push(`- ${p} ${v}`)
  for (const [p, v] of got) if (want.get(p) !== v) d.push(`+ ${p} ${v}`)
  return d
}

const batchJs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cli-batch.js')

/**
 * Several `bazil` commands in one process (torture/cli-batch.ts), each as a CliRun (stdout is
 * the text when under 64 KiB; `stdoutSha`/`stdoutLen` always). A process that dies takes the
 * command it was running with it: that one comes back as a crash (signal or exit status 99).
 */
export async function bazilBatch(dataDir: string, argsList: string[][], timeoutMs = 120_000): Promise<(CliRun & { stdoutSha: string; stdoutLen: number })[]> {
  const t0 = Date.now()
  const r = await spawnCollect([batchJs, dataDir, JSON.stringify(argsList)], timeoutMs)
  const lines = r.out.toString().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { args: string[]; code: number; stdoutLen: number; stdoutSha: string; stdout: string; stderr: string })
  const runs: (CliRun & { stdoutSha: string; stdoutLen: number })[] = lines.map((l) => ({ args: l.args, code: l.code, signal: null, stdout: l.stdout, stdoutBuf: Buffer.from(l.stdout), stderr: l.stderr, ms: 0, timedOut: false, stdoutSha: l.stdoutSha, stdoutLen: l.stdoutLen }))
  // A store that failed to open stays locked for the rest of that process (a failed
  // Corestore open keeps its device-file lock): what came after it runs in processes of its own.
  const failedOpen = runs.findIndex((x) => /cannot open the store/.test(x.stderr))
  if (failedOpen >= 0 && failedOpen < argsList.length - 1) {
    const rest: (CliRun & { stdoutSha: string; stdoutLen: number })[] = []
    for (const args of argsList.slice(failedOpen + 1)) {
      const one = await bazilRun(dataDir, args, timeoutMs)
      rest.push({ ...one, stdout: one.stdoutBuf.length < 65536 ? one.stdout : '', stdoutSha: sha256(one.stdoutBuf), stdoutLen: one.stdoutBuf.length })
    }
    return [...runs.slice(0, failedOpen + 1), ...rest]
  }
  if (runs.length < argsList.length) {
    // The process died (or hung) in the command after the last line.
    runs.push({ args: argsList[runs.length]!, code: r.signal ? null : 99, signal: r.signal, stdout: '', stdoutBuf: Buffer.alloc(0), stderr: `process died (exit ${r.code}, signal ${r.signal}${r.timedOut ? ', hung' : ''}): ${r.err.trim()}`, ms: Date.now() - t0, timedOut: r.timedOut, stdoutSha: '', stdoutLen: 0 })
  }
  return runs
}
