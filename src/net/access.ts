// Every access decision of the network, in one place: which cores a peer may receive, and
// which cores it may feed us. Decisions are by ROLE and by key: every core this node holds has
// one role, read from what the data dir records (so the same before and after a restart):
//
//   own-store       this node's `cas` and `cas-index` cores (ChunkStore)
//   log of V        a writer log of local volume V: this node's own (its corestore name) and
//                   every one in DATA/writers/V.json (readable or storage-only volume)
//   store of N      a copy of node N's store: a replica (DATA/mirrors.json) or a store this
//                   node reads from (DATA/corestore/cas-sources, with its owner)
//
// A peer P receives exactly: the logs the node serves for the volumes P is allowed (NetHost
// writerKeys), this node's store if P is allowed storage, the replicas the STORES rule gives
// it; and it may feed us: those, the stores it offers whose recorded role is "store of P"
// (or of a node N it offers a replica of, under the same rule), and the candidate logs it
// offered that are bound to P. A core with any other role, or present with none, is never
// attached to P's connection, whatever P names or asks. Rules: spec/protocol.md, "Access control".
import Hypercore from 'hypercore'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import { decodeKey, encodeKey } from '../crypto.js'
import { readWritersFile } from '../writers-file.js'
import { writerLogName } from '../logs/writer-log.js'
import { checkBinding } from '../logs/binding.js'
import { PeerRegistry, type PeerRecord } from './peers.js'
import { discoveryKey, type Access, type VolumeAccess } from './replication.js'
import type { StorageOffer, StoreReplica } from './protocol.js'
import type { NetHost } from './host.js'

export type Role =
  | { kind: 'own-store' }
  | { kind: 'log'; volume: string }
  | { kind: 'store'; node: string }
  | { kind: 'conflict'; what: string }

/** At most this many candidate logs per peer and volume are replicated at a time. */
export const MAX_CANDIDATES = 4
const ROLES_TTL_MS = 200

export function describeRole(r: Role): string {
  switch (r.kind) {
    case 'own-store':
      return "this node's own content store"
    case 'log':
      return `a writer log of volume ${r.volume.slice(0, 16)}…`
    case 'store':
      return `the store of node ${encodeKey(Buffer.from(r.node, 'hex'))}`
    case 'conflict':
      return `a core with conflicting roles (${r.what})`
  }
}

function roleKey(r: Role): string {
  return r.kind === 'log' ? `log:${r.volume}` : r.kind === 'store' ? `store:${r.node}` : r.kind
}

/** A writer log a peer offered that is not in the volume's writer set. */
export interface Candidate {
  key: Buffer
  volume: string
  /** The peer (hex) it is replicated with, the only one. */
  from: string
}

export type WriterOfferDecision = { take: 'writer' } | { take: 'candidate' } | { refuse: string } | { ignore: string }

export class AccessControl {
  registry: PeerRegistry
  /** Candidate logs by key hex (replicated with the peer that offered them, only). */
  readonly candidates = new Map<string, Candidate>()
  private readonly ownLogs = new Map<string, Buffer>()
  private cached: { at: number; roles: Promise<Map<string, Role>> } | null = null

  constructor(
    private readonly node: Node,
    private readonly host: NetHost,
    private readonly log: Log
  ) {
    this.registry = PeerRegistry.load(node.dir.root)
  }

  get myKey(): Buffer {
    return this.node.dir.publicKey
  }

  /** Forget cached roles (after this node recorded a new writer, replica or store). */
  invalidate(): void {
    this.cached = null
  }

  reloadRegistry(): PeerRegistry {
    this.registry = PeerRegistry.load(this.node.dir.root)
    this.invalidate()
    return this.registry
  }

  /** The role of every core this node holds for a purpose, by core key hex. */
  roles(): Promise<Map<string, Role>> {
    const now = Date.now()
    if (!this.cached || now - this.cached.at > ROLES_TTL_MS) this.cached = { at: now, roles: this.computeRoles() }
    return this.cached.roles
  }

  async roleOf(key: Buffer): Promise<Role | null> {
    return (await this.roles()).get(key.toString('hex')) ?? null
  }

  private async ownLog(volumeId: string): Promise<Buffer> {
    let key = this.ownLogs.get(volumeId)
    if (!key) {
      // The key of the core corestore makes for this name (hypercore's key of the signer's key), without opening it.
      const kp = await this.node.store.createKeyPair(writerLogName(Buffer.from(volumeId, 'hex')))
      key = Buffer.from(Hypercore.key(kp.publicKey))
      this.ownLogs.set(volumeId, key)
    }
    return key
  }

  private async computeRoles(): Promise<Map<string, Role>> {
    const roles = new Map<string, Role>()
    const set = (k: Buffer, r: Role): void => {
      const hex = k.toString('hex')
      const old = roles.get(hex)
      if (old && roleKey(old) !== roleKey(r)) roles.set(hex, { kind: 'conflict', what: `${roleKey(old)} and ${roleKey(r)}` })
      else if (!old) roles.set(hex, r)
    }
    set(this.node.chunks.casKey, { kind: 'own-store' })
    set(this.node.chunks.indexKey, { kind: 'own-store' })
    for (const v of this.node.dir.listVolumes()) {
      if (!v.storageOnly) set(await this.ownLog(v.id), { kind: 'log', volume: v.id })
      let logs: Buffer[] = []
      try {
        logs = readWritersFile(this.node.dir.root, v.id)
      } catch (err) {
        // Unreadable: its logs have no role, so they are given to nobody as anything else.
        this.log('error', `net: volume ${v.name}: ${(err as Error).message}`)
      }
      for (const k of logs) set(k, { kind: 'log', volume: v.id })
    }
    for (const m of this.node.mirrors.list()) {
      set(m.cas, { kind: 'store', node: m.node.toString('hex') })
      set(m.index, { kind: 'store', node: m.node.toString('hex') })
    }
    for (const s of this.node.remoteStores.stores()) {
      if (!s.owner) continue
      let owner: string
      try {
        owner = Buffer.from(decodeOwner(s.owner)).toString('hex')
      } catch {
        continue
      }
      set(s.cas, { kind: 'store', node: owner })
      set(s.index, { kind: 'store', node: owner })
    }
    return roles
  }

  /** Is a core with this discovery key in the corestore (held, whatever for)? */
  async stored(key: Buffer): Promise<boolean> {
    const probe = this.node.store.get({ discoveryKey: discoveryKey(key) })
    try {
      await probe.ready()
      return true
    } catch {
      return false
    } finally {
      await probe.close().catch(() => {})
    }
  }

  private localVolumes(): { id: string; name: string; storageOnly?: boolean }[] {
    try {
      return this.node.dir.listVolumes()
    } catch (err) {
      this.log('error', `net: cannot list volumes: ${(err as Error).message}`)
      return []
    }
  }

  // ---- what a peer receives ----------------------------------------------------------------

  /** Everything peer P may replicate from this node (its HELLO, STORES and WRITERS say the same). */
  async served(peer: Buffer): Promise<Access> {
    const rec = this.registry.get(peer)
    if (!rec) return { storage: null, volumes: [], stores: [] }
    const roles = await this.roles()
    const volumes: VolumeAccess[] = []
    const local = this.localVolumes()
    for (const idHex of rec.volumes) {
      const vol = local.find((v) => v.id === idHex)
      if (!vol) continue // allowed, but not (or no longer) here
      let writers: Buffer[] = []
      try {
        writers = await this.host.writerKeys(vol.name)
      } catch (err) {
        this.log('warn', `net: volume ${vol.name}: cannot list its writers: ${(err as Error).message}`)
      }
      // Only cores recorded as logs of this very volume, or not recorded at all (a log the
      // writer set names by key before it is held): never a core with another role.
      const ok = writers.filter((w) => {
        const r = roles.get(w.toString('hex'))
        const cand = this.candidates.get(w.toString('hex'))
        if (r ? r.kind === 'log' && r.volume === idHex : !cand || cand.volume === idHex) return true
        this.log('warn', `net: volume ${vol.name}: not serving log ${encodeKey(w)}: it is ${r ? describeRole(r) : 'a candidate log of another volume'}`)
        return false
      })
      volumes.push({ id: Buffer.from(idHex, 'hex'), name: vol.name, writers: ok })
    }
    const storage = rec.storage ? { cas: this.node.chunks.casKey, index: this.node.chunks.indexKey } : null
    return { storage, volumes, stores: this.replicasFor(rec) }
  }

  /** Does some local volume allowed to peer `a` appear in node `b`'s allowed volumes too? */
  private shareVolume(a: PeerRecord, b: PeerRecord): boolean {
    const local = new Set(this.localVolumes().map((v) => v.id))
    return a.volumes.some((v) => local.has(v) && b.volumes.includes(v))
  }

  /**
   * The replicas of other nodes' stores P may read here: node N's, if N ≠ P is in the registry
   * and shares with this node a volume P is allowed too.
   */
  private replicasFor(rec: PeerRecord): StoreReplica[] {
    const peer = decodeOwner(rec.key)
    const out: StoreReplica[] = []
    for (const r of this.node.mirrors.list()) {
      if (r.node.equals(peer)) continue
      const owner = this.registry.get(r.node)
      if (owner && this.shareVolume(rec, owner)) out.push(r)
    }
    return out
  }

  /**
   * Why peer P may not have this node's state of volume V (STATE_GET): null if it may. P must
   * be allowed V (`peer volume allow`), and V held here with its tree (not storage-only: such a
   * node has no state to give). The state is sealed under the volume's state key, so only a
   * peer holding the sharing key reads it.
   */
  stateRefused(peer: Buffer, volumeId: string): string | null {
    const rec = this.registry.get(peer)
    if (!rec) return 'it is not in the peer list'
    if (!rec.volumes.includes(volumeId)) return 'that volume is not allowed to it here (`bazil peer volume allow` here)'
    const vol = this.localVolumes().find((v) => v.id === volumeId)
    if (!vol) return 'that volume is not held here'
    if (vol.storageOnly) return 'that volume is held storage-only here (no directory state)'
    return null
  }

  // ---- what a peer may feed us ---------------------------------------------------------------

  /**
   * May core `key`, which peer P names as (a replica of) node `owner`'s store, be attached to
   * P's connection? Only if this node records it as the store of `owner`, and `owner` is P or a
   * node P may read a replica of here (the STORES rule, symmetric).
   */
  async storeAttachable(peer: Buffer, owner: Buffer, key: Buffer): Promise<boolean> {
    const role = await this.roleOf(key)
    if (role?.kind !== 'store' || role.node !== owner.toString('hex')) return false
    return this.mayRelayStore(peer, owner)
  }

  /**
   * May P feed us (and so, the channel being two-way, read our copy of) node N's store? Its
   * own, yes; a replica of N's only for a local volume P is allowed that reads from N or from
   * P (its `storage` list): the peers of a volume may hold its content's ciphertext.
   */
  private mayRelayStore(peer: Buffer, owner: Buffer): boolean {
    if (owner.equals(peer)) return true
    if (owner.equals(this.myKey)) return false
    const p = this.registry.get(peer)
    if (!p) return false
    const names = new Set([encodeKey(owner), encodeKey(peer)])
    return this.localVolumes().some((v) => p.volumes.includes(v.id) && ((v as { storage?: string[] }).storage ?? []).some((k) => names.has(k)))
  }

  /**
   * Why the store P offers as node `owner`'s (keys) must not be taken as that node's store here
   * (read from, or replicated): null if it may. A key with another role, or held with none, never.
   */
  async storeClaimRefused(peer: Buffer, owner: Buffer, keys: StorageOffer): Promise<string | null> {
    if (owner.equals(this.myKey)) return 'it names this node'
    if (keys.cas.equals(keys.index)) return 'its two cores are one'
    if (!this.mayRelayStore(peer, owner)) return `no volume is shared with node ${encodeKey(owner)} and this peer`
    for (const k of [keys.cas, keys.index]) {
      const role = await this.roleOf(k)
      if (role) {
        if (role.kind === 'store' && role.node === owner.toString('hex')) continue
        return `core ${encodeKey(k)} is ${describeRole(role)}`
      }
      if (this.candidates.has(k.toString('hex'))) return `core ${encodeKey(k)} is a candidate writer log`
      if (await this.stored(k)) return `this node holds core ${encodeKey(k)} for another purpose`
    }
    return null
  }

  /**
   * Why this node must not keep a full replica of the store P offers as its own after P asked
   * (KEEP): null if it may. P must share a volume held here (readable or storage-only) and
   * the keys must be takeable as P's store (storeClaimRefused).
   */
  async keepRefused(peer: Buffer, keys: StorageOffer): Promise<string | null> {
    const rec = this.registry.get(peer)
    if (!rec) return 'it is not in the peer list'
    const local = new Set(this.localVolumes().map((v) => v.id))
    if (!rec.volumes.some((v) => local.has(v))) return 'it shares no volume held here (`bazil peer volume allow` here)'
    return this.storeClaimRefused(peer, peer, keys)
  }

  /** The offers P made, keeping only those this node may take as those nodes' stores. */
  async acceptableStores(peer: Buffer, own: StorageOffer | null, replicas: StoreReplica[]): Promise<{ storage: StorageOffer | null; stores: StoreReplica[]; refused: string[] }> {
    const refused: string[] = []
    let storage: StorageOffer | null = null
    if (own) {
      const why = await this.storeClaimRefused(peer, peer, own)
      if (why) refused.push(`its store: ${why}`)
      else storage = own
    }
    const stores: StoreReplica[] = []
    for (const r of replicas) {
      const why = await this.storeClaimRefused(peer, r.node, r)
      if (why) refused.push(`replica of ${encodeKey(r.node)}: ${why}`)
      else stores.push(r)
    }
    return { storage, stores, refused }
  }

  /**
   * What to do with writer log `key` that P offers for local volume V (which P is allowed):
   * a log in V's writer set is replicated with P; any other is a candidate, if its role allows
   * (none, or a log of V) and, when block 0 is here already, its binding names P.
   */
  async writerOffer(peer: Buffer, volumeId: string, key: Buffer, known: Set<string>): Promise<WriterOfferDecision> {
    const hex = key.toString('hex')
    if (known.has(hex)) return { take: 'writer' }
    const role = await this.roleOf(key)
    if (role && !(role.kind === 'log' && role.volume === volumeId)) return { refuse: `it is ${describeRole(role)}` }
    const cand = this.candidates.get(hex)
    if (cand) {
      if (cand.volume !== volumeId) return { refuse: 'it is a candidate log of another volume' }
      if (cand.from !== peer.toString('hex')) return { ignore: 'it is a candidate offered by another peer' }
      return { take: 'candidate' }
    }
    if (await this.stored(key)) {
      // Held already (a candidate of an earlier run, or a log of this volume outside the writer set): block 0 says whose.
      const bound = await this.localBinding(key, volumeId)
      if (typeof bound === 'string') return role ? { ignore: bound } : { refuse: `this node holds that core for another purpose (${bound})` }
      if (bound && !bound.equals(peer) && !(await this.host.admitsNode?.(Buffer.from(volumeId, 'hex'), bound).catch(() => false))) return { ignore: `it is bound to node ${encodeKey(bound)}, not to this peer` }
    }
    let mine = 0
    for (const c of this.candidates.values()) if (c.from === peer.toString('hex') && c.volume === volumeId) mine++
    if (mine >= MAX_CANDIDATES) return { ignore: `this peer has ${mine} candidate logs of the volume pending already` }
    return { take: 'candidate' }
  }

  /** The node a held log's block 0 binds it to (null: block 0 not here), or why it is not a log of the volume. */
  private async localBinding(key: Buffer, volumeId: string): Promise<Buffer | null | string> {
    const core = this.node.store.get({ key })
    try {
      await core.ready()
      if (core.length === 0 || !(await core.has(0))) return null
      const block = (await core.get(0, { wait: false })) as Buffer | null
      return checkBinding(block, key, Buffer.from(volumeId, 'hex'))
    } catch (err) {
      return (err as Error).message
    } finally {
      await core.close().catch(() => {})
    }
  }
}

function decodeOwner(z: string): Buffer {
  return decodeKey(z, 'node key')
}
