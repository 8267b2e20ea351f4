// tree-scale's `join` part (issue 12): a second peer's first sync of the imported volume's
// metadata, started from the source's saved state (spec/tree.md "Starting from a state") in one
// process (corestore replication piped, no network): the source saves its state, the joiner
// downloads the log (nothing applied: the hypercore transport alone), checks every covered
// entry's changes against the state and loads the shards, then checkpoints its index. Beside
// it, in the same run, the joiner that replays the history (what `volume connect` without a
// state does) up to BENCH_TREE_JOIN_REPLAY_MAX files (default 200000; ~20 min at 1M here).
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { encodeState, openSealedState, sealState } from '../src/tree/state-file.js'
import { uptime, waitFor as until, type Ctx } from './tree-scale.js'
import { log } from './procs.js'

const REPLAY_MAX = Number(process.env.BENCH_TREE_JOIN_REPLAY_MAX ?? 200_000)
const TARGET_S = 60

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
    const cpu0 = process.cpuUsage()
    t = performance.now()
    const off = connect(b.node)
    const bLog = b.vol.writers.get(aHex)!
    while (bLog.core.contiguousLength < a.log.length) await new Promise((r) => setTimeout(r, 5))
    const downloadS = (performance.now() - t) / 1000
    off()
    t = performance.now()
    const r = await b.vol.adoptState(openSealedState(bytes, b.vol.stateKey, b.vol.id))
    const adoptS = (performance.now() - t) / 1000
    b.vol.pauseApply(false)
    await until(() => b.vol.replayState().every((s) => s.writer !== aHex || s.applied >= a.log.length), [b.vol], 600_000)
    t = performance.now()
    await b.vol.checkpoint()
    const ckptS = (performance.now() - t) / 1000
    const cpu = process.cpuUsage(cpu0)
    const total = downloadS + adoptS + ckptS
    const rss = process.memoryUsage().rss / 2 ** 20
    log(`join: download ${downloadS.toFixed(1)} s, adopt ${adoptS.toFixed(1)} s (check ${(r.ms.entries / 1000).toFixed(1)} + load ${(r.ms.shards / 1000).toFixed(1)}), checkpoint ${ckptS.toFixed(1)} s`)
    const compare = process.env.BENCH_TREE_JOIN_COMPARE !== '0'
    const same = compare ? JSON.stringify(dump(a)) === JSON.stringify(dump(b.vol)) : null
    if (same === false) throw new Error('the joiner started from the state does not show the source view')
    rows.push({ name: 'join: download of the source log (hypercore replication, nothing applied)', value: downloadS, unit: 's', note: `${entries} entries` })
    rows.push({ name: 'join: check every entry against the state and load the shards (adoptState)', value: adoptS, unit: 's', note: `check ${(r.ms.entries / 1000).toFixed(1)} s (${r.entries} entries, ${r.changes} changes: read, decrypt, headers), load + index ${(r.ms.shards / 1000).toFixed(1)} s (${state.shards.length} shards)` })
    rows.push({ name: 'join: checkpoint of the joined index', value: ckptS, unit: 's' })
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
