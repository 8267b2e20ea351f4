// tree-scale's `join` part (issue 12): a second peer's first sync of the imported volume's
// metadata, started from the source's saved state (spec/tree.md "Starting from a state") in one
// process (corestore replication piped, no network): the source saves its state, the joiner
// downloads the log (nothing applied: the hypercore transport alone), checks every covered
// entry's changes against the state and loads the shards, then checkpoints its index. Beside
// it, in the same run, the joiner that replays the history (what `volume connect` without a
// state does) up to BENCH_TREE_JOIN_REPLAY_MAX files (default 200000; ~20 min at 1M here).
// The join's main thread is sampled (node:inspector; BENCH_TREE_JOIN_PROFILE=0: not) into
// WORKDIR/join.cpuprofile and summarized per phase in the rows (what bounds it); the CPU time
// is the whole process's (the shard-load workers included).
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { encodeState, openSealedState, sealState } from '../src/tree/state-file.js'
import { uptime, waitFor as until, type Ctx } from './tree-scale.js'
import { monotonicMicros, profileTo, summarizeProfile } from './profile-summary.js'
import { log } from './procs.js'

const REPLAY_MAX = Number(process.env.BENCH_TREE_JOIN_REPLAY_MAX ?? 200_000)
const TARGET_S = 60
const PROFILE = process.env.BENCH_TREE_JOIN_PROFILE !== '0'

/**
 * What the mount would see while the join runs: every 20 ms (timers, as FUSE requests wait for
 * the event loop) a `ls` of the root and a `stat` of `probe`, answered after `late` ms of waiting
 * plus their own time; per phase the worst, the 99th percentile and whether `probe` was found.
 */
class ReadProbe {
  private readonly timer: NodeJS.Timeout
  private phase = 'download'
  readonly seen = new Map<string, { ms: number[]; found: number; listed: number }>()
  constructor(vol: () => Volume, probe: string) {
    let due = performance.now() + 20
    this.timer = setInterval(() => {
      const t0 = performance.now()
      const late = Math.max(0, t0 - due)
      let found = false, listed = 0
      try {
        listed = vol().tree.readdir('/').length
        found = vol().tree.lookup(probe) !== null
      } catch { /* closed meanwhile */ }
      const s = this.seen.get(this.phase) ?? { ms: [], found: 0, listed: 0 }
      s.ms.push(late + performance.now() - t0)
      if (found) s.found++
      s.listed = Math.max(s.listed, listed)
      this.seen.set(this.phase, s)
      due = performance.now() + 20
    }, 20)
  }
  at(phase: string): void { this.phase = phase }
  stop(): string {
    clearInterval(this.timer)
    return [...this.seen].map(([p, s]) => {
      const ms = [...s.ms].sort((a, b) => a - b)
      const q = (f: number): string => (ms[Math.min(ms.length - 1, Math.floor(f * ms.length))] ?? 0).toFixed(0)
      return `${p}: ls+stat p50 ${q(0.5)} / p99 ${q(0.99)} / max ${q(1)} ms in ${ms.length}, root lists ${s.listed}, probe found ${s.found}`
    }).join('; ')
  }
}

const dump = (v: Volume): string[] => [...v.tree.walk('/')].map((s) => `${s.path}\t${s.kind}\t${s.mode}\t${s.size}\t${s.content?.hash ?? s.target ?? ''}`)

/** A joiner's data dir with the source's volume record (its key under another name), opened. */
async function joiner(ctx: Ctx, name: string): Promise<{ node: Node; vol: Volume; dir: string }> {
  const ddA = DataDir.open(ctx.dataA)
  const entry = ddA.volumeEntry('v')
  if (entry.storageOnly) throw new Error('the imported volume is storage-only')
  const dir = path.join(ctx.tmp, name)
  fs.rmSync(dir, { recursive: true, force: true })
  const dd = DataDir.create(dir)
  dd.addSharingKey('bench', ddA.sharingKey(entry.sharing))
  dd.addVolume({ ...entry, sharing: 'bench' })
  const node = await Node.open(DataDir.open(dir))
  return { node, vol: await node.volume('v'), dir }
}

export async function joinPart(ctx: Ctx): Promise<void> {
  const { rows } = ctx
  const nodeA = await Node.open(DataDir.open(ctx.dataA))
  const cleanup: (() => Promise<void>)[] = [() => nodeA.close()]
  try {
    const a = await nodeA.volume('v')
    const aHex = a.log.key.toString('hex')
    const entries = a.log.length - 1
    let t = performance.now()
    const state = await a.saveState()
    // As `volume connect` gets it from the peer (spec/protocol.md "States"): sealed under the volume's state key.
    const bytes = sealState(encodeState(state), a.stateKey, a.id)
    const saveS = (performance.now() - t) / 1000
    rows.push({ name: `join: the source saves and seals its state (${state.shards.length} shards, ${entries} entries covered)`, value: saveS, unit: 's', note: `${(bytes.length / 2 ** 20).toFixed(1)} MiB (its transfer over bazil's channel runs beside the log download: bench/state-transfer.ts); ${uptime()}` })

    const connect = (node: Node): (() => void) => {
      const s1 = nodeA.store.replicate(true), s2 = node.store.replicate(false)
      s1.pipe(s2).pipe(s1)
      return () => { s1.destroy(); s2.destroy() }
    }
    // From the state.
    const b = await joiner(ctx, 'join-state')
    cleanup.push(() => b.node.close())
    b.vol.pauseApply(true)
    await b.vol.addWriter(a.log.key)
    // A file a `stat` looks for while the join runs: the first of the first directory.
    const firstDir = a.tree.readdir('/').find((x) => x.kind === 'dir')
    const probePath = firstDir ? `/${firstDir.name}/${a.tree.readdir(`/${firstDir.name}`)[0]?.name ?? ''}` : '/'
    const probe = new ReadProbe(() => b.vol, probePath)
    const profFile = PROFILE ? path.join(ctx.tmp, 'join.cpuprofile') : null
    const stopProfile = await profileTo(profFile)
    // Phase boundaries in the profile's clock: download, check, load, checkpoint, end.
    const marks: Record<string, number> = { download: monotonicMicros() }
    const cpu0 = process.cpuUsage()
    t = performance.now()
    const off = connect(b.node)
    const bLog = b.vol.writers.get(aHex)!
    while (bLog.core.contiguousLength < a.log.length) await new Promise((r) => setTimeout(r, 5))
    const downloadS = (performance.now() - t) / 1000
    off()
    t = performance.now()
    marks.check = monotonicMicros()
    // adoptState checkpoints what it adopted (in slices) before it returns, as `volume connect` has it.
    const r = await b.vol.adoptState(openSealedState(bytes, b.vol.stateKey, b.vol.id), (phase) => {
      const p = phase === 'checkpoint' ? 'checkpoint' : phase === 'shards' ? 'load' : 'check'
      marks[p] ??= monotonicMicros()
      probe.at(p)
    })
    marks.end = monotonicMicros()
    const ckptS = r.ms.checkpoint / 1000
    const adoptS = (performance.now() - t) / 1000 - ckptS
    probe.at('after')
    b.vol.pauseApply(false)
    await until(() => b.vol.replayState().every((s) => s.writer !== aHex || s.applied >= a.log.length), [b.vol], 600_000)
    const reads = probe.stop()
    const cpu = process.cpuUsage(cpu0)
    await stopProfile()
    const total = downloadS + adoptS + ckptS
    const rss = process.memoryUsage().rss / 2 ** 20
    log(`join: download ${downloadS.toFixed(1)} s, adopt ${adoptS.toFixed(1)} s (check ${(r.ms.entries / 1000).toFixed(1)} + load ${(r.ms.shards / 1000).toFixed(1)}), checkpoint ${ckptS.toFixed(1)} s`)
    const compare = process.env.BENCH_TREE_JOIN_COMPARE !== '0'
    const same = compare ? JSON.stringify(dump(a)) === JSON.stringify(dump(b.vol)) : null
    if (same === false) throw new Error('the joiner started from the state does not show the source view')
    rows.push({ name: 'join: download of the source log (hypercore replication, nothing applied)', value: downloadS, unit: 's', note: `${entries} entries` })
    rows.push({ name: 'join: check every entry against the state and load the shards (adoptState)', value: adoptS, unit: 's', note: `check ${(r.ms.entries / 1000).toFixed(1)} s (${r.entries} entries, ${r.changes} changes: read, decrypt, headers), load + index ${(r.ms.shards / 1000).toFixed(1)} s (${state.shards.length} shards)` })
    rows.push({ name: 'join: checkpoint of the joined index (in slices)', value: ckptS, unit: 's' })
    if (profFile) {
      // Per phase: the main thread's busy seconds and where they went (the workers' share is the process CPU beyond them).
      const phases = ['download', 'check', 'load', 'checkpoint', 'end'].filter((p) => marks[p] !== undefined)
      const whole = summarizeProfile(profFile, { top: 10, span: [marks.download!, marks.end!] })
      const parts = phases.slice(0, -1).map((p, i) => {
        const s = summarizeProfile(profFile, { top: 6, span: [marks[p]!, marks[phases[i + 1]!]!] })
        return `${p}: main thread busy ${s.busySecs.toFixed(1)} s of ${s.wallSecs.toFixed(1)} s: ${s.functions}`
      })
      rows.push({ name: 'join: profile of the main thread (sampled; self time)', value: whole.busySecs, unit: 's', note: `busy of ${whole.wallSecs.toFixed(1)} s wall, process CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (workers included); by package: ${whole.packages}; by function: ${whole.functions}; per phase: ${parts.join(' | ')}; profile ${profFile}` })
      log(`join: profile ${rows[rows.length - 1]!.note}`)
    }
    rows.push({ name: `join: what a reader (the mount) gets while it runs: ls / + stat ${probePath} every 20 ms, waiting included`, value: NaN, unit: '', note: reads })
    log(`join: reads ${reads}`)
    rows.push({ name: `second writer's first metadata sync of the ${ctx.lay.dirs.length}-dir volume from the state (download + adopt + checkpoint, one process)`, value: total, unit: 's', target: TARGET_S, ok: total <= TARGET_S, note: `cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s; rss after ${rss.toFixed(0)} MiB; same view as the source: ${same ?? 'not compared'}; ${uptime()}` })
    await b.node.close()
    cleanup.pop()
    fs.rmSync(b.dir, { recursive: true, force: true })

    // The same join by replaying the history (no state), same run.
    if (entries > 0 && ctx.lay.dirs.reduce((n, d) => n + d.files, 0) <= REPLAY_MAX) {
      const c = await joiner(ctx, 'join-replay')
      cleanup.push(() => c.node.close())
      await c.vol.addWriter(a.log.key)
      const cpu1 = process.cpuUsage()
      t = performance.now()
      const off2 = connect(c.node)
      await until(() => c.vol.replayState().every((s) => s.writer !== aHex || s.applied >= a.log.length), [c.vol], 3_600_000)
      off2()
      await c.vol.checkpoint()
      const replayS = (performance.now() - t) / 1000
      const cpuR = process.cpuUsage(cpu1)
      const last = rows[rows.length - 1]!
      last.note += `; replay: cpu ${((cpuR.user + cpuR.system) / 1e6).toFixed(1)} s`
      last.baseline = 'replay of the history, same run'
      last.baselineValue = replayS
      last.ratio = total / replayS
      log(`join: replay ${replayS.toFixed(1)} s`)
      await c.node.close()
      cleanup.pop()
      fs.rmSync(c.dir, { recursive: true, force: true })
    }
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => {})
  }
}
