// Page buckets of version 1 (one JSON per bucket) against version 2 (names apart, rows in
// chunks) on one volume's index, in the same run: the first stat of a file in a 10k-entry
// directory after a fresh open, and the first ls of that directory (issue 12: stat <= 1 ms).
//
// BENCH_PAGES_DATA=DIR: a data dir (a copy: it is written) whose index has version 1 pages
// (imported before page format 2). The index is rewritten whole in version 2 beside it
// (`commitTreeIndex` to a new place writes every entry), then each child process opens the
// volume's index with one or the other and times a stat and an ls of its directory.
// BENCH_PAGES_FILE names the file (default /flat/d7/f1234 of bench/tree-scale.ts's tree);
// BENCH_PAGES_DROP=0 keeps the page cache; BENCH_PAGES_ROUNDS (3). Runs under `flock heavy.lock` at 1M.
// BENCH_PAGES_OLD_FILE=PATH: no rewrite (at 1M it needs > 1.3 GiB and minutes): the same index,
// BENCH_PAGES_FILE in a directory whose page a commit rewrote in version 2 (an edit on its path)
// against PATH in one whose page is still version 1 (what bench/README's 1M rows ran).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'

const ACTOR = 'ee'.repeat(32)

function child(file: string, dir: string, lsDir: string, statPath: string): void {
  let t = performance.now()
  const { tree } = openTreeIndex(file, dir, ACTOR)
  const openMs = performance.now() - t
  t = performance.now()
  const st = tree.stat(statPath)
  const statMs = performance.now() - t
  const statBytes = (tree.view.diskBase as IndexFiles).bytesRead
  t = performance.now()
  const st2 = tree.stat(statPath.replace(/\d+$/, (n) => String(Number(n) + 1)))
  const stat2Ms = performance.now() - t
  t = performance.now()
  const n = tree.readdir(lsDir).length
  const lsMs = performance.now() - t
  process.stdout.write(JSON.stringify({ openMs, statMs, statBytes, stat2Ms, lsMs, n, ok: st.kind === 'file' && st2.kind === 'file', rssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n')
}

function dropCaches(): void {
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' })
}

function main(): void {
  const data = process.env.BENCH_PAGES_DATA
  if (!data) throw new Error('BENCH_PAGES_DATA: a copied data dir')
  const statPath = process.env.BENCH_PAGES_FILE ?? '/flat/d7/f1234'
  const rounds = Number(process.env.BENCH_PAGES_ROUNDS ?? 3)
  const indexDir = path.join(data, 'index')
  const ckpt = fs.readdirSync(indexDir).find((f) => f.endsWith('.ckpt'))!
  const v1 = { file: path.join(indexDir, ckpt), dir: path.join(indexDir, ckpt.slice(0, -5)) }
  const old = process.env.BENCH_PAGES_OLD_FILE
  const v2 = old ? v1 : { file: path.join(data, 'pages2.ckpt'), dir: path.join(data, 'pages2') }
  if (!old && !fs.existsSync(v2.file)) {
    const t = performance.now()
    const { tree, extra } = openTreeIndex(v1.file, v1.dir, ACTOR)
    const bytes = commitTreeIndex(v2.file, v2.dir, tree, extra)
    process.stdout.write(`rewrote the index with version 2 pages: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s\n`)
    tree.free()
  }
  const me = fileURLToPath(import.meta.url)
  for (let r = 0; r < rounds; r++) {
    for (const [label, x, p] of [['v1', v1, old ?? statPath], ['v2', v2, statPath]] as const) {
      if (process.env.BENCH_PAGES_DROP !== '0') dropCaches()
      const out = spawnSync(process.execPath, [me, '--child', x.file, x.dir, p.slice(0, p.lastIndexOf('/')), p], { encoding: 'utf8' })
      if (out.status !== 0) throw new Error(`child failed: ${out.stderr}`)
      process.stdout.write(`${label} round ${r}: ${out.stdout.trim()} load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n`)
    }
  }
}

if (process.argv[2] === '--child') child(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!)
else main()
