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
//   BENCH_MERGE_FLOOR=1: instead, the Automerge floor of a spread merge (floor() below; _PER_ENTRY, _PROFILE=DIR, _SAVE=FILE, _LOG)
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import * as A from '@automerge/automerge'
import { Tree, nodeIdNear, CHANGE_LIMITS, canonicalDump, entryBudget, readChangeHeader, type IncomingChange, type ShardChange, type TreeOptions } from '../src/tree/index.js'
import { windowEntry, type WindowEntry } from '../src/tree/apply-batches.js'
import type { Handle } from '../src/tree/automerge-handle.js'
import { reserveAutomergeHeap } from '../src/tree/wasm-heap.js'
import type { Row } from './row.js'
import { profileTo, summarizeProfile } from './profile-summary.js'

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

function offline(t: Tree, seed: number, dirs: number, perEntry = PER_ENTRY, hash: (n: number) => string = (n) => hex(n, 64)): ShardChange[][] {
  dirs = Math.min(dirs, OP_DIRS ?? dirs)
  const entries: ShardChange[][] = []
  for (let i = 0; i < OPS; i++) {
    const d = (i * 7 + seed * 13) % dirs
    const f = (i * 3 + seed) % DIR_FILES
    try {
      switch (i % 4) {
        case 0: t.writeFile(`/d${d}/f${f}`, { hash: hash(10_000_000 * seed + i), size: i }); break
        case 1: t.writeFile(`/d${d}/new-${seed}-${i}`, { hash: hash(10_000_000 * seed + i), size: i }); break
        case 2: t.setattr(`/d${d}/f${f}`, { mode: 0o600 + seed }); break
        case 3: t.rename(`/d${((i - 2) * 7 + seed * 13) % dirs}/new-${seed}-${i - 2}`, `/d${(d + 1) % dirs}/moved-${seed}-${i}`); break
      }
    } catch { /* moved away by an earlier op */ }
    if ((i + 1) % perEntry === 0) entries.push(t.takeChanges())
  }
  entries.push(t.takeChanges())
  return entries.filter((e) => e.length > 0)
}

/**
 * Applies entries as Volume.applyValid does: the window through Tree.applySteps (each shard's
 * changes in one call, steps of one entry's ops); `order` 'log': cut in log order into calls of
 * one entry's limits (how a volume batched before apply-batches.ts).
 */
function merge(t: Tree, entries: ShardChange[][], writer: string, order: 'shard' | 'log' = 'shard'): { ms: number; calls: number } {
  const t0 = performance.now()
  // Plain loops, as in Volume.applyValid (V8 20 crashed twice in its deoptimizer in this
  // function with Tree.apply and entryCost inside array-builtin callbacks; cause not proven).
  if (order === 'shard') {
    const incoming: IncomingChange[] = []
    for (const e of entries) for (const c of e) incoming.push({ ...c, writer })
    const steps = t.applySteps(incoming, CHANGE_LIMITS.entryOps)
    let calls = 0
    for (let r = steps.next(); r !== null; r = steps.next(), calls++) if (r.length > 0) throw new Error(`rejected: ${r[0]!.reason}`)
    return { ms: performance.now() - t0, calls }
  }
  const window: WindowEntry<ShardChange>[] = []
  for (const e of entries) window.push(windowEntry(e))
  for (const batch of inLogOrder(window)) {
    const incoming: IncomingChange[] = []
    for (const c of batch) incoming.push({ ...c, writer })
    const rejected = t.apply(incoming)
    if (rejected.length > 0) throw new Error(`rejected: ${rejected[0].reason}`)
  }
  return { ms: performance.now() - t0, calls: inLogOrder(window).length }
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
  if (process.env.BENCH_MERGE_FLOOR === '1') return await floor()
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

// ---- the Automerge floor of a spread merge (BENCH_MERGE_FLOOR=1) ------------------------------
//
// What Automerge alone costs for what a spread merge at 1M makes it do (bench/README "Session 12,
// helper automerge"): every shard the other writer's changes touch loaded from its saved bytes,
// then those changes applied; against the same through Tree.apply (checks, held changes, the
// diff, the records read back, the index update). Shards of ≤ 512 records as at 1M (the layout
// placed and split: the ids of 256 * SHARD_RECORDS files), entries as the mount groups them
// (BENCH_MERGE_FLOOR_PER_ENTRY ops per entry, default 50: 10k ops made ~200 entries per writer at
// 1M, one change per touched shard each). BENCH_MERGE_FLOOR_PROFILE=DIR profiles the Tree.apply run.

/** Wall and CPU (user + system) milliseconds of `fn`. */
function timed(fn: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  fn()
  const c = process.cpuUsage(c0)
  return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 }
}

/** Automerge's wasm `load` (what `A.load` calls before materializing the JS document): loads with or without the heads check. */
function wasmLoad(): (bytes: Uint8Array, actor: string, unchecked: boolean) => Handle {
  const req = createRequire(import.meta.url)
  const dist = path.dirname(path.dirname(req.resolve('@automerge/automerge')))
  // The very module the package's node entry imports (one wasm instance, one heap).
  const api = req(path.join(dist, 'mjs', 'wasm_bindgen_output', 'nodejs', 'automerge_wasm.cjs')) as { load: (b: Uint8Array, o: object) => Handle }
  const probe = api.load(A.save(A.init()), {})
  const same = Object.getPrototypeOf(probe) === Object.getPrototypeOf(A.getBackend(A.init()))
  probe.free()
  if (!same) throw new Error('automerge: a second wasm instance')
  return (bytes, actor, unchecked) => api.load(bytes, { actor, unchecked })
}

async function floor(): Promise<Row[]> {
  const perEntry = Number(process.env.BENCH_MERGE_FLOOR_PER_ENTRY ?? 50)
  const tops = Math.max(1, Math.min(256, Math.ceil(FILES / SHARD_RECORDS)))
  const dirs = Math.ceil(FILES / DIR_FILES)
  const [wa, wb] = ['aa'.repeat(32), 'bb'.repeat(32)]
  // Content hashes as real ones are (random-looking: they do not compress in a save).
  const hash = (n: number): string => createHash('sha256').update(String(n)).digest('hex')
  const a = Tree.create(wa, opts(1, tops, 512, true))
  for (let d = 0; d < dirs; d++) {
    a.mkdir(`/d${d}`)
    for (let f = 0; f < DIR_FILES; f++) a.writeFile(`/d${d}/f${f}`, { hash: hash(d * DIR_FILES + f + 1), size: f })
    if (d % 20 === 19) a.takeChanges()
  }
  a.takeChanges()
  const state = a.exportState()
  const b = Tree.restore(wb, state, opts(2, tops, 512, true))
  if (process.env.BENCH_MERGE_FLOOR_LOG) process.stderr.write('floor: built\n')
  // Headroom first: V8 20 aborted in its deoptimizer twice here (offline b at 100k) while
  // Automerge's heap grew under an array builtin's callback (wasm-heap.ts).
  reserveAutomergeHeap(256 * 2 ** 20)
  const ea = offline(a, 1, dirs, perEntry, hash)
  reserveAutomergeHeap(256 * 2 ** 20)
  if (process.env.BENCH_MERGE_FLOOR_LOG) process.stderr.write('floor: offline a\n')
  const eb = offline(b, 2, dirs, perEntry, hash)
  if (process.env.BENCH_MERGE_FLOOR_LOG) process.stderr.write('floor: offline b\n')
  a.free()
  b.free()
  // a as it is when b's changes arrive: its own changes in, every shard saved and freed.
  const cold = Tree.restore(wa, state, opts(1, tops, 512, true))
  cold.applyChanges(ea.flat())
  cold.evict()
  if (process.env.BENCH_MERGE_FLOOR_LOG) process.stderr.write('floor: cold\n')
  const saved = cold.exportState().shards
  cold.free()
  const window: WindowEntry<ShardChange>[] = []
  for (const e of eb) window.push(windowEntry(e))
  const batches = batchesByShard(window, CHANGE_LIMITS.entryOps, CHANGE_LIMITS.entryBytes)
  // Per shard: its changes in log order (causal order), and per replay call its part.
  const byShard = new Map<string, Uint8Array[]>()
  for (const e of eb) for (const c of e) {
    let l = byShard.get(c.shard)
    if (!l) byShard.set(c.shard, (l = []))
    l.push(c.change)
  }
  // Plain loops (V8 20 crashed in its deoptimizer with these inside array-builtin callbacks: see merge()).
  const calls: Map<string, Uint8Array[]>[] = []
  let shardCalls = 0
  for (const batch of batches) {
    const m = new Map<string, Uint8Array[]>()
    for (const c of batch) {
      let l = m.get(c.shard)
      if (!l) m.set(c.shard, (l = []))
      l.push(c.change)
    }
    calls.push(m)
    shardCalls += m.size
  }
  const shards = [...byShard.keys()].sort()
  let changes = 0
  for (const e of eb) changes += e.length
  const perShardRecords = new Map<string, number>()
  for (const x of state.nodes) perShardRecords.set(x.shard ?? x.id.slice(0, 2), (perShardRecords.get(x.shard ?? x.id.slice(0, 2)) ?? 0) + 1)
  let records = 0, bytes = 0
  for (const s of shards) {
    records += perShardRecords.get(s) ?? 0
    bytes += saved.get(s)?.bytes.length ?? 0
  }
  const load = wasmLoad()
  const saveTo = process.env.BENCH_MERGE_FLOOR_SAVE
  if (saveTo) {
    // The touched shards' saves and their changes, for a fresh process to measure (length-prefixed: name, bytes, count, changes).
    const parts: Buffer[] = []
    const str = (x: string): Buffer => { const b = Buffer.from(x); const n = Buffer.alloc(4); n.writeUInt32LE(b.length); return Buffer.concat([n, b]) }
    const bin = (x: Uint8Array): Buffer => { const n = Buffer.alloc(4); n.writeUInt32LE(x.length); return Buffer.concat([n, Buffer.from(x)]) }
    for (const s of shards) {
      parts.push(str(s), bin(saved.get(s)?.bytes ?? new Uint8Array(0)))
      const list = byShard.get(s)!
      const n = Buffer.alloc(4)
      n.writeUInt32LE(list.length)
      parts.push(n)
      for (const c of list) parts.push(bin(c))
    }
    fs.writeFileSync(saveTo, Buffer.concat(parts))
  }

  const docs = new Map<string, Handle>()
  // The same shards saved without compression (Automerge's saveNoCompress): what a load costs without inflating.
  const plain = new Map<string, Uint8Array>()
  for (const [s, c] of saved) {
    if (!byShard.has(s)) continue
    const h = A.getBackend(A.init<unknown>({ actor: wa }))
    h.loadIncremental(c.bytes)
    plain.set(s, h.saveNoCompress())
    h.free()
  }
  let plainBytes = 0
  for (const b of plain.values()) plainBytes += b.length
  const loadAll = (how: 'incremental' | 'checked' | 'unchecked' | 'plain'): void => {
    for (const s of shards) {
      const b = how === 'plain' ? plain.get(s) : saved.get(s)?.bytes
      if (b === undefined) docs.set(s, A.getBackend(A.init<unknown>({ actor: wa }))) // a shard b made
      else if (how === 'incremental' || how === 'plain') {
        const h = A.getBackend(A.init<unknown>({ actor: wa }))
        h.loadIncremental(b)
        docs.set(s, h)
      } else docs.set(s, load(b, wa, how === 'unchecked'))
    }
  }
  const freeAll = (): void => {
    for (const h of docs.values()) h.free()
    docs.clear()
  }
  const perShard = (): void => { for (const s of shards) docs.get(s)!.applyChanges(byShard.get(s)!) }
  const perCall = (ours: boolean): void => {
    for (const m of calls) for (const [s, list] of m) {
      const h = docs.get(s)!
      if (!ours) {
        h.applyChanges(list)
        continue
      }
      // What Tree.applyShard asks of Automerge around the apply (its own work left out).
      h.getMissingDeps([])
      const before = h.getHeads()
      h.updateDiffCursor()
      h.applyChanges(list)
      h.getHeads()
      if (before.length > 0) h.diffIncremental()
    }
  }
  const say = (m: string): void => { if (process.env.BENCH_MERGE_FLOOR_LOG) process.stderr.write(`floor: ${m}\n`) }
  const run = (name: string, how: 'incremental' | 'checked' | 'unchecked' | 'plain', apply: (() => void) | null): { name: string; load: { wall: number; cpu: number }; apply: { wall: number; cpu: number } | null } => {
    say(name)
    const l = timed(() => loadAll(how))
    const x = apply ? timed(apply) : null
    freeAll()
    return { name, load: l, apply: x }
  }
  // Warm up the heap (wasm memory never shrinks: later runs allocate in what the first grew).
  run('warm-up', 'incremental', perShard)
  const prof = process.env.BENCH_MERGE_FLOOR_PROFILE
  if (prof) fs.mkdirSync(prof, { recursive: true })
  const results = [
    run('load (loadIncremental into an empty doc, as Shards.node)', 'incremental', null),
    run('load (wasm load, heads checked)', 'checked', null),
    run('load (wasm load, unchecked)', 'unchecked', null),
    run(`load of the same saved uncompressed (${(plainBytes / 2 ** 20).toFixed(1)} MiB: saveNoCompress)`, 'plain', null),
  ]
  // The floor itself, profiled: every touched shard loaded, then its changes in one call.
  const floorProf = prof ? path.join(prof, `floor-automerge-${Date.now()}.cpuprofile`) : null
  const stopFloor = await profileTo(floorProf)
  results.push(run('apply, one applyChanges per shard (all its changes)', 'incremental', perShard))
  await stopFloor()
  results.push(
    run(`apply, one applyChanges per shard per replay call (${batches.length} calls)`, 'incremental', () => perCall(false)),
    run('the same + what applyShard asks of Automerge (missing deps, heads, diff cursor, diffIncremental)', 'incremental', () => perCall(true)),
    run('load + apply again, one applyChanges per shard', 'incremental', perShard),
  )
  say('checks')
  // Our checks alone: header parse, SHA-256, limits and claims of every change.
  const checks = timed(() => { for (const e of eb) { const budget = entryBudget(); for (const c of e) readChangeHeader(c.change, budget) } })
  // The whole, into a cold tree as `cold` is: before (Tree.apply per replay call, batches cut
  // by entries: apply-batches.ts until session 12) and now (Tree.applySteps over the window, as
  // replay applies it), twice each in turn; the first of each profiled with BENCH_MERGE_FLOOR_PROFILE.
  const fresh = (): Tree => {
    const t = Tree.restore(wa, state, opts(1, tops, 512, true))
    t.applyChanges(ea.flat())
    t.evict()
    return t
  }
  const incomingOf = (list: ShardChange[]): IncomingChange[] => {
    const out: IncomingChange[] = []
    for (const c of list) out.push({ ...c, writer: wb })
    return out
  }
  const before = (t: Tree): void => {
    for (const batch of batches) {
      const rejected = t.apply(incomingOf(batch))
      if (rejected.length > 0) throw new Error(`rejected: ${rejected[0]!.reason}`)
    }
  }
  const ebFlat: ShardChange[] = []
  for (const e of eb) for (const c of e) ebFlat.push(c)
  const now = (t: Tree): void => {
    const steps = t.applySteps(incomingOf(ebFlat), CHANGE_LIMITS.entryOps)
    for (let r = steps.next(); r !== null; r = steps.next()) if (r.length > 0) throw new Error(`rejected: ${r[0]!.reason}`)
  }
  const wholeRuns: { name: string; cpu: number; wall: number; loads: number; calls: number; prof: string | null; dump: string }[] = []
  for (const [k, [name, fn]] of ([['before', before], ['now', now], ['before', before], ['now', now]] as const).entries()) {
    const t = fresh()
    const loads0 = t.shardStats.loads
    const profFile = prof && k < 2 ? path.join(prof, `floor-${name}-${Date.now()}.cpuprofile`) : null
    say(`Tree ${name}`)
    const stop = await profileTo(profFile)
    const x = timed(() => fn(t))
    await stop()
    wholeRuns.push({ name, cpu: x.cpu, wall: x.wall, loads: t.shardStats.loads - loads0, calls: 0, prof: profFile, dump: k < 2 ? JSON.stringify(canonicalDump(t)) : '' })
    t.free()
  }
  if (wholeRuns[0]!.dump !== wholeRuns[1]!.dump) throw new Error('floor: Tree.applySteps and Tree.apply ended in different states')
  let loaded = 0
  for (const s of shards) if (saved.has(s)) loaded++
  const us = (ms: number, n: number): string => `${((ms * 1000) / n).toFixed(0)} µs`
  const setup = `${FILES} files, ${saved.size} shards; b's ${OPS} ops in ${eb.length} entries of ${perEntry} ops: ${changes} changes into ${shards.length} shards (${shards.filter((x) => !saved.has(x)).length} new; ${records} records, ${(bytes / 2 ** 20).toFixed(1)} MiB saved), ${shardCalls} (shard, call) pairs in ${batches.length} calls`
  const rows: Row[] = [{ name: `floor setup`, value: changes, unit: 'changes', note: setup }]
  const loadInc = results[0]!.load
  for (const r of results) {
    const note = `load ${r.load.cpu.toFixed(0)} ms CPU (${us(r.load.cpu, loaded)} per shard loaded, wall ${r.load.wall.toFixed(0)})` +
      (r.apply ? `; apply ${r.apply.cpu.toFixed(0)} ms CPU (${us(r.apply.cpu, changes)} per change, wall ${r.apply.wall.toFixed(0)})` : '')
    rows.push({ name: `floor: ${r.name}`, value: (r.load.cpu + (r.apply?.cpu ?? 0)) / 1000, unit: 's CPU', note: note + (r === results[4] && floorProf ? `; profile ${floorProf}: ${summaryOf(floorProf)}` : '') })
  }
  rows.push({ name: 'floor: our change checks alone (readChangeHeader: parse, SHA-256, limits, claims)', value: checks.cpu / 1000, unit: 's CPU', note: `${us(checks.cpu, changes)} per change` })
  const floorCpu = loadInc.cpu + results[4]!.apply!.cpu
  for (const r of wholeRuns) {
    rows.push({
      name: r.name === 'before' ? `Tree.apply of the same, ${batches.length} calls (replay before session 12)` : 'Tree.applySteps of the same, the window at once (replay now)',
      value: r.cpu / 1000, unit: 's CPU',
      note: `wall ${(r.wall / 1000).toFixed(2)} s; shard loads ${r.loads}; Automerge floor (load + one apply per shard) ${(floorCpu / 1000).toFixed(2)} s CPU: ours ${((r.cpu - floorCpu) / 1000).toFixed(2)} s (${(100 * (r.cpu - floorCpu) / r.cpu).toFixed(0)}%)` +
        (r.prof ? `; profile ${r.prof}: ${summaryOf(r.prof)}` : ''),
    })
  }
  return rows
}

function summaryOf(file: string): string {
  const s = summarizeProfile(file, { top: 20 })
  return `busy ${s.busySecs.toFixed(2)} s; by package: ${s.packages}; by function: ${s.functions}`
}

/** How replay cut a window into Tree.apply calls until session 12 (the baseline): by first shard, each call within one entry's limits, entries whole. */
function batchesByShard<C>(entries: readonly WindowEntry<C>[], maxOps: number, maxBytes: number): C[][] {
  const order: { e: WindowEntry<C>; i: number; shard: string }[] = []
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    let shard = e.shards.length > 0 ? e.shards[0]! : ''
    for (const s of e.shards) if (s < shard) shard = s
    order.push({ e, i, shard })
  }
  order.sort((a, b) => (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : a.i - b.i))
  const out: C[][] = []
  let batch: C[] = []
  let ops = 0
  let bytes = 0
  for (const { e } of order) {
    if (batch.length > 0 && (ops + e.ops > maxOps || bytes + e.bytes > maxBytes)) {
      out.push(batch)
      batch = []
      ops = 0
      bytes = 0
    }
    for (const c of e.changes) batch.push(c)
    ops += e.ops
    bytes += e.bytes
  }
  if (batch.length > 0) out.push(batch)
  return out
}
