// Hypercore replication limited to the cores a peer is allowed.
//
// corestore's own replicate() offers every open core to every connection and attaches any
// stored core a remote asks for by discovery key: no access control. So bazil builds the
// protocol stream itself (Hypercore.createProtocolStream with an ondiscoverykey hook) and
// attaches a core to a peer's protomux only when the core is in that peer's allowed set.
// A core never attached to a connection opens no channel there, so the peer gets none of
// its blocks, whatever keys it knows. Rules: spec/protocol.md, "Access control".
import type Corestore from 'corestore'
import Hypercore, { type Hypercore as Core } from 'hypercore'
import type Protomux from 'protomux'
import type { SecretStream } from 'hyperdht'
import { hash } from '../crypto.js'
import { RESYNC_MS, resyncStalled } from './length-resync.js'
import type { StorageOffer, StoreReplica, VolumeOffer } from './protocol.js'

const HYPERCORE_NS = Buffer.from('hypercore')

/** hypercore 11's replicate() also takes a protomux: it attaches the core to it (untyped in the shim). */
interface MuxReplicable {
  replicate(mux: Protomux): Protomux
}

/** Hypercore's discovery key of a core key: BLAKE2b-256 of "hypercore" keyed by the core key. */
export function discoveryKey(key: Buffer): Buffer {
  return hash(HYPERCORE_NS, key)
}

/** The cores of one volume a peer may replicate. */
export interface VolumeAccess extends VolumeOffer {
  writers: Buffer[]
}

/** Everything this node lets one peer replicate. */
export interface Access {
  storage: StorageOffer | null
  volumes: VolumeAccess[]
  /** Replicas of other nodes' stores this node holds and lets the peer read. */
  stores: StoreReplica[]
}

/** Discovery key (hex) -> core key of every core in `access`. */
export function accessKeys(access: Access): Map<string, Buffer> {
  const keys = new Map<string, Buffer>()
  const add = (k: Buffer): void => {
    keys.set(discoveryKey(k).toString('hex'), k)
  }
  if (access.storage) {
    add(access.storage.cas)
    add(access.storage.index)
  }
  for (const v of access.volumes) for (const w of v.writers) add(w)
  for (const r of access.stores) {
    add(r.cas)
    add(r.index)
  }
  return keys
}

/**
 * One connection's replication: the protocol stream on it, and the core sessions attached
 * to its protomux. `allowed(dk)` is asked for every core, ours or the remote's, before it is
 * attached; nothing else is ever attached.
 */
export class Replication {
  readonly mux: Protomux
  private readonly sessions = new Map<string, Promise<Core | null>>()
  /** The attached cores, opened; looked over every RESYNC_MS for a peer that missed our length (length-resync.ts). */
  private readonly cores = new Set<Core>()
  private readonly resync: NodeJS.Timeout
  private closed = false

  constructor(
    private readonly store: Corestore,
    conn: SecretStream,
    private readonly allowed: (dkHex: string) => Promise<Buffer | null>,
    private readonly onError: (msg: string) => void
  ) {
    Hypercore.createProtocolStream(conn, { ondiscoverykey: (dk: Buffer) => this.onDiscoveryKey(dk) })
    this.mux = Hypercore.getProtocolMuxer(conn) as Protomux
    this.resync = setInterval(() => {
      for (const core of this.cores) {
        if (core.closed) this.cores.delete(core)
        else resyncStalled(core, this.mux)
      }
    }, RESYNC_MS)
    this.resync.unref()
  }

  /** The remote opened a channel for a core we haven't attached: attach it if allowed. Never throws (protomux would crash the process on a TypeError). */
  private async onDiscoveryKey(dk: Buffer): Promise<void> {
    try {
      const hex = dk.toString('hex')
      if (this.sessions.has(hex)) return
      const key = await this.allowed(hex)
      if (key === null) return
      await this.attach(key)
    } catch (err) {
      this.onError(`replication: ${(err as Error).message}`)
    }
  }

  /** Attaches the core with this key (opening a session on it) unless already attached. */
  attach(key: Buffer): Promise<Core | null> {
    const hex = discoveryKey(key).toString('hex')
    let session = this.sessions.get(hex)
    if (!session) {
      session = this.open(key)
      this.sessions.set(hex, session)
    }
    return session
  }

  attached(key: Buffer): boolean {
    return this.sessions.has(discoveryKey(key).toString('hex'))
  }

  private async open(key: Buffer): Promise<Core | null> {
    if (this.closed) return null
    const core = this.store.get({ key })
    try {
      await core.ready()
    } catch (err) {
      this.onError(`replication: cannot open core ${key.toString('hex')}: ${(err as Error).message}`)
      await core.close().catch(() => {})
      return null
    }
    if (this.closed) {
      await core.close().catch(() => {})
      return null
    }
    ;(core as unknown as MuxReplicable).replicate(this.mux)
    this.cores.add(core)
    return core
  }

  /** Closes our sessions (the connection itself is closed by its owner). */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.resync)
    this.cores.clear()
    const all = [...this.sessions.values()]
    this.sessions.clear()
    for (const s of all) {
      const core = await s.catch(() => null)
      if (core) await core.close().catch(() => {})
    }
  }
}
