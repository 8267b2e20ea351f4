// volume connect|sync|storage add: volumes shared with peers, and where their content comes
// from. All three need the running server (its network); the registry and volume records
// they write are what the server acts on at its next start too.
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError, checkName, storageOnlyMessage, type DataDir } from '../../datadir.js'
import { encodeKey } from '../../crypto.js'
import type { Node } from '../../node.js'
import type { Volume } from '../../volume/volume.js'
import { StateRejectedError, openPeerState } from '../../volume/volume-state.js'
import type { PeerNetwork } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { serverNetwork } from '../server-network.js'
import { ProgressReporter, type ProgressCounts } from '../progress.js'
import { StateFileError, readStateFile, type VolumeState } from '../../tree/state-file.js'
import { knownPeer } from '../../control/ops/sync.js'
import { POLL_MS, peerOf, sleep, untilTrue } from '../../net/catch-up.js'

const DEFAULT_TIMEOUT_S = 30

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
    return knownPeer(text, dir)
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
    category: CATEGORY.sync,
    description: "Replicate a peer's volume here",
    details: "Makes a local replica of a peer's volume: this node becomes a writer of it, and the peer may replicate this node's log of it. With --storage-only, hold the volume without its sharing key: keep and serve its (encrypted) logs, and replicas of its peers' stores, never reading a name or a byte of content.",
    examples: [
      ['Replicate the volume "myfiles" a peer allowed us', 'bazil volume connect --sharing=friends KEY myfiles'],
      ['Keep a volume for others on a closet server', 'bazil volume connect --storage-only KEY myfiles']
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
  static override where: Where = 'api'
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Save the state a first sync can start from',
    details: "Writes the volume's directory state (its Automerge shards and how far into each writer log they reach) to a file, for `volume connect --state` on another node: a first sync then skips replaying the history (the file is checked against the signed logs there, so it needs no trust).",
    examples: [['Save the state of "myfiles"', 'bazil volume state save myfiles /tmp/myfiles.state']]
  })
  volume = Option.String({ required: true })
  file = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('volume.state.save', { volume: this.volume, file: this.resolvePath(this.file) })
    this.out(`saved the state of volume "${r.volume}" to ${r.file}: ${r.shards} shards, ${r.entries} log entries covered, ${r.bytes} bytes`)
  }
}

export class VolumeSyncCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'sync']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Sync a volume with a peer now',
    details: 'Brings this node up to date with a peer, and the peer with this node, then prints what changed.',
    examples: [['Sync with a peer', 'bazil volume sync myfiles KEY']]
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })
  key = Option.String({ required: true })

  static override where: Where = 'api'

  async run(): Promise<number> {
    const timeoutMs = this.timeoutMs
    const r = await this.call('volume.sync', { volume: this.volume, peer: this.key, timeoutMs })
    if (this.asJson) this.json(r)
    else {
      const got = r.received === 0 ? 'nothing new since the command started' : r.storageOnly ? `${r.received} new entries` : `${r.received} new entries (${r.entriesApplied} applied)`
      if (r.storageOnly) {
        const kept = r.replica ? `, ${r.replica.blocks} blocks of its store kept` : ''
        this.out(`${got} and ${r.blocks ?? 0} content blocks, sent ${r.sent} entries, in ${r.ms} ms; volume "${r.volume}" (storage-only): ${r.writers} writer logs, ${r.entries} entries held${kept}`)
      } else this.out(`${got}, sent ${r.sent} entries, in ${r.ms} ms; volume "${r.volume}": ${r.writers} writer logs, ${r.entries} entries applied in all`)
      if (!r.complete) this.context.stderr.write(`bazil: sync with ${r.peer} did not finish within ${Math.round(timeoutMs / 1000)} s\n`)
    }
    return r.complete ? 0 : 1
  }
}

export class VolumeStorageAddCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'storage', 'add']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: "Read missing content from a peer's store",
    details: "Content of the volume this node doesn't hold is read from the peer's store (the peer must allow it: `bazil peer storage allow`), and content written here is stored to it.",
    examples: [['Fetch missing content from a peer', 'bazil volume storage add --sharing=friends myfiles peerkey:KEY']]
  })
  sharing = Option.String('--sharing', { description: "The volume's sharing key (checked against the volume's, if given)" })
  volume = Option.String({ required: true })
  store = Option.String({ required: true })

  static override where: Where = 'api'

  async run(): Promise<void> {
    const r = await this.call('volume.storage.add', { volume: this.volume, store: this.store, ...(this.sharing !== undefined ? { sharing: this.sharing } : {}) })
    const state = {
      'in-use': 'connected: in use now',
      'no-server': 'used once the server runs and the peer is connected',
      'not-offered': 'it does not offer its store to this node yet (`bazil peer storage allow` there)',
      'not-connected': 'not connected: used once it (or a peer holding a replica of its store) is'
    }[r.state]
    this.out(`volume "${r.volume}" ${r.added ? 'now reads' : 'already reads'} missing content from peer ${r.peer} (${state})`)
  }
}
