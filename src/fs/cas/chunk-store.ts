// The node-wide object store: one `cas` hypercore whose blocks are sealed objects, and a
// hyperbee index (core `cas-index`) from address A to block number. Shared by every volume
// and sharing key of the node; it never sees plaintext or plaintext hashes.
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import Hyperbee from 'hyperbee'
import { blockAddress } from './convergent.js'
import { AddressFilter, encodeFilterFile, readFilterFile } from './saved-filter.js'
import { replaceFile } from '../../atomic-file.js'
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
/**
 * The filter file, in the corestore's directory beside corestore's own `CORESTORE` file and `db/`
 * (in a data dir: DATA/corestore/cas-filter): it is a cache of that store's index and travels with it.
 */
export const FILTER_FILE_NAME = 'cas-filter'
/**
 * The filter file is rewritten this long after the index grew past what it covers, and at
 * close (a crash costs catching up about this much indexing), and never more often than 100x
 * the time the last save took.
 */
const FILTER_SAVE_DELAY_MS = 10_000

export interface ChunkStoreOptions {
  /**
   * Where the address filter is kept between runs (spec/cas.md, "The address filter file").
   * Default: `cas-filter` in the corestore's directory (DATA/corestore/cas-filter for a data
   * dir); null: not kept (every open scans the index).
   */
  filterFile?: string | null
  /** Delay of the background save after the index grew (default 10 s; for tests). */
  filterSaveDelayMs?: number
  /** Called with the bytes of each put before anything is stored; throwing refuses the put (a full disk). */
  beforeWrite?: (bytes: number) => void
}

/** How open() got its address filter (tests and diagnostics). */
export interface FilterLoad {
  /** 'file': the saved filter plus the index entries written after it; 'scan': the whole index. */
  source: 'file' | 'scan'
  /** Why the file was not used (absent, corrupt, covers another index...), when source is 'scan'. */
  reason?: string
  /** Index entries read: appended after the save (file) or all of them (scan). */
  entries: number
  ms: number
}


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
  private filter = new AddressFilter()
  private readonly filterFile: string | null
  filterLoad: FilterLoad = { source: 'scan', entries: 0, ms: 0 }
  /** Index length the filter file covers (-1: none or unknown); a save is due when the index is longer. */
  private savedLength = -1
  private saving: Promise<void> | null = null
  private saveTimer: NodeJS.Timeout | null = null
  private lastSaveMs = 0
  private closed = false
  /** Recently appended or located addresses (hex) -> block number: reads skip the index. */
  private readonly located = new Lru<string, number>(1 << 17)
  private readonly saveDelayMs: number

  private beforeWrite: ((bytes: number) => void) | null = null

  private constructor(core: Hypercore, index: Hyperbee<Buffer, Buffer>, filterFile: string | null, saveDelayMs: number) {
    this.core = core
    this.index = index
    this.filterFile = filterFile
    this.saveDelayMs = saveDelayMs
  }

  static async open(store: Corestore, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const core = store.get({ name: CAS_CORE_NAME })
    const index = new Hyperbee<Buffer, Buffer>(store.get({ name: CAS_INDEX_CORE_NAME }), { keyEncoding: 'binary', valueEncoding: 'binary' })
    await core.ready()
    await index.ready()
    const storagePath = (store.storage as { path?: unknown }).path
    const filterFile = opts.filterFile !== undefined ? opts.filterFile : typeof storagePath === 'string' ? path.join(storagePath, FILTER_FILE_NAME) : null
    const chunkStore = new ChunkStore(core, index, filterFile, opts.filterSaveDelayMs ?? FILTER_SAVE_DELAY_MS)
    chunkStore.beforeWrite = opts.beforeWrite ?? null
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

  /** Waits for queued puts and the index to be written, saves the filter, then closes both cores. */
  async close(): Promise<void> {
    await this.flush().catch(() => {})
    this.closed = true
    if (this.saveTimer) clearTimeout(this.saveTimer)
    this.saveTimer = null
    await this.saveFilter().catch(() => {}) // not saved: the next open catches up or scans
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

  /**
   * Where get() and has() look for a block the own `cas` core doesn't hold: the local copies
   * of peers' stores this node read from (remote-store.ts), without the network. Returns a
   * block whose header address is the one asked for, or null. Null: none. (Fetched content
   * stays there, in the peer's core, instead of being stored a second time in the own one.)
   */
  replica: ((address: Buffer) => Promise<Buffer | null>) | null = null

  /**
   * A block this node holds (its own store first, then its copies of peers' stores), or null.
   * Storage errors of the own store are thrown as they are.
   */
  async get(address: Buffer): Promise<Buffer | null> {
    const seq = await this.locate(address)
    const own = seq === null || seq >= this.core.length ? null : await this.core.get(seq, { wait: false })
    if (own) return own
    return this.replica ? this.replica(address) : null
  }

  /** A block this node doesn't hold, from the remote stores (unverified: the caller opens it). */
  async fetchMissing(address: Buffer): Promise<Buffer | null> {
    return this.remote ? this.remote(address) : null
  }

  /**
   * Whether a fetched block (by its address), once verified, is also stored in the own `cas`
   * core: true when this node serves its store to a peer that may not reach the block's
   * source (it relays). Otherwise the block stays only in the local copy of the source's core
   * (`replica`). Null: never.
   */
  relayFetched: ((address: Buffer) => boolean) | null = null

  /** Cas hands over each fetched block it verified: stored in the own core only to relay it. */
  fetchedVerified(address: Buffer, block: Buffer): void {
    if (this.relayFetched?.(address)) this.put([{ address, block }]).catch(() => {})
  }

  /** Whether get() finds the block without the network (own store or a local copy of a peer's). */
  async has(address: Buffer): Promise<boolean> {
    const seq = await this.locate(address)
    if (seq !== null && seq < this.core.length && (await this.core.has(seq))) return true
    return this.replica ? (await this.replica(address)) !== null : false
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
    try {
      this.beforeWrite?.(bytes)
    } catch (err) {
      return Promise.reject(err)
    }
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
        this.scheduleFilterSave()
      }
    } finally {
      this.indexing = null
      for (const wake of this.backlogWaiters.splice(0)) wake()
    }
  }

  /**
   * The saved filter plus the index entries written after it, or (no usable file) a scan of the
   * whole index. Either way every address in the index is in the filter afterwards.
   */
  private async loadFilter(): Promise<void> {
    const start = Date.now()
    const length = this.index.core.length
    let reason = 'no filter file kept'
    if (this.filterFile) {
      try {
        const saved = await readFilterFile(this.filterFile)
        if (!saved) reason = 'no filter file'
        else if (!saved.coverage.indexKey.equals(this.index.core.key)) reason = 'the filter file is of another store'
        else if (saved.coverage.length > length) reason = `the filter file covers ${saved.coverage.length} index blocks, the index has ${length}`
        else if (!(await this.index.core.treeHash(saved.coverage.length)).equals(saved.coverage.treeHash)) reason = 'the filter file covers another index history'
        else {
          let entries = 0
          const history = this.index.createHistoryStream({ gte: saved.coverage.length, lt: length })
          for await (const e of history) {
            entries++
            if (e.type === 'put' && e.key.length === 32) saved.filter.add(e.key)
          }
          this.filter = saved.filter
          this.savedLength = saved.coverage.length // caught up entries: worth saving again
          this.filterLoad = { source: 'file', entries, ms: Date.now() - start }
          return
        }
      } catch (err) {
        reason = `unusable filter file: ${(err as Error).message}`
      }
    }
    const filter = new AddressFilter()
    let entries = 0
    for await (const { key } of this.index.createReadStream({ gt: META_KEY })) {
      filter.add(key)
      entries++
    }
    this.filter = filter

    this.filterLoad = { source: 'scan', reason, entries, ms: Date.now() - start }
  }

  /** Saves the filter saveDelayMs after the index first grew past what the file covers. */
  private scheduleFilterSave(): void {
    if (!this.filterFile || this.closed || this.saveTimer || this.saving || this.index.core.length === this.savedLength) return
    const delay = Math.max(this.saveDelayMs, 100 * this.lastSaveMs)
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null
      // After a failure the next index batch (or close) tries again.
      this.saveFilter().then(() => this.scheduleFilterSave(), () => {})
    }, delay)
    this.saveTimer.unref()
  }

  /**
   * Writes the filter with the index length it covers. The filter holds every address the index
   * does (addresses are added when their blocks are appended, before their index entries are
   * written), so the index length read in the same tick as the filter is a safe bound.
   */
  private async saveFilter(): Promise<void> {
    while (this.saving) await this.saving.catch(() => {})
    if (!this.filterFile || this.index.core.length === this.savedLength) return
    const file = this.filterFile
    this.saving = (async () => {
      const start = Date.now()
      const length = this.index.core.length
      const layers = this.filter.snapshot()
      const treeHash = await this.index.core.treeHash(length)
      await replaceFile(file, encodeFilterFile(layers, { indexKey: this.index.core.key, length, treeHash }), { mode: 0o600 })
      this.savedLength = length
      this.lastSaveMs = Date.now() - start
    })()
    try {
      await this.saving
    } finally {
      this.saving = null
    }
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
