// volume connect|sync|storage add: volumes shared with peers, and where their content comes
// from. All three need the running server (its network); the registry and volume records
// they write are what the server acts on at its next start too.
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { UserError, checkName, storageOnlyMessage, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { Node } from '../../node.js'
import type { Volume } from '../../volume/volume.js'
import { StateRejectedError, openPeerState } from '../../volume/volume-state.js'
import type { HeldVolume } from '../../net/closet.js'
import type { Hypercore } from 'hypercore'
import type { PeerNetwork } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { serverNetwork } from '../server-network.js'
import { ProgressReporter, type ProgressCounts } from '../progress.js'
import { StateFileError, encodeState, readStateFile, type VolumeState } from '../../tree/state-file.js'
import { replaceFileSync } from '../../atomic-file.js'

const DEFAULT_TIMEOUT_S = 30
const POLL_MS = 50

/** What hypercore 11 keeps per replicating peer of a core (the fields used here). */
interface CorePeer {
  remotePublicKey: Buffer | Uint8Array | null
  remoteContiguousLength: number
  remoteLength: number
  remoteSynced: boolean
}

abstract class PeerVolumeCommand extends BazilCommand {
  static override where: Where = 'server'
  timeoutS = Option.String('--timeout', String(DEFAULT_TIMEOUT_S), { description: `Seconds to wait for the peer (default ${DEFAULT_TIMEOUT_S})` })

  protected get timeoutMs(): number {
    const s = Number(this.timeoutS)
    if (!Number.isFinite(s) || s <= 0 || s > 86400) throw new UserError(`invalid --timeout "${this.timeoutS}": give seconds, 0 < N <= 86400`)
    return Math.round(s * 1000)
  }

  protected env(): { dir: DataDir; node: Node; net: PeerNetwork } {
    const server = this.context.server
    if (!server) throw new UserError(`\`bazil ${this.path.join(' ')}\` needs a running server: start \`bazil server run\``)
    const net = serverNetwork(server)
    if (!net) throw new UserError('the server runs without a peer network')
    return { dir: server.dir, node: server.node, net }
  }

  protected peerKey(text: string, dir: DataDir): Buffer {
    let key: Buffer
    try {
      key = decodeKey(text.startsWith('peerkey:') ? text.slice('peerkey:'.length) : text, 'peer key')
    } catch (err) {
      throw new UserError((err as Error).message)
    }
    if (key.equals(dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key: give the other node's key`)
    if (!PeerRegistry.load(dir.root).has(key)) throw new UserError(`unknown peer ${encodeKey(key)}: add it with \`bazil peer add ${encodeKey(key)}\``)
    return key
  }

  protected async reach(net: PeerNetwork, key: Buffer, timeoutMs: number): Promise<void> {
    try {
      await net.waitConnected(key, timeoutMs)
    } catch (err) {
      throw new UserError((err as Error).message)
    }
  }
}

export class VolumeConnectCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'connect']]
  static override usage = BazilCommand.Usage({
    description: "Make a local replica of a peer's volume: this node becomes a writer of it, and the peer may replicate this node's log of it. With --storage-only, hold the volume without its sharing key: keep and serve its (encrypted) logs, and replicas of its peers' stores, never reading a name or a byte of content",
    examples: [
      ['Replicate the volume "myfiles" a peer allowed us', '$0 volume connect --sharing=friends KEY myfiles'],
      ['Keep a volume for others on a closet server', '$0 volume connect --storage-only KEY myfiles']
    ]
  })
  sharing = Option.String('--sharing', { description: 'The local sharing key the volume is encrypted with (default: default)' })
  storageOnly = Option.Boolean('--storage-only', false, { description: 'Hold the ciphertext only: no sharing key, no tree, no writes' })
  asJson = Option.Boolean('--json', false, { description: 'Progress of the first sync as JSON lines (message_type status, then summary)' })
  state = Option.String('--state', { description: 'Start from this state file (`bazil volume state save` on a replica) instead of the state the peer sends: checked against the signed logs, replay if it does not match (for debugging)' })
  replay = Option.Boolean('--replay', false, { description: 'Replay the whole history of the logs instead of starting from the state the peer sends (by default a first sync asks the peer for its state and checks it against the signed logs)' })
  key = Option.String({ required: true })
  volume = Option.String({ required: true })
  localName = Option.String({ required: false })

  async run(): Promise<void> {
    const { dir, node, net } = this.env()
    // Read before anything is written: a file that is no state file is the user's mistake.
    const state = this.state === undefined ? null : readStateFileOrFail(this.resolvePath(this.state))
    if (state && this.replay) throw new UserError('--state and --replay exclude each other: give one')
    const key = this.peerKey(this.key, dir)
    const deadline = Date.now() + this.timeoutMs
    const localName = checkName(this.localName ?? this.volume, 'volume')
    if (this.storageOnly && this.sharing !== undefined) throw new UserError('--storage-only holds a volume without its sharing key: leave out --sharing')
    const sharing = this.sharing ?? 'default'
    if (!this.storageOnly) dir.sharingKey(sharing) // an unknown sharing key fails before anything is written
    await this.reach(net, key, this.timeoutMs)
    const offers = net.remote(key)?.volumes ?? []
    const offer = offers.find((v) => v.name === this.volume)
    if (!offer) {
      const others = offers.length ? ` (it offers: ${offers.map((v) => v.name).join(', ')})` : ''
      throw new UserError(`peer ${encodeKey(key)} offers no volume "${this.volume}"${others}: on that node run \`bazil peer volume allow ${encodeKey(dir.publicKey)} ${this.volume}\``)
    }
    const idHex = offer.id.toString('hex')
    const existing = dir.listVolumes().find((v) => v.id === idHex)
    if (existing && existing.name !== localName) throw new UserError(`this node already has that volume, as "${existing.name}"`)
    if (this.storageOnly) {
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
      else if (!held.record.genesis && held.record.roots === undefined) throw new UserError(`volume "${localName}": the logs peer ${encodeKey(key)} offers did not arrive within ${this.timeoutS} s: run \`bazil volume connect --storage-only\` again`)
      this.out(`holding volume "${localName}" from peer ${encodeKey(key)} storage-only (${held.writers().length} writer logs, ciphertext only)`)
      return
    }
    if (existing?.storageOnly) throw new UserError(`${storageOnlyMessage(localName)}: it cannot be connected with a sharing key`)
    if (!existing) dir.addVolume({ version: 1, name: localName, id: idHex, sharing, created: Date.now() })
    else if (existing.sharing !== sharing) throw new UserError(`volume "${localName}" is already connected with sharing key "${existing.sharing}"`)
    const vol = await node.volume(localName)
    // A first sync (nothing applied here yet) starts from the peer's state, if it serves states
    // (spec/protocol.md "States"): asked for now, downloaded while the logs download.
    const fromPeer = state === null && !this.replay && net.servesStates(key) && vol.replayState().every((s) => s.applied <= 1)
    const peerState = fromPeer ? this.askState(net, key, offer.id) : null
    // With a state: nothing is applied from the logs until the state was checked (or rejected).
    if (state || peerState) vol.pauseApply(true)
    for (const w of offer.writers) await vol.addWriter(w)
    // The first sync of the volume's metadata, from here on: a bar on a terminal (or JSON
    // lines) until every log the peer offered is held and applied as far as the peer has it.
    // The volume is usable meanwhile (ls, stat, the mount: live application yields between batches).
    const progress = new ProgressReporter(this.context.stdout, this.context.stderr, { json: this.asJson, unit: 'entries' })
    const counts = (): ProgressCounts => {
      const c = syncCounts(vol, key, offer.writers)
      // While a state is checked: its entries count as done as they are checked, and its shards as they load.
      const st = this.stateProgress
      const bytes: Record<string, number> = this.stateBytes ? { state_bytes_done: this.stateBytes.done, state_bytes_total: this.stateBytes.total } : {}
      if (st) return { ...c, done: Math.max(c.done, Math.min(c.total, st.entries)), extra: { ...c.extra, ...bytes, state_shards_loaded: st.shards } }
      return { ...c, extra: { ...c.extra, ...bytes } }
    }
    const ticker = setInterval(() => progress.update(counts()), 100)
    progress.update(counts())
    try {
      await this.join(vol, key, offer.writers, localName, deadline, progress, state ? { state, from: 'file' } : peerState)
    } finally {
      clearInterval(ticker)
      vol.pauseApply(false)
    }
  }

  /** How far the check of a state is (entries read, shards loaded), for the progress bar; null when none runs. */
  private stateProgress: { entries: number; shards: number } | null = null
  /** How far the download of the peer's state is, in bytes; null before its first part. */
  private stateBytes: { done: number; total: number } | null = null

  /** Asks the peer for its state of the volume; resolves to the bytes or to why there are none (never rejects). */
  private askState(net: PeerNetwork, key: Buffer, volumeId: Buffer): Promise<StateSource> {
    return net.fetchState(key, volumeId, (done, total) => { this.stateBytes = { done, total } }, this.timeoutMs).then(
      (sealed) => ({ sealed, from: 'peer' as const }),
      (err: Error) => ({ error: err.message, from: 'peer' as const })
    )
  }

  /** The state to start from (a file, or the peer's once it arrived and opened), or null after saying why there is none. */
  private async stateOf(vol: Volume, src: Promise<StateSource> | StateSource): Promise<VolumeState | null> {
    const s = await src
    let why: string
    if ('state' in s) return s.state
    if ('sealed' in s) {
      try {
        return openPeerState(vol, s.sealed)
      } catch (err) {
        if (!(err instanceof StateFileError)) throw err
        why = `state rejected: ${err.message}`
      }
    } else why = `no state from the peer: ${s.error}`
    if (this.asJson) this.out(JSON.stringify({ message_type: 'state', adopted: false, from: s.from, error: why }))
    this.context.stderr.write(`${why}; replaying the logs instead\n`)
    return null
  }

  /** Starts `vol` from `state` once the logs it covers are here; on a mismatch says why and leaves the volume to replay. */
  private async fromState(vol: Volume, state: VolumeState, from: 'file' | 'peer', stallMs: number): Promise<void> {
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
      const line = `started from the state: ${r.entries} entries and ${r.changes} changes checked against the logs in ${(r.ms.entries / 1000).toFixed(1)} s, ${state.shards.length} shards loaded in ${(r.ms.shards / 1000).toFixed(1)} s${kept ? `, checkpointed in ${(ckptMs / 1000).toFixed(1)} s` : ''}`
      if (this.asJson) this.out(JSON.stringify({ message_type: 'state', adopted: true, from, bytes: this.stateBytes?.total, entries: r.entries, changes: r.changes, shards: state.shards.length, check_ms: Math.round(r.ms.entries), load_ms: Math.round(r.ms.shards), checkpoint_ms: kept ? Math.round(ckptMs) : null }))
      else this.context.stderr.write(line + '\n')
    } catch (err) {
      if (!(err instanceof StateRejectedError)) throw err
      if (this.asJson) this.out(JSON.stringify({ message_type: 'state', adopted: false, from, error: err.message }))
      this.context.stderr.write(`${err.message}; replaying the logs instead\n`)
    }
  }

  private async join(vol: Volume, key: Buffer, offered: Buffer[], localName: string, deadline: number, progress: ProgressReporter, source: Promise<StateSource> | StateSource | null): Promise<void> {
    const { dir, net } = this.env()
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
      if (now !== moved) deadline = Math.max(deadline, Date.now() + this.timeoutMs)
      moved = now
      return vol.canWrite
    }, () => deadline)
    if (!admitted) {
      throw new UserError(`volume "${localName}" is connected but this node's log was not admitted within ${this.timeoutS} s: on peer ${encodeKey(key)} run \`bazil peer volume allow ${encodeKey(dir.publicKey)} ${this.volume}\` (it must be a writer of the volume) and connect again`)
    }
    if (source) {
      const state = await this.stateOf(vol, source)
      if (state) await this.fromState(vol, state, (await source).from, this.timeoutMs)
      vol.pauseApply(false)
    }
    // The first sync of the volume's metadata: a bar on a terminal (or JSON lines) until every
    // log the peer offered is held and applied as far as the peer has it. The volume is usable
    // meanwhile (ls, stat, the mount: live application yields between batches).
    const counts = await firstSync(vol, key, offered, this.timeoutMs)
    if (!counts.complete) {
      progress.finish(counts, { volume: localName, peer: encodeKey(key), complete: false })
      throw new UserError(`volume "${localName}" is connected, but its first sync stalled at ${counts.done}/${counts.total} entries: nothing arrived from peer ${encodeKey(key)} for ${this.timeoutS} s (the server goes on syncing it; \`bazil volume ls ${localName}\` shows what is here)`)
    }
    if (this.asJson) progress.finish(counts, { volume: localName, peer: encodeKey(key), writer_logs: vol.writerSet.writers.size, complete: true })
    else {
      progress.finish(counts)
      this.out(`connected volume "${localName}" from peer ${encodeKey(key)} (${vol.writerSet.writers.size} writer logs, ${counts.total} entries)`)
    }
  }
}

/**
 * How far the first sync of `vol` from the peer `key` is: entries applied of the entries the
 * logs hold or the peer has (a revoked writer's log up to its limit, spec/oplog.md), blocks
 * held, and whether it is complete: every log `offered` known as far as the peer has it, and
 * every valid entry applied.
 */
function syncCounts(vol: Volume, key: Buffer, offered: Buffer[]): ProgressCounts & { complete: boolean } {
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
async function firstSync(vol: Volume, key: Buffer, offered: Buffer[], stallMs: number): Promise<ProgressCounts & { complete: boolean }> {
  const measure = (): ProgressCounts & { complete: boolean } => syncCounts(vol, key, offered)
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

/** Where a joiner's state comes from: a file (--state), the peer's sealed bytes, or why the peer sent none. */
type StateSource = { state: VolumeState; from: 'file' } | { sealed: Buffer; from: 'peer' } | { error: string; from: 'peer' }

/** A state file read for `volume connect --state`, or a one-line error naming what is wrong with it. */
function readStateFileOrFail(file: string): VolumeState {
  try {
    return readStateFile(file)
  } catch (err) {
    throw new UserError((err as Error).message)
  }
}

export class VolumeStateSaveCommand extends BazilCommand {
  static override paths = [['volume', 'state', 'save']]
  static override usage = BazilCommand.Usage({
    description: "Write the volume's directory state (its Automerge shards and how far into each writer log they reach) to a file, for `volume connect --state` on another node: a first sync then skips replaying the history (the file is checked against the signed logs there, so it needs no trust)",
    examples: [['Save the state of "myfiles"', '$0 volume state save myfiles /tmp/myfiles.state']]
  })
  volume = Option.String({ required: true })
  file = Option.String({ required: true })

  async run(): Promise<void> {
    const file = this.resolvePath(this.file)
    const r = await this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const state = await vol.saveState()
      const bytes = encodeState(state)
      replaceFileSync(file, bytes)
      return { shards: state.shards.length, bytes: bytes.length, entries: Object.values(state.logs).reduce((n, x) => n + x - 1, 0) }
    })
    this.out(`saved the state of volume "${this.volume}" to ${file}: ${r.shards} shards, ${r.entries} log entries covered, ${r.bytes} bytes`)
  }
}

export class VolumeSyncCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'sync']]
  static override usage = BazilCommand.Usage({
    description: 'Bring this node up to date with a peer, and the peer with this node; print what changed',
    examples: [['Sync with a peer', '$0 volume sync myfiles KEY']]
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })
  key = Option.String({ required: true })

  async run(): Promise<number> {
    const { dir, node, net } = this.env()
    const key = this.peerKey(this.key, dir)
    const timeoutMs = this.timeoutMs
    const deadline = Date.now() + timeoutMs
    const rec = dir.volumeEntry(this.volume)
    if (!PeerRegistry.load(dir.root).get(key)?.volumes.includes(rec.id)) {
      throw new UserError(`volume "${rec.name}" is not shared with peer ${encodeKey(key)}: \`bazil peer volume allow ${encodeKey(key)} ${rec.name}\` (or \`bazil volume connect\`)`)
    }
    if (rec.storageOnly) return this.syncHeld(net, node, key, await node.heldVolume(rec.name), deadline)
    const vol = await node.volume(this.volume)
    const t0 = Date.now()
    await this.reach(net, key, timeoutMs)
    await vol.flush() // our pending ops into our log, so the peer can have them
    const appliedBefore = vol.stats.entries
    const received = await this.receive(net, key, vol, deadline)
    const sent = await this.send(key, vol, deadline)
    await vol.refresh()
    const result = {
      volume: vol.name,
      peer: encodeKey(key),
      entriesApplied: vol.stats.entries - appliedBefore,
      received: received.entries,
      sent: sent.entries,
      complete: received.complete && sent.complete,
      ms: Date.now() - t0,
      // Where the volume stands: live replication often did the work before this command.
      writers: vol.writers.size,
      entries: vol.replayState().reduce((n, w) => n + Math.max(0, w.applied - 1), 0)
    }
    if (this.asJson) this.json(result)
    else {
      this.out(`received ${result.received} entries (${result.entriesApplied} applied), sent ${result.sent} entries, in ${result.ms} ms; volume "${vol.name}": ${result.writers} writer logs, ${result.entries} entries applied in all`)
      if (!result.complete) this.context.stderr.write(`bazil: sync with ${result.peer} did not finish within ${Math.round(timeoutMs / 1000)} s\n`)
    }
    return result.complete ? 0 : 1
  }

  /**
   * A storage-only volume has no tree to apply: hold every log the peer offers up to its
   * length, the replica of the peer's store (if this node keeps one) up to its length, and
   * wait until the peer holds every log we hold as far as we do.
   */
  private async syncHeld(net: PeerNetwork, node: Node, key: Buffer, held: HeldVolume, deadline: number): Promise<number> {
    const t0 = Date.now()
    await this.reach(net, key, Math.max(1, deadline - Date.now()))
    let received = 0
    let complete = true
    // Only logs of the writer set (a candidate is the network's and the node's business).
    const offered = await net.writersFrom(key, held.id)
    const trace = (what: string): void => this.context.server?.log('debug', `sync ${held.name} with ${encodeKey(key)}: ${what} after ${Date.now() - t0} ms`)
    for (const w of offered) {
      const core = await held.addWriter(w)
      const r = await catchUp(core, key, deadline, held.writerSet.writers.get(w.toString('hex'))?.limit ?? null)
      received += r.blocks
      complete &&= r.complete
    }
    trace(`${offered.length} offered logs held`)
    // The peer's store, if we keep a replica of it (the server starts one when the peer offers it).
    let blocks = 0
    // (the server starts it right after the peer's hello: give it a moment)
    const startBy = Math.min(deadline, Date.now() + 5000)
    while (!node.mirrors.get(key) && net.remote(key)?.storage && Date.now() < startBy) await sleep(POLL_MS)
    const replica = node.mirrors.get(key)
    if (replica) {
      for (const core of [replica.cas, replica.index]) {
        const r = await catchUp(core, key, deadline)
        blocks += r.blocks
        complete &&= r.complete
      }
      trace('the store replica is up to date')
    }
    // What we hold that the peer replicates from us: wait until it has as much.
    let sent = 0
    for (const w of held.writers()) {
      const core = held.core(w)
      if (!core || core.contiguousLength === 0) continue
      const r = await peerCatchUp(core, key, deadline)
      sent += r.blocks
      complete &&= r.complete
    }
    trace('the peer holds our logs')
    const result = {
      volume: held.name,
      peer: encodeKey(key),
      storageOnly: true,
      entriesApplied: 0,
      received,
      sent,
      blocks,
      // The replica of the peer's store this node keeps, as it stands (null: none).
      replica: replica ? { blocks: replica.cas.contiguousLength + replica.index.contiguousLength, length: replica.cas.length + replica.index.length } : null,
      complete,
      ms: Date.now() - t0,
      writers: held.writers().length,
      entries: held.writers().reduce((n, w) => n + Math.max(0, (held.core(w)?.contiguousLength ?? 0) - 1), 0)
    }
    if (this.asJson) this.json(result)
    else {
      const kept = result.replica ? `, ${result.replica.blocks} blocks of its store kept` : ''
      this.out(`received ${result.received} entries and ${result.blocks} content blocks, sent ${result.sent} entries, in ${result.ms} ms; volume "${held.name}" (storage-only): ${result.writers} writer logs, ${result.entries} entries held${kept}`)
      if (!result.complete) this.context.stderr.write(`bazil: sync with ${result.peer} did not finish in time\n`)
    }
    return result.complete ? 0 : 1
  }

  /** Waits until every writer log the peer offers is held here up to the peer's length. */
  private async receive(net: PeerNetwork, key: Buffer, vol: Volume, deadline: number): Promise<{ entries: number; complete: boolean }> {
    // Only logs of the writer set (a candidate is the network's and the node's business).
    const offered = await net.writersFrom(key, vol.id)
    let entries = 0
    let complete = true
    for (const w of offered) {
      if (w.equals(vol.log.key)) continue
      const log = await vol.addWriter(w)
      const r = await catchUp(log.core, key, deadline, vol.writerSet.writers.get(w.toString('hex'))?.limit ?? null)
      entries += r.blocks
      complete &&= r.complete
    }
    return { entries, complete }
  }

  /** Waits until the peer holds this node's log of the volume up to its length. */
  private async send(key: Buffer, vol: Volume, deadline: number): Promise<{ entries: number; complete: boolean }> {
    const core = vol.log.core
    const peerHas = (): number | null => {
      for (const p of core.peers as CorePeer[]) {
        if (p.remotePublicKey && key.equals(Buffer.from(p.remotePublicKey))) return p.remoteContiguousLength
      }
      return null
    }
    const done = (): boolean => core.length === 0 || (peerHas() ?? -1) >= core.length
    const before = peerHas() ?? 0
    while (!done() && Date.now() < deadline) await sleep(POLL_MS)
    return { entries: Math.max(0, (peerHas() ?? 0) - before), complete: done() }
  }
}

export class VolumeStorageAddCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'storage', 'add']]
  static override usage = BazilCommand.Usage({
    description: "Read the volume's content this node doesn't hold from a peer's store (the peer must allow it: `bazil peer storage allow`)",
    examples: [['Fetch missing content from a peer', '$0 volume storage add --sharing=friends myfiles peerkey:KEY']]
  })
  sharing = Option.String('--sharing', { description: "The volume's sharing key (checked against the volume's, if given)" })
  volume = Option.String({ required: true })
  store = Option.String({ required: true })

  // Without a server it only writes the record; the server uses it when the peer connects.
  static override where: Where = 'node'

  async run(): Promise<void> {
    const server = this.context.server
    const dir = server?.dir ?? this.openDataDir()
    const net = serverNetwork(server)
    if (!this.store.startsWith('peerkey:')) throw new UserError(`unknown store "${this.store}": give peerkey:KEY`)
    const key = this.peerKey(this.store, dir)
    const rec = dir.volume(this.volume)
    if (this.sharing !== undefined && this.sharing !== rec.sharing) {
      throw new UserError(`volume "${rec.name}" uses sharing key "${rec.sharing}", not "${this.sharing}"`)
    }
    const added = dir.addVolumeStorage(rec.name, encodeKey(key))
    // The peer's own store, or a replica of it another connected peer holds (a closet).
    let using = false
    if (server && net) {
      for (const p of net.connectedPeers()) {
        // Only what the access rules let this node take as those nodes' stores.
        const view = await net.usableStores(p)
        if (p.equals(key) ? !!(view?.storage || view?.stores.length) : !!view?.stores.some((r) => r.node.equals(key))) using = true
      }
    }
    const state = using
      ? 'connected: in use now'
      : !net
        ? 'used once the server runs and the peer is connected'
        : net.connected(key)
        ? 'it does not offer its store to this node yet (`bazil peer storage allow` there)'
        : 'not connected: used once it (or a peer holding a replica of its store) is'
    this.out(`volume "${rec.name}" ${added ? 'now reads' : 'already reads'} missing content from peer ${encodeKey(key)} (${state})`)
  }
}

/** The replication peer on `core` that is the node `key`, if it is attached. */
function peerOf(core: Hypercore, key: Buffer): CorePeer | null {
  for (const p of core.peers as CorePeer[]) {
    if (p.remotePublicKey && key.equals(Buffer.from(p.remotePublicKey))) return p
  }
  return null
}

/**
 * Waits until this node holds a core as far as the peer `key` does: its length at least the
 * peer's, and every block up to what the peer holds contiguously. Only that peer's word
 * counts: `update({wait: true})` would also wait for every other peer of the core, and a
 * connection that died without a reset holds it up until it times out (seconds).
 */
async function catchUp(core: Hypercore, key: Buffer, deadline: number, last: number | null = null): Promise<{ blocks: number; complete: boolean }> {
  const before = core.contiguousLength
  core.update({ wait: true }).catch(() => {}) // asks for the longer length, if a peer has one
  const done = (): boolean => {
    const p = peerOf(core, key)
    // A revoked writer's log is held only up to its limit (spec/oplog.md): nothing past it to wait for.
    const held = last === null ? core.length : Math.min(core.length, last + 1)
    return !!p && p.remoteSynced && core.length >= p.remoteLength && core.contiguousLength >= Math.min(p.remoteContiguousLength, held)
  }
  while (!done() && Date.now() < deadline) await sleep(POLL_MS)
  return { blocks: Math.max(0, core.contiguousLength - before), complete: done() }
}

/** Waits until the peer `key` holds a core we replicate with it as far as we hold it. */
async function peerCatchUp(core: Hypercore, key: Buffer, deadline: number): Promise<{ blocks: number; complete: boolean }> {
  const peerHas = (): number | null => peerOf(core, key)?.remoteContiguousLength ?? null
  const target = core.contiguousLength
  const before = peerHas() ?? 0
  while ((peerHas() ?? -1) < target && Date.now() < deadline) await sleep(POLL_MS)
  return { blocks: Math.max(0, (peerHas() ?? 0) - before), complete: (peerHas() ?? -1) >= target }
}

/** Polls `cond` until it holds (true) or the deadline passes (false). */
async function untilTrue(cond: () => boolean | Promise<boolean>, deadline: number | (() => number)): Promise<boolean> {
  for (;;) {
    if (await cond()) return true
    if (Date.now() >= (typeof deadline === 'number' ? deadline : deadline())) return false
    await sleep(POLL_MS)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
