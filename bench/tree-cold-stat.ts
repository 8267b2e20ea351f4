// The first stat of one deep path after an open, on a cold page cache (issue 12: "stat ≤ 1 ms"),
// sampled: the cold part of bench/tree-scale.ts takes one sample among many other figures; this
// part (BENCH_TREE_PARTS=cold-stat, with BENCH_TREE_REUSE=DIR on a kept volume) takes
// BENCH_TREE_COLD_STAT_SAMPLES (7), each a fresh process after a page cache drop: open the
// volume, list a directory (as the cold part does), stat the deep path. Beside it, each sample:
// a fresh process stat'ing the same path in the source tree after a drop (what the local file
// system costs cold). The index reads the stat made (a cold lookup's reads are dependent: one
// path level waits for the one above it) go into the row's note.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { indexReads } from '../src/tree/index-store.js'
import { dropCaches } from './procs.js'
import type { Row } from './row.js'
import { pct } from './tree-stat.js'

const SAMPLES = Number(process.env.BENCH_TREE_COLD_STAT_SAMPLES ?? 7)

interface Sample { statMs: number; reads: number; bytes: number }

/** In a fresh process: open, list `dir`, then time the first stat of `file`. */
async function openChild(data: string, dir: string, file: string): Promise<void> {
  const node = await Node.open(DataDir.open(data))
  const vol = await node.volume('v')
  vol.tree.readdir(dir)
  const r0 = { ...indexReads }
  const t = performance.now()
  vol.tree.stat(file)
  const out: Sample = { statMs: performance.now() - t, reads: indexReads.reads - r0.reads, bytes: indexReads.bytes - r0.bytes }
  await node.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

function localChild(file: string): void {
  const t = performance.now()
  fs.statSync(file)
  process.stdout.write(JSON.stringify({ statMs: performance.now() - t }) + '\n')
}

function child(args: string[]): Sample {
  dropCaches()
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`cold-stat child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Sample
}

/** The row: the median of the samples, beside the local file system's median (alternated, same run). */
export function coldStatRows(data: string, src: string, dir: string, file: string, load: () => string): Row[] {
  const bz: Sample[] = [], local: number[] = []
  for (let i = 0; i < SAMPLES; i++) {
    bz.push(child(['--open', data, '/' + dir, '/' + file]))
    local.push(child(['--local', path.join(src, file)]).statMs)
  }
  const ms = bz.map((s) => s.statMs)
  const v = pct(ms, 0.5), b = pct(local, 0.5)
  const f = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ')
  return [{
    name: `stat of one deep path (/${file}), the first after the open, cold cache: median of ${SAMPLES} processes`, value: v, unit: 'ms', target: 1, ok: v <= 1,
    baseline: 'stat of the same path in the source tree, a fresh process after a cache drop: median', baselineValue: b, ratio: v / b,
    note: `bazil ${f(ms)} ms, index reads ${[...new Set(bz.map((s) => s.reads))].join('/')} (${f(bz.map((s) => s.bytes / 1024))} KiB); local ${f(local)} ms; ${load()}`,
  }]
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [mode, ...args] = process.argv.slice(2)
  const done = mode === '--open' ? openChild(args[0]!, args[1]!, args[2]!) : mode === '--local' ? Promise.resolve(localChild(args[0]!)) : Promise.reject(new Error(`tree-cold-stat: unknown mode ${mode}`))
  done.then(() => process.exit(0), (err) => {
    console.error(err)
    process.exit(1)
  })
}
