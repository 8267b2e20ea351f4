// Connections to peers: the hyperswarm with the node's key pair, the firewall (registered
// peers only), discovery by key or a direct dial to a known location, one connection per
// peer, retries and redials. What runs on a connection is offers.ts's business.
// Spec: spec/protocol.md, "Transport".
import dns from 'node:dns/promises'
import net from 'node:net'
import Hyperswarm from 'hyperswarm'
import DHT, { type DHTOptions, type SecretStream } from 'hyperdht'
import type { Channel, ChannelMessage } from 'protomux'
import { decodeKey, encodeKey } from '../crypto.js'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { HostPort } from './config.js'
import { parseHostPort } from './config.js'
import { abandon, checkUdpPort } from './udp.js'
import { PeerRegistry, type PeerRecord } from './peers.js'
import type { Hello, StoreReplica } from './protocol.js'
import type { Access, Replication } from './replication.js'
import type { AccessControl } from './access.js'

/** One connection to one registered peer, with what runs on it. */
export interface Link {
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
  /** Candidate logs replicated with this peer only (offered by it, bound to it), by key hex. */
  candidates: Map<string, Buffer>
  /** Candidate checks in flight (binding, then the node's decision). */
  pending: Set<Promise<void>>
  /** Replicas of other nodes' stores the peer offered (its last STORES). */
  stores: StoreReplica[]
  /** We sent this peer a non-empty STORES (so an emptied set must be sent too). */
  sentStores: boolean
  /** We asked this peer to keep our store (KEEP) on this connection. */
  keepSent: boolean
  /** The peer asked us to keep its store (KEEP): we answer with HOLDS as our replica grows. */
  keepAsked: boolean
  /** The packs count of the last HOLDS we sent on this connection (-1: none). */
  holdsSent: number
  /** The FEATURE_ bits of the peer's channel handshake (protocol.ts; 0: an older node). */
  features: number
  connected: boolean
  openedAt: number
  /** When the link became connected (its first offer in); 0 before. */
  connectedAt: number
  inbox: Promise<void>
  closed: boolean
  helloTimer: NodeJS.Timeout | null
}

export interface LinksOptions {
  bootstrap?: HostPort[]
  firewalled?: boolean
  port?: number
  retryMs?: number
}

export interface PeerStatus {
  key: string
  connected: boolean
  lastSeen: number | null
  location?: string
  /** Connected: since when (ms since the epoch), the UDX stream's remote address, who dialled. */
  since?: number
  address?: string
  direction?: 'outgoing' | 'incoming'
  /**
   * Through a blind relay? hyperdht (6.34) keeps a relay on its internal connection state,
   * not on the stream it hands over; bazil asks for no relay (`relayThrough`) on either side,
   * so false, unless this node's DHT has relayed a pairing (then null: not known).
   */
  relayed?: boolean | null
}

/** What the links need from their owner. */
export interface LinkHandler {
  /** Sets up bazil's channel and replication on a new connection; null if it could not. */
  open(conn: SecretStream, key: Buffer, hex: string, z: string): Link | null
  /** The link closed (after it was removed from the set). */
  closed(link: Link, wasConnected: boolean): Promise<void>
}

const DEFAULT_RETRY_MS = 10_000
/** A connection younger than this is not replaced by one from the non-preferred side. */
const FRESH_CONNECTION_MS = 3_000
const LISTEN_WAIT_MS = 3_000
const REFUSED_LOG_MS = 10 * 60_000
const REDIAL_MS = 500

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** A key from the registry (validated when the registry was read). */
export function decodeZ(z: string): Buffer {
  return decodeKey(z, 'peer key')
}

export class Links {
  swarm: Hyperswarm | null = null
  readonly links = new Map<string, Link>()
  /** Direct dials in flight, by peer key hex (null while the host name resolves). */
  private readonly dialing = new Map<string, SecretStream | null>()
  private readonly refusedAt = new Map<string, number>()
  private readonly redialDelay = new Map<string, number>()
  private readonly waiters = new Map<string, Set<() => void>>()
  private timer: NodeJS.Timeout | null = null
  stopping = false

  constructor(
    private readonly node: Node,
    private readonly log: Log,
    private readonly opts: LinksOptions,
    private readonly access: AccessControl,
    private readonly handler: LinkHandler
  ) {}

  private get myKey(): Buffer {
    return this.node.dir.publicKey
  }

  private get registry(): PeerRegistry {
    return this.access.registry
  }

  /** Binds the DHT socket (failing with a clear line) and makes the swarm; listening comes after. */
  async bind(): Promise<void> {
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
    const swarm = new Hyperswarm({ keyPair: this.node.dir.identity, dht, firewall: (remoteKey) => this.firewall(remoteKey) })
    this.swarm = swarm
    swarm.on('connection', (conn) => this.onConnection(conn))
  }

  /** Announces this node on the DHT (waiting briefly), then dials every registered peer and keeps retrying. */
  async listen(): Promise<void> {
    const swarm = this.swarm
    if (!swarm) throw new Error('peer network not bound')
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
    this.timer = setInterval(() => this.connectAll(), this.opts.retryMs ?? DEFAULT_RETRY_MS)
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

  /** Closes every connection and the DHT node. */
  async stop(): Promise<void> {
    this.stopping = true
    if (this.timer) clearInterval(this.timer)
    for (const conn of this.dialing.values()) conn?.destroy()
    this.dialing.clear()
    const links = [...this.links.values()]
    for (const link of links) link.conn.destroy()
    for (const link of links) await this.closeLink(link)
    if (this.swarm) await this.swarm.destroy().catch((err) => this.log('warn', `net: stopping the swarm: ${message(err)}`))
    for (const set of this.waiters.values()) for (const w of set) w()
  }

  address(): HostPort | null {
    return this.swarm?.dht.localAddress() ?? null
  }

  get(key: Buffer): Link | undefined {
    return this.links.get(key.toString('hex'))
  }

  peers(): PeerStatus[] {
    return this.registry.list().map((r) => {
      const link = this.links.get(decodeZ(r.key).toString('hex'))
      const connected = link?.connected ?? false
      const status: PeerStatus = { key: r.key, connected, lastSeen: connected ? Date.now() : r.lastSeen }
      if (r.location) status.location = r.location
      if (link && connected) {
        const raw = link.conn.rawStream
        status.since = link.connectedAt
        if (raw?.remoteHost) status.address = raw.remoteHost.includes(':') ? `[${raw.remoteHost}]:${raw.remotePort}` : `${raw.remoteHost}:${raw.remotePort}`
        status.direction = link.conn.isInitiator ? 'outgoing' : 'incoming'
        status.relayed = (this.swarm?.dht.stats?.relaying.attempts ?? 0) > 0 ? null : false
      }
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

  /** The link became connected (its first offer is in): wake whoever waits for it. */
  markConnected(link: Link): void {
    link.connected = true
    link.connectedAt = Date.now()
    this.touch(link.key)
    this.log('info', `net: peer ${link.z} connected (${link.conn.isInitiator ? 'outgoing' : 'incoming'})`)
    const set = this.waiters.get(link.hex)
    if (set) for (const w of [...set]) w()
  }

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
    const link = this.handler.open(conn, key, hex, z)
    if (!link) {
      conn.destroy()
      return
    }
    this.links.set(hex, link)
    conn.on('close', () => {
      if (this.links.get(hex) === link) this.links.delete(hex)
      void this.closeLink(link)
    })
    this.dialing.delete(hex)
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

  async closeLink(link: Link): Promise<void> {
    if (link.closed) return
    link.closed = true
    if (link.helloTimer) clearTimeout(link.helloTimer)
    if (this.links.get(link.hex) === link) this.links.delete(link.hex)
    const wasConnected = link.connected
    if (link.connected) {
      link.connected = false
      this.touch(link.key)
      this.log('info', `net: peer ${link.z} disconnected`)
    }
    await this.handler.closed(link, wasConnected)
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

  dropPeer(link: Link, why: string): void {
    if (link.closed) return
    this.log('warn', `net: peer ${link.z}: ${why}: disconnecting`)
    link.conn.destroy()
  }

  private touch(key: Buffer): void {
    try {
      PeerRegistry.update(this.node.dir.root, (r) => r.touch(key, Date.now()))
      this.access.reloadRegistry()
    } catch (err) {
      this.log('warn', `net: cannot record when ${encodeKey(key)} was seen: ${message(err)}`)
    }
  }

  /** After the registry changed: stop looking for removed peers (and for those now dialled directly). */
  registryChanged(before: PeerRegistry): void {
    const swarm = this.swarm
    if (!swarm) return
    for (const old of before.list()) {
      const rec = this.registry.get(decodeZ(old.key))
      if (!rec) swarm.leavePeer(decodeZ(old.key))
      if (rec?.location && !old.location) swarm.leavePeer(decodeZ(old.key))
    }
  }

  connectAll(): void {
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
}

function describeDht(bootstrap: HostPort[] | undefined): string {
  if (!bootstrap) return 'public DHT'
  if (bootstrap.length === 0) return 'no DHT: direct connections only'
  return `DHT ${bootstrap.map((b) => `${b.host}:${b.port}`).join(',')}`
}
