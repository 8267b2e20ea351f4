// The peer network: links (links.ts: the swarm, the firewall, dialing), what runs on each
// link (offers.ts: bazil's channel, replication, writer candidates), every access decision
// (access.ts) and store replicas (closet.ts), composed. It talks to the node through NetHost
// (host.ts); the node tells it when a volume's writer set changed (writersChanged).
// Spec: spec/protocol.md.
import { EventEmitter } from 'node:events'
import type Protomux from 'protomux'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { HostPort } from './config.js'
import { FEATURE_STATE, type StorageOffer, type StoreReplica, type VolumeOffer } from './protocol.js'
import type { Access } from './replication.js'
import { AccessControl } from './access.js'
import { Links, message, type Link, type PeerStatus } from './links.js'
import { Offers } from './offers.js'
import { nodeHost, type NetHost, type WritersSink } from './host.js'
import { HoldingsExchange } from './holdings.js'
import { StateFetchError } from './state-fetch.js'
import { encodeKey } from '../crypto.js'

export type { PeerStatus } from './links.js'

export interface PeerNetworkOptions {
  node: Node
  log: Log
  /** DHT bootstrap nodes; none given: hyperswarm's public DHT. */
  bootstrap?: HostPort[]
  /** false where peers reach each other's UDP port directly; default hyperswarm's (true). */
  firewalled?: boolean
  /** Fixed UDP port for the DHT node (what `peer location set` on other nodes points at). */
  port?: number
  /** The node's side (writer set, candidates, stores to read); default: the Node itself (nodeHost). */
  host?: NetHost
  /** How often disconnected peers are retried, ms (default 10 000). */
  retryMs?: number
  /** A connected peer must say hello within this many ms (default 30 000). */
  helloTimeoutMs?: number
}

/** What a connected peer has offered us (its last hello and writer announcements). */
export interface RemoteView {
  storage: StorageOffer | null
  volumes: (VolumeOffer & { writers: Buffer[] })[]
}

interface InternalCore {
  key: Buffer | null
  ready(): Promise<void>
}
/** corestore 7's hook for every core it opens (public method, untyped). */
interface WatchableStore {
  watch(fn: (core: InternalCore) => void): void
  unwatch(fn: (core: InternalCore) => void): void
}

/**
 * Events:
 * - 'peer-connected' (key: Buffer), 'peer-disconnected' (key: Buffer);
 * - 'writer' (volumeId, logKey, from): a candidate log bound to the peer that offered it was handed to the node;
 * - 'remote' (key: Buffer): what that peer offers us changed (see remote(), storeOffers()).
 */
export class PeerNetwork extends EventEmitter implements WritersSink {
  private readonly node: Node
  private readonly log: Log
  private readonly host: NetHost
  private readonly access: AccessControl
  private readonly links: Links
  private readonly offers: Offers
  private readonly holdings: HoldingsExchange
  private refreshing: Promise<void> = Promise.resolve()
  private stopping = false
  private readonly onCoreOpened = (core: InternalCore): void => {
    core.ready().then(
      () => {
        if (core.key && !this.stopping) void this.offers.attachOpened(core.key, this.links.links.values())
      },
      () => {}
    )
  }

  constructor(opts: PeerNetworkOptions) {
    super()
    this.node = opts.node
    this.log = opts.log
    this.host = opts.host ?? nodeHost(opts.node, this)
    this.access = new AccessControl(opts.node, this.host, opts.log)
    this.offers = new Offers(opts.node, opts.log, this.access, this.host, {
      remote: (key) => {
        this.emit('remote', key)
        this.takeStores(key)
      },
      connected: (key) => this.emit('peer-connected', key),
      writer: (volumeId, key, from) => this.emit('writer', volumeId, key, from),
      mirrored: () => this.refresh() // other peers of its volumes may now read it here
    }, opts.helloTimeoutMs)
    this.links = new Links(opts.node, opts.log, opts, this.access, {
      open: (conn, key, hex, z) => this.offers.open(conn, key, hex, z),
      closed: async (link, wasConnected) => {
        if (wasConnected) this.emit('peer-disconnected', link.key)
        await this.offers.closed(link)
      }
    })
    this.offers.links = this.links
    this.holdings = new HoldingsExchange(opts.node, opts.log, () => this.links.links.values(), (link, m) => this.offers.send(link, m))
  }

  async start(): Promise<void> {
    if (this.links.swarm) throw new Error('peer network already started')
    await this.links.bind()
    // A storage-only node keeps its replicas and held logs open (downloading while peers have more).
    await this.node.mirrors.load()
    for (const v of this.node.dir.listVolumes()) {
      if (!v.storageOnly) continue
      await this.node.heldVolume(v.name).catch((err: Error) => this.log('error', `volume ${v.name} (storage-only): ${err.message}`))
    }
    ;(this.node.store as unknown as WatchableStore).watch(this.onCoreOpened)
    await this.links.listen()
    this.holdings.start()
  }

  /** Closes every connection and the DHT node. Close the corestore only after this. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    ;(this.node.store as unknown as WatchableStore).unwatch(this.onCoreOpened)
    await this.holdings.stop()
    await this.refreshing.catch(() => {})
    await this.links.stop()
  }

  /** The DHT node's host and the UDP port other nodes can use as this node's location. */
  address(): HostPort | null {
    return this.links.address()
  }

  peers(): PeerStatus[] {
    return this.links.peers()
  }

  connected(key: Buffer): boolean {
    return this.links.connected(key)
  }

  /**
   * Tells a connected peer to stop keeping this node's store now (RELEASE, holdings.ts), e.g.
   * before `peer remove` cuts it off; what only it held is fetched back first. Says what happened.
   */
  releaseStore(key: Buffer): Promise<string> {
    return this.holdings.releaseNow(this.links.get(key))
  }

  /** Resolves once the peer is connected and has said hello; rejects after timeoutMs. */
  /**
   * Resolves once the peer is connected and the stores it offered so far are taken up as
   * sources (a command that waits for a peer then reads through it at once: no race with
   * useStores, which runs on the peer's offer).
   */
  async waitConnected(key: Buffer, timeoutMs: number): Promise<void> {
    await this.links.waitConnected(key, timeoutMs)
    await this.storesTaken.get(key.toString('hex'))
  }

  /** Whether a connected peer's handshake says it answers state requests (FEATURE_STATE; older nodes do not). */
  servesStates(key: Buffer): boolean {
    return ((this.links.get(key)?.features ?? 0) & FEATURE_STATE) !== 0
  }

  /**
   * The peer's sealed state of a volume (spec/protocol.md "States"), all of it; throws
   * StateFetchError (state-fetch.ts) saying why not. Nothing in it is believed yet.
   */
  fetchState(key: Buffer, volumeId: Buffer, onBytes?: (done: number, total: number) => void, stallMs?: number): Promise<Buffer> {
    const link = this.links.get(key)
    if (!link || link.closed) return Promise.reject(new StateFetchError(`peer ${encodeKey(key)} is not connected`))
    return this.offers.stateFetcher.fetch(link, volumeId, onBytes, stallMs)
  }

  /** What a connected peer offered us: its volumes (with writer logs) and its store, or null. */
  remote(key: Buffer): RemoteView | null {
    const link = this.links.get(key)
    if (!link?.hello) return null
    return {
      storage: link.hello.storage,
      volumes: link.hello.volumes.map((v) => ({ ...v, writers: [...(link.offered.get(v.id.toString('hex'))?.values() ?? [])] }))
    }
  }

  /** The stores a connected peer offers us, as offered (its own in HELLO, replicas in STORES); null if not connected. */
  storeOffers(key: Buffer): { storage: StorageOffer | null; stores: StoreReplica[] } | null {
    const link = this.links.get(key)
    if (!link?.hello) return null
    return { storage: link.hello.storage, stores: [...link.stores] }
  }

  /** The peer's offers being taken up, in order, by peer (hex): waitConnected waits for them. */
  private readonly storesTaken = new Map<string, Promise<void>>()

  private takeStores(key: Buffer): void {
    const hex = key.toString('hex')
    const next = (this.storesTaken.get(hex) ?? Promise.resolve()).then(() => this.useStores(key))
    this.storesTaken.set(hex, next)
    void next.then(() => {
      if (this.storesTaken.get(hex) === next) this.storesTaken.delete(hex)
    })
  }

  /** Hands the node the stores a peer offers that access lets it read from. */
  private async useStores(key: Buffer): Promise<void> {
    const link = this.links.get(key)
    if (!link || link.closed) return
    try {
      // The node may record those stores as theirs (their cores open before that): usableStores re-attaches.
      await this.usableStores(key)
    } catch (err) {
      this.log('error', `net: using a peer's store: ${message(err)}`)
    }
  }

  /**
   * The writer logs a connected peer offers for a local volume that this node takes from it:
   * those in the volume's writer set, once the peer's candidates were checked and handed to
   * the node (a sync waits for these). [] if not connected.
   */
  async writersFrom(key: Buffer, volumeId: Buffer): Promise<Buffer[]> {
    const link = this.links.get(key)
    return link ? this.offers.writersFrom(link, volumeId) : []
  }

  /**
   * Hands the node the stores a connected peer offers that access lets it read (as `remote`
   * events do); returns them (null if not connected).
   */
  async usableStores(key: Buffer): Promise<{ storage: StorageOffer | null; stores: StoreReplica[] } | null> {
    const link = this.links.get(key)
    if (!link || link.closed) return null
    const offers = await this.offers.storeOffers(link)
    if (offers) await this.host.storesOffered(key, offers)
    this.access.invalidate()
    await this.offers.attachOfferedStores(link)
    return offers
  }

  /** Keys of the peers connected now. */
  connectedPeers(): Buffer[] {
    return [...this.links.links.values()].filter((l) => l.connected && !l.closed).map((l) => l.key)
  }

  /** The connection's protomux, for tests and diagnostics. */
  muxer(key: Buffer): Protomux | null {
    return this.links.get(key)?.replication.mux ?? null
  }

  /** Re-reads the registry after a peer was added, removed or allowed something, and recomputes every peer's access. */
  refresh(): void {
    this.refreshing = this.refreshing.then(() => this.doRefresh()).catch((err) => this.log('error', `net: refresh failed: ${message(err)}`))
  }

  /** Resolves when refreshes asked for so far are done. */
  settled(): Promise<void> {
    return this.refreshing
  }

  /**
   * The node's entry point: the writer set of a volume changed (a log admitted or revoked).
   * Access is recomputed for every peer: new logs are offered (WRITERS), and a peer that lost
   * a core is disconnected (hypercore can't take back an open channel).
   */
  writersChanged(_volumeId: Buffer): void {
    this.access.invalidate()
    this.refresh()
  }

  /** @deprecated the node's writersChanged(volumeId) says the same. */
  announceWriter(volumeId: Buffer, _logKey: Buffer): void {
    this.writersChanged(volumeId)
  }

  private async doRefresh(): Promise<void> {
    if (this.stopping) return
    const before = this.access.registry
    this.access.reloadRegistry()
    this.links.registryChanged(before)
    for (const link of [...this.links.links.values()]) {
      if (link.closed) continue
      if (!this.access.registry.has(link.key)) {
        this.links.dropPeer(link, 'removed from the peer list')
        continue
      }
      await this.refreshLink(link)
    }
    this.links.connectAll()
  }

  private async refreshLink(link: Link): Promise<void> {
    await link.accessReady
    const oldServed = link.served
    const oldAccess = link.access
    link.accessReady = this.offers.computeAccess(link)
    await link.accessReady
    const narrowed = [...oldServed.keys()].some((dk) => !link.served.has(dk))
    if (narrowed) {
      // hypercore can't take back a channel's blocks mid-connection: start over with the new rules.
      this.links.dropPeer(link, 'access narrowed')
      return
    }
    if (JSON.stringify(summary(oldAccess, false)) !== JSON.stringify(summary(link.access, false)) && link.channel.opened) this.offers.sendOffer(link)
    else this.offers.sendNewWriters(link, oldAccess)
    await this.offers.adoptOffers(link, null)
    await this.offers.mirror(link)
  }
}

/** What a HELLO/STORES says (writers left out when `withWriters` is false: new writers go in WRITERS alone). */
function summary(a: Access | null, withWriters: boolean): unknown {
  if (!a) return null
  return {
    storage: a.storage ? [a.storage.cas.toString('hex'), a.storage.index.toString('hex')] : null,
    stores: a.stores.map((r) => [r.node, r.cas, r.index].map((k) => k.toString('hex')).join(':')).sort(),
    volumes: a.volumes.map((v) => [v.id.toString('hex'), v.name, withWriters ? v.writers.map((w) => w.toString('hex')).sort() : []])
  }
}
