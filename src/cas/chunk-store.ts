// The node-wide object store (spec/cas.md section 4): sealed objects kept in packs. Block i
// of core `packs` holds many objects (written together, in order); block i of core
// `pack-index` says where each object of pack i lies; an in-memory PackTable built from the
// index at open maps an address to (pack, offset, length). Shared by every volume and sharing
// key of the node; it never sees plaintext or plaintext hashes.
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { createLogger, type Log } from '../log.js'
import { MAX_DROPPED_PACKS, decodeDropPack, decodeIndexRecord, decodePackEntries, encodeDropIndex, encodeDropPack, encodeIndexBlock, encodePack, isDropPack, type IndexRecord, type PackedObject } from './pack-codec.js'
import { PackTable, applyIndexRecord, type PackLocation } from './pack-table.js'
import { Lru } from './lru.js'
import { SharedLoads } from './shared-loads.js'
import { migrateLegacyStore } from './store-migration.js'
import { TABLE_FILE_NAME, encodeTableFile, readTableFile } from './table-file.js'
import { replaceFile } from '../atomic-file.js'
import { clearBlocks } from '../core-clear.js'

export const PACKS_CORE_NAME = 'packs'
export const PACK_INDEX_CORE_NAME = 'pack-index'
export { CAS_CORE_NAME, CAS_INDEX_CORE_NAME } from './store-migration.js'
export type { PackLocation } from './pack-table.js'
export type { StoredObject } from './pack-codec.js'
import type { StoredObject } from './pack-codec.js'


/** A pack is cut once adding the next object would pass this (an object is never split). */
export const PACK_TARGET_BYTES = 1024 * 1024
/** Bytes per commit: one `packs` append (of several packs) and one `pack-index` append. */
const GROUP_BYTES = 16 * 1024 * 1024
/** Decoded packs kept for reads (sequential reads of one pack's objects read its block once). */
const PACK_CACHE = 16
/** rocksdb-native's constants.garbageCollectionPolicy.FORCE and bottommostLevelCompaction.FORCE. */
const BLOB_GC_FORCE = 1
const BOTTOMMOST_FORCE = 2
/** A placeholder location for address sets built from PackTable (only presence counts). */
const TOUCHED: PackLocation = { pack: 0, offset: 0, length: 1 }
/** Index blocks read at once when the table is built at open. */
const LOAD_BATCH = 512

export interface ChunkStoreOptions {
  /** Called with the bytes of each put before anything is stored; throwing refuses the put (a full disk). */
  beforeWrite?: (bytes: number) => void
  /**
   * Load the table when a lookup or a put first needs it, not at open (Node.open: a command
   * that reads only the tree, `volume ls`, never reads it: at a million objects the table file
   * is 113 MiB and its digest ~1 s of the open). Sync lookups (inTable, objects, isDropped)
   * need `tableReady()` first.
   */
  lazyTable?: boolean
  /** Where migration progress is reported (default: info lines on stderr). */
  log?: Log
  /** Target pack size in bytes (default PACK_TARGET_BYTES; for measurements). */
  packTargetBytes?: number
  /**
   * Where the pack table is kept between runs (spec/cas.md section 7). A node's store keeps it
   * at DataPaths.packTable (DATA/pack-table); the default (a store opened outside a data dir:
   * tests, benchmarks) is `pack-table` in the corestore's directory; null: not kept (every open
   * reads the whole index).
   */
  tableFile?: string | null
}

/** How open() went (tests and diagnostics). */
export interface StoreLoad {
  /** 'file': the saved table plus the index blocks written after it; 'index': every index block. */
  source: 'file' | 'index'
  /** Why the table file was not used (absent, corrupt, of another index...), when source is 'index'. */
  reason?: string
  /** Index blocks read to build the table. */
  indexBlocks: number
  /** Packs whose index block was missing (a crash between the two appends) and was rebuilt. */
  recovered: number
  /** Objects moved from a store of format version 1 (cores `cas` / `cas-index`). */
  migrated: number
  ms: number
}

/** What one rewritePacks() did. */
export interface RewriteResult {
  /** Packs dropped (a drop record names them; cleared, but for `left`). */
  packs: number
  /**
   * Of those, packs whose block stays held: clearing it now would delete Merkle tree nodes
   * peers need (src/core-clear.ts). They are dropped all the same (the table forgets them);
   * clearDropped() tries again later.
   */
  left: number
  movedObjects: number
  movedBytes: number
  /** Objects forgotten (unreferenced), and their bytes. */
  droppedObjects: number
  droppedBytes: number
}

/** [start, end) runs of consecutive numbers (sorted input). */
function ranges(sorted: number[]): [number, number][] {
  const out: [number, number][] = []
  for (const n of sorted) {
    const last = out[out.length - 1]
    if (last && last[1] === n) last[1] = n + 1
    else out.push([n, n + 1])
  }
  return out
}

interface PendingPut {
  objects: StoredObject[]
  bytes: number
  resolve: () => void
  reject: (err: unknown) => void
}

export class ChunkStore {
  private readonly packs: Hypercore
  private readonly index: Hypercore
  private loadedTable: PackTable | null = null
  /** The table's load, started by the first use (once). */
  private tableLoad: Promise<void> | null = null
  // Puts are group-committed: whatever concurrent writers queued while the previous group
  // was appending goes out in one append of packs and one of their index blocks. One commit
  // loop runs at a time, so the check-append sequence never interleaves and concurrent
  // imports never store an object twice.
  private queue: PendingPut[] = []
  private committing: Promise<void> | null = null
  /** Set when an index append failed: puts stop (the packs stay; the next open indexes them). */
  private writeError: unknown = null
  /** The index appends not done yet, in pack order (never rejects: a failure sets writeError). */
  private indexing: Promise<void> = Promise.resolve()
  private readonly packCache = new Lru<number, Buffer>(PACK_CACHE)
  /** Reads of one pack in flight are shared (the chunks of a file sit in one pack). */
  private readonly packReads = new SharedLoads<number, Buffer>(this.packCache)
  private readonly targetBytes: number
  private beforeWrite: ((bytes: number) => void) | null = null
  load: StoreLoad = { source: 'index', indexBlocks: 0, recovered: 0, migrated: 0, ms: 0 }
  private readonly tableFile: string | null
  /** Index length the table file covers (-1: none); it is rewritten at close when the index is longer. */
  private savedLength = -1
  /** Set once the whole table is loaded (at open, or at its first use with lazyTable): only then may it be saved. */
  private loaded = false
  /** Commits and pack rewrites take turns (a rewrite must see every appended pack indexed). */
  private turn: Promise<unknown> = Promise.resolve()
  /** While a collection runs: every address put (stored or deduplicated), which it must keep (spec/gc.md). */
  private touched: PackTable | null = null

  private constructor(packs: Hypercore, index: Hypercore, targetBytes: number, tableFile: string | null) {
    this.packs = packs
    this.index = index
    this.targetBytes = targetBytes
    this.tableFile = tableFile
  }

  private get table(): PackTable {
    if (this.loadedTable === null) throw new Error('cas store: the pack table was used before it was loaded (tableReady)')
    return this.loadedTable
  }

  private set table(t: PackTable) {
    this.loadedTable = t
  }

  /** Whether the table is loaded (with `lazyTable`, not before its first use). */
  get tableLoaded(): boolean {
    return this.loaded
  }

  /** Loads the pack table (from its file, then the index blocks it doesn't cover) unless it is loaded. */
  tableReady(): Promise<void> {
    if (this.loaded) return Promise.resolve()
    // Set once the whole table is read (a use while it loads waits for the same load).
    this.tableLoad ??= this.loadTable().then(() => {
      this.loaded = true
    }, (err: unknown) => {
      // Not a partial table: the next use tries again (and fails the same way while the index is damaged).
      this.loadedTable = null
      this.tableLoad = null
      throw err
    })
    return this.tableLoad
  }

  static async open(store: Corestore, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const start = Date.now()
    const packs = store.get({ name: PACKS_CORE_NAME })
    const index = store.get({ name: PACK_INDEX_CORE_NAME })
    await packs.ready()
    await index.ready()
    const storagePath = (store.storage as { path?: unknown }).path
    const tableFile = opts.tableFile !== undefined ? opts.tableFile : typeof storagePath === 'string' ? path.join(storagePath, TABLE_FILE_NAME) : null
    const chunks = new ChunkStore(packs, index, opts.packTargetBytes ?? PACK_TARGET_BYTES, tableFile)
    try {
      chunks.load.recovered = await chunks.recover()
      if (!opts.lazyTable) await chunks.tableReady()
      // The migration's puts skip the space guard: each batch's old blocks are cleared once it is in packs.
      const migrate = (objects: StoredObject[]): Promise<void> => chunks.enqueue(objects, objects.reduce((n, o) => n + o.block.length, 0))
      chunks.load.migrated = await migrateLegacyStore(store, migrate, opts.log ?? createLogger('info'))
    } catch (err) {
      await chunks.close().catch(() => {})
      throw err
    }
    chunks.beforeWrite = opts.beforeWrite ?? null
    chunks.load.ms = Date.now() - start
    return chunks
  }

  /** The packs core's key, for peers allowed to read this store. */
  get casKey(): Buffer {
    return this.packs.key
  }

  /** The pack-index core's key. */
  get indexKey(): Buffer {
    return this.index.key
  }

  /** Waits for queued puts to be written, saves the table (if the index grew), then closes both cores. */
  async close(): Promise<void> {
    const flushed = await this.flush().then(() => true, () => false)
    if (flushed) await this.saveTable().catch(() => {}) // not saved: the next open catches up or reads the index
    await this.index.close()
    await this.packs.close()
  }

  /** Stored objects and their bytes (each: 33-byte header + ciphertext + 16-byte tag; pack and index headers not counted). */
  async stats(): Promise<{ chunks: number; bytes: number }> {
    await this.tableReady()
    return { chunks: this.table.size, bytes: this.table.bytes }
  }

  /** Where an object lies in the own store, or null when it is not there. */
  async locate(address: Buffer): Promise<PackLocation | null> {
    await this.tableReady()
    return this.table.get(address)
  }

  /**
   * Where fetchMissing() asks for a block this node doesn't hold (remote-store.ts): it
   * returns a block whose header address is the one asked for, or null. Null: none.
   */
  remote: ((address: Buffer) => Promise<Buffer | null>) | null = null

  /**
   * Where get() and has() look for a block the own store doesn't hold: the local copies of
   * peers' stores this node read from (remote-store.ts), without the network. Returns a block
   * whose header address is the one asked for, or null. Null: none. (Fetched content stays
   * there, in the peer's cores, instead of being stored a second time in the own one.)
   */
  replica: ((address: Buffer) => Promise<Buffer | null>) | null = null

  /**
   * An object this node holds (its own store first, then its copies of peers' stores), or
   * null. Storage errors of the own store are thrown as they are.
   */
  async get(address: Buffer): Promise<Buffer | null> {
    await this.tableReady()
    let loc = this.table.get(address)
    if (loc) {
      let pack = await this.readPack(loc.pack)
      if (!pack) {
        // A compaction may have moved the object and cleared its pack since the lookup.
        const now = this.table.get(address)
        if (now && now.pack !== loc.pack) {
          loc = now
          pack = await this.readPack(loc.pack)
        }
      }
      if (pack) {
        if (loc.offset + loc.length > pack.length) {
          throw new Error(`cas store: pack ${loc.pack} is ${pack.length} bytes, its index places object ${address.toString('hex').slice(0, 16)}… at ${loc.offset}+${loc.length}`)
        }
        return pack.subarray(loc.offset, loc.offset + loc.length)
      }
    }
    return this.replica ? this.replica(address) : null
  }

  /** A pack block of the own store (cached), or null when it is not held. */
  private readPack(n: number): Promise<Buffer | null> {
    return this.packReads.load(n, () => this.packs.get(n, { wait: false }))
  }

  /**
   * Requests ahead, from the remote stores, the objects a reader will need soon (remote-store.ts
   * `prefetch`: whole packs, as ranges, from every peer holding them); resolves once requested.
   * Null: nothing to request from.
   */
  ahead: ((addresses: Buffer[]) => Promise<unknown>) | null = null

  /** A block this node doesn't hold, from the remote stores (unverified: the caller opens it). */
  async fetchMissing(address: Buffer): Promise<Buffer | null> {
    await this.tableReady()
    // An object of the own store whose pack was evicted (own-eviction.ts): from the peers keeping this store.
    const loc = this.table.get(address)
    if (loc && this.ownPack && !(await this.packs.has(loc.pack))) {
      const pack = await this.ownPack(loc.pack)
      if (pack && loc.offset + loc.length <= pack.length) {
        const object = pack.subarray(loc.offset, loc.offset + loc.length)
        if (object.subarray(1, 33).equals(address)) return object
      }
    }
    return this.remote ? this.remote(address) : null
  }

  /** Where fetchMissing() gets an own pack this node no longer holds (own-eviction.ts); null: nowhere. */
  ownPack: ((pack: number) => Promise<Buffer | null>) | null = null

  /**
   * Whether a fetched block (by its address), once verified, is also stored in the own store:
   * true when this node serves its store to a peer that may not reach the block's source (it
   * relays). Otherwise the block stays only in the local copy of the source's store
   * (`replica`). Null: never.
   */
  relayFetched: ((address: Buffer) => boolean) | null = null

  /** Cas hands over each fetched block it verified: stored in the own store only to relay it. */
  fetchedVerified(address: Buffer, block: Buffer): void {
    if (this.relayFetched?.(address)) this.put([{ address, block }]).catch(() => {})
  }

  /** Whether get() finds the block without the network (own store or a local copy of a peer's). */
  async has(address: Buffer): Promise<boolean> {
    await this.tableReady()
    const loc = this.table.get(address)
    if (loc && (this.packCache.get(loc.pack) || (await this.packs.has(loc.pack)))) return true
    return this.replica ? (await this.replica(address)) !== null : false
  }

  /**
   * Stores the objects not stored yet (by address), in packs. Resolves once their packs are
   * appended; their index blocks follow (flush() and close() wait for them; after a crash,
   * open indexes the packs the index doesn't cover).
   */
  put(objects: StoredObject[]): Promise<void> {
    if (objects.length === 0) return Promise.resolve()
    if (this.writeError) return Promise.reject(this.writeError)
    let bytes = 0
    for (const o of objects) bytes += o.block.length
    if (this.touched) for (const o of objects) this.touched.add(o.address, TOUCHED)
    try {
      this.beforeWrite?.(bytes)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.enqueue(objects, bytes)
  }

  private enqueue(objects: StoredObject[], bytes: number): Promise<void> {
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
        let bytes = 0
        while (take < this.queue.length && (take === 0 || bytes + this.queue[take]!.bytes <= GROUP_BYTES)) {
          bytes += this.queue[take]!.bytes
          take++
        }
        const group = this.queue.splice(0, take)
        try {
          await this.inTurn(() => this.commit(group))
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
    if (this.writeError) throw this.writeError
    await this.tableReady()
    // The objects not stored yet, in the order they were put, cut into packs.
    const packed: Buffer[][] = []
    let current: Buffer[] = []
    let currentBytes = 0
    const seen = new PackTable()
    for (const p of group) {
      for (const o of p.objects) {
        if (this.table.has(o.address) || seen.has(o.address)) continue
        seen.add(o.address, { pack: 0, offset: 0, length: 1 })
        if (current.length > 0 && currentBytes + 4 + o.block.length > this.targetBytes) {
          packed.push(current)
          current = []
          currentBytes = 0
        }
        current.push(o.block)
        currentBytes += 4 + o.block.length
      }
    }
    if (current.length > 0) packed.push(current)
    if (packed.length === 0) return
    const encoded = packed.map((objects) => encodePack(objects))
    // Packs go first, their index blocks after: a crash in between leaves packs the index
    // doesn't cover, which recover() indexes from the packs themselves at the next open.
    const { length } = await this.packs.append(encoded.map((e) => e.pack))
    const first = length - encoded.length
    // (Not cached for reads: keeping the packs just written alive cost an import of 256 MiB
    // ~30% more time in GC and wall time.)
    for (let i = 0; i < encoded.length; i++) this.addToTable(first + i, encoded[i]!.entries)
    // The index blocks follow behind (in pack order: one chain), so the next group's packs
    // append overlaps them; the table already finds the objects. flush() and close() wait.
    const blocks = encoded.map((e, i) => encodeIndexBlock(first + i, e.entries))
    this.indexing = this.indexing.then(async () => {
      if (this.writeError) return
      try {
        await this.index.append(blocks)
      } catch (err) {
        this.writeError = new Error(`cas store: index append failed: ${(err as Error).message}`, { cause: err })
      }
    })
  }

  private addToTable(pack: number, entries: PackedObject[]): void {
    applyIndexRecord(this.table, pack, { kind: 'pack', pack, entries })
  }

  /** Runs fn after the commits and rewrites before it (one at a time). */
  private inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn, fn)
    this.turn = run.catch(() => {})
    return run
  }

  /** Resolves once every object put so far is appended and indexed. */
  async flush(): Promise<void> {
    while (this.committing) await this.committing.catch(() => {})
    await this.indexing
    if (this.writeError) throw this.writeError
  }

  // ---- garbage collection (spec/gc.md; the policy is in gc.ts) ----------------------------

  /** From now until endGuard(), every address put (stored or deduplicated) is remembered: a collection keeps them. */
  beginGuard(): void {
    this.touched ??= new PackTable()
  }

  endGuard(): void {
    this.touched = null
  }

  /** Whether the address was put since beginGuard() (by its 16-byte prefix, as the table keys). */
  wasTouched(address: Buffer): boolean {
    return this.touched !== null && this.touched.has(address)
  }

  /** Whether the own store's table lists the address (its pack may have been evicted). */
  inTable(address: Buffer): boolean {
    return this.table.has(address)
  }

  /** Positions of core `packs` (packs and drop records). */
  get packCount(): number {
    return this.packs.length
  }

  /** Every object the table holds: its address prefix (16 bytes) and location. */
  objects(): Iterable<{ key: Buffer; loc: PackLocation }> {
    return this.table.entries()
  }

  /** Whether the block at position p of `packs` is held here (not cleared). */
  holdsPack(p: number): Promise<boolean> {
    return this.packs.has(p)
  }

  /** Whether position p is a drop record (by its index block, which is never cleared). */
  async isDropRecord(p: number): Promise<boolean> {
    const block = await this.index.get(p, { wait: false })
    return block !== null && block.length > 0 && block[0] === 2
  }

  /**
   * Compacts packs (spec/gc.md, "Compaction"): appends the live objects still located in
   * `victims` to new packs (and their index blocks), then a drop record naming the victims at
   * the next position of both cores, forgets the victims' other objects and clears the victims'
   * blocks through clearBlocks (a victim it can't clear yet stays held, dropped: `left`). A crash at any step loses nothing (spec/gc.md). `crashAfter` (tests) stops there
   * with an error, as a crash would.
   */
  rewritePacks(victims: number[], isLive: (address: Buffer) => boolean, opts: { crashAfter?: 'moved' | 'record' } = {}): Promise<RewriteResult> {
    return this.inTurn(async () => {
      await this.indexing
      await this.tableReady()
      if (this.writeError) throw this.writeError
      if (this.index.length !== this.packs.length) throw new Error(`cas store: ${this.packs.length} packs, ${this.index.length} index blocks`)
      const sorted = [...new Set(victims)].sort((a, b) => a - b).filter((p) => p < this.packs.length)
      const result: RewriteResult = { packs: 0, left: 0, movedObjects: 0, movedBytes: 0, droppedObjects: 0, droppedBytes: 0 }
      if (sorted.length === 0) return result
      const live: Buffer[] = []
      const dropped: number[] = []
      /** The addresses each dropped pack's index block lists that the table places there. */
      const placedIn = new Map<number, Buffer[]>()
      for (const p of sorted) {
        // The pack's layout from its index block (small; never cleared): the pack block itself
        // is read only when a live object must be moved out of it.
        const index = await this.index.get(p, { wait: false })
        const rec = index ? decodeIndexRecord(index) : null
        if (!rec || rec.kind !== 'pack') continue // a drop record (or no index block: left alone)
        const placed = rec.entries.filter((e) => {
          const loc = this.table.get(e.address)
          return loc !== null && loc.pack === p && loc.offset === e.offset // not moved before, no other copy wins
        })
        const keep = placed.filter((e) => isLive(e.address))
        let block: Buffer | null = null
        if (keep.length > 0) {
          block = await this.packs.get(p, { wait: false })
          if (!block) continue // not held (evicted once safe elsewhere) and something live is in it: left alone
        }
        dropped.push(p)
        placedIn.set(p, placed.map((e) => e.address))
        for (const e of placed) {
          if (block && isLive(e.address)) {
            live.push(block.subarray(e.offset, e.offset + e.length))
            result.movedBytes += e.length
          } else {
            result.droppedObjects++
            result.droppedBytes += e.length
          }
        }
      }
      if (dropped.length === 0) return result
      result.movedObjects = live.length
      // The live objects, in their old order, in new packs (cut as commits cut them).
      const groups: Buffer[][] = []
      let current: Buffer[] = []
      let bytes = 0
      for (const o of live) {
        if (current.length > 0 && bytes + 4 + o.length > this.targetBytes) {
          groups.push(current)
          current = []
          bytes = 0
        }
        current.push(o)
        bytes += 4 + o.length
      }
      if (current.length > 0) groups.push(current)
      if (groups.length > 0) {
        const encoded = groups.map((g) => encodePack(g))
        const { length } = await this.packs.append(encoded.map((e) => e.pack))
        const first = length - encoded.length
        await this.index.append(encoded.map((e, i) => encodeIndexBlock(first + i, e.entries)))
        for (let i = 0; i < encoded.length; i++) this.addToTable(first + i, encoded[i]!.entries)
      }
      if (opts.crashAfter === 'moved') throw new Error('cas store: stopped after moving (test)')
      for (let at = 0; at < dropped.length; at += MAX_DROPPED_PACKS) {
        const part = dropped.slice(at, at + MAX_DROPPED_PACKS)
        const { length } = await this.packs.append(encodeDropPack(part))
        await this.index.append(encodeDropIndex(length - 1, part))
        // As applyIndexRecord would (forget what is still located in them), but per address
        // from their index blocks, not a pass over the whole table per turn.
        for (const p of part) {
          this.table.dropped.add(p)
          for (const a of placedIn.get(p) ?? []) if (this.table.get(a)?.pack === p) this.table.delete(a)
        }
      }
      if (opts.crashAfter === 'record') throw new Error('cas store: stopped after the drop record (test)')
      result.left = await this.clearPacks(dropped)
      result.packs = dropped.length
      return result
    })
  }

  /** Clears these packs' blocks (sorted) as far as clearBlocks can; returns how many stay held. */
  private async clearPacks(sorted: number[]): Promise<number> {
    let left = 0
    for (const [start, end] of ranges(sorted)) left += await clearBlocks(this.packs, start, end)
    for (const p of sorted) this.packCache.delete(p)
    return left
  }

  /** Whether a drop record of this store names pack p (the table forgot its objects). */
  isDropped(p: number): boolean {
    return this.table.dropped.has(p)
  }

  /**
   * Clears the blocks of dropped packs still held (a clear left earlier for the tree nodes
   * peers needed, which a neighbour's clear since may allow; or a compaction cut by a crash
   * after its drop record). No drop record is written: only the clear was left. Returns the
   * packs cleared now and those still held.
   */
  clearDropped(): Promise<{ cleared: number; left: number }> {
    return this.inTurn(async () => {
      await this.tableReady()
      const held: number[] = []
      for (const p of this.table.dropped) if (p < this.packs.length && (await this.packs.has(p))) held.push(p)
      const left = held.length > 0 ? await this.clearPacks(held) : 0
      return { cleared: held.length - left, left }
    })
  }

  /**
   * Compacts the corestore's database so that cleared blocks' disk space comes back (spec/gc.md
   * section 3): hypercore-storage keeps blocks of 4 KiB and more in RocksDB blob files (256 MiB
   * each), which a compaction frees only when it relocates their live blobs, so blob garbage
   * collection is forced over every blob file (age cutoff 1.0) and the bottom level rewritten.
   * The memtables are flushed first, so that the write-ahead log files holding them go too.
   */
  static async compactStorage(store: Corestore): Promise<void> {
    // The memtables first: until they are flushed RocksDB keeps the write-ahead log files that
    // hold them (a running server's data dir kept ~2x the volume in WAL after a gc).
    await store.storage.db.flush()
    await store.storage.compact({ blobGarbageCollectionPolicy: BLOB_GC_FORCE, blobGarbageCollectionAgeCutoff: 1.0, bottommostLevelCompaction: BOTTOMMOST_FORCE })
  }

  /**
   * The saved table plus the index blocks written after it, or (no usable file) every index
   * block. Either way the table then holds every object the index does.
   */
  private async loadTable(): Promise<void> {
    const length = this.index.length
    let reason = 'no table file kept'
    if (this.tableFile) {
      try {
        const saved = await readTableFile(this.tableFile)
        const c = saved?.coverage
        if (!saved || !c) reason = 'no table file'
        else if (!c.indexKey.equals(this.index.key)) reason = 'the table file is of another store'
        else if (c.length > length) reason = `the table file covers ${c.length} index blocks, the index has ${length}`
        else if (c.length > 0 && !(await this.index.treeHash(c.length)).equals(c.treeHash)) reason = 'the table file covers another index history'
        else {
          this.table = saved.table
          this.savedLength = c.length
          this.load.source = 'file'
          this.load.indexBlocks = await this.readIndex(c.length, length)
          return
        }
      } catch (err) {
        reason = `unusable table file: ${(err as Error).message}`
      }
    }
    this.table = new PackTable(Math.floor(this.index.byteLength / 40))
    this.load.source = 'index'
    this.load.reason = reason
    this.load.indexBlocks = await this.readIndex(0, length)
  }

  /** Adds index blocks from..to-1 to the table; returns how many. */
  private async readIndex(from: number, to: number): Promise<number> {
    for (let start = from; start < to; start += LOAD_BATCH) {
      const reads: Promise<Buffer | null>[] = []
      for (let i = start; i < Math.min(to, start + LOAD_BATCH); i++) reads.push(this.index.get(i, { wait: false }))
      const blocks = await Promise.all(reads)
      for (let j = 0; j < blocks.length; j++) {
        const i = start + j
        const block = blocks[j]
        if (!block) throw new Error(`cas store: pack-index block ${i} is not held`)
        let decoded: IndexRecord
        try {
          decoded = decodeIndexRecord(block)
        } catch (err) {
          throw new Error(`cas store: pack-index block ${i}: ${(err as Error).message}`)
        }
        try {
          applyIndexRecord(this.table, i, decoded)
        } catch (err) {
          throw new Error(`cas store: pack-index block ${i} ${(err as Error).message}`)
        }
      }
    }
    return to - from
  }

  /**
   * Writes the table with the index length it covers, when the index grew since the file was
   * written. Only after a flush (every appended pack is indexed: the table is exactly the index).
   */
  private async saveTable(): Promise<void> {
    const length = this.index.length
    if (!this.tableFile || !this.loaded || length === 0 || length === this.savedLength || length !== this.packs.length) return
    const coverage = { indexKey: this.index.key, length, treeHash: await this.index.treeHash(length), objectBytes: this.table.bytes }
    await replaceFile(this.tableFile, encodeTableFile(this.table, coverage), { mode: 0o600 })
    this.savedLength = length
  }

  /**
   * Appends the index blocks of packs the index doesn't cover (a crash between the pack append
   * and the index append), decoded from the packs themselves. Returns how many.
   */
  private async recover(): Promise<number> {
    const from = this.index.length
    const to = this.packs.length
    if (from > to) throw new Error(`cas store: the pack index covers ${from} packs, the store has ${to}`)
    const blocks: Buffer[] = []
    for (let i = from; i < to; i++) {
      const pack = await this.packs.get(i, { wait: false })
      if (!pack) throw new Error(`cas store: pack ${i} is not held (its index block is missing)`)
      try {
        blocks.push(isDropPack(pack) ? encodeDropIndex(i, decodeDropPack(pack, i)) : encodeIndexBlock(i, decodePackEntries(pack)))
      } catch (err) {
        throw new Error(`cas store: pack ${i} (not indexed): ${(err as Error).message}`)
      }
    }
    if (blocks.length > 0) await this.index.append(blocks)
    return blocks.length
  }
}
