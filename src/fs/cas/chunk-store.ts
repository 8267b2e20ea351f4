// The node-wide object store: one `cas` hypercore whose blocks are sealed objects, and a
// hyperbee index (core `cas-index`) from address A to block number. Shared by every volume
// and sharing key of the node; it never sees plaintext or plaintext hashes.
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import Hyperbee from 'hyperbee'
import { blockAddress } from './convergent.js'
import { AddressFilter } from './address-filter.js'
import { Lru } from './lru.js'

export const CAS_CORE_NAME = 'cas'
export const CAS_INDEX_CORE_NAME = 'cas-index'
const INDEX_VALUE_VERSION = 1
/** Index key of the store's own record; addresses are 32 bytes, so it can't collide. */
const META_KEY = Buffer.from([0])

export interface StoredObject {
  address: Buffer
  block: Buffer
}

function encodeU64(version: number, n: number): Buffer {
  const out = Buffer.alloc(9)
  out[0] = version
  out.writeBigUInt64LE(BigInt(n), 1)
  return out
}

function decodeU64(value: Buffer, what: string): number {
  if (value.length !== 9 || value[0] !== INDEX_VALUE_VERSION) throw new Error(`cas index: bad ${what} value (${value.length} bytes, version ${value[0]})`)
  const n = value.readBigUInt64LE(1)
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`cas index: ${what} out of range`)
  return Number(n)
}

/** Objects per append: one hypercore append and one commit of the lookups before it. */
const GROUP_OBJECTS = 256
const GROUP_BYTES = 16 * 1024 * 1024
/** Index entries per hyperbee batch (sorted by key: neighbours share tree nodes, ~35% cheaper). */
const INDEX_BATCH = 1024
/** Appended-but-unindexed objects beyond which put() waits for the index to catch up. */
const INDEX_BACKLOG = 16384

interface PendingPut {
  objects: StoredObject[]
  bytes: number
  resolve: () => void
  reject: (err: unknown) => void
}

export class ChunkStore {
  private readonly core: Hypercore
  private readonly index: Hyperbee<Buffer, Buffer>
  // Puts are group-committed: whatever concurrent writers queued while the previous group
  // was appending goes out in one append (many small files cost one append, not one each).
  // One commit loop runs at a time, so the check-append sequence never interleaves and
  // concurrent imports never store an object twice.
  private queue: PendingPut[] = []
  private committing: Promise<void> | null = null
  // Blocks are appended first and indexed behind (the index is derived from the cas core and
  // rebuilt from it after a crash, see recover()). Until its entry is flushed, an appended
  // object is found here: address (hex) -> block number.
  private readonly unindexed = new Map<string, number>()
  private indexQueue: Array<{ address: Buffer; seq: number }> = []
  /** cas length covered once indexQueue is flushed. */
  private indexQueueLength = 0
  private indexing: Promise<void> | null = null
  private indexError: unknown = null
  private backlogWaiters: Array<() => void> = []
  /** Every indexed or appended address: rules out new content without a hyperbee lookup. */
  private readonly filter = new AddressFilter()
  /** Recently appended or located addresses (hex) -> block number: reads skip the index. */
  private readonly located = new Lru<string, number>(1 << 17)

  private constructor(core: Hypercore, index: Hyperbee<Buffer, Buffer>) {
    this.core = core
    this.index = index
  }

  static async open(store: Corestore): Promise<ChunkStore> {
    const core = store.get({ name: CAS_CORE_NAME })
    const index = new Hyperbee<Buffer, Buffer>(store.get({ name: CAS_INDEX_CORE_NAME }), { keyEncoding: 'binary', valueEncoding: 'binary' })
    await core.ready()
    await index.ready()
    const chunkStore = new ChunkStore(core, index)
    await chunkStore.recover()
    await chunkStore.loadFilter()
    return chunkStore
  }

  /** The cas core's key, for peers allowed to read this store. */
  get casKey(): Buffer {
    return this.core.key
  }

  get indexKey(): Buffer {
    return this.index.core.key
  }

  /** Waits for queued puts and the index to be written, then closes both cores. */
  async close(): Promise<void> {
    await this.flush().catch(() => {})
    await this.index.close()
    await this.core.close()
  }

  /** Stored blocks and their bytes (each block: 33-byte header + ciphertext + 16-byte tag). */
  async stats(): Promise<{ chunks: number; bytes: number }> {
    return { chunks: this.core.length, bytes: this.core.byteLength }
  }

  /** Block number of an address, or null when it is not in the store. */
  async locate(address: Buffer): Promise<number | null> {
    if (!this.filter.mayHold(address)) return null
    const key = address.toString('hex')
    const known = this.unindexed.get(key) ?? this.located.get(key)
    if (known !== undefined) return known
    const node = await this.index.get(address)
    if (node) {
      const seq = decodeU64(node.value, 'block number')
      this.located.set(key, seq)
      return seq
    }
    // Appended (and maybe indexed) while the lookup ran.
    return this.unindexed.get(key) ?? this.located.get(key) ?? null
  }

  /**
   * Where fetchMissing() asks for a block this node doesn't hold (remote-store.ts): it
   * returns a block whose header address is the one asked for, or null. Null: none.
   */
  remote: ((address: Buffer) => Promise<Buffer | null>) | null = null

  /** A stored block, or null when this node doesn't hold it. Storage errors are thrown as they are. */
  async get(address: Buffer): Promise<Buffer | null> {
    const seq = await this.locate(address)
    if (seq === null || seq >= this.core.length) return null
    return this.core.get(seq, { wait: false })
  }

  /** A block this node doesn't hold, from the remote stores (unverified: the caller opens it). */
  async fetchMissing(address: Buffer): Promise<Buffer | null> {
    return this.remote ? this.remote(address) : null
  }

  async has(address: Buffer): Promise<boolean> {
    const seq = await this.locate(address)
    return seq !== null && seq < this.core.length && this.core.has(seq)
  }

  /**
   * Stores the objects not stored yet (by address). Resolves once they are appended to the
   * cas core; their index entries follow (close() waits for them, recover() redoes them).
   */
  put(objects: StoredObject[]): Promise<void> {
    if (objects.length === 0) return Promise.resolve()
    if (this.indexError) return Promise.reject(this.indexError)
    let bytes = 0
    for (const o of objects) bytes += o.block.length
    return new Promise((resolve, reject) => {
      this.queue.push({ objects, bytes, resolve, reject })
      if (!this.committing) this.committing = this.commitLoop()
    })
  }

  private async commitLoop(): Promise<void> {
    // Let the writers that are running right now queue their objects too.
    await new Promise((resolve) => setImmediate(resolve))
    try {
      while (this.queue.length > 0) {
        let take = 0
        let count = 0
        let bytes = 0
        while (take < this.queue.length && (take === 0 || (count + this.queue[take]!.objects.length <= GROUP_OBJECTS && bytes + this.queue[take]!.bytes <= GROUP_BYTES))) {
          count += this.queue[take]!.objects.length
          bytes += this.queue[take]!.bytes
          take++
        }
        const group = this.queue.splice(0, take)
        try {
          await this.commit(group)
          for (const p of group) p.resolve()
        } catch (err) {
          for (const p of group) p.reject(err)
        }
      }
    } finally {
      this.committing = null
    }
  }

  private async commit(group: PendingPut[]): Promise<void> {
    while (this.unindexed.size >= INDEX_BACKLOG && !this.indexError) await new Promise<void>((resolve) => this.backlogWaiters.push(resolve))
    if (this.indexError) throw this.indexError
    const candidates: StoredObject[] = []
    const seen = new Set<string>()
    const lookups: Promise<number | null>[] = []
    for (const p of group) {
      for (const o of p.objects) {
        const key = o.address.toString('hex')
        if (seen.has(key)) continue
        seen.add(key)
        candidates.push(o)
        lookups.push(this.filter.mayHold(o.address) ? this.locate(o.address) : Promise.resolve(null))
      }
    }
    const known = await Promise.all(lookups)
    const fresh = candidates.filter((_, i) => known[i] === null)
    if (fresh.length === 0) return
    // Blocks go first, the index after: a crash in between leaves blocks the index doesn't
    // know (wasted space, re-indexed by recover()), never an index entry without its block.
    const { length } = await this.core.append(fresh.map((o) => o.block))
    const first = length - fresh.length
    for (let i = 0; i < fresh.length; i++) {
      const o = fresh[i]!
      this.filter.add(o.address)
      this.unindexed.set(o.address.toString('hex'), first + i)
      this.indexQueue.push({ address: o.address, seq: first + i })
    }
    this.indexQueueLength = length
    if (!this.indexing) this.indexing = this.indexLoop()
  }

  /** Resolves once every object put so far is appended and in the index. */
  async flush(): Promise<void> {
    while (this.committing) await this.committing.catch(() => {})
    await this.flushIndex()
  }

  private async flushIndex(): Promise<void> {
    while (this.indexing) await this.indexing
    if (this.indexError) throw this.indexError
  }

  private async indexLoop(): Promise<void> {
    try {
      while (this.indexQueue.length > 0) {
        const entries = this.indexQueue.splice(0, INDEX_BATCH)
        const covered = this.indexQueue.length === 0 ? this.indexQueueLength : entries[entries.length - 1]!.seq + 1
        entries.sort((a, b) => Buffer.compare(a.address, b.address))
        try {
          const batch = this.index.batch()
          for (const e of entries) await batch.put(e.address, encodeU64(INDEX_VALUE_VERSION, e.seq))
          await batch.put(META_KEY, encodeU64(INDEX_VALUE_VERSION, covered))
          await batch.flush()
        } catch (err) {
          // Appends stop (the next put fails with this); the blocks stay and recover() indexes them.
          this.indexError = new Error(`cas index: write failed: ${(err as Error).message}`, { cause: err })
          break
        }
        for (const e of entries) {
          const key = e.address.toString('hex')
          this.unindexed.delete(key)
          this.located.set(key, e.seq)
        }
        for (const wake of this.backlogWaiters.splice(0)) wake()
      }
    } finally {
      this.indexing = null
      for (const wake of this.backlogWaiters.splice(0)) wake()
    }
  }

  private async loadFilter(): Promise<void> {
    for await (const { key } of this.index.createReadStream({ gt: META_KEY })) this.filter.add(key)
  }

  /** Indexes blocks appended after the index's last record (a crash between the two writes). */
  private async recover(): Promise<void> {
    const meta = await this.index.get(META_KEY)
    const indexed = meta ? decodeU64(meta.value, 'indexed length') : 0
    if (indexed >= this.core.length) return
    const batch = this.index.batch()
    for (let seq = indexed; seq < this.core.length; seq++) {
      const block = await this.core.get(seq, { wait: false })
      const address = block && blockAddress(block)
      if (!address || (await batch.get(address))) continue
      await batch.put(Buffer.from(address), encodeU64(INDEX_VALUE_VERSION, seq))
    }
    await batch.put(META_KEY, encodeU64(INDEX_VALUE_VERSION, this.core.length))
    await batch.flush()
  }
}
