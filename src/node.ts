// A running node: the data dir opened with its corestore, content store and volumes.
//
// One process at a time owns a data dir (RocksDB holds a lock); everything that needs the
// corestore goes through one Node.
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import { DataDir, UserError, checkName } from './datadir.js'
import { encodeKey, randomBytes } from './crypto.js'
import { ChunkStore, Cas, RemoteStores, type RemoteStoreKeys } from './fs/cas/index.js'
import { Volume } from './volume.js'
import { StoreSync } from './store-sync.js'
import { DiskFullError, SpaceGuard, ensureReserve, freeBytes, releaseReserve, walBytes } from './space-guard.js'
import { HeldVolume, StoreMirrors } from './net/closet.js'
import { PeerRegistry } from './net/peers.js'
import type { StoreReplica } from './net/protocol.js'

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

  private constructor(dir: DataDir, store: Corestore, chunks: ChunkStore, space: SpaceGuard) {
    this.space = space
    this.dir = dir
    this.store = store
    this.chunks = chunks
    this.remoteStores = new RemoteStores(store, remoteTimeoutMs())
    this.mirrors = new StoreMirrors(store, dir.root)
    this.storeSync = new StoreSync(path.join(dir.corestorePath, 'db'))
    this.remoteStores.serve(chunks)
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

  static async open(dir: DataDir): Promise<Node> {
    let store: Corestore
    try {
      store = await openStore(dir)
    } catch (err) {
      // Opening writes RocksDB's log out into new files first: with the disk full, give it
      // the reserve file's space and try once more.
      if (!isDiskFull(err) || !releaseReserve(dir.root)) throw err
      store = await openStore(dir)
    }
    ensureReserve(dir.root)
    const guard = new SpaceGuard(dir.root, path.join(dir.corestorePath, 'db'))
    const chunks = await ChunkStore.open(store, { beforeWrite: (bytes) => guard.take(bytes) })
    const node = new Node(dir, store, chunks, guard)
    await node.remoteStores.load()
    return node
  }

  /** The content store view for one sharing key (by its local name). */
  cas(sharing: string): Cas {
    let cas = this.casBySharing.get(sharing)
    if (!cas) {
      cas = new Cas(this.chunks, this.dir.sharingKey(sharing))
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

  async createVolume(name: string, sharing: string): Promise<Volume> {
    checkName(name, 'volume')
    this.dir.sharingKey(sharing) // fails early with a clear message on an unknown key
    this.dir.addVolume({ version: 1, name, id: randomBytes(32).toString('hex'), sharing, created: Date.now() })
    return this.volume(name)
  }

  /** Opens (once) and returns a volume by its local name. */
  volume(name: string): Promise<Volume> {
    let v = this.volumes.get(name)
    if (!v) {
      v = Volume.open(this, this.dir.volume(name))
      this.volumes.set(name, v)
      v.catch(() => this.volumes.delete(name))
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
      v = HeldVolume.open(this.store, this.dir.root, rec)
      this.held.set(name, v)
      v.catch(() => this.held.delete(name))
    }
    return v
  }

  /** The writer log keys of a local volume, readable (own log included) or storage-only. */
  async writerKeys(name: string): Promise<Buffer[]> {
    const rec = this.dir.volumeEntry(name)
    if (rec.storageOnly) return (await this.heldVolume(rec.name)).writers()
    const vol = await this.volume(rec.name)
    return [...vol.writers.values()].map((w) => w.key)
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
  async close(): Promise<void> {
    let failure: unknown = null
    for (const v of this.volumes.values()) {
      const vol = await v.catch(() => null)
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
    await this.chunks.close()
    await this.store.close()
    if (failure) throw failure
  }
}

async function openStore(dir: DataDir): Promise<Corestore> {
  const store = new Corestore(dir.corestorePath)
  try {
    await store.ready()
    return store
  } catch (err) {
    await store.close().catch(() => {})
    const msg = err instanceof Error ? err.message : String(err)
    if (/lock/i.test(msg)) {
      throw new UserError(`the data dir ${dir.root} is in use by another bazil process (a running server?): stop it or use that process`)
    }
    if (/no space left on device/i.test(msg)) {
      const need = walBytes(path.join(dir.corestorePath, 'db'))
      throw Object.assign(new DiskFullError(`cannot open the store in ${dir.corestorePath}: the disk is full (${mib(freeBytes(dir.root))} MiB free; opening first writes out the store's log, about ${mib(need)} MiB): free that much space and try again`), { cause: err })
    }
    throw new UserError(`cannot open the store in ${dir.corestorePath}: ${msg}`)
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
