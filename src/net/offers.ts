// What runs on one connection: bazil's channel (HELLO, STORES, WRITERS both ways) and
// replication of exactly the cores access.ts allows, attached on every path by asking it:
// the remote opening a channel by discovery key, a core opened here, the stores and writer
// logs the remote offers. Writer logs outside the writer set are candidates, replicated with
// the peer that offered them only, handed to the node once their binding names that peer.
// Spec: spec/protocol.md ("Messages", "Access control", "Writer logs").
import type { SecretStream } from 'hyperdht'
import c from 'compact-encoding'
import { encodeKey } from '../crypto.js'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import { checkBinding } from '../logs/binding.js'
import { CHANNEL_PROTOCOL, LOCAL_FEATURES, ProtocolError, decodeHandshake, decodeMessage, encodeHandshake, encodeMessage, writersMessages, type Message, type StoreReplica } from './protocol.js'
import { Replication, accessKeys, discoveryKey, type Access } from './replication.js'
import type { AccessControl } from './access.js'
import type { NetHost } from './host.js'
import { message, type Link, type Links } from './links.js'
import { mirrorOffered } from './closet.js'
import { StateServer } from './state-serve.js'
import { StateFetcher } from './state-fetch.js'

const DEFAULT_HELLO_TIMEOUT_MS = 30_000
/** How long a candidate log's block 0 (its binding) is waited for. */
const BINDING_WAIT_MS = 30_000

export interface OffersEvents {
  /** What the peer offers us changed (see PeerNetwork.remote / storeOffers). */
  remote(key: Buffer): void
  connected(key: Buffer): void
  /** A candidate log bound to the peer that offered it was handed to the node. */
  writer(volumeId: Buffer, key: Buffer, from: Buffer): void
  /** This node started keeping a new replica (other peers' access may widen). */
  mirrored(): void
}

export class Offers {
  links!: Links
  /** Answers the peers' state requests (spec/protocol.md "States"). */
  readonly states: StateServer
  /** Asks peers for their states. */
  readonly stateFetcher: StateFetcher

  constructor(
    private readonly node: Node,
    private readonly log: Log,
    private readonly access: AccessControl,
    private readonly host: NetHost,
    private readonly events: OffersEvents,
    private readonly helloTimeoutMs = DEFAULT_HELLO_TIMEOUT_MS
  ) {
    this.states = new StateServer(access, host, log, (link, m) => this.send(link, m))
    this.stateFetcher = new StateFetcher((link, m) => this.send(link, m))
  }

  /** A new connection: replication limited by access, bazil's channel, our offer once access is known. */
  open(conn: SecretStream, key: Buffer, hex: string, z: string): Link | null {
    const link = { key, hex, z, conn, access: null, served: new Map(), hello: null, offered: new Map(), candidates: new Map(), pending: new Set(), stores: [], sentStores: false, keepSent: false, keepAsked: false, holdsSent: -1, features: 0, connected: false, openedAt: Date.now(), connectedAt: 0, inbox: Promise.resolve(), closed: false, helloTimer: null } as unknown as Link
    link.replication = new Replication(
      this.node.store,
      conn,
      (dk) => this.allowedCore(link, dk),
      (msg) => this.log('warn', `net: peer ${z}: ${msg}`)
    )
    const channel = link.replication.mux.createChannel({
      protocol: CHANNEL_PROTOCOL,
      // What each side understands beyond the first v1 nodes (protocol.ts encodeHandshake).
      handshake: c.raw,
      onopen: (handshake: unknown) => {
        try {
          link.features = decodeHandshake(handshake as Buffer | null)
        } catch (err) {
          this.links.dropPeer(link, `protocol error: ${message(err)}`)
          return
        }
        return this.onChannelOpen(link)
      },
      onclose: () => {
        if (!link.closed) conn.destroy()
      }
    })
    if (!channel) return null
    link.channel = channel
    link.sender = channel.addMessage<Buffer>({ encoding: c.raw, onmessage: (buf) => this.onMessage(link, buf) })
    link.accessReady = this.computeAccess(link).catch((err) => this.log('error', `net: peer ${z}: computing access: ${message(err)}`))
    link.helloTimer = setTimeout(() => {
      if (!link.hello) this.links.dropPeer(link, `no hello within ${this.helloTimeoutMs / 1000} s`)
    }, this.helloTimeoutMs)
    link.helloTimer.unref()
    channel.open(encodeHandshake(LOCAL_FEATURES))
    return link
  }

  async closed(link: Link): Promise<void> {
    this.states.closed(link)
    this.stateFetcher.closed(link)
    for (const hex of link.candidates.keys()) {
      const cand = this.access.candidates.get(hex)
      if (cand?.from === link.hex) this.access.candidates.delete(hex)
    }
    await link.replication.close()
  }

  // ---- attach paths: every one asks access.ts ----------------------------------------------

  /** Recomputes what the peer may replicate (access.served) and attaches those cores. */
  async computeAccess(link: Link): Promise<void> {
    const access = await this.access.served(link.key)
    link.access = access
    link.served = accessKeys(access)
    for (const k of link.candidates.values()) link.served.set(discoveryKey(k).toString('hex'), k)
    for (const k of link.served.values()) void link.replication.attach(k)
  }

  /** The stores the peer names (HELLO: its own; STORES: replicas of node N's), as (owner, core key). */
  private offeredStores(link: Link): { owner: Buffer; key: Buffer }[] {
    const out: { owner: Buffer; key: Buffer }[] = []
    if (link.hello?.storage) for (const k of [link.hello.storage.cas, link.hello.storage.index]) out.push({ owner: link.key, key: k })
    for (const st of link.stores) for (const k of [st.cas, st.index]) out.push({ owner: st.node, key: k })
    return out
  }

  /** The one test for a core the peer names as a store: access.storeAttachable, and held here. */
  private async storeCore(link: Link, dkHex: string | null, key?: Buffer): Promise<Buffer | null> {
    for (const o of this.offeredStores(link)) {
      if (key ? !o.key.equals(key) : discoveryKey(o.key).toString('hex') !== dkHex) continue
      if ((await this.access.storeAttachable(link.key, o.owner, o.key)) && (await this.access.stored(o.key))) return o.key
    }
    return null
  }

  /** The remote opened a channel for this discovery key: the core, if the peer may have it. */
  private async allowedCore(link: Link, dkHex: string): Promise<Buffer | null> {
    await link.accessReady
    const served = link.served.get(dkHex)
    if (served) return served
    const store = await this.storeCore(link, dkHex)
    if (store) return store
    this.log('debug', `net: peer ${link.z}: refused core ${dkHex.slice(0, 16)}… (not allowed)`)
    return null
  }

  /** Attaches the stores the peer offers that this node holds as theirs (no open event will come for cores already open). */
  async attachOfferedStores(link: Link): Promise<void> {
    for (const o of this.offeredStores(link)) {
      if (link.closed || link.replication.attached(o.key)) continue
      if (await this.storeCore(link, null, o.key)) void link.replication.attach(o.key)
    }
  }

  /** A core was opened locally (a volume, a store read from, a replica): attach it where allowed. */
  async attachOpened(key: Buffer, links: Iterable<Link>): Promise<void> {
    const dkHex = discoveryKey(key).toString('hex')
    for (const link of links) {
      if (link.closed || link.replication.attached(key)) continue
      if (link.served.has(dkHex) || (await this.storeCore(link, dkHex, key))) void link.replication.attach(key)
    }
  }

  // ---- bazil's channel ---------------------------------------------------------------------

  private async onChannelOpen(link: Link): Promise<void> {
    try {
      await link.accessReady
      this.sendOffer(link)
    } catch (err) {
      this.log('error', `net: peer ${link.z}: ${message(err)}`)
    }
  }

  send(link: Link, m: Message): void {
    if (link.closed || link.channel.closed) return
    link.sender.send(encodeMessage(m))
  }

  /** Our hello (what the peer may see), our STORES, and the writer logs of each of those volumes. */
  sendOffer(link: Link): void {
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
      this.links.dropPeer(link, err instanceof ProtocolError ? `protocol error: ${err.message}` : `bad message: ${message(err)}`)
      return
    }
    link.inbox = link.inbox
      .then(() => this.handle(link, m))
      .catch((err) => {
        if (err instanceof ProtocolError) this.links.dropPeer(link, `protocol error: ${err.message}`)
        else this.log('error', `net: peer ${link.z}: handling a ${m.type} message: ${message(err)}`)
      })
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
      await this.mirror(link)
      this.events.remote(link.key)
      await this.attachOfferedStores(link)
      if (first) this.markConnected(link)
      return
    }
    if (!link.hello) throw new ProtocolError(`${m.type} before hello`)
    if (m.type === 'keep') {
      link.keepAsked = true
      await this.keep(link)
      return
    }
    if (m.type === 'release') {
      await this.release(link, m.packs)
      return
    }
    if (m.type === 'state-get') {
      this.states.get(link, m) // answered on its own queue: sealing a big state must not hold up this inbox
      return
    }
    if (m.type === 'state-part' || m.type === 'state-none') {
      this.stateFetcher.receive(link, m)
      return
    }
    if (m.type === 'holds') {
      // The peer's word that it keeps our store this far (spec/protocol.md, HOLDS): what the copy rule counts.
      if (this.node.placement.confirm(link.key, m.packs, m.length)) this.log('debug', `net: peer ${link.z} holds ${m.length} packs of this node's store`)
      return
    }
    if (m.type === 'stores') {
      // Our own store, or the sender's (its HELLO offers that), are no replicas to read.
      link.stores = m.stores.filter((st) => !st.node.equals(this.node.dir.publicKey) && !st.node.equals(link.key))
      this.events.remote(link.key)
      await this.attachOfferedStores(link)
      return
    }
    const volHex = m.volumeId.toString('hex')
    if (!link.hello.volumes.some((v) => v.id.equals(m.volumeId))) throw new ProtocolError(`writers for volume ${volHex}, which its hello did not offer`)
    let offered = link.offered.get(volHex)
    if (!offered) link.offered.set(volHex, (offered = new Map()))
    for (const w of m.writers) offered.set(w.toString('hex'), w)
    await this.adoptOffers(link, volHex)
    this.events.remote(link.key)
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
        this.links.markConnected(link)
        this.events.connected(link.key)
      })
    }
    void link.inbox.then(() => settle(link.inbox))
  }

  // ---- stores offered ------------------------------------------------------------------------

  /** The stores the peer offers that access lets this node take as those nodes' stores (for the node to read from). */
  async storeOffers(link: Link): Promise<{ storage: { cas: Buffer; index: Buffer } | null; stores: StoreReplica[] } | null> {
    if (!link.hello) return null
    const ok = await this.access.acceptableStores(link.key, link.hello.storage, link.stores)
    for (const why of ok.refused) this.log('warn', `net: peer ${link.z}: not reading from the store it offers: ${why}`)
    return { storage: ok.storage, stores: ok.stores }
  }

  /** A storage-only node keeps a replica of the store of a peer it holds a volume for (closet.ts). */
  async mirror(link: Link): Promise<void> {
    const offer = link.hello?.storage
    if (!offer || link.closed) return
    const rec = this.access.registry.get(link.key)
    if (!rec) return
    const local = this.node.dir.listVolumes()
    if (!local.some((v) => v.storageOnly && rec.volumes.includes(v.id))) return
    const why = await this.access.storeClaimRefused(link.key, link.key, offer)
    if (why) {
      this.log('warn', `net: peer ${link.z}: not keeping a replica of the store it offers: ${why}`)
      return
    }
    if (await mirrorOffered(this.node.mirrors, { node: link.key, cas: offer.cas, index: offer.index }, this.log, link.z)) {
      this.access.invalidate()
      await this.attachOfferedStores(link)
      this.events.mirrored()
    }
  }

  /**
   * The peer asked this node to keep its store (KEEP): a full replica, as a storage-only node
   * keeps of the peers it holds volumes for, if access allows (access.keepRefused).
   */
  async keep(link: Link): Promise<void> {
    const offer = link.hello?.storage
    if (link.closed) return
    const why = offer ? await this.access.keepRefused(link.key, offer) : 'its hello offers no store (`bazil peer storage allow` there)'
    if (why) {
      this.log('warn', `net: peer ${link.z} asks this node to keep its store: not keeping it: ${why}`)
      return
    }
    if (await mirrorOffered(this.node.mirrors, { node: link.key, cas: offer!.cas, index: offer!.index }, this.log, link.z)) {
      this.access.invalidate()
      await this.attachOfferedStores(link)
      this.events.mirrored()
    }
  }

  /**
   * The peer no longer stores to this node (RELEASE): the replica of its store kept for it
   * (KEEP) goes, its disk space back, unless this node holds a volume of that peer
   * storage-only (a closet keeps what every writer it serves may need: spec/protocol.md).
   */
  async release(link: Link, packs: Buffer): Promise<void> {
    link.keepAsked = false
    link.holdsSent = -1
    const m = this.node.mirrors.get(link.key)
    if (!m || !m.replica.cas.equals(packs)) {
      this.log('debug', `net: peer ${link.z} asks this node to stop keeping a store it does not keep`)
      return
    }
    const rec = this.access.registry.get(link.key)
    const held = this.node.dir.listVolumes().find((v) => v.storageOnly && rec?.volumes.includes(v.id))
    if (held) {
      this.log('info', `net: peer ${link.z} no longer asks this node to keep its store: still kept, for volume ${held.name} held here storage-only`)
      return
    }
    const r = await this.node.mirrors.drop(link.key)
    if (!r) return
    this.access.invalidate()
    this.events.mirrored() // the replica is no longer offered to other peers (STORES)
    this.log('info', `net: peer ${link.z} no longer stores to this node: dropped the replica of its store (${r.packs} packs cleared)`)
  }

  // ---- writer logs offered -------------------------------------------------------------------

  /**
   * The writer logs a peer offered for volumes we have and share with it: those in the
   * volume's writer set are replicated with it; any other is a candidate (access.writerOffer).
   */
  async adoptOffers(link: Link, onlyVolume: string | null): Promise<void> {
    const rec = this.access.registry.get(link.key)
    if (!rec) return
    for (const [volHex, offered] of link.offered) {
      if (onlyVolume !== null && volHex !== onlyVolume) continue
      if (!rec.volumes.includes(volHex)) continue // we don't share this volume with that peer
      const vol = this.node.dir.listVolumes().find((v) => v.id === volHex)
      if (!vol) continue
      let known: Set<string>
      try {
        known = new Set((await this.host.writerKeys(vol.name)).map((k) => k.toString('hex')))
      } catch (err) {
        this.log('warn', `net: volume ${vol.name}: cannot list its writers: ${message(err)}`)
        continue
      }
      for (const [keyHex, key] of offered) {
        if (link.closed) return
        const d = await this.access.writerOffer(link.key, volHex, key, known)
        if ('refuse' in d) {
          this.log('warn', `net: peer ${link.z}: ignoring writer log ${encodeKey(key)} of volume ${vol.name}: ${d.refuse}`)
        } else if ('ignore' in d) {
          this.log('debug', `net: peer ${link.z}: not taking writer log ${encodeKey(key)} of volume ${vol.name} from it: ${d.ignore}`)
        } else if (d.take === 'writer') {
          if (!link.replication.attached(key) && link.served.has(discoveryKey(key).toString('hex'))) void link.replication.attach(key)
        } else if (!link.candidates.has(keyHex)) {
          this.candidate(link, Buffer.from(volHex, 'hex'), vol.name, key)
        }
      }
    }
  }

  /** Replicates a candidate log with this peer only, checks its binding, hands it to the node. */
  private candidate(link: Link, volumeId: Buffer, volName: string, key: Buffer): void {
    const hex = key.toString('hex')
    this.access.candidates.set(hex, { key, volume: volumeId.toString('hex'), from: link.hex })
    link.candidates.set(hex, key)
    link.served.set(discoveryKey(key).toString('hex'), key)
    const check = (async () => {
      let bound: Buffer | null = null
      try {
        const core = await link.replication.attach(key)
        if (!core) throw new Error('cannot open it')
        const block = (await core.get(0, { timeout: BINDING_WAIT_MS })) as Buffer | null
        bound = checkBinding(block, key, volumeId)
      } catch (err) {
        this.log('warn', `net: peer ${link.z}: candidate writer log ${encodeKey(key)} of volume ${volName}: ${message(err)}`)
      }
      this.access.candidates.delete(hex)
      if (!bound || link.closed) return this.offeredElsewhere(link, volumeId, hex)
      if (!bound.equals(link.key) && !(await this.host.admitsNode?.(volumeId, bound).catch(() => false))) {
        this.log('info', `net: peer ${link.z}: not taking writer log ${encodeKey(key)} of volume ${volName}: it is bound to node ${encodeKey(bound)}`)
        return this.offeredElsewhere(link, volumeId, hex)
      }
      this.log('info', `net: volume ${volName}: candidate writer log ${encodeKey(key)} from peer ${link.z}`)
      this.events.writer(volumeId, key, link.key)
      try {
        await this.host.candidateWriter(volumeId, key, link.key)
      } catch (err) {
        this.log('error', `volume ${volName}: could not add a writer log offered by a peer: ${message(err)}`)
      }
    })()
    link.pending.add(check)
    void check.finally(() => link.pending.delete(check))
  }

  /**
   * A candidate from `from` was not taken: the other peers that offered the same log (ignored
   * meanwhile as "a candidate offered by another peer") have their offers of that volume
   * looked at again, so the log can come from the node it is bound to.
   */
  private offeredElsewhere(from: Link, volumeId: Buffer, hex: string): void {
    const volHex = volumeId.toString('hex')
    for (const l of this.links.links.values()) {
      if (l === from || l.closed || !l.offered.get(volHex)?.has(hex)) continue
      const retry = this.adoptOffers(l, volHex).catch((err) => this.log('warn', `net: peer ${l.z}: ${message(err)}`))
      l.pending.add(retry)
      void retry.finally(() => l.pending.delete(retry))
    }
  }

  /**
   * The writer logs the peer offers for a local volume that are in its writer set (after the
   * candidate checks in flight are done, the peer's and the others': a log this peer offers
   * may be pending as another peer's candidate): what a sync with that peer waits for.
   */
  async writersFrom(link: Link, volumeId: Buffer): Promise<Buffer[]> {
    await link.inbox
    const pending = (): Promise<unknown>[] => [...this.links.links.values()].flatMap((l) => [...l.pending])
    for (let p = pending(); p.length > 0; p = pending()) await Promise.allSettled(p)
    const volHex = volumeId.toString('hex')
    const vol = this.node.dir.listVolumes().find((v) => v.id === volHex)
    if (!vol) return []
    const known = new Set((await this.host.writerKeys(vol.name)).map((k) => k.toString('hex')))
    return [...(link.offered.get(volHex)?.values() ?? [])].filter((k) => known.has(k.toString('hex')))
  }

  /** Sends the WRITERS the peer lacks (logs newly in a volume's writer set), after access was recomputed. */
  sendNewWriters(link: Link, before: Access | null): void {
    const access = link.access
    if (!access || !link.channel.opened) return
    for (const v of access.volumes) {
      const old = before?.volumes.find((o) => o.id.equals(v.id))
      if (!old) continue // a new volume: the new HELLO carries it
      const fresh = v.writers.filter((w) => !old.writers.some((o) => o.equals(w)))
      for (const m of writersMessages(v.id, fresh)) this.send(link, m)
    }
  }
}
