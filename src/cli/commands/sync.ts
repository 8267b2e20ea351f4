// volume connect|sync|storage add: volumes shared with peers, and where their content comes
// from. All three need the running server (its network); the registry and volume records
// they write are what the server acts on at its next start too.
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { UserError, checkName, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { Node } from '../../node.js'
import type { Volume } from '../../volume.js'
import { PeerRegistry, serverNetwork, type PeerNetwork } from '../../net/index.js'

const DEFAULT_TIMEOUT_S = 30
const POLL_MS = 50

/** What hypercore 11 keeps per replicating peer of a core (the fields used here). */
interface CorePeer {
  remotePublicKey: Buffer | Uint8Array | null
  remoteContiguousLength: number
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
    description: "Make a local replica of a peer's volume: this node becomes a writer of it, and the peer may replicate this node's log of it",
    examples: [['Replicate the volume "myfiles" a peer allowed us', '$0 volume connect --sharing=friends KEY myfiles']]
  })
  sharing = Option.String('--sharing', 'default', { description: 'The local sharing key the volume is encrypted with (default: default)' })
  key = Option.String({ required: true })
  volume = Option.String({ required: true })
  localName = Option.String({ required: false })

  async run(): Promise<void> {
    const { dir, node, net } = this.env()
    const key = this.peerKey(this.key, dir)
    const localName = checkName(this.localName ?? this.volume, 'volume')
    dir.sharingKey(this.sharing) // an unknown sharing key fails before anything is written
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
    if (!existing) dir.addVolume({ version: 1, name: localName, id: idHex, sharing: this.sharing, created: Date.now() })
    else if (existing.sharing !== this.sharing) throw new UserError(`volume "${localName}" is already connected with sharing key "${existing.sharing}"`)
    const vol = await node.volume(localName)
    for (const w of offer.writers) await vol.addWriter(w)
    // The peer is where the volume came from: it replicates our log of it, we replicate its.
    PeerRegistry.update(dir.root, (r) => r.setVolume(key, idHex, true))
    net.refresh()
    await net.settled()
    net.announceWriter(vol.id, vol.log.key)
    this.out(`connected volume "${localName}" from peer ${encodeKey(key)} (${vol.writers.size} writer logs)`)
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
    const vol = await node.volume(this.volume)
    if (!PeerRegistry.load(dir.root).get(key)?.volumes.includes(vol.record.id)) {
      throw new UserError(`volume "${vol.name}" is not shared with peer ${encodeKey(key)}: \`bazil peer volume allow ${encodeKey(key)} ${vol.name}\` (or \`bazil volume connect\`)`)
    }
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

  /** Waits until every writer log the peer offers is held here up to the peer's length. */
  private async receive(net: PeerNetwork, key: Buffer, vol: Volume, deadline: number): Promise<{ entries: number; complete: boolean }> {
    const offered = net.remote(key)?.volumes.find((v) => v.id.equals(vol.id))?.writers ?? []
    let entries = 0
    let complete = true
    for (const w of offered) {
      if (w.equals(vol.log.key)) continue
      const log = await vol.addWriter(w)
      const before = log.core.contiguousLength
      const updated = await untilDeadline(log.core.update({ wait: true }), deadline)
      if (updated === TIMED_OUT) {
        complete = false
        continue
      }
      while (log.core.contiguousLength < log.core.length && Date.now() < deadline) await sleep(POLL_MS)
      if (log.core.contiguousLength < log.core.length) complete = false
      entries += Math.max(0, log.core.contiguousLength - before)
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
    const offer = net?.remote(key)?.storage ?? null
    const using = server ? await server.node.useRemoteStorage(key, offer) : false
    const state = using
      ? 'connected: in use now'
      : !net
        ? 'used once the server runs and the peer is connected'
        : net.connected(key)
        ? 'it does not offer its store to this node yet (`bazil peer storage allow` there)'
        : 'not connected: used once it is'
    this.out(`volume "${rec.name}" ${added ? 'now reads' : 'already reads'} missing content from peer ${encodeKey(key)} (${state})`)
  }
}

const TIMED_OUT = Symbol('timed out')

function untilDeadline<T>(p: Promise<T>, deadline: number): Promise<T | typeof TIMED_OUT> {
  p.catch(() => {})
  let timer: NodeJS.Timeout | null = null
  const t = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, deadline - Date.now()))
  })
  return Promise.race([p, t]).finally(() => {
    if (timer) clearTimeout(timer)
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
