// A running node: the data dir opened with its corestore, content store and volumes.
//
// One process at a time owns a data dir (RocksDB holds a lock); everything that needs the
// corestore goes through one Node.
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import { DataDir, UserError, checkName } from './datadir.js'
import { encodeKey, randomBytes } from './crypto.js'
import { volumeIdOf } from './logs/index.js'
import { ChunkStore, Cas, DEFAULT_REMOTE_TIMEOUT_MS, RemoteStores, type RemoteStoreKeys } from './cas/index.js'
import { OwnEviction } from './cas/own-eviction.js'
import type { Hypercore } from 'hypercore'
import { Volume } from './volume/volume.js'
import { sealedState } from './volume/volume-state.js'
import { StoreSync } from './store-sync.js'
import { closeStore } from './store-close.js'
import { DiskFullError, SpaceGuard, ensureReserve, freeBytes, releaseReserve, walBytes } from './space-guard.js'
import { HeldVolume, StoreMirrors } from './net/closet.js'
import { PeerRegistry } from './net/peers.js'
import type { StoreReplica } from './net/protocol.js'
import type { Log } from './log.js'
import { ContentCache } from './cas/cache.js'
import { OpenFiles } from './cas/cache-holds.js'
import { PinKeeper } from './pins/pin-keeper.js'
import { Placement, storagePeers, type SafetyOracle } from './placement/placement.js'

/** What a connected peer offers to read: its own store, and replicas of others' it holds. */
export interface StoreOffers {
  storage: RemoteStoreKeys | null
  stores: StoreReplica[]
}

export class Node {
  readonly dir: DataDir
  readonly store: Corestore
  readonly chunks: ChunkStore
  /** Peers' stores that reads of chunks not held here are fetched from (`volume storage add`). */
  readonly remoteStores: RemoteStores
  private readonly casBySharing = new Map<string, Cas>()
  private readonly volumes = new Map<string, Promise<Volume>>()
  private readonly held = new Map<string, Promise<HeldVolume>>()
  /** Full replicas of peers' content stores this node keeps (a storage-only node's job). */
  readonly mirrors: StoreMirrors
  /** Refuses writes that would leave too little disk for the store (src/space-guard.ts). */
  readonly space: SpaceGuard
  /** Makes everything written to the corestore so far durable (fsync of the mount). */
  readonly storeSync: StoreSync
  /** Files mounts have open: eviction and GC keep their content (src/cas/cache-holds.ts). */
  readonly openFiles = new OpenFiles()
  /** Pinned paths, fetched and kept (`bazil pin`; src/pins/pin-keeper.ts). */
  readonly pins: PinKeeper
  /** Content of peers' stores held here, within the budget (`bazil cache size`; src/cas/cache.ts). Set by open(). */
  cache!: ContentCache
  /** The copy rule and the storage peers' confirmations (src/placement/placement.ts). */
  readonly placement: Placement
  private readonly opened = new Map<string, Volume>()

  /** The server's log, if any (what replay did is said there at close, for benchmarks). */
  private log: Log | undefined
  private constructor(dir: DataDir, store: Corestore, chunks: ChunkStore, space: SpaceGuard) {
    this.space = space
    this.dir = dir
    this.store = store
    this.chunks = chunks
    this.remoteStores = new RemoteStores(store, remoteTimeoutMs())
    this.mirrors = new StoreMirrors(store, dir.root)
    this.storeSync = new StoreSync(dir.paths.db)
    this.placement = new Placement(dir.paths.holdings, chunks.casKey, () => [...this.opened.values()].filter((v) => !v.isClosed).map((v) => ({ id: v.id.toString('hex'), copies: v.copies })))
    // A damaged volume record: no confirmation counts (nothing is evicted) until it is fixed.
    this.placement.storesTo = () => {
      try {
        return storagePeers(dir)
      } catch {
        return new Set()
      }
    }
    this.remoteStores.serve(chunks)
    this.pins = new PinKeeper(this)
    chunks.relayFetched = (address) => this.relays(this.remoteStores.fetchedFrom(address))
  }

  private relay = { checked: 0, mtimeMs: -1, size: -1, storagePeers: [] as string[] }

  /**
   * Whether a block fetched from `owner`'s store is also stored in this node's own store: only
   * when a peer allowed storage here is not that owner (such a peer reads this node's own
   * store and may not reach the owner: spec/cas.md §6, "Relaying"). The registry is re-read
   * when peers.json changes (checked at most once a second).
   */
  private relays(owner: string | null): boolean {
    const now = Date.now()
    if (now - this.relay.checked >= 1000) {
      this.relay.checked = now
      try {
        const st = fs.statSync(PeerRegistry.path(this.dir.root), { throwIfNoEntry: false })
        const mtimeMs = st?.mtimeMs ?? 0
        const size = st?.size ?? 0
        if (mtimeMs !== this.relay.mtimeMs || size !== this.relay.size) {
          const storagePeers = st ? PeerRegistry.load(this.dir.root).list().filter((r) => r.storage).map((r) => r.key) : []
          this.relay = { checked: now, mtimeMs, size, storagePeers }
        }
      } catch {
        // An unreadable registry: relay, as if a third peer read this store.
        this.relay = { checked: now, mtimeMs: -1, size: -1, storagePeers: ['?'] }
      }
    }
    return this.relay.storagePeers.some((k) => k !== owner)
  }

  /** Which packs of the own store are held by enough confirmed peers; evict own content only through it. */
  get safety(): SafetyOracle {
    return this.placement
  }

  /** `log`: where the cache reports what it found at open (the server's log). */
  static async open(dir: DataDir, opts: { log?: Log } = {}): Promise<Node> {
    let store: Corestore
    dir.moveStoreFilesOut()
    try {
      store = await openStore(dir)
    } catch (err) {
      // Opening writes RocksDB's log out into new files first: with the disk full, give it
      // the reserve file's space and try once more.
      if (!isDiskFull(err) || !releaseReserve(dir.root)) throw err
      store = await openStore(dir)
    }
    try {
      ensureReserve(dir.root)
      const guard = new SpaceGuard(dir.root, dir.paths.db)
      const chunks = await ChunkStore.open(store, { beforeWrite: (bytes) => guard.take(bytes), lazyTable: true, tableFile: dir.paths.packTable })
      const node = new Node(dir, store, chunks, guard)
      node.log = opts.log
      await node.remoteStores.load()
      node.cache = await ContentCache.open(store, node.remoteStores, {
        configFile: dir.paths.cacheConfig,
        ledgerFile: dir.paths.cacheLedger,
        dataDir: dir.root,
        // A store this node keeps for its owner (a mirror: the owner's copy rule counts it) is not cache.
        kept: (key) => node.mirrors.ownerOf(key) !== null,
        pins: node.pins,
        holders: [node.openFiles]
      }, opts.log)
      await node.openOwnEviction(opts.log)
      return node
    } catch (err) {
      // The corestore holds the data dir's lock: a failed open must not keep it (a later open
      // in this process would report the data dir in use).
      await store.close().catch(() => {})
      throw err
    }
  }

  /** Own content leaves only once safe (src/cas/own-eviction.ts). Set by open(). */
  ownEviction!: OwnEviction
  private ownCores: Hypercore[] = []

  private async openOwnEviction(log?: Log): Promise<void> {
    const packs = this.store.get({ key: this.chunks.casKey })
    const index = this.store.get({ key: this.chunks.indexKey })
    await packs.ready()
    await index.ready()
    this.ownCores = [packs, index]
    this.ownEviction = new OwnEviction(this, packs, index, remoteTimeoutMs() ?? DEFAULT_REMOTE_TIMEOUT_MS, log)
    this.chunks.ownPack = (pack) => this.ownEviction.fetchPack(pack)
    // New confirmations may make content written here evictable.
    this.placement.onConfirmed = () => void this.ownEviction.run()
    this.ownEviction.start()
  }

  /** The content store view for one sharing key (by its local name). */
  cas(sharing: string): Cas {
    let cas = this.casBySharing.get(sharing)
    if (!cas) {
      cas = new Cas(this.chunks, this.dir.sharingKey(sharing), { holds: this.openFiles })
      this.casBySharing.set(sharing, cas)
    }
    return cas
  }

  /**
   * Makes the stores a connected peer offers content sources, where some volume lists them in
   * its storage (the sources are node-wide: a chunk is a chunk whichever volume reads it): the
   * peer's own store if a volume lists the peer; each replica it holds of node N's store if a
   * volume lists N or the peer. Returns how many sources it offers are in use now.
   */
  async useRemoteStorage(peer: Buffer, offers: StoreOffers | null): Promise<number> {
    if (!offers) return 0
    const z = encodeKey(peer)
    const listed = new Set<string>()
    for (const v of this.dir.listVolumes()) for (const k of v.storage ?? []) listed.add(k)
    let used = 0
    if (offers.storage && listed.has(z)) {
      await this.remoteStores.add(z, offers.storage, z)
      used++
    }
    for (const r of offers.stores) {
      const owner = encodeKey(r.node)
      if (r.node.equals(this.dir.publicKey)) continue // our own store: never a remote source
      if (!listed.has(owner) && !listed.has(z)) continue
      await this.remoteStores.add(`${owner} (replica at ${z})`, { cas: r.cas, index: r.index }, owner)
      used++
    }
    return used
  }

  /** A new volume: its id is derived from this node's key and a random nonce (its genesis; this node is its root writer). */
  async createVolume(name: string, sharing: string): Promise<Volume> {
    checkName(name, 'volume')
    this.dir.sharingKey(sharing) // fails early with a clear message on an unknown key
    const genesis = { node: this.dir.publicKey, nonce: randomBytes(32) }
    const id = volumeIdOf(genesis).toString('hex')
    this.dir.addVolume({ version: 1, name, id, sharing, created: Date.now(), genesis: { node: encodeKey(genesis.node), nonce: genesis.nonce.toString('hex') } })
    return this.volume(name)
  }

  /** Whether this node lets `node` write to the volume: its registry allows it the volume (`peer volume allow`). */
  allowsWriter(volumeId: Buffer, node: Buffer): boolean {
    if (node.equals(this.dir.publicKey)) return false
    try {
      return PeerRegistry.load(this.dir.root).get(node)?.volumes.includes(volumeId.toString('hex')) ?? false
    } catch {
      return false
    }
  }

  /** Called when the writer set of a volume changed (the server points it at the network). */
  onWritersChanged: ((volumeId: Buffer) => void) | null = null

  writersChanged(volumeId: Buffer): void {
    try {
      this.onWritersChanged?.(volumeId)
    } catch {
      // the network's business; it logs its own failures
    }
  }

  /** Opens (once) and returns a volume by its local name. */
  volume(name: string): Promise<Volume> {
    let v = this.volumes.get(name)
    if (!v) {
      v = Volume.open(this, this.dir.volume(name))
      this.volumes.set(name, v)
      v.then((vol) => this.opened.set(name, vol), () => this.volumes.delete(name))
    }
    return v
  }

  /**
   * Opens (once) and returns a volume this node holds storage-only (no sharing key): its
   * writer logs as ciphertext. A readable volume of that name is refused.
   */
  heldVolume(name: string): Promise<HeldVolume> {
    let v = this.held.get(name)
    if (!v) {
      const rec = this.dir.volumeEntry(name)
      if (!rec.storageOnly) return Promise.reject(new UserError(`volume ${rec.name} is not storage-only on this node`))
      v = HeldVolume.open(this.store, this.dir.root, rec, {
        updateRecord: (patch) => this.dir.updateVolume(rec.name, patch) as typeof rec,
        writersChanged: (id) => this.writersChanged(id)
      })
      this.held.set(name, v)
      v.catch(() => this.held.delete(name))
    }
    return v
  }

  /**
   * The writer logs of a local volume to serve and relay: only authorised ones (spec/oplog.md
   * "Writer set"), plus, on a readable volume, this node's own log once bound (a candidate
   * for the others until a writer admits it).
   */
  async writerKeys(name: string): Promise<Buffer[]> {
    const rec = this.dir.volumeEntry(name)
    if (rec.storageOnly) return (await this.heldVolume(rec.name)).writers()
    const vol = await this.volume(rec.name)
    return vol.servedKeys()
  }

  /**
   * Whether a writer of the volume admitted `node` by node (admit-node, `peer volume allow`):
   * a log bound to it may then be taken up from any peer sharing the volume, not only from
   * that node (e.g. relayed by a storage-only peer while the admitting writer was away).
   */
  async admitsNode(volumeId: Buffer, node: Buffer): Promise<boolean> {
    const rec = this.dir.listVolumes().find((v) => v.id === volumeId.toString('hex'))
    if (!rec) return false
    const set = rec.storageOnly ? (await this.heldVolume(rec.name)).writerSet : (await this.volume(rec.name)).writerSet
    return set.nodesAdmitted.includes(node.toString('hex'))
  }

  /** This node's state of a local volume, sealed for a joiner that asked (volume-state.ts); throws saying why there is none. */
  async sealedVolumeState(volumeId: Buffer): Promise<Buffer> {
    const rec = this.dir.listVolumes().find((v) => v.id === volumeId.toString('hex'))
    if (!rec) throw new Error('that volume is not held here')
    if (rec.storageOnly) throw new Error('that volume is held storage-only here (no directory state)')
    return sealedState(await this.volume(rec.name))
  }

  /** Makes a writer log a peer offered part of a local volume (held or readable); false if there's no such volume. */
  async addWriter(volumeId: Buffer, key: Buffer): Promise<boolean> {
    const rec = this.dir.listVolumes().find((v) => v.id === volumeId.toString('hex'))
    if (!rec) return false
    if (rec.storageOnly) await (await this.heldVolume(rec.name)).addWriter(key)
    else await (await this.volume(rec.name)).addWriter(key)
    return true
  }

  /** Closes everything; a volume whose last edits could not be logged does not stop the rest (its error is thrown at the end). */
  /**
   * Records revoke(log, last applied seq) for every log bound to `peer`'s node in the volume;
   * returns one line saying what happened (or why nothing could be recorded here).
   */
  async revokeWriter(volumeName: string, peer: Buffer): Promise<string> {
    const rec = this.dir.volumeEntry(volumeName)
    if (rec.storageOnly) {
      return `volume "${rec.name}" is storage-only on this node: it is not a writer and cannot record a revocation; run \`bazil volume writers remove ${rec.name} ${encodeKey(peer)}\` on a writer of it`
    }
    const vol = await this.volume(rec.name)
    await vol.refresh()
    if (!vol.canWrite) return `volume "${rec.name}": ${vol.writeRefusal()}, so it cannot record a revocation: run \`bazil volume writers remove ${rec.name} ${encodeKey(peer)}\` on a writer of it`
    const r = await vol.revokeNode(peer)
    const lines = r.revoked.map((x) => `revoked writer log ${encodeKey(x.log)} of node ${encodeKey(peer)} in volume "${rec.name}" (entries after seq ${x.last} are not accepted)`)
    for (const k of r.roots) lines.push(`log ${encodeKey(k)} of node ${encodeKey(peer)} is a root of volume "${rec.name}": it cannot be revoked`)
    if (lines.length === 0) lines.push(`volume "${rec.name}": no authorised log of node ${encodeKey(peer)} here; no log of it is admitted from now on`)
    return lines.join('\n')
  }

  /** `peer volume allow`: records admit-node(peer) in a readable volume this node writes; one line saying what happened. */
  async admitWriter(volumeName: string, peer: Buffer): Promise<string | null> {
    const rec = this.dir.volumeEntry(volumeName)
    if (rec.storageOnly) return null
    const vol = await this.volume(rec.name)
    if (await vol.admitNode(peer)) return `node ${encodeKey(peer)} may write to volume "${rec.name}" (recorded in this node's log)`
    if (!vol.canWrite) return `this node is not an authorised writer of volume "${rec.name}": node ${encodeKey(peer)} becomes a writer once a writer of it allows it`
    return `node ${encodeKey(peer)} was revoked from volume "${rec.name}" before: a revocation is final for its logs`
  }

  async close(): Promise<void> {
    let failure: unknown = null
    await this.ownEviction?.stop()
    await this.pins.close()
    await this.cache?.close()
    for (const v of this.volumes.values()) {
      const vol = await v.catch(() => null)
      if (vol) this.log?.('debug', `volume ${vol.name}: replay ${JSON.stringify(vol.stats)}, shards ${JSON.stringify(vol.tree.shardStats)}`)
      if (vol) await vol.close().catch((err: unknown) => { failure ??= err })
    }
    this.volumes.clear()
    for (const v of this.held.values()) {
      const h = await v.catch(() => null)
      if (h) await h.close()
    }
    this.held.clear()
    await this.mirrors.close()
    await this.remoteStores.close()
    for (const c of this.ownCores) await c.close().catch(() => {})
    await this.chunks.close()
    await closeStore(this.store)
    if (failure) throw failure
  }
}

async function openStore(dir: DataDir): Promise<Corestore> {
  const store = new Corestore(dir.paths.corestore)
  try {
    await store.ready()
    return store
  } catch (err) {
    await store.close().catch(() => {})
    const msg = err instanceof Error ? err.message : String(err)
    // "File descriptor could not be locked", RocksDB's "lock file": another process. Not
    // /lock/, which also matches a damaged table's "block checksum mismatch".
    if (/\block/i.test(msg)) {
      throw new UserError(`the data dir ${dir.root} is in use by another bazil process (a running server?): stop it or use that process`)
    }
    if (/no space left on device/i.test(msg)) {
      const need = walBytes(dir.paths.db)
      throw Object.assign(new DiskFullError(`cannot open the store in ${dir.paths.corestore}: the disk is full (${mib(freeBytes(dir.root))} MiB free; opening first writes out the store's log, about ${mib(need)} MiB): free that much space and try again`), { cause: err })
    }
    if (/invalid device file/i.test(msg)) {
      // corestore's guard against two live copies of one store forking its logs: CORESTORE
      // records the inode (and an xattr) of the directory it was made in.
      const file = dir.paths.corestoreMarker
      throw new UserError(`cannot open the store in ${dir.paths.corestore}: ${file} does not match this directory (${msg}): the data dir was copied or moved, or the file is damaged. If this copy is the only one that will ever be used (a restored backup, a new disk), delete ${file} and open again; never use two copies of one data dir`)
    }
    throw new UserError(`cannot open the store in ${dir.paths.corestore}: ${msg}`)
  }
}

function isDiskFull(err: unknown): boolean {
  return err instanceof DiskFullError
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1)
}

/** BAZIL_REMOTE_TIMEOUT_MS: how long a read waits for a peer's store (tests shorten it). */
function remoteTimeoutMs(): number | undefined {
  const v = Number(process.env.BAZIL_REMOTE_TIMEOUT_MS)
  return Number.isSafeInteger(v) && v > 0 ? v : undefined
}
