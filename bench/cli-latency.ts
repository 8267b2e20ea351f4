// How long a CLI command takes to answer (issue 14, "Fast CLI"): `bazil --version`,
// `bazil status` and `bazil volume ls` of a small volume, with the server running (the CLI
// asks it over the control socket) and without (the CLI opens the data dir itself), beside
// `git status` and `ls -l` of the same small tree and `node -e 0` (the floor of any node CLI).
//
// Targets: 0.15 s with a server, 0.5 s without one. Each command runs BENCH_CLI_RUNS times
// (default 20) after 3 warm-ups, by hyperfine when installed (wall and CPU), else by a node
// loop (wall only). Each command has two rows: the median wall time, and the CPU time per run
// (user + system of the command's process), which waiting for a core on a loaded machine does
// not inflate: the targets are checked on it when it was measured (else on the wall time).
// The CLI process is single-threaded; the server's work for it (status, ls) is not counted.
//
// Runs alone (`node dist/bench/cli-latency.js`, writes bench/results/cli-latency.json) or as
// part `cli` of `npm run bench`. BENCH_CLI_FILES: files in the tree (default 200).
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bazilBin, has, log, ok, repoRoot, serverUp, startProc } from './procs.js'
import { printRows, writeResults, type Row } from './row.js'

const FILES = Number(process.env.BENCH_CLI_FILES ?? 200)
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 20)
const WITH_SERVER_S = 0.15
const WITHOUT_SERVER_S = 0.5

interface Timing {
  /** Seconds. */
  median: number
  min: number
  /** CPU seconds (user + system) per run, when hyperfine measured it. */
  cpu: number | null
}

/** Times `cmd args` (cwd `cwd`): median and fastest wall time of RUNS runs, and CPU per run. */
function time(cmd: string, args: string[], cwd: string): Timing {
  const check = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
  if (check.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${check.stderr.toString()}`)
  if (has('hyperfine')) {
    const out = path.join(os.tmpdir(), `bazil-cli-latency-${process.pid}.json`)
    // -N: no shell in between (its start-up would count); arguments are quoted for hyperfine's own splitting.
    const line = [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ')
    execFileSync('hyperfine', ['-N', '--warmup', '3', '--runs', String(RUNS), '--export-json', out, line], { cwd, stdio: 'ignore' })
    const r = (JSON.parse(fs.readFileSync(out, 'utf8')) as { results: { median: number; min: number; user: number; system: number }[] }).results[0]!
    fs.rmSync(out, { force: true })
    return { median: r.median, min: r.min, cpu: r.user + r.system }
  }
  const secs: number[] = []
  for (let i = 0; i < RUNS + 3; i++) {
    const t0 = process.hrtime.bigint()
    spawnSync(cmd, args, { cwd, stdio: 'ignore' })
    if (i >= 3) secs.push(Number(process.hrtime.bigint() - t0) / 1e9)
  }
  secs.sort((a, b) => a - b)
  return { median: secs[Math.floor(secs.length / 2)]!, min: secs[0]!, cpu: null }
}

/** Two rows for `name`: median wall time (fastest run in the note), and CPU per run (the target checked on it when measured). */
function rows(name: string, t: Timing, target?: number, baseline?: { name: string; t: Timing }): Row[] {
  const ms = (secs: number): number => secs * 1000
  const against = (mine: number, theirs: number | null): Partial<Row> => (baseline && theirs !== null ? { baseline: baseline.name, baselineValue: ms(theirs), ratio: mine / theirs } : {})
  const check = (secs: number): Partial<Row> => (target !== undefined ? { target: ms(target), ok: secs <= target } : {})
  const wall: Row = { name: `${name} (wall, median)`, value: ms(t.median), unit: 'ms', ...against(t.median, baseline?.t.median ?? null), ...(t.cpu === null ? check(t.median) : {}), note: `fastest ${ms(t.min).toFixed(0)} ms` }
  if (t.cpu === null) return [wall]
  return [wall, { name: `${name} (CPU)`, value: ms(t.cpu), unit: 'ms', ...against(t.cpu, baseline?.t.cpu ?? null), ...check(t.cpu) }]
}

export async function run(): Promise<Row[]> {
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-cli-'))
  try {
    // The small tree: FILES files of 1 KiB in directories of 20, imported into volume v and committed to git.
    const tree = path.join(work, 'tree')
    for (let i = 0; i < FILES; i++) {
      const d = path.join(tree, `d${Math.floor(i / 20)}`)
      fs.mkdirSync(d, { recursive: true })
      fs.writeFileSync(path.join(d, `f${i}.txt`), `file ${i}\n`.repeat(100))
    }
    const data = path.join(work, 'data')
    await ok(data, ['create'])
    await ok(data, ['volume', 'create', 'v'])
    await ok(data, ['volume', 'import', 'v', tree])
    const git = (...a: string[]): void => void execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...a], { cwd: tree, stdio: 'ignore' })
    git('init', '-q')
    git('add', '.')
    git('commit', '-qm', 'tree')
    const bazil = (...a: string[]): [string, string[]] => [process.execPath, [bazilBin, `--data-dir=${data}`, ...a]]
    log(`cli: ${FILES} files; ${RUNS} runs of each command${has('hyperfine') ? ' (hyperfine)' : ''}`)

    const floor = time(process.execPath, ['-e', '0'], work)
    const gitStatus = { name: 'git status', t: time('git', ['status', '--short'], tree) }
    const ls = { name: 'ls -l', t: time('ls', ['-l', tree], work) }
    const version = time(...bazil('--version'), work)
    const coldStatus = time(...bazil('status'), work)
    const coldLs = time(...bazil('volume', 'ls', 'v', '/'), work)
    const server = startProc(process.execPath, [bazilBin, `--data-dir=${data}`, 'server', 'run', '--bootstrap=none'], { ...process.env, BAZIL_DATA_DIR: '' })
    let hotStatus: Timing
    let hotLs: Timing
    try {
      await serverUp(server)
      hotStatus = time(...bazil('status'), work)
      hotLs = time(...bazil('volume', 'ls', 'v', '/'), work)
    } finally {
      await server.stop()
    }
    return [
      ...rows('cli: node -e 0 (the floor of a node CLI)', floor),
      ...rows('cli: git status of the tree', gitStatus.t),
      ...rows('cli: ls -l of the tree', ls.t),
      ...rows('cli: bazil --version', version, WITH_SERVER_S, gitStatus),
      ...rows('cli: bazil status, server running', hotStatus, WITH_SERVER_S, gitStatus),
      ...rows('cli: bazil volume ls v /, server running', hotLs, WITH_SERVER_S, ls),
      ...rows('cli: bazil status, no server', coldStatus, WITHOUT_SERVER_S, gitStatus),
      ...rows(`cli: bazil volume ls v /, no server (${FILES} files)`, coldLs, WITHOUT_SERVER_S, ls)
    ]
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rows = await run()
  writeResults(repoRoot, 'cli-latency', { files: FILES, runs: RUNS, hyperfine: has('hyperfine'), load: os.loadavg().map((l) => l.toFixed(1)) }, rows)
  printRows(rows, 52)
}
