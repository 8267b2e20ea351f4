// The control API's `volume.connect`: make a local replica of a peer's volume (or hold it
// storage-only), and follow its first sync of the metadata as `status` events (entries
// applied of those the peer has) until every log the peer offered is held and applied. A
// first sync may start from a state (the peer's, or a file): a `state` event says whether it
// was adopted. The volume is usable meanwhile (ls, stat, the mount: live application yields
// between batches).
import { UserError, checkName, storageOnlyMessage } from '../../datadir.js'
import { encodeKey } from '../../crypto.js'
import type { Node } from '../../node.js'
import type { Volume } from '../../volume/volume.js'
import { StateRejectedError, openPeerState } from '../../volume/volume-state.js'
import type { PeerNetwork } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { StateFileError, readStateFile, type VolumeState } from '../../tree/state-file.js'
import { POLL_MS, peerOf, sleep, untilTrue } from '../../net/catch-up.js'
import type { DataDir } from '../../datadir.js'
import type { OpContext, OpFn } from '../context.js'
import { OpProgress, type ProgressCounts } from '../progress.js'
import type { Args, ConnectResult } from '../requests.js'
import { DEFAULT_SYNC_TIMEOUT_MS, knownPeer, network, reach } from './sync.js'

/** Where a joiner's state comes from: a file (`state`), the peer's sealed bytes, or why the peer sent none. */
type StateSource = { state: VolumeState; from: 'file' } | { sealed: Buffer; from: 'peer' } | { error: string; from: 'peer' }

type Counts = ProgressCounts & { complete: boolean }

export const connect: OpFn<'volume.connect'> = async (ctx, a) => {
  const net = network(ctx)
  const dir = ctx.dir
  const node = await ctx.node()
  const timeoutMs = a.timeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
  if (timeoutMs <= 0 || timeoutMs > 86_400_000) throw new UserError(`invalid timeout ${timeoutMs} ms: 0 < timeout <= 1 day`)
  // Read before anything is written: a file that is no state file is the user's mistake.
  const state = a.state === undefined ? null : readStateFileOrFail(a.state)
  if (state && a.replay) throw new UserError('--state and --replay exclude each other: give one')
  const key = knownPeer(a.peer, dir)
  const deadline = Date.now() + timeoutMs
  const localName = checkName(a.name ?? a.volume, 'volume')
  if (a.storageOnly && a.sharing !== undefined) throw new UserError('--storage-only holds a volume without its sharing key: leave out --sharing')
  const sharing = a.sharing ?? 'default'
  if (!a.storageOnly) dir.sharingKey(sharing) // an unknown sharing key fails before anything is written
  await reach(net, key, timeoutMs)
  const offers = net.remote(key)?.volumes ?? []
  const offer = offers.find((v) => v.name === a.volume)
  if (!offer) {
    const others = offers.length ? ` (it offers: ${offers.map((v) => v.name).join(', ')})` : ''
    throw new UserError(`peer ${encodeKey(key)} offers no volume "${a.volume}"${others}: on that node run \`bazil peer volume allow ${encodeKey(dir.publicKey)} ${a.volume}\``)
  }
  const idHex = offer.id.toString('hex')
  const existing = dir.listVolumes().find((v) => v.id === idHex)
  if (existing && existing.name !== localName) throw new UserError(`this node already has that volume, as "${existing.name}"`)
  const timeoutS = Math.round(timeoutMs / 1000)
  if (a.storageOnly) {
    if (existing && !existing.storageOnly) throw new UserError(`volume "${localName}" is already connected with sharing key "${existing.sharing}": it is not storage-only`)
    if (!existing) dir.addVolume({ version: 1, name: localName, id: idHex, storageOnly: true, created: Date.now() })
    const held = await node.heldVolume(localName)
    for (const w of offer.writers) await held.addWriter(w)
    PeerRegistry.update(dir.root, (r) => r.setVolume(key, idHex, true))
    net.refresh() // also starts keeping a replica of the peer's store, if it offers it
    await net.settled()
    // A volume without genesis (made before binding v2): the logs the peer offers are its roots here.
    const bindings = await untilTrue(async () => {
      await held.update()
      return held.bindingsKnown(offer.writers)
    }, deadline)
    if (bindings) await held.decideRoots(offer.writers)
    else if (!held.record.genesis && held.record.roots === undefined) throw new UserError(`volume "${localName}": the logs peer ${encodeKey(key)} offers did not arrive within ${timeoutS} s: run \`bazil volume connect --storage-only\` again`)
    return { volume: localName, peer: encodeKey(key), storageOnly: true, writerLogs: held.writers().length, entries: 0, complete: true }
  }
  if (existing?.storageOnly) throw new UserError(`${storageOnlyMessage(localName)}: it cannot be connected with a sharing key`)
  if (!existing) dir.addVolume({ version: 1, name: localName, id: idHex, sharing, created: Date.now() })
  else if (existing.sharing !== sharing) throw new UserError(`volume "${localName}" is already connected with sharing key "${existing.sharing}"`)
  const vol = await node.volume(localName)
  return new Join(ctx, a, { dir, node, net, key, vol, offered: offer.writers, localName, deadline, timeoutMs }).run(state)
}

interface JoinEnv {
  dir: DataDir
  node: Node
  net: PeerNetwork
  key: Buffer
  vol: Volume
  offered: Buffer[]
  localName: string
  deadline: number
  timeoutMs: number
}

/** One first sync of a volume from a peer: its state, its progress, and its end. */
class Join {
  /** How far the check of a state is (entries read, shards loaded); null when none runs. */
  private stateProgress: { entries: number; shards: number } | null = null
  /** How far the download of the peer's state is, in bytes; null before its first part. */
  private stateBytes: { done: number; total: number } | null = null
  private readonly progress: OpProgress

  constructor(private readonly ctx: OpContext, private readonly a: Args<'volume.connect'>, private readonly env: JoinEnv) {
    this.progress = new OpProgress((e) => ctx.emit(e), { unit: 'entries' })
  }

  private get timeoutS(): number {
    return Math.round(this.env.timeoutMs / 1000)
  }

  /** The first sync's counts, with the state being checked (its entries count as done as they are checked). */
  private counts(): Counts {
    const { vol, key, offered } = this.env
    const c = syncCounts(vol, key, offered)
    const st = this.stateProgress
    const bytes: Record<string, number> = this.stateBytes ? { state_bytes_done: this.stateBytes.done, state_bytes_total: this.stateBytes.total } : {}
    if (st) return { ...c, done: Math.max(c.done, Math.min(c.total, st.entries)), extra: { ...c.extra, ...bytes, state_shards_loaded: st.shards } }
    return { ...c, extra: { ...c.extra, ...bytes } }
  }

  async run(state: VolumeState | null): Promise<ConnectResult> {
    const { net, key, vol, offered } = this.env
    // A first sync (nothing applied here yet) starts from the peer's state, if it serves states
    // (spec/protocol.md "States"): asked for now, downloaded while the logs download.
    const fromPeer = state === null && !this.a.replay && net.servesStates(key) && vol.replayState().every((s) => s.applied <= 1)
    const source = state ? { state, from: 'file' as const } : fromPeer ? this.askState() : null
    // With a state: nothing is applied from the logs until the state was checked (or rejected).
    if (source) vol.pauseApply(true)
    for (const w of offered) await vol.addWriter(w)
    const ticker = setInterval(() => this.progress.update(this.counts()), 100)
    this.progress.update(this.counts(), true)
    try {
      return await this.join(source)
    } finally {
      clearInterval(ticker)
      vol.pauseApply(false)
    }
  }

  /** Asks the peer for its state of the volume; resolves to the bytes or to why there are none (never rejects). */
  private askState(): Promise<StateSource> {
    const { net, key, vol, timeoutMs } = this.env
    return net.fetchState(key, vol.id, (done, total) => { this.stateBytes = { done, total } }, timeoutMs).then(
      (sealed) => ({ sealed, from: 'peer' as const }),
      (err: Error) => ({ error: err.message, from: 'peer' as const })
    )
  }

  /** The state to start from (a file, or the peer's once it arrived and opened), or null after saying why there is none. */
  private async stateOf(src: Promise<StateSource> | StateSource): Promise<VolumeState | null> {
    const s = await src
    let why: string
    if ('state' in s) return s.state
    if ('sealed' in s) {
      try {
        return openPeerState(this.env.vol, s.sealed)
      } catch (err) {
        if (!(err instanceof StateFileError)) throw err
        why = `state rejected: ${err.message}`
      }
    } else why = `no state from the peer: ${s.error}`
    this.ctx.emit({ message_type: 'state', adopted: false, from: s.from, error: why, message: `${why}; replaying the logs instead` })
    return null
  }

  /** Starts the volume from `state` once the logs it covers are here; on a mismatch says why and leaves the volume to replay. */
  private async fromState(state: VolumeState, from: 'file' | 'peer'): Promise<void> {
    const { vol, timeoutMs: stallMs } = this.env
    const want = (): boolean => Object.entries(state.logs).every(([hex, next]) => (vol.writers.get(hex)?.core.contiguousLength ?? 0) >= next)
    let last = -1
    let lastMove = Date.now()
    while (!want()) {
      const held = vol.replayState().reduce((n, s) => n + s.contiguous, 0)
      if (held !== last) lastMove = Date.now()
      else if (Date.now() - lastMove >= stallMs) break
      last = held
      await sleep(POLL_MS)
    }
    try {
      this.stateProgress = { entries: 0, shards: 0 }
      // The volume shows the shards as they are checked (the mount answers meanwhile) and
      // checkpoints what it adopted before it returns (spec/tree.md "Starting from a state").
      const r = await vol.adoptState(state, (phase, done) => {
        if (phase === 'entries') this.stateProgress!.entries = done
        else if (phase === 'shards') this.stateProgress!.shards = done
      }).finally(() => { this.stateProgress = null })
      const kept = r.checkpointed
      const ckptMs = r.ms.checkpoint
      const message = `started from the state: ${r.entries} entries and ${r.changes} changes checked against the logs in ${(r.ms.entries / 1000).toFixed(1)} s, ${state.shards.length} shards loaded in ${(r.ms.shards / 1000).toFixed(1)} s${kept ? `, checkpointed in ${(ckptMs / 1000).toFixed(1)} s` : ''}`
      this.ctx.emit({ message_type: 'state', adopted: true, from, bytes: this.stateBytes?.total, entries: r.entries, changes: r.changes, shards: state.shards.length, check_ms: Math.round(r.ms.entries), load_ms: Math.round(r.ms.shards), checkpoint_ms: kept ? Math.round(ckptMs) : null, message })
    } catch (err) {
      if (!(err instanceof StateRejectedError)) throw err
      this.ctx.emit({ message_type: 'state', adopted: false, from, error: err.message, message: `${err.message}; replaying the logs instead` })
    }
  }

  private async join(source: Promise<StateSource> | StateSource | null): Promise<ConnectResult> {
    const { dir, net, key, vol, offered, localName } = this.env
    let deadline = this.env.deadline
    const idHex = vol.id.toString('hex')
    // The peer is where the volume came from: it replicates our log of it, we replicate its.
    PeerRegistry.update(dir.root, (r) => r.setVolume(key, idHex, true))
    net.refresh()
    await net.settled()
    // Our log is bound once the genesis is known (from the offered logs' bindings); a volume
    // without genesis (made before binding v2) takes the offered logs as its roots here.
    const bindings = await untilTrue(async () => {
      await vol.refresh()
      return vol.bindingsKnown(offered)
    }, deadline)
    if (!vol.record.genesis && !vol.log.bound) {
      if (!bindings) throw new UserError(`volume "${localName}": the logs peer ${encodeKey(key)} offers did not arrive within ${this.timeoutS} s: run \`bazil volume connect\` again`)
      await vol.setLegacyRoots(offered)
    }
    await vol.ensureBound()
    net.writersChanged(vol.id)
    // A writer of the volume (the peer) admits our log once it sees it: wait for that.
    // Applying what arrived runs in these refreshes: a big volume takes longer than the
    // timeout, so the wait goes on while entries keep arriving or applying.
    let moved = JSON.stringify(syncCounts(vol, key, offered))
    const admitted = await untilTrue(async () => {
      await vol.refresh()
      const now = JSON.stringify(syncCounts(vol, key, offered))
      if (now !== moved) deadline = Math.max(deadline, Date.now() + this.env.timeoutMs)
      moved = now
      return vol.canWrite
    }, () => deadline)
    if (!admitted) {
      throw new UserError(`volume "${localName}" is connected but this node's log was not admitted within ${this.timeoutS} s: on peer ${encodeKey(key)} run \`bazil peer volume allow ${encodeKey(dir.publicKey)} ${this.a.volume}\` (it must be a writer of the volume) and connect again`)
    }
    if (source) {
      const state = await this.stateOf(source)
      if (state) await this.fromState(state, (await source).from)
      vol.pauseApply(false)
    }
    const counts = await firstSync(vol, key, offered, this.env.timeoutMs)
    this.progress.end(counts)
    if (!counts.complete) {
      throw new UserError(`volume "${localName}" is connected, but its first sync stalled at ${counts.done}/${counts.total} entries: nothing arrived from peer ${encodeKey(key)} for ${this.timeoutS} s (the server goes on syncing it; \`bazil volume ls ${localName}\` shows what is here)`)
    }
    return { volume: localName, peer: encodeKey(key), writerLogs: vol.writerSet.writers.size, entries: counts.total, complete: true }
  }
}

/**
 * How far the first sync of `vol` from the peer `key` is: entries applied of the entries the
 * logs hold or the peer has (a revoked writer's log up to its limit, spec/oplog.md), blocks
 * held, and whether it is complete: every log `offered` known as far as the peer has it, and
 * every valid entry applied.
 */
function syncCounts(vol: Volume, key: Buffer, offered: Buffer[]): Counts {
  const offeredHex = new Set(offered.map((k) => k.toString('hex')))
  let done = 0, total = 0, blocks = 0
  let complete = true
  const set = vol.writerSet
  for (const s of vol.replayState()) {
    const core = vol.writers.get(s.writer)!.core
    const p = peerOf(core, key)
    if (offeredHex.has(s.writer) && (!p || !p.remoteSynced)) complete = false
    const limit = set.writers.get(s.writer)?.limit ?? null
    const len = Math.min(Math.max(s.length, p?.remoteLength ?? 0), limit === null ? Infinity : limit + 1)
    total += Math.max(0, len - 1)
    done += Math.max(0, Math.min(s.applied, len) - 1)
    blocks += s.contiguous
    if (s.applied < len) complete = false
  }
  return { done, total, extra: { blocks_held: blocks }, complete }
}

/** Waits until the first sync is complete (syncCounts); gives up (complete: false) once nothing was applied or downloaded for `stallMs`. */
async function firstSync(vol: Volume, key: Buffer, offered: Buffer[], stallMs: number): Promise<Counts> {
  const measure = (): Counts => syncCounts(vol, key, offered)
  let last = measure()
  let lastMove = Date.now()
  for (;;) {
    await vol.refresh()
    const now = measure()
    if (now.complete) return now
    if (now.done !== last.done || now.extra!.blocks_held !== last.extra!.blocks_held || now.total !== last.total) lastMove = Date.now()
    else if (Date.now() - lastMove >= stallMs) return now
    last = now
    await sleep(POLL_MS)
  }
}

/** A state file read for `volume connect --state`, or a one-line error naming what is wrong with it. */
function readStateFileOrFail(file: string): VolumeState {
  try {
    return readStateFile(file)
  } catch (err) {
    throw new UserError((err as Error).message)
  }
}
