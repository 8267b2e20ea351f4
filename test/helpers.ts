// Shared test helpers: temp dirs and running the real `bazil` binary.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Hypercore } from 'hypercore'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The repo root, from src (tsx) or from dist/test (compiled). */
export const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
export const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

export function tempDir(prefix = 'bazil-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return {
    dir,
    cleanup: () => {
      detachMounts(dir)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/**
 * Lazily unmounts every mount under `dir` (a mount a failed test left): removing the tree must
 * not walk into a FUSE mount this very process serves, which would block its only thread.
 */
function detachMounts(dir: string): void {
  let mounts: string
  try {
    mounts = fs.readFileSync('/proc/mounts', 'utf8')
  } catch {
    return
  }
  const under = mounts.split('\n').map((l) => l.split(' ')[1] ?? '').map((m) => m.replace(/\\040/g, ' ')).filter((m) => m.startsWith(dir + path.sep))
  for (const m of under.sort().reverse()) {
    try {
      execFileSync('fusermount', ['-uz', m], { stdio: 'ignore' })
    } catch {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' })
      } catch {
        // left mounted: rmSync then fails on it (EBUSY) rather than hanging
      }
    }
  }
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
  stdoutBuf: Buffer
}

/** Runs `bazil ARGS` as a user would, with stdin from `input`. */
export function bazil(dataDir: string, args: string[], input?: Buffer | string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bazilBin, `--data-dir=${dataDir}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, BAZIL_DATA_DIR: '' }
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => {
      const stdoutBuf = Buffer.concat(out)
      resolve({ code: code ?? -1, stdout: stdoutBuf.toString(), stderr: Buffer.concat(err).toString(), stdoutBuf })
    })
    child.stdin.end(input ?? '')
  })
}

export interface ServerProcess {
  child: import('node:child_process').ChildProcess
  log: () => string
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `bazil server run` on a data dir and waits until its control socket answers. */
export async function startServer(dataDir: string, extra: string[] = []): Promise<ServerProcess> {
  // Tests never touch the public DHT: no bootstrap given means no DHT at all.
  const net = extra.some((a) => a.startsWith('--bootstrap')) ? [] : ['--bootstrap=none']
  const child = spawn(process.execPath, [bazilBin, `--data-dir=${dataDir}`, 'server', 'run', '--log-level=debug', ...net, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BAZIL_DATA_DIR: '' }
  })
  let log = ''
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const deadline = Date.now() + 20_000
  while (!/listening on .*control\.sock/.test(log)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL') // a server that is slow to start must not outlive the test
      throw new Error(`server did not start:\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    child,
    log: () => log,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal)
      return exited
    }
  }
}

/**
 * Runs a bazil command in this process (its ops on `server`'s node when set), capturing its
 * output: for tests that need the CLI beside objects they hold open.
 */
export async function runInProcess(dataDir: string, argv: string[], server?: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
  const { PassThrough, Readable } = await import('node:stream')
  const { loadCli } = await import('../src/cli/main.js')
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: Buffer[] = []
  const err: Buffer[] = []
  stdout.on('data', (d: Buffer) => out.push(d))
  stderr.on('data', (d: Buffer) => err.push(d))
  const code = await (await loadCli()).run(argv, {
    stdin: Readable.from([]), stdout, stderr, env: { ...process.env, BAZIL_DATA_DIR: '' }, dataDir, cwd: process.cwd(), colorDepth: 1,
    server: server as import('../src/server/handle.js').ServerHandle | undefined
  })
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }
}

/** The blocks of a core held here, in order. */
export async function heldBlocks(core: Hypercore): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < core.length; i++) if (await core.has(i)) out.push(i)
  return out
}

export { summaryOf } from '../src/cli/progress.js'
