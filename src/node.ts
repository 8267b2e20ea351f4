// A running node: the data dir opened with its corestore, content store and volumes.
//
// One process at a time owns a data dir (RocksDB holds a lock); everything that needs the
// corestore goes through one Node.
import Corestore from 'corestore'
import { DataDir, UserError, checkName } from './datadir.js'
import { encodeKey, randomBytes } from './crypto.js'
import { ChunkStore, Cas, RemoteStores, type RemoteStoreKeys } from './fs/cas/index.js'
import { Volume } from './volume.js'

export class Node {
  readonly dir: DataDir
  readonly store: Corestore
  readonly chunks: ChunkStore
  /** Peers' stores that reads of chunks not held here are fetched from (`volume storage add`). */
  readonly remoteStores: RemoteStores
  private readonly casBySharing = new Map<string, Cas>()
  private readonly volumes = new Map<string, Promise<Volume>>()

  private constructor(dir: DataDir, store: Corestore, chunks: ChunkStore) {
    this.dir = dir
    this.store = store
    this.chunks = chunks
    this.remoteStores = new RemoteStores(store, remoteTimeoutMs())
    chunks.remote = (address) => this.remoteStores.fetch(address)
  }

  static async open(dir: DataDir): Promise<Node> {
    const store = new Corestore(dir.corestorePath)
    try {
      await store.ready()
    } catch (err) {
      await store.close().catch(() => {})
      const msg = err instanceof Error ? err.message : String(err)
      if (/lock/i.test(msg)) {
        throw new UserError(`the data dir ${dir.root} is in use by another bazil process (a running server?): stop it or use that process`)
      }
      throw new UserError(`cannot open the store in ${dir.corestorePath}: ${msg}`)
    }
    const chunks = await ChunkStore.open(store)
    return new Node(dir, store, chunks)
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
   * Makes a connected peer's offered store a content source if some volume lists that peer
   * in its storage (the sources are node-wide: a chunk is a chunk whichever volume reads it).
   * Returns whether it is one now.
   */
  async useRemoteStorage(peer: Buffer, offer: RemoteStoreKeys | null): Promise<boolean> {
    if (!offer) return false
    const z = encodeKey(peer)
    if (!this.dir.listVolumes().some((v) => v.storage?.includes(z))) return false
    await this.remoteStores.add(z, offer)
    return true
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

  async close(): Promise<void> {
    for (const v of this.volumes.values()) {
      const vol = await v.catch(() => null)
      if (vol) await vol.close()
    }
    this.volumes.clear()
    await this.remoteStores.close()
    await this.chunks.close()
    await this.store.close()
  }
}

/** BAZIL_REMOTE_TIMEOUT_MS: how long a read waits for a peer's store (tests shorten it). */
function remoteTimeoutMs(): number | undefined {
  const v = Number(process.env.BAZIL_REMOTE_TIMEOUT_MS)
  return Number.isSafeInteger(v) && v > 0 ? v : undefined
}
