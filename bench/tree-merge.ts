// Merge cost of the directory state against the size of the Automerge documents it applies to
// (spec/tree.md "Shard layout"): two writers of one tree make OPS ops each apart, then each
// applies the other's changes, batched as a volume replays them. Tree level only (no logs, no
// transport: bench/tree-scale.ts measures those). Each layout is built and merged in the same
// run: records kept in their top-level shard (the 256-shard layout, no split) and split at 512.
//
// The shard size of a large volume is reached without building it: node ids are drawn from only
// FILES / SHARD_RECORDS top-level shards, so each holds what one of a volume of
// 256 * SHARD_RECORDS files would (default 3,900 records: a 1M-file volume), while the ops are
// those of the 1M-file case (scattered over every directory).
//
//   node dist/bench/tree-merge.js   sizes: BENCH_MERGE_FILES (100000), BENCH_MERGE_SHARD_RECORDS
//   (3900), BENCH_MERGE_OPS (10000 per writer), BENCH_MERGE_OPS_PER_ENTRY (1: one entry per op),
//   BENCH_MERGE_OP_DIRS (the ops touch only the first N directories; default every one),
//   BENCH_MERGE_NOSPLIT (0: skip the 256-shard layout), BENCH_MERGE_PLACED (1: also the layout with records placed near their directory, placement.ts)
import { createHash } from 'node:crypto'
import os from 'node:os'
import { Tree, nodeIdNear, CHANGE_LIMITS, canonicalDump, type IncomingChange, type ShardChange, type TreeOptions } from '../src/tree/index.js'
import { batchesByShard, windowEntry, type WindowEntry } from '../src/tree/apply-batches.js'
import type { Row } from './row.js'

const FILES = Number(process.env.BENCH_MERGE_FILES ?? 100_000)
const SHARD_RECORDS = Number(process.env.BENCH_MERGE_SHARD_RECORDS ?? 3900)
const OPS = Number(process.env.BENCH_MERGE_OPS ?? 10_000)
const PER_ENTRY = Number(process.env.BENCH_MERGE_OPS_PER_ENTRY ?? 1)
const DIR_FILES = 100
const OP_DIRS = process.env.BENCH_MERGE_OP_DIRS ? Number(process.env.BENCH_MERGE_OP_DIRS) : null
const PLACED = process.env.BENCH_MERGE_PLACED !== '0'

const hex = (n: number, chars: number): string => n.toString(16).padStart(chars, '0')

/** Deterministic ids: node ids in the first `tops` top-level shards; others unique per writer. */
function ids(writer: number, tops: number): (bytes: number) => string {
  let r = 0
  return (n) => {
    const x = createHash('sha256').update(`${writer}:${r++}`).digest('hex')
    if (n !== 16) return x.slice(0, 2 * n)
    return hex(parseInt(x.slice(0, 8), 16) % tops, 2) + x.slice(2, 32)
  }
}

function offline(t: Tree, seed: number, dirs: number): ShardChange[][] {
  dirs = Math.min(dirs, OP_DIRS ?? dirs)
  const entries: ShardChange[][] = []
  for (let i = 0; i < OPS; i++) {
    const d = (i * 7 + seed * 13) % dirs
    const f = (i * 3 + seed) % DIR_FILES
    try {
      switch (i % 4) {
        case 0: t.writeFile(`/d${d}/f${f}`, { hash: hex(10_000_000 * seed + i, 64), size: i }); break
        case 1: t.writeFile(`/d${d}/new-${seed}-${i}`, { hash: hex(10_000_000 * seed + i, 64), size: i }); break
        case 2: t.setattr(`/d${d}/f${f}`, { mode: 0o600 + seed }); break
        case 3: t.rename(`/d${((i - 2) * 7 + seed * 13) % dirs}/new-${seed}-${i - 2}`, `/d${(d + 1) % dirs}/moved-${seed}-${i}`); break
      }
    } catch { /* moved away by an earlier op */ }
    if ((i + 1) % PER_ENTRY === 0) entries.push(t.takeChanges())
  }
  entries.push(t.takeChanges())
  return entries.filter((e) => e.length > 0)
}

/**
 * Applies entries as Volume.applyValid batches them: a window of entries sorted by shard and cut
 * at one entry's limits per call (apply-batches.ts); `order` 'log': cut in log order, as before.
 */
function merge(t: Tree, entries: ShardChange[][], writer: string, order: 'shard' | 'log' = 'shard'): { ms: number; calls: number } {
  const t0 = performance.now()
  // Plain loops, as in Volume.applyValid (V8 20 crashed twice in its deoptimizer in this
  // function with Tree.apply and entryCost inside array-builtin callbacks; cause not proven).
  const window: WindowEntry<ShardChange>[] = []
  for (const e of entries) window.push(windowEntry(e))
  const batches = order === 'shard' ? batchesByShard(window, CHANGE_LIMITS.entryOps, CHANGE_LIMITS.entryBytes) : inLogOrder(window)
  for (const batch of batches) {
    const incoming: IncomingChange[] = []
    for (const c of batch) incoming.push({ ...c, writer })
    const rejected = t.apply(incoming)
    if (rejected.length > 0) throw new Error(`rejected: ${rejected[0].reason}`)
  }
  return { ms: performance.now() - t0, calls: batches.length }
}

function inLogOrder(window: { changes: ShardChange[]; ops: number; bytes: number }[]): ShardChange[][] {
  const out: ShardChange[][] = []
  let batch: ShardChange[] = [], ops = 0, bytes = 0
  for (const e of window) {
    if (batch.length > 0 && (ops + e.ops > CHANGE_LIMITS.entryOps || bytes + e.bytes > CHANGE_LIMITS.entryBytes)) {
      out.push(batch)
      batch = []; ops = 0; bytes = 0
    }
    batch.push(...e.changes)
    ops += e.ops
    bytes += e.bytes
  }
  if (batch.length > 0) out.push(batch)
  return out
}

/** Tree options of writer `w`: ids in the first `tops` top-level shards, placed near their directory or not. */
function opts(w: number, tops: number, splitAt: number, placed: boolean): TreeOptions {
  const random = ids(w, tops)
  return placed ? { random, splitAt, nodeId: (parent, kind) => nodeIdNear(parent, kind, random) } : { random, splitAt }
}

async function layout(name: string, splitAt: number, placed = false): Promise<Row[]> {
  const tops = Math.max(1, Math.min(256, Math.ceil(FILES / SHARD_RECORDS)))
  const dirs = Math.ceil(FILES / DIR_FILES)
  const [wa, wb] = ['aa'.repeat(32), 'bb'.repeat(32)]
  let t0 = performance.now()
  const a = Tree.create(wa, opts(1, tops, splitAt, placed))
  for (let d = 0; d < dirs; d++) {
    a.mkdir(`/d${d}`)
    for (let f = 0; f < DIR_FILES; f++) a.writeFile(`/d${d}/f${f}`, { hash: hex(d * DIR_FILES + f + 1, 64), size: f })
    if (d % 20 === 19) a.takeChanges()
  }
  a.takeChanges()
  const built = performance.now() - t0
  const state = a.exportState()
  const b = Tree.restore(wb, state, opts(2, tops, splitAt, placed))
  const shardSizes = new Map<string, number>()
  for (const n of state.nodes) shardSizes.set(n.shard ?? n.id.slice(0, 2), (shardSizes.get(n.shard ?? n.id.slice(0, 2)) ?? 0) + 1)
  const largest = Math.max(...shardSizes.values())
  t0 = performance.now()
  const ea = offline(a, 1, dirs), eb = offline(b, 2, dirs)
  const offMs = performance.now() - t0
  // Both sides hot (the ops just loaded what they touch), as right after working apart.
  const ma = merge(a, eb, wb)
  const mb = merge(b, ea, wa)
  const same = JSON.stringify(canonicalDump(a)) === JSON.stringify(canonicalDump(b))
  // The same merge into shards saved and freed (a server idle since: IDLE_MS evicts).
  const cold = Tree.restore(wa, state, opts(1, tops, splitAt, placed))
  cold.applyChanges(ea.flat())
  cold.evict()
  const mc = merge(cold, eb, wb)
  // And cut in log order (how a volume batched before apply-batches.ts), into shards as cold.
  const coldLog = Tree.restore(wa, state, opts(1, tops, splitAt, placed))
  coldLog.applyChanges(ea.flat())
  coldLog.evict()
  const ml = merge(coldLog, eb, wb, 'log')
  const sameLog = JSON.stringify(canonicalDump(cold)) === JSON.stringify(canonicalDump(coldLog))
  const rows: Row[] = [
    { name: `${name}: build ${FILES} files (${shardSizes.size} shards, largest ${largest} records)`, value: built / 1000, unit: 's', note: `${OPS} offline ops per writer ${(offMs / 2000).toFixed(1)} s` },
    { name: `${name}: merge ${OPS}+${OPS} ops, ${PER_ENTRY} op(s) per entry, shards hot (per writer)`, value: (ma.ms + mb.ms) / 2000, unit: 's', note: `a ${(ma.ms / 1000).toFixed(2)} s in ${ma.calls} calls, b ${(mb.ms / 1000).toFixed(2)} s; ${ea.length}+${eb.length} entries; same state: ${same}` },
    { name: `${name}: the same merge into cold shards (loaded as touched)`, value: mc.ms / 1000, unit: 's', note: `${mc.calls} calls; shard loads ${cold.shardStats.loads} of ${cold.shardStats.total}; ops in ${Math.min(dirs, OP_DIRS ?? dirs)} of ${dirs} directories` },
    { name: `${name}: the same cold merge cut in log order (before apply-batches.ts)`, value: ml.ms / 1000, unit: 's', note: `${ml.calls} calls; by shard / log order ${(mc.ms / ml.ms).toFixed(2)}; same state: ${sameLog}` },
  ]
  for (const t of [a, b, cold, coldLog]) t.free()
  if (!same || !sameLog) throw new Error(`${name}: the writers did not converge`)
  return rows
}

export async function run(): Promise<Row[]> {
  const noSplit = process.env.BENCH_MERGE_NOSPLIT !== '0' ? await layout('no split (256-shard layout)', Number.MAX_SAFE_INTEGER) : null
  const split = await layout('split at 512', 512)
  const rows = [...noSplit ?? [], ...split]
  const coldNew = split[2]!
  if (noSplit) {
    rows.push({ name: 'merge, shards hot: split / no split', value: split[1]!.value / noSplit[1]!.value, unit: 'ratio' })
    rows.push({ name: 'merge, shards cold: split / no split', value: coldNew.value / noSplit[2]!.value, unit: 'ratio' })
  }
  if (PLACED) {
    const placed = await layout('split at 512, placed near the directory', 512, true)
    rows.push(...placed)
    rows.push({ name: 'merge, shards cold: placed / random ids (both split)', value: placed[2]!.value / coldNew.value, unit: 'ratio' })
  }
  return rows
}

if (process.argv[1]?.endsWith('tree-merge.js')) {
  const rows = await run()
  console.log(`tree-merge: ${FILES} files, top-level shards of ~${SHARD_RECORDS} records, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`)
  for (const r of rows) console.log(`${r.name.padEnd(90)} ${r.value.toFixed(3).padStart(9)} ${r.unit}${r.note ? `  ${r.note}` : ''}`)
}
