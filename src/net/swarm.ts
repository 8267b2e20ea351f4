// The peer network: hyperswarm with the node's key pair, a firewall admitting only added
// peers, discovery by public key (or a direct connection to a known location), bazil's
// channel and access-controlled replication on every connection. Spec: spec/protocol.md.
import { EventEmitter } from 'node:events'
import dns from 'node:dns/promises'
import net from 'node:net'
import Hyperswarm from 'hyperswarm'
import DHT, { type DHTOptions, type SecretStream } from 'hyperdht'
import c from 'compact-encoding'
import type { Channel, ChannelMessage } from 'protomux'
import type Protomux from 'protomux'
import { decodeKey, encodeKey } from '../crypto.js'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { HostPort } from './config.js'
import { parseHostPort } from './config.js'
import { abandon, checkUdpPort } from './udp.js'
import { PeerRegistry, type PeerRecord } from './peers.js'
import {
  CHANNEL_PROTOCOL,
  ProtocolError,
  decodeMessage,
  encodeMessage,
  writersMessages,
  type Hello,
  type Message,
  type StorageOffer,
  type StoreReplica,
  type VolumeOffer
} from './protocol.js'
import { Replication, accessFor, accessKeys, discoveryKey, type Access, type WritersOf } from './replication.js'

export interface PeerNetworkOptions {
  node: Node
  log: Log
  /** DHT bootstrap nodes; none given: hyperswarm's public DHT. */
  bootstrap?: HostPort[]
  /** false where peers reach each other's UDP port directly (loopback, LAN); default hyperswarm's (true). */
  firewalled?: boolean
  /** Fixed UDP port for the DHT node (what `peer location set` on other nodes points at). */
  port?: number
  /** Writer log keys of a local volume, own log included. Default: the opened volume's writers. */
  writersOf?: WritersOf
  /** How often disconnected peers are retried, ms (default 10 000). */
  retryMs?: number
  /** A connected peer must say hello within this many ms (default 30 000). */
  helloTimeoutMs?: number
}

export interface PeerStatus {
  key: string
  connected: boolean
  lastSeen: number | null
  location?: string
}

/** What a connected peer has offered us (its last hello and writer announcements). */
export interface RemoteView {
  storage: StorageOffer | null
  volumes: (VolumeOffer & { writers: Buffer[] })[]
}

interface Link {
  key: Buffer
  hex: string
  z: string
  conn: SecretStream
  replication: Replication
  channel: Channel
  sender: ChannelMessage<Buffer>
  /** What we let this peer replicate, and those cores by discovery key (hex). */
  access: Access | null
  served: Map<string, Buffer>
  accessReady: Promise<void>
  hello: Hello | null
  /** Writer logs the peer offered, by volume id hex then key hex. */
  offered: Map<string, Map<string, Buffer>>
  /** Replicas of other nodes' stores the peer offered (its last STORES). */
  stores: StoreReplica[]
  /** We sent this peer a non-empty STORES (so an emptied set must be sent too). */
  sentStores: boolean
  connected: boolean
  openedAt: number
  inbox: Promise<void>
  closed: boolean
  helloTimer: NodeJS.Timeout | null
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

const DEFAULT_RETRY_MS = 10_000
const DEFAULT_HELLO_TIMEOUT_MS = 30_000
/** A connection younger than this is not replaced by one from the non-preferred side. */
const FRESH_CONNECTION_MS = 3_000
const LISTEN_WAIT_MS = 3_000
const REFUSED_LOG_MS = 10 * 60_000
const REDIAL_MS = 500

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * Events:
 * - 'peer-connected' (key: Buffer), 'peer-disconnected' (key: Buffer): bazil channel open and the first offer
 *   (hello, and the stores and writers sent with it) handled / connection gone;
 * - 'writer' (volumeId: Buffer, writerLogKey: Buffer, from: Buffer): a peer offered a writer log of a
 *   volume we have and share with it, new to us; it is already being replicated with that peer;
 * - 'remote' (key: Buffer): what that peer offers us changed (see remote(), storeOffers()).
 */
export class PeerNetwork extends EventEmitter {
  private readonly node: Node
  private readonly log: Log
  private readonly opts: PeerNetworkOptions
  private readonly writersOf: WritersOf
  private swarm: Hyperswarm | null = null
  private registry: PeerRegistry
  private readonly links = new Map<string, Link>()
  /** Direct dials in flight, by peer key hex (null while the host name resolves). */
  private readonly dialing = new Map<string, SecretStream | null>()
  /** Writer logs accepted from peers or announced locally in this process, by volume id hex. */
  private readonly extraWriters = new Map<string, Map<string, Buffer>>()
  private readonly refusedAt = new Map<string, number>()
  private readonly redialDelay = new Map<string, number>()
  private readonly waiters = new Map<string, Set<() => void>>()
  private timer: NodeJS.Timeout | null = null
  private refreshing: Promise<void> = Promise.resolve()
  private stopping = false
  private readonly onCoreOpened = (core: InternalCore): void => {
    core.ready().then(
      () => {
        if (core.key) this.attachOpened(core.key)
      },
      () => {}
    )
  }

  constructor(opts: PeerNetworkOptions) {
    super()
    this.opts = opts
    this.node = opts.node
    this.log = opts.log
    this.writersOf = opts.writersOf ?? ((id, name) => this.volumeWriters(id, name))
    this.registry = PeerRegistry.load(opts.node.dir.root)
  }

  private get myKey(): Buffer {
    return this.node.dir.publicKey
  }

  async start(): Promise<void> {
    if (this.swarm) throw new Error('peer network already started')
    const dhtOpts: DHTOptions = { keyPair: this.node.dir.identity }
    if (this.opts.bootstrap) dhtOpts.bootstrap = this.opts.bootstrap
    if (this.opts.firewalled !== undefined) dhtOpts.firewalled = this.opts.firewalled
    if (this.opts.port !== undefined) {
      dhtOpts.port = this.opts.port
      dhtOpts.anyPort = false
    }
    // A hyperdht node whose bind failed can't be destroyed cleanly (its interface watcher
    // stays open and keeps the process alive): check a fixed port before making one.
    if (this.opts.port !== undefined) {
      await checkUdpPort(this.opts.port).catch((err: Error) => {
        throw new Error(`cannot listen: ${err.message} (the "port" setting)`)
      })
    }
    const dht = new DHT(dhtOpts)
    try {
      await dht.bind()
    } catch (err) {
      await abandon(dht)
      const code = (err as NodeJS.ErrnoException).code
      throw new Error(code === 'EADDRINUSE' ? `cannot listen: UDP port ${this.opts.port} is in use (the "port" setting)` : `cannot open the DHT socket: ${message(err)}`)
    }
    // A storage-only node keeps its replicas and held logs open (downloading while peers have more).
    await this.node.mirrors.load()
    for (const v of this.node.dir.listVolumes()) {
      if (!v.storageOnly) continue
      await this.node.heldVolume(v.name).catch((err: Error) => this.log('error', `volume ${v.name} (storage-only): ${err.message}`))
    }
    const swarm = new Hyperswarm({
      keyPair: this.node.dir.identity,
      dht,
      firewall: (remoteKey) => this.firewall(remoteKey)
    })
    this.swarm = swarm
    swarm.on('connection', (conn) => this.onConnection(conn))
    ;(this.node.store as unknown as WatchableStore).watch(this.onCoreOpened)
    // Announcing on the DHT can take long or never finish (no DHT reachable). Incoming
    // connections work once the socket is bound, so wait for the announcement only briefly.
    const listening = swarm.listen().then(
      () => true,
      (err) => {
        if (!this.stopping) this.log('warn', `net: announcing on the DHT failed: ${message(err)}`)
        return false
      }
    )
    const announced = await Promise.race([listening, new Promise<null>((r) => setTimeout(() => r(null), LISTEN_WAIT_MS).unref())])
    if (announced === null) this.log('warn', `net: the DHT did not answer within ${LISTEN_WAIT_MS / 1000} s; peers with a location still connect, discovery keeps trying`)
    const addr = this.address()
    this.log('info', `net: node ${encodeKey(this.myKey)} listening on UDP port ${addr?.port ?? '?'} (${describeDht(this.opts.bootstrap)})`)
    this.connectAll()
    const retryMs = this.opts.retryMs ?? DEFAULT_RETRY_MS
    this.timer = setInterval(() => this.connectAll(), retryMs)
    this.timer.unref()
  }

  /** hyperswarm's firewall: true rejects. Only peers in the registry get in. */
  private firewall(remoteKey: Buffer): boolean {
    if (this.registry.has(remoteKey)) return false
    const hex = remoteKey.toString('hex')
    const last = this.refusedAt.get(hex) ?? 0
    if (Date.now() - last > REFUSED_LOG_MS) {
      // A refused node keeps retrying: one line per node every few minutes is enough.
      this.refusedAt.set(hex, Date.now())
      this.log('info', `net: refused a connection from unknown node ${encodeKey(remoteKey)} (add it with \`bazil peer add\`)`)
    }
    return true
  }

  /** Closes every connection and the DHT node. Close the corestore only after this. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    if (this.timer) clearInterval(this.timer)
    ;(this.node.store as unknown as WatchableStore).unwatch(this.onCoreOpened)
    await this.refreshing.catch(() => {})
    for (const conn of this.dialing.values()) conn?.destroy()
    this.dialing.clear()
    const links = [...this.links.values()]
    for (const link of links) link.conn.destroy()
    for (const link of links) await this.closeLink(link)
    if (this.swarm) await this.swarm.destroy().catch((err) => this.log('warn', `net: stopping the swarm: ${message(err)}`))
    for (const set of this.waiters.values()) for (const w of set) w()
  }

  /** The DHT node's host and the UDP port other nodes can use as this node's location. */
  address(): HostPort | null {
    return this.swarm?.dht.localAddress() ?? null
  }

  peers(): PeerStatus[] {
    return this.registry.list().map((r) => {
      const link = this.links.get(decodeZ(r.key).toString('hex'))
      const connected = link?.connected ?? false
      const status: PeerStatus = { key: r.key, connected, lastSeen: connected ? Date.now() : r.lastSeen }
      if (r.location) status.location = r.location
      return status
    })
  }

  connected(key: Buffer): boolean {
    return this.links.get(key.toString('hex'))?.connected ?? false
  }

  /** Resolves once the peer is connected and has said hello; rejects after timeoutMs. */
  waitConnected(key: Buffer, timeoutMs: number): Promise<void> {
    if (this.connected(key)) return Promise.resolve()
    const hex = key.toString('hex')
    return new Promise((resolve, reject) => {
      let set = this.waiters.get(hex)
      if (!set) this.waiters.set(hex, (set = new Set()))
      const done = (): void => {
        clearTimeout(timer)
        set.delete(done)
        if (this.connected(key)) resolve()
        else reject(new Error(`peer ${encodeKey(key)} is not connected (network stopped)`))
      }
      const timer = setTimeout(() => {
        set.delete(done)
        const known = this.registry.has(key)
        reject(
          new Error(
            known
              ? `peer ${encodeKey(key)} not reachable within ${Math.round(timeoutMs / 1000)} s: is its server running, and has it added this node (\`bazil peer add ${encodeKey(this.myKey)}\`)?`
              : `peer ${encodeKey(key)} is unknown: add it with \`bazil peer add ${encodeKey(key)}\``
          )
        )
      }, timeoutMs)
      set.add(done)
    })
  }

  /** What a connected peer offered us: its volumes (with writer logs) and its store, or null. */
  remote(key: Buffer): RemoteView | null {
    const link = this.links.get(key.toString('hex'))
    if (!link?.hello) return null
    return {
      storage: link.hello.storage,
      volumes: link.hello.volumes.map((v) => ({ ...v, writers: [...(link.offered.get(v.id.toString('hex'))?.values() ?? [])] }))
    }
  }

  /** The stores a connected peer lets us read: its own (HELLO) and its replicas of others' (STORES); null if not connected. */
  storeOffers(key: Buffer): { storage: StorageOffer | null; stores: StoreReplica[] } | null {
    const link = this.links.get(key.toString('hex'))
    if (!link?.hello) return null
    return { storage: link.hello.storage, stores: [...link.stores] }
  }

  /** Keys of the peers connected now. */
  connectedPeers(): Buffer[] {
    return [...this.links.values()].filter((l) => l.connected && !l.closed).map((l) => l.key)
  }

  /** The connection's protomux, for tests and diagnostics. */
  muxer(key: Buffer): Protomux | null {
    return this.links.get(key.toString('hex'))?.replication.mux ?? null
  }

  /** Re-reads the registry after a peer was added, removed or allowed something. */
  refresh(): void {
    this.refreshing = this.refreshing.then(() => this.doRefresh()).catch((err) => this.log('error', `net: refresh failed: ${message(err)}`))
  }

  /** Resolves when refreshes asked for so far are done. */
  settled(): Promise<void> {
    return this.refreshing
  }

  /** Tells connected peers allowed the volume about a (new) writer log, and lets them replicate it. */
  announceWriter(volumeId: Buffer, logKey: Buffer): void {
    this.rememberWriter(volumeId, logKey)
    this.offerWriter(volumeId, logKey, null)
  }

  // ---- connections ----------------------------------------------------------------------

  private onConnection(conn: SecretStream): void {
    conn.on('error', (err: Error) => this.log('debug', `net: connection to ${encodeKey(conn.remotePublicKey)}: ${err.message}`))
    const key = Buffer.from(conn.remotePublicKey)
    const hex = key.toString('hex')
    const z = encodeKey(key)
    if (this.stopping || !this.registry.has(key)) {
      if (!this.stopping) this.log('warn', `net: refused a connection from unknown node ${z}`)
      conn.destroy()
      return
    }
    const existing = this.links.get(hex)
    if (existing) {
      if (!this.keepNew(existing, conn)) {
        this.log('debug', `net: peer ${z}: dropping a duplicate connection`)
        conn.destroy()
        return
      }
      this.log('debug', `net: peer ${z}: a newer connection replaces the old one`)
      existing.conn.destroy()
      void this.closeLink(existing)
    }
    this.setupLink(conn, key, hex, z)
  }

  /**
   * Two connections to one peer (both dialed at once, or the peer lost the old one): both
   * sides keep the one the larger key initiated, as hyperswarm does, unless the old one has
   * been up a while (then the peer dialed again because it lost it).
   */
  private keepNew(existing: Link, conn: SecretStream): boolean {
    const iLead = Buffer.compare(this.myKey, existing.key) > 0
    const newPreferred = conn.isInitiator === iLead
    const oldPreferred = existing.conn.isInitiator === iLead
    if (newPreferred !== oldPreferred) return newPreferred || Date.now() - existing.openedAt > FRESH_CONNECTION_MS
    return true
  }

  private setupLink(conn: SecretStream, key: Buffer, hex: string, z: string): void {
    const link = { key, hex, z, conn, access: null, served: new Map(), hello: null, offered: new Map(), stores: [], sentStores: false, connected: false, openedAt: Date.now(), inbox: Promise.resolve(), closed: false, helloTimer: null } as unknown as Link
    link.replication = new Replication(
      this.node.store,
      conn,
      (dk) => this.allowedCore(link, dk),
      (msg) => this.log('warn', `net: peer ${z}: ${msg}`)
    )
    const channel = link.replication.mux.createChannel({
      protocol: CHANNEL_PROTOCOL,
      onopen: () => this.onChannelOpen(link),
      onclose: () => {
        if (!link.closed) conn.destroy()
      }
    })
    if (!channel) {
      conn.destroy()
      return
    }
    link.channel = channel
    link.sender = channel.addMessage<Buffer>({ encoding: c.raw, onmessage: (buf) => this.onMessage(link, buf) })
    this.links.set(hex, link)
    conn.on('close', () => {
      if (this.links.get(hex) === link) this.links.delete(hex)
      void this.closeLink(link)
    })
    link.accessReady = this.computeAccess(link).catch((err) => this.log('error', `net: peer ${z}: computing access: ${message(err)}`))
    link.helloTimer = setTimeout(() => {
      if (!link.hello) this.dropPeer(link, `no hello within ${(this.opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS) / 1000} s`)
    }, this.opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS)
    link.helloTimer.unref()
    channel.open()
    this.dialing.delete(hex)
  }

  private async closeLink(link: Link): Promise<void> {
    if (link.closed) return
    link.closed = true
    if (link.helloTimer) clearTimeout(link.helloTimer)
    if (this.links.get(link.hex) === link) this.links.delete(link.hex)
    if (link.connected) {
      link.connected = false
      this.touch(link.key)
      this.log('info', `net: peer ${link.z} disconnected`)
      this.emit('peer-disconnected', link.key)
    }
    await link.replication.close()
    if (!this.stopping && !this.links.has(link.hex)) {
      // Direct peers: redial soon rather than at the next retry tick, backing off when
      // connections keep dying young (a peer we keep dropping, or one that drops us).
      const rec = this.registry.get(link.key)
      if (rec?.location) {
        const delay = Date.now() - link.openedAt > 10_000 ? REDIAL_MS : Math.min((this.redialDelay.get(link.hex) ?? REDIAL_MS / 2) * 2, this.opts.retryMs ?? DEFAULT_RETRY_MS)
        this.redialDelay.set(link.hex, delay)
        setTimeout(() => this.connectOne(rec), delay).unref()
      }
    }
  }

  private dropPeer(link: Link, why: string): void {
    if (link.closed) return
    this.log('warn', `net: peer ${link.z}: ${why}: disconnecting`)
    link.conn.destroy()
  }

  private touch(key: Buffer): void {
    try {
      PeerRegistry.update(this.node.dir.root, (r) => r.touch(key, Date.now()))
      this.registry = PeerRegistry.load(this.node.dir.root)
    } catch (err) {
      this.log('warn', `net: cannot record when ${encodeKey(key)} was seen: ${message(err)}`)
    }
  }

  private connectAll(): void {
    if (this.stopping || !this.swarm) return
    for (const rec of this.registry.list()) this.connectOne(rec)
  }

  private connectOne(rec: PeerRecord): void {
    const swarm = this.swarm
    if (this.stopping || !swarm) return
    const key = decodeZ(rec.key)
    const hex = key.toString('hex')
    if (this.links.has(hex)) return
    // hyperswarm bans a key its firewall refused once; the peer may have been added since.
    swarm.peers.get(hex)?.ban(false)
    if (rec.location) {
      void this.dial(key, rec.location)
    } else {
      swarm.joinPeer(key) // stays registered; calling again re-queues a peer hyperswarm backed off from
    }
  }

  /** A direct connection to the peer's DHT socket at a known address: no lookup, no retry (the retry tick redials). */
  private async dial(key: Buffer, location: string): Promise<void> {
    const hex = key.toString('hex')
    if (this.dialing.has(hex) || !this.swarm) return
    const swarm = this.swarm
    const { host, port } = parseHostPort(location, 'location')
    let ip = host
    this.dialing.set(hex, null)
    if (!net.isIPv4(host)) {
      try {
        ip = (await dns.lookup(host, { family: 4 })).address
      } catch (err) {
        this.dialing.delete(hex)
        this.log('warn', `net: peer ${encodeKey(key)}: cannot resolve ${host}: ${message(err)}`)
        return
      }
    }
    if (this.stopping) {
      this.dialing.delete(hex)
      return
    }
    const conn = swarm.dht.connect(key, { keyPair: this.node.dir.identity, relayAddresses: [{ host: ip, port }] })
    this.dialing.set(hex, conn)
    conn.on('error', (err: Error) => this.log('debug', `net: dialing ${encodeKey(key)} at ${location}: ${err.message}`))
    conn.on('open', () => {
      if (this.dialing.get(hex) === conn) this.dialing.delete(hex)
      this.onConnection(conn)
    })
    conn.on('close', () => {
      if (this.dialing.get(hex) === conn) this.dialing.delete(hex)
    })
  }

  // ---- bazil's channel ------------------------------------------------------------------

  private async onChannelOpen(link: Link): Promise<void> {
    try {
      await link.accessReady
      this.sendOffer(link)
    } catch (err) {
      this.log('error', `net: peer ${link.z}: ${message(err)}`)
    }
  }

  private send(link: Link, m: Message): void {
    if (link.closed || link.channel.closed) return
    link.sender.send(encodeMessage(m))
  }

  /** Our hello (what the peer may see) and the writer logs of each of those volumes. */
  private sendOffer(link: Link): void {
    const access = link.access
    if (!access) return
    this.send(link, { type: 'hello', storage: access.storage, volumes: access.volumes.map((v) => ({ id: v.id, name: v.name })) })
    if (access.stores.length > 0 || link.sentStores) {
      this.send(link, { type: 'stores', stores: access.stores })
      link.sentStores = access.stores.length > 0
    }
    for (const v of access.volumes) for (const m of writersMessages(v.id, v.writers)) this.send(link, m)
  }

  /** Runs inside protomux: must never throw. */
  private onMessage(link: Link, buf: Buffer): void {
    let m: Message
    try {
      m = decodeMessage(buf)
    } catch (err) {
      this.dropPeer(link, err instanceof ProtocolError ? `protocol error: ${err.message}` : `bad message: ${message(err)}`)
      return
    }
    link.inbox = link.inbox
      .then(() => this.handle(link, m))
      .catch((err) => {
        if (err instanceof ProtocolError) this.dropPeer(link, `protocol error: ${err.message}`)
        else this.log('error', `net: peer ${link.z}: handling a ${m.type} message: ${message(err)}`)
      })
  }

  /**
   * The peer counts as connected once its first offer is in: the HELLO and the STORES and
   * WRITERS sent with it (they arrive right behind it), so that a command waiting for the
   * peer sees all of it.
   */
  private markConnected(link: Link): void {
    let rounds = 0
    const settle = (tail: Promise<void>): void => {
      setImmediate(() => {
        // (a peer that never stops sending is connected after a few rounds all the same)
        if (link.inbox !== tail && ++rounds < 8) return void link.inbox.then(() => settle(link.inbox))
        if (link.closed || link.connected) return
        link.connected = true
        this.touch(link.key)
        this.log('info', `net: peer ${link.z} connected (${link.conn.isInitiator ? 'outgoing' : 'incoming'})`)
        this.emit('peer-connected', link.key)
        const set = this.waiters.get(link.hex)
        if (set) for (const w of [...set]) w()
      })
    }
    void link.inbox.then(() => settle(link.inbox))
  }

  private async handle(link: Link, m: Message): Promise<void> {
    if (link.closed) return
    if (m.type === 'hello') {
      const first = link.hello === null
      link.hello = m
      const offeredIds = new Set(m.volumes.map((v) => v.id.toString('hex')))
      for (const id of [...link.offered.keys()]) if (!offeredIds.has(id)) link.offered.delete(id)
      if (first && link.helloTimer) clearTimeout(link.helloTimer)
      await this.adoptOffers(link, null)
      await this.maybeMirror(link)
      this.emit('remote', link.key)
      await this.attachOfferedStores(link)
      if (first) this.markConnected(link)
      return
    }
    if (!link.hello) throw new ProtocolError(`${m.type} before hello`)
    if (m.type === 'stores') {
      // Our own store, or the sender's (its HELLO offers that), are no replicas to read.
      link.stores = m.stores.filter((st) => !st.node.equals(this.myKey) && !st.node.equals(link.key))
      this.emit('remote', link.key)
      await this.attachOfferedStores(link)
      return
    }
    const volHex = m.volumeId.toString('hex')
    if (!link.hello.volumes.some((v) => v.id.equals(m.volumeId))) throw new ProtocolError(`writers for volume ${volHex}, which its hello did not offer`)
    let offered = link.offered.get(volHex)
    if (!offered) link.offered.set(volHex, (offered = new Map()))
    for (const w of m.writers) offered.set(w.toString('hex'), w)
    await this.adoptOffers(link, volHex)
    this.emit('remote', link.key)
  }

  // ---- access control ---------------------------------------------------------------------

  private async volumeWriters(volumeId: Buffer, name: string): Promise<Buffer[]> {
    try {
      if (this.node.dir.volumeEntry(name).id !== volumeId.toString('hex')) return []
      return await this.node.writerKeys(name)
    } catch (err) {
      this.log('debug', `net: volume ${name}: cannot list its writers: ${message(err)}`)
      return []
    }
  }

  /** Known writer logs of a local volume: its own list plus those accepted or announced here. */
  private async knownWriters(volumeId: Buffer, name: string): Promise<Map<string, Buffer>> {
    const known = new Map<string, Buffer>()
    for (const w of await this.writersOf(volumeId, name)) known.set(w.toString('hex'), w)
    for (const [h, w] of this.extraWriters.get(volumeId.toString('hex')) ?? []) known.set(h, w)
    return known
  }

  private async computeAccess(link: Link): Promise<void> {
    const rec = this.registry.get(link.key)
    if (!rec) return
    const access = await accessFor(this.node, rec, async (id, name) => [...(await this.knownWriters(id, name)).values()], this.replicasFor(rec))
    link.access = access
    link.served = accessKeys(access)
    for (const k of link.served.values()) void link.replication.attach(k)
  }

  /** The core key for a discovery key the peer asked about, if the peer may have that core. */
  private async allowedCore(link: Link, dkHex: string): Promise<Buffer | null> {
    await link.accessReady
    const served = link.served.get(dkHex)
    if (served) return served
    const storage = this.remoteStorageKey(link, dkHex)
    // The peer's own store: attach only if we use it (it's in our storage), never creating it.
    if (storage && (await this.stored(Buffer.from(dkHex, 'hex')))) return storage
    this.log('debug', `net: peer ${link.z}: refused core ${dkHex.slice(0, 16)}… (not allowed)`)
    return null
  }

  /**
   * The replicas of other nodes' stores this node lets peer `rec` read: node N's, if N is in
   * the registry and shares with this node a volume that `rec` is allowed too (never N's own
   * store back to N).
   */
  private replicasFor(rec: PeerRecord): StoreReplica[] {
    const local = new Set(this.node.dir.listVolumes().map((v) => v.id))
    const shared = new Set(rec.volumes.filter((v) => local.has(v)))
    if (shared.size === 0) return []
    const peer = decodeZ(rec.key)
    const out: StoreReplica[] = []
    for (const r of this.node.mirrors.list()) {
      if (r.node.equals(peer)) continue
      const owner = this.registry.get(r.node)
      if (owner && owner.volumes.some((v) => shared.has(v))) out.push(r)
    }
    return out
  }

  /**
   * The key of a store core the peer offered (its own store in its HELLO, or a replica in its
   * STORES) with this discovery key, if it's safe to attach. Attaching opens the channel both
   * ways, so a core we hold for another purpose is never attached through an offer.
   */
  private remoteStorageKey(link: Link, dkHex: string): Buffer | null {
    const offers: { owner: Buffer; keys: StorageOffer }[] = []
    if (link.hello?.storage) offers.push({ owner: link.key, keys: link.hello.storage })
    for (const st of link.stores) offers.push({ owner: st.node, keys: st })
    for (const { owner, keys } of offers) {
      for (const k of [keys.cas, keys.index]) {
        if (discoveryKey(k).toString('hex') !== dkHex) continue
        // A peer offering one of OUR cores as its store would read it through the back door.
        if (k.equals(this.node.chunks.casKey) || k.equals(this.node.chunks.indexKey)) return null
        for (const ws of this.extraWriters.values()) if (ws.has(k.toString('hex'))) return null
        // A replica we keep of some node's store goes only to that node, or where served() says.
        const mirrored = this.node.mirrors.ownerOf(k)
        if (mirrored && !(mirrored.node.equals(link.key) && owner.equals(link.key))) return null
        return k
      }
    }
    return null
  }

  /**
   * A storage-only node keeps a full replica of the store a peer offers it, when it holds
   * (storage-only) a volume it shares with that peer: so it can serve that content to the
   * volume's other peers while the owner is away.
   */
  /** The volume records of this node; null (logged) when the data dir can't be read: a peer's message must not crash us. */
  private localVolumes(): ReturnType<Node['dir']['listVolumes']> | null {
    try {
      return this.node.dir.listVolumes()
    } catch (err) {
      this.log('error', `net: cannot list volumes: ${message(err)}`)
      return null
    }
  }

  private async maybeMirror(link: Link): Promise<void> {
    const offer = link.hello?.storage
    if (!offer || link.closed) return
    const rec = this.registry.get(link.key)
    if (!rec) return
    const local = this.localVolumes()
    if (!local || !local.some((v) => v.storageOnly && rec.volumes.includes(v.id))) return
    for (const k of [offer.cas, offer.index]) {
      let why: string | null = null
      if (k.equals(this.node.chunks.casKey) || k.equals(this.node.chunks.indexKey)) why = "it is this node's own store"
      const other = this.node.mirrors.ownerOf(k)
      if (other && !other.node.equals(link.key)) why = 'it is the store of another node'
      for (const ws of this.extraWriters.values()) if (ws.has(k.toString('hex'))) why = 'it is a writer log'
      for (const v of local) if (!why && (await this.knownWriters(Buffer.from(v.id, 'hex'), v.name)).has(k.toString('hex'))) why = `it is a writer log of volume ${v.name}`
      if (why) {
        this.log('warn', `net: peer ${link.z}: not keeping a replica of the store it offers: ${why}`)
        return
      }
    }
    try {
      if (await this.node.mirrors.mirror({ node: link.key, cas: offer.cas, index: offer.index })) {
        this.log('info', `net: keeping a replica of peer ${link.z}'s store`)
        this.refresh() // other peers of its volumes may now read it here
      }
    } catch (err) {
      this.log('error', `net: peer ${link.z}: cannot keep a replica of its store: ${message(err)}`)
    }
  }

  private async stored(dk: Buffer): Promise<boolean> {
    const probe = this.node.store.get({ discoveryKey: dk })
    try {
      await probe.ready()
      return true
    } catch {
      return false
    } finally {
      await probe.close().catch(() => {})
    }
  }

  /**
   * The stores a peer offers (HELLO, STORES) whose cores this node already holds (opened before
   * the offer arrived: copies read from in an earlier run, or before a reconnect): attached now,
   * since no open event will come for them.
   */
  private async attachOfferedStores(link: Link): Promise<void> {
    const keys: Buffer[] = []
    if (link.hello?.storage) keys.push(link.hello.storage.cas, link.hello.storage.index)
    for (const st of link.stores) keys.push(st.cas, st.index)
    for (const k of keys) {
      if (link.closed || link.replication.attached(k)) continue
      if (this.remoteStorageKey(link, discoveryKey(k).toString('hex')) && (await this.stored(discoveryKey(k)))) void link.replication.attach(k)
    }
  }

  /** A core was opened locally (by a volume, a storage user, ...): attach it where a peer may replicate it. */
  private attachOpened(key: Buffer): void {
    if (this.stopping) return
    const dkHex = discoveryKey(key).toString('hex')
    for (const link of this.links.values()) {
      if (link.closed || link.replication.attached(key)) continue
      if (link.served.has(dkHex) || this.remoteStorageKey(link, dkHex)) void link.replication.attach(key)
    }
  }

  private rememberWriter(volumeId: Buffer, key: Buffer): void {
    const volHex = volumeId.toString('hex')
    let set = this.extraWriters.get(volHex)
    if (!set) this.extraWriters.set(volHex, (set = new Map()))
    set.set(key.toString('hex'), key)
  }

  /** Lets every connected peer allowed the volume (except `from`) replicate the log, and tells it. */
  private offerWriter(volumeId: Buffer, key: Buffer, from: Link | null): void {
    const dkHex = discoveryKey(key).toString('hex')
    for (const link of this.links.values()) {
      if (link.closed || !link.access) continue
      const vol = link.access.volumes.find((v) => v.id.equals(volumeId))
      if (!vol) continue
      if (!vol.writers.some((w) => w.equals(key))) vol.writers.push(key)
      link.served.set(dkHex, key)
      void link.replication.attach(key)
      if (link !== from && link.channel.opened) this.send(link, { type: 'writers', volumeId, writers: [key] })
    }
  }

  /**
   * Takes up the writer logs a peer offered for volumes we have and share with it: new ones
   * are announced ('writer') and replicated, and passed on to our other peers of the volume.
   */
  private async adoptOffers(link: Link, onlyVolume: string | null): Promise<void> {
    const rec = this.registry.get(link.key)
    if (!rec) return
    const local = this.localVolumes()
    if (!local) return
    for (const [volHex, offered] of link.offered) {
      if (onlyVolume !== null && volHex !== onlyVolume) continue
      if (!rec.volumes.includes(volHex)) continue // we don't share this volume with that peer
      const vol = local.find((v) => v.id === volHex)
      if (!vol) continue
      const volumeId = Buffer.from(volHex, 'hex')
      const known = await this.knownWriters(volumeId, vol.name)
      for (const [keyHex, key] of offered) {
        if (known.has(keyHex)) {
          if (!link.replication.attached(key) && link.served.has(discoveryKey(key).toString('hex'))) void link.replication.attach(key)
          continue
        }
        const why = await this.refuseWriter(key, local)
        if (why) {
          this.log('warn', `net: peer ${link.z}: ignoring writer log ${encodeKey(key)} of volume ${vol.name}: ${why}`)
          continue
        }
        if (link.closed) return
        this.rememberWriter(volumeId, key)
        known.set(keyHex, key)
        this.log('info', `net: volume ${vol.name}: new writer log ${encodeKey(key)} from peer ${link.z}`)
        this.offerWriter(volumeId, key, link)
        this.emit('writer', volumeId, key, link.key)
      }
    }
  }

  /** Why a key a peer offered as a writer log must not be taken as one (null: fine). */
  private async refuseWriter(key: Buffer, local: { id: string; name: string }[]): Promise<string | null> {
    if (key.equals(this.node.chunks.casKey) || key.equals(this.node.chunks.indexKey)) return 'it is this node\'s content store'
    const hex = key.toString('hex')
    for (const v of local) {
      const ws = await this.knownWriters(Buffer.from(v.id, 'hex'), v.name)
      if (ws.has(hex)) return `it is a writer log of volume ${v.name}`
    }
    // A core we hold for some other reason: replicating it as this volume's would hand it out.
    if (await this.stored(discoveryKey(key))) return 'this node holds that core for another purpose'
    return null
  }

  // ---- refresh ------------------------------------------------------------------------------

  private async doRefresh(): Promise<void> {
    if (this.stopping) return
    const before = this.registry
    this.registry = PeerRegistry.load(this.node.dir.root)
    const swarm = this.swarm
    for (const old of before.list()) {
      const rec = this.registry.get(decodeZ(old.key))
      if (!rec && swarm) swarm.leavePeer(decodeZ(old.key))
      if (rec?.location && !old.location && swarm) swarm.leavePeer(decodeZ(old.key))
    }
    for (const link of [...this.links.values()]) {
      if (link.closed) continue
      const rec = this.registry.get(link.key)
      if (!rec) {
        this.dropPeer(link, 'removed from the peer list')
        continue
      }
      await link.accessReady
      const oldServed = link.served
      const oldAccess = link.access
      link.accessReady = this.computeAccess(link)
      await link.accessReady
      const narrowed = [...oldServed.keys()].some((dk) => !link.served.has(dk))
      if (narrowed) {
        // hypercore can't take back a channel's blocks mid-connection: start over with the new rules.
        this.dropPeer(link, 'access narrowed')
        continue
      }
      if (JSON.stringify(summary(oldAccess)) !== JSON.stringify(summary(link.access)) && link.channel.opened) this.sendOffer(link)
      await this.adoptOffers(link, null)
      await this.maybeMirror(link)
    }
    this.connectAll()
  }
}

function summary(a: Access | null): unknown {
  if (!a) return null
  return {
    storage: a.storage ? [a.storage.cas.toString('hex'), a.storage.index.toString('hex')] : null,
    stores: a.stores.map((r) => [r.node, r.cas, r.index].map((k) => k.toString('hex')).join(':')).sort(),
    volumes: a.volumes.map((v) => [v.id.toString('hex'), v.name, v.writers.map((w) => w.toString('hex')).sort()])
  }
}

function describeDht(bootstrap: HostPort[] | undefined): string {
  if (!bootstrap) return 'public DHT'
  if (bootstrap.length === 0) return 'no DHT: direct connections only'
  return `DHT ${bootstrap.map((b) => `${b.host}:${b.port}`).join(',')}`
}

/** A key from the registry (validated when the registry was read). */
function decodeZ(z: string): Buffer {
  return decodeKey(z, 'peer key')
}
