// Directory-state scale: a volume of ~100k files in 1k directories (metadata only: fake
// content refs), reopened from its checkpoint, listed, stat'ed; then two writers each make
// 10k ops offline and merge. Runs alone (`node dist/bench/tree-scale.js`, writes
// bench/results/tree-scale.json) or from bench/run.ts through `run()`.
//
// Sizes: BENCH_TREE_FILES (default 100000), BENCH_TREE_DIRS (1000), BENCH_TREE_BIG (10000
// entries in /big), BENCH_TREE_OPS (10000 offline ops per writer), BENCH_TREE_COMMIT_MS (100:
// ops are logged as the mount logs them, one entry per commit window), BENCH_TREE_WORST (1: also
// merge with one entry per op, the worst case, next to raw hypercore replication of the same
// blocks: the transport's floor).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume.js'
import type { Row } from './row.js'
export type { Row }


const FILES = Number(process.env.BENCH_TREE_FILES ?? 100_000)
const DIRS = Number(process.env.BENCH_TREE_DIRS ?? 1000)
const BIG = Number(process.env.BENCH_TREE_BIG ?? 10_000)
const OPS = Number(process.env.BENCH_TREE_OPS ?? 10_000)
const COMMIT_MS = Number(process.env.BENCH_TREE_COMMIT_MS ?? 100)
const WORST = process.env.BENCH_TREE_WORST !== '0'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')

const fakeHash = (n: number): string => n.toString(16).padStart(64, '0')

function fakeWrite(vol: Volume, p: string, n: number): void {
  vol.mutate((t) => t.writeFile(p, { hash: fakeHash(n), size: n % 100_000 }), (st) => ({ op: 'write', path: st.path, size: st.size, hash: st.content?.hash }))
}

/** Builds the volume: /big with BIG files, the rest spread over DIRS-1 dirs. */
async function build(vol: Volume): Promise<void> {
  vol.mkdir('/big')
  let n = 1
  for (let i = 0; i < BIG; i++) {
    fakeWrite(vol, `/big/f${i}`, n++)
    await vol.maybeFlush()
  }
  const rest = FILES - BIG
  const per = Math.ceil(rest / (DIRS - 1))
  for (let d = 0; d < DIRS - 1; d++) {
    vol.mkdir(`/d${d}`)
    for (let f = 0; f < per && n <= FILES; f++) {
      fakeWrite(vol, `/d${d}/f${f}`, n++)
      await vol.maybeFlush()
    }
  }
  await vol.flush()
}

/** The child process that reopens the volume: timings and its own peak RSS. */
async function reopenChild(dataDir: string): Promise<void> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const node = await Node.open(DataDir.open(dataDir))
  const vol = await node.volume('v')
  const reopenMs = performance.now() - t0
  const c1 = process.cpuUsage(c0)
  const reopenCpuMs = (c1.user + c1.system) / 1000
  let t = performance.now()
  // What `volume ls` does for each entry: stat it and format a line.
  const lines = vol.tree.readdir('/big').map((e) => `${e.kind === 'dir' ? e.name + '/' : e.name}`)
  const lsMs = performance.now() - t
  t = performance.now()
  const st = vol.tree.stat(`/d${Math.floor((DIRS - 1) / 2)}/f7`)
  const statMs = performance.now() - t
  const out = {
    reopenMs, reopenCpuMs, lsMs, statMs, load: os.loadavg()[0], entries: lines.length, statOk: st.kind === 'file',
    fromCheckpoint: vol.opened.fromCheckpoint, replayed: vol.opened.replayedEntries,
    shards: vol.tree.shardStats, rssMiB: process.resourceUsage().maxRSS / 1024,
  }
  await node.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

function child(args: string[]): Record<string, number | boolean | object> {
  const script = fileURLToPath(import.meta.url)
  const r = spawnSync(process.execPath, [...process.execArgv, script, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`child ${args.join(' ')} failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

/** Waits for `cond`; live application (driven by replication events) does the work, `vols` get explicit refreshes. */
async function waitFor(cond: () => boolean, vols: Volume[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await Promise.all(vols.map((v) => v.refresh()))
    await new Promise((r) => setTimeout(r, 5))
  }
}

const caughtUp = (v: Volume, o: Volume): boolean => v.replayState().every((s) => s.applied >= (o.writers.get(s.writer)?.length ?? 0))

/**
 * Each writer makes OPS ops while apart: rewrites, creates, renames, chmods across the tree.
 * `commitMs` null: one entry per op; else an entry whenever `commitMs` passed since the last
 * one (what the mount does). Returns the entries written.
 */
async function offlineOps(vol: Volume, seed: number, commitMs: number | null): Promise<number> {
  const per = Math.ceil((FILES - BIG) / (DIRS - 1))
  const len0 = vol.log.length
  let last = performance.now()
  for (let i = 0; i < OPS; i++) {
    const d = (i * 7 + seed * 13) % (DIRS - 1)
    const f = (i * 3 + seed) % per
    const p = `/d${d}/f${f}`
    try {
      switch (i % 4) {
        case 0: fakeWrite(vol, p, 10_000_000 * seed + i); break
        case 1: fakeWrite(vol, `/d${d}/new-${seed}-${i}`, 10_000_000 * seed + i); break
        case 2: vol.setattr(p, { mode: 0o600 + seed }); break
        case 3: {
          const from = ((i - 2) * 7 + seed * 13) % (DIRS - 1) // where op i-2 created it
          vol.rename(`/d${from}/new-${seed}-${i - 2}`, `/d${(d + 1) % (DIRS - 1)}/moved-${seed}-${i}`)
          break
        }
      }
    } catch {
      // a path the other ops already moved: skip, as a user would get ENOENT
    }
    if (commitMs === null || performance.now() - last >= commitMs) {
      await vol.flush()
      last = performance.now()
    }
  }
  await vol.flush()
  return vol.log.length - len0
}

/** Raw hypercore replication of two logs of the given block sizes, both ways at once, in one process: the transport alone. */
async function rawReplication(tmp: string, sizesA: number[], sizesB: number[]): Promise<number> {
  const { default: Corestore } = await import('corestore')
  const sa = new Corestore(path.join(tmp, 'raw-a')), sb = new Corestore(path.join(tmp, 'raw-b'))
  const fill = async (store: InstanceType<typeof Corestore>, sizes: number[]) => {
    const core = store.get({ name: 'log' })
    await core.ready()
    for (let i = 0; i < sizes.length; i += 100) await core.append(sizes.slice(i, i + 100).map((n) => randomBytes(n)))
    return core
  }
  const ca = await fill(sa, sizesA), cb = await fill(sb, sizesB)
  const ra = sb.get({ key: ca.key }), rb = sa.get({ key: cb.key })
  await Promise.all([ra.ready(), rb.ready()])
  const t = performance.now()
  const s1 = sa.replicate(true), s2 = sb.replicate(false)
  s1.pipe(s2).pipe(s1)
  const d1 = ra.download({ start: 0, end: -1 }), d2 = rb.download({ start: 0, end: -1 })
  while (ra.contiguousLength < sizesA.length || rb.contiguousLength < sizesB.length) await new Promise((r) => setTimeout(r, 2))
  const ms = performance.now() - t
  d1.destroy(); d2.destroy(); s1.destroy(); s2.destroy()
  await sa.close(); await sb.close()
  return ms
}

async function blockSizes(vol: Volume, from: number): Promise<number[]> {
  const out: number[] = []
  for (let i = from; i < vol.log.core.length; i++) out.push((await vol.log.core.get(i))!.length)
  return out
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-tree-scale-'))
  try {
    const sharing = randomBytes(32)
    const dirA = path.join(tmp, 'a'), dirB = path.join(tmp, 'b')
    // a creates the volume (its genesis makes a the root writer); b gets the same record, as `volume connect` writes it.
    DataDir.create(dirA).addSharingKey('shared', sharing)
    let t = performance.now()
    let nodeA = await Node.open(DataDir.open(dirA))
    let a = await nodeA.createVolume('v', 'shared')
    const record = nodeA.dir.volumeEntry('v')
    const ddB = DataDir.create(dirB)
    ddB.addSharingKey('shared', sharing)
    ddB.addVolume(record)
    await build(a)
    rows.push({ name: `build ${FILES} files in ${DIRS} dirs (one writer, batched entries)`, value: (performance.now() - t) / 1000, unit: 's' })
    t = performance.now()
    await nodeA.close() // writes the checkpoint
    rows.push({ name: 'close (write checkpoint)', value: (performance.now() - t) / 1000, unit: 's', note: `${(fs.statSync(path.join(dirA, 'index', record.id + '.ckpt')).size / 2 ** 20).toFixed(1)} MiB` })

    const r = child(['--reopen', dirA])
    if (!r.fromCheckpoint) throw new Error('reopen did not use the checkpoint')
    rows.push({ name: `reopen volume of ${FILES} files (checkpoint)`, value: (r.reopenMs as number) / 1000, unit: 's', target: 1, ok: (r.reopenMs as number) <= 1000, note: `cpu ${((r.reopenCpuMs as number) / 1000).toFixed(2)} s, load avg ${(r.load as number).toFixed(1)} on ${os.cpus().length} cpus; shards loaded: ${JSON.stringify(r.shards)}` })
    rows.push({ name: `ls of a ${r.entries}-entry directory`, value: (r.lsMs as number) / 1000, unit: 's', target: 0.2, ok: (r.lsMs as number) <= 200 })
    rows.push({ name: 'stat of one path', value: r.statMs as number, unit: 'ms' })
    rows.push({ name: 'peak RSS of the reopening process', value: r.rssMiB as number, unit: 'MiB', target: 300, ok: (r.rssMiB as number) <= 300 })

    // Second writer: replicate the whole volume to b, then both work apart and merge.
    nodeA = await Node.open(DataDir.open(dirA))
    a = await nodeA.volume('v')
    const nodeB = await Node.open(DataDir.open(dirB))
    const b = await nodeB.volume('v')
    await a.addWriter(b.log.key)
    await b.addWriter(a.log.key)
    // b writes only once the root's log admits its node (spec/protocol.md, "Writer logs"); b sees that at the first sync.
    await a.admitNode(nodeB.dir.publicKey)
    const connect = (): (() => void) => {
      const s1 = nodeA.store.replicate(true), s2 = nodeB.store.replicate(false)
      s1.pipe(s2).pipe(s1)
      return () => { s1.destroy(); s2.destroy() }
    }
    t = performance.now()
    let disconnect = connect()
    await waitFor(() => caughtUp(b, a), [a, b], 600_000)
    rows.push({ name: `second writer: first sync of ${FILES} files`, value: (performance.now() - t) / 1000, unit: 's' })
    disconnect()

    /** Both writers work apart, then reconnect until each has applied all of the other's log. */
    const mergeRound = async (label: string, commitMs: number | null, seed: number): Promise<{ sizes: number[][] }> => {
      const from = [a.log.length, b.log.length]
      t = performance.now()
      const entries = [await offlineOps(a, seed, commitMs), await offlineOps(b, seed + 1, commitMs)]
      rows.push({ name: `${OPS} offline ops on each writer, ${label}`, value: (performance.now() - t) / 2000, unit: 's per writer', note: `${entries[0]} + ${entries[1]} log entries` })
      const before = [{ ...a.stats }, { ...b.stats }]
      const loads0 = [a.tree.shardStats.loads, b.tree.shardStats.loads]
      const cpu0 = process.cpuUsage()
      t = performance.now()
      disconnect = connect()
      await waitFor(() => caughtUp(a, b) && caughtUp(b, a), [], 600_000)
      const mergeS = (performance.now() - t) / 1000
      const cpu = process.cpuUsage(cpu0)
      disconnect()
      const cost = [a, b].map((v, k) => `${'ab'[k]}: read ${((v.stats.readMs - before[k].readMs) / 1000).toFixed(2)} s + apply ${((v.stats.applyMs - before[k].applyMs) / 1000).toFixed(2)} s in ${v.stats.applyCalls - before[k].applyCalls} calls, shard loads ${v.tree.shardStats.loads - loads0[k]}`).join('; ')
      const dump = (v: Volume): string => JSON.stringify([...v.tree.walk('/')].map((s) => [s.path, s.content?.hash, s.mode]))
      const same = dump(a) === dump(b)
      if (!same) throw new Error(`${label}: the writers did not converge`)
      rows.push({ name: `merge ${OPS}+${OPS} ops on both, ${label} (replication + apply, wall)`, value: mergeS, unit: 's', target: 2, ok: mergeS <= 2, note: `${entries[0]} + ${entries[1]} entries; same state: ${same}; cpu (both writers, one process) ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s; ${cost}; load avg ${os.loadavg()[0].toFixed(1)}` })
      return { sizes: [await blockSizes(a, from[0]), await blockSizes(b, from[1])] }
    }
    await mergeRound(`logged as the mount does (an entry per ${COMMIT_MS} ms)`, COMMIT_MS, 1)
    if (WORST) {
      const { sizes } = await mergeRound('one entry per op (worst case)', null, 3)
      const rawMs = await rawReplication(tmp, sizes[0], sizes[1])
      const merge = rows[rows.length - 1]
      rows.push({ name: `raw hypercore replication of the same ${sizes[0].length}+${sizes[1].length} blocks, both ways, one process`, value: rawMs / 1000, unit: 's', note: `merge / raw replication = ${(merge.value / (rawMs / 1000)).toFixed(2)}` })
    }
    await nodeA.close()
    await nodeB.close()
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return rows
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--reopen')
  if (i >= 0) return reopenChild(process.argv[i + 1])
  const rows = await run()
  for (const r of rows) {
    const v = r.unit === 'MiB' || r.unit === 'ms' ? r.value.toFixed(1) : r.value.toFixed(3)
    console.log(`${r.name.padEnd(62)} ${v.padStart(9)} ${r.unit}${r.target !== undefined ? `  (target ≤ ${r.target}: ${r.ok ? 'ok' : 'MISSED'})` : ''}${r.note ? `  ${r.note}` : ''}`)
  }
  const out = path.join(repoRoot, 'bench', 'results', 'tree-scale.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version }, rows }, null, 2) + '\n')
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
