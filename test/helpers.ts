// Shared test helpers: temp dirs and running the real `bazil` binary.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The repo root, from src (tsx) or from dist/test (compiled). */
export const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
export const bazilBin = path.join(repoRoot, 'bin', 'bazil.js')

export function tempDir(prefix = 'bazil-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
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
