// Runs several bazil commands in ONE process, one after the other, each through the real CLI
// (buildCli().run, as bin/bazil.js does), and prints one JSON line per command: exit code,
// stdout (its length and sha256, and the text when short) and stderr. For the torture
// sections: a node start per command costs seconds on a loaded machine, and a crash still
// shows (this process dies: non-zero exit, a stack on stderr, no line for that command).
// Usage: node cli-batch.js DATA_DIR '[["log","verify","--json","v"], ...]'
import { createHash } from 'node:crypto'
import { PassThrough, Readable } from 'node:stream'
import { loadCli } from '../src/cli/main.js'

export interface BatchLine {
  args: string[]
  code: number
  stdoutLen: number
  stdoutSha: string
  /** stdout as text, when under 64 KiB. */
  stdout: string
  stderr: string
}

const [dataDir, plan] = process.argv.slice(2)
if (!dataDir || !plan) {
  console.error('usage: cli-batch.js DATA_DIR JSON_ARGV_LIST')
  process.exit(2)
}
const cli = await loadCli()
for (const args of JSON.parse(plan) as string[][]) {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: Buffer[] = []
  const err: Buffer[] = []
  stdout.on('data', (d: Buffer) => out.push(d))
  stderr.on('data', (d: Buffer) => err.push(d))
  const code = await cli.run(args, {
    stdin: Readable.from([]), stdout, stderr, env: { ...process.env, BAZIL_DATA_DIR: '' }, dataDir, cwd: process.cwd(), colorDepth: 1
  })
  const buf = Buffer.concat(out)
  const line: BatchLine = {
    args,
    code,
    stdoutLen: buf.length,
    stdoutSha: createHash('sha256').update(buf).digest('hex'),
    stdout: buf.length < 65536 ? buf.toString() : '',
    stderr: Buffer.concat(err).toString()
  }
  process.stdout.write(JSON.stringify(line) + '\n')
}
