// The node-wide object store: one `cas` hypercore whose blocks are sealed objects, and a
// hyperbee index (core `cas-index`) from address A to block number. Shared by every volume
// and sharing key of the node; it never sees plaintext or plaintext hashes.
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import Hyperbee from 'hyperbee'
import { blockAddress } from './convergent.js'
import { AddressFilter } from './address-filter.js'

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

export class ChunkStore {
  private readonly core: Hypercore
  private readonly index: Hyperbee<Buffer, Buffer>
  /** Serializes writers: the check-append-index sequence must not interleave. */
  private writing: Promise<void> = Promise.resolve()
  // Lookups run outside the writer lock, so they overlap the previous append. A lookup's
  // "absent" is stale if the object was indexed after the lookup began: each indexing run
  // bumps `generation`, each added address remembers the generation it was added in, and
  // `added` is pruned once no lookup older than an entry is still in flight.
  private generation = 0
  private readonly added = new Map<string, number>()
  private readonly lookupStarts = new Map<number, number>()
  /** Every indexed address (filled at open, then on every append): rules out new content fast. */
  private readonly filter = new AddressFilter()

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

  async close(): Promise<void> {
    await this.writing
    await this.index.close()
    await this.core.close()
  }

  /** Stored blocks and their bytes (each block: 33-byte header + ciphertext + 16-byte tag). */
  async stats(): Promise<{ chunks: number; bytes: number }> {
    return { chunks: this.core.length, bytes: this.core.byteLength }
  }

  /** Block number of an address, or null when it is not in the index. */
  async locate(address: Buffer): Promise<number | null> {
    if (!this.filter.mayHold(address)) return null
    const node = await this.index.get(address)
    return node ? decodeU64(node.value, 'block number') : null
  }

  /** A stored block, or null when this node doesn't hold it. Storage errors are thrown as they are. */
  async get(address: Buffer): Promise<Buffer | null> {
    const seq = await this.locate(address)
    if (seq === null || seq >= this.core.length) return null
    return this.core.get(seq, { wait: false })
  }

  async has(address: Buffer): Promise<boolean> {
    const seq = await this.locate(address)
    return seq !== null && seq < this.core.length && this.core.has(seq)
  }

  /** Stores the objects not stored yet (by address), appending them in one batch. */
  async put(objects: StoredObject[]): Promise<void> {
    if (objects.length === 0) return
    const startedAt = this.generation
    this.lookupStarts.set(startedAt, (this.lookupStarts.get(startedAt) ?? 0) + 1)
    const run = Promise.all(objects.map((o) => this.locate(o.address))).then((known) =>
      this.exclusive(async () => {
        const fresh: StoredObject[] = []
        const inBatch = new Set<string>()
        for (let i = 0; i < objects.length; i++) {
          if (known[i] !== null) continue
          const key = objects[i]!.address.toString('hex')
          if (inBatch.has(key) || (this.added.get(key) ?? -1) >= startedAt) continue
          inBatch.add(key)
          fresh.push(objects[i]!)
        }
        if (fresh.length === 0) return
        await this.appendAndIndex(fresh)
        for (const key of inBatch) this.added.set(key, this.generation)
        this.generation++
      })
    )
    try {
      await run
    } finally {
      this.endLookup(startedAt)
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn)
    this.writing = run.then(() => {}, () => {})
    return run
  }

  private endLookup(startedAt: number): void {
    const left = this.lookupStarts.get(startedAt)! - 1
    if (left > 0) this.lookupStarts.set(startedAt, left)
    else this.lookupStarts.delete(startedAt)
    let oldest = Infinity
    for (const gen of this.lookupStarts.keys()) oldest = Math.min(oldest, gen)
    // Map order is insertion order, and generations only grow.
    for (const [key, gen] of this.added) {
      if (gen >= oldest) break
      this.added.delete(key)
    }
  }

  // Blocks go first, the index after: a crash in between leaves blocks the index doesn't
  // know (wasted space, re-indexed by recover()), never an index entry without its block.
  private async appendAndIndex(objects: StoredObject[]): Promise<void> {
    const { length } = await this.core.append(objects.map((o) => o.block))
    const first = length - objects.length
    const batch = this.index.batch()
    for (let i = 0; i < objects.length; i++) await batch.put(objects[i]!.address, encodeU64(INDEX_VALUE_VERSION, first + i))
    await batch.put(META_KEY, encodeU64(INDEX_VALUE_VERSION, length))
    await batch.flush()
    for (const o of objects) this.filter.add(o.address)
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
