// The read half of the content store: a file's manifest resolved once per open file, its
// chunks loaded (store, then the network), opened on the worker pool, kept in a shared
// bytes-bounded cache, and read ahead of a sequential reader (spec/cas.md, spec/fuse.md).
import type { ChunkStore } from './chunk-store.js'
import { addressOf, type CasKeys } from './convergent.js'
import { CorruptContentError, MissingContentError } from './errors.js'
import { decodeManifestNode, entryAt, type ManifestEntry, type ManifestNode } from './manifest.js'
import type { ChunkCache } from './chunk-cache.js'
import type { OpenPool } from './open-pool.js'
import { HASH_BYTES } from '../crypto.js'
import { Lru } from './lru.js'

export interface FileRef {
  /** Plaintext hash P of the file's root manifest node (32 bytes). */
  hash: Buffer
  /** File length in bytes. */
  size: number
}

/** One chunk of a file, where it sits. */
export interface ChunkAt {
  hash: Buffer
  /** Store address A, hex (the cache key). */
  key: string
  size: number
  /** Offset of the chunk's first byte in the file. */
  offset: number
}

/** A leaf manifest node (offsets relative to it) with its chunks' addresses. */
interface LeafChunks {
  node: ManifestNode
  /** Store address A (hex) of each chunk. */
  keys: string[]
}

/** Where a leaf manifest node sits in the file. */
interface LeafRef {
  entry: ManifestEntry
  offset: number
  /** null for a root that is itself a leaf (its level is not implied by a parent). */
  level: number | null
}

/** Chunks loaded ahead by readFile (a stream: each chunk is used once, in order). */
const STREAM_AHEAD = 32
/** Read-ahead of a sequential reader: twice what it read in a row, within these bounds. */
export const MIN_AHEAD_BYTES = 128 * 1024
export const MAX_AHEAD_BYTES = 8 * 1024 * 1024
/** Chunk loads one open file keeps in flight ahead of its reader. */
const AHEAD_IN_FLIGHT = 32
/**
 * Chunks a sequential reader has read past by this much are dropped from the cache (the
 * kernel's page cache holds what it read): plaintext lives briefly, dies young in V8's
 * scavenger instead of being promoted, and the cache keeps room for read-ahead and reuse.
 */
const DROP_BEHIND_BYTES = 2 * 1024 * 1024
/** A request within this distance of the furthest byte read so far continues a sequential run. */
const SEQUENTIAL_SLACK = 2 * 1024 * 1024
/**
 * Content a sequential reader will reach is requested from peers' stores (ChunkStore.ahead:
 * whole packs, as ranges, spread over every peer holding them) this far past the reader:
 * eight times the bytes read in a row, within these bounds. Far more than the chunk loads in
 * flight: each peer of a store keeps up to 16 pack requests in flight (hypercore), and a peer
 * with fewer would be given copies of the blocks in flight at the others (its hotswap).
 */
export const MIN_REQUEST_AHEAD_BYTES = 4 * 1024 * 1024
export const MAX_REQUEST_AHEAD_BYTES = 64 * 1024 * 1024

export class ContentReader {
  /** Decoded manifest nodes by P (hex). */
  private readonly nodes = new Lru<string, ManifestNode>(256)
  /** Leaves with their chunks' addresses computed, by P (hex). */
  private readonly leaves = new Lru<string, Promise<LeafChunks>>(256)

  constructor(private readonly store: ChunkStore, private readonly keys: CasKeys, readonly cache: ChunkCache, private readonly pool: OpenPool) {}

  /** The file, open for reads: its manifest resolved once, its chunks read ahead of a sequential reader. */
  openFile(ref: FileRef, what = 'file'): OpenFile {
    checkRef(ref, what)
    return new OpenFile(this, ref, what)
  }

  /** Whether requestAhead() has anywhere to ask (this node reads from peers' stores). */
  requestsAhead(): boolean {
    return this.store.ahead !== null
  }

  /** Requests ahead the objects with these store addresses (hex) from peers' stores, if any; never throws. */
  requestAhead(keys: string[]): Promise<void> {
    const ahead = this.store.ahead
    if (!ahead || keys.length === 0) return Promise.resolve()
    return ahead(keys.map((k) => Buffer.from(k, 'hex'))).then(() => {}, () => {})
  }

  /** The whole file, chunk by chunk, each verified before it is yielded. Errors name `what`. */
  async * readFile(ref: FileRef, what = 'file'): AsyncGenerator<Buffer> {
    const file = this.openFile(ref, what)
    const ahead: Promise<Buffer>[] = []
    for await (const chunk of file.chunks(0, ref.size)) {
      const held = this.cache.get(chunk.key)
      const loading = held ? Promise.resolve(held) : this.loadChunk(chunk, what)
      loading.catch(() => {}) // awaited in order below, or dropped if the reader stops early
      ahead.push(loading)
      if (ahead.length >= STREAM_AHEAD) yield await ahead.shift()!
    }
    while (ahead.length > 0) yield await ahead.shift()!
  }

  /** Bytes [offset, offset + length) of the file, cut short at its end; loads only the chunks needed. */
  async read(ref: FileRef, offset: number, length: number, what = 'file'): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${what}: bad read offset ${offset}`)
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`${what}: bad read length ${length}`)
    const file = this.openFile(ref, what)
    const out = Buffer.alloc(Math.max(0, Math.min(offset + length, ref.size) - Math.min(offset, ref.size)))
    const n = await file.readInto(out, out.length, offset, false)
    return out.subarray(0, n)
  }

  /** Whether the manifest tree and every chunk of the file are held by this node. */
  async has(ref: FileRef): Promise<boolean> {
    checkRef(ref, 'file')
    try {
      let batch: Promise<boolean>[] = []
      for await (const chunk of this.openFile(ref).chunks(0, ref.size)) {
        batch.push(this.store.has(addressOf(this.keys, chunk.hash)))
        if (batch.length >= 64) {
          if ((await Promise.all(batch)).includes(false)) return false
          batch = []
        }
      }
      return !(await Promise.all(batch)).includes(false)
    } catch (err) {
      if (err instanceof MissingContentError) return false
      throw err
    }
  }

  /** A chunk's plaintext through the shared cache (loaded once however many readers want it). */
  cachedChunk(chunk: ChunkAt, what: string): Promise<Buffer> {
    return this.cache.load(chunk.key, () => this.loadChunk(chunk, what))
  }

  private async loadChunk(chunk: ChunkAt, what: string): Promise<Buffer> {
    const label = `chunk at offset ${chunk.offset}`
    const plain = await this.loadObject(chunk.hash, what, label)
    if (plain.length !== chunk.size) {
      throw new CorruptContentError(what, `${label} (${chunk.key})`, `holds ${plain.length} bytes, manifest says ${chunk.size}`)
    }
    return plain
  }

  private async loadObject(hash: Buffer, what: string, label: string): Promise<Buffer> {
    const address = addressOf(this.keys, hash)
    const name = `${label} (${address.toString('hex')})`
    let block: Buffer | null
    try {
      block = await this.store.get(address)
    } catch (err) {
      throw new CorruptContentError(what, name, `storage error: ${(err as Error).message}`, { cause: err })
    }
    // A fetched block stays in this node's copy of the peer's core (hypercore keeps it), where
    // get() finds it next time; it is stored again only to relay it (spec/cas.md, "Remote reads").
    let fetched = false
    if (!block) {
      block = await this.store.fetchMissing(address)
      fetched = block !== null
    } else if (this.store.relayFetched && (await this.store.locate(address)) === null) {
      fetched = true // from the copy of a peer's store (it came in a pack fetched for another object): relayed as fetched
    }
    if (!block) throw new MissingContentError(what, name)
    let plain: Buffer
    try {
      plain = await this.pool.open(this.keys, hash, block)
    } catch (err) {
      throw new CorruptContentError(what, name, (err as Error).message, { cause: err })
    }
    if (fetched) this.store.fetchedVerified(address, block)
    return plain
  }

  /** The manifest node an entry points to, checked against what the entry says of it. */
  async loadNode(entry: ManifestEntry, level: number | null, what: string): Promise<ManifestNode> {
    const key = entry.hash.toString('hex')
    let node = this.nodes.get(key)
    if (!node) {
      const label = 'manifest node'
      const plain = await this.loadObject(entry.hash, what, label)
      try {
        node = decodeManifestNode(plain)
      } catch (err) {
        throw new CorruptContentError(what, `${label} (${addressOf(this.keys, entry.hash).toString('hex')})`, (err as Error).message, { cause: err })
      }
      this.nodes.set(key, node)
    }
    if (node.size !== entry.size || (level !== null && node.level !== level)) {
      const expected = level === null ? `${entry.size} bytes` : `level ${level}, ${entry.size} bytes`
      throw new CorruptContentError(what, `manifest node (${addressOf(this.keys, entry.hash).toString('hex')})`, `is level ${node.level}, ${node.size} bytes; expected ${expected}`)
    }
    return node
  }

  /** A leaf's chunks with their addresses (computed once per leaf, not per read; loads in flight shared). */
  loadLeaf(leaf: LeafRef, what: string): Promise<LeafChunks> {
    const key = `${leaf.entry.hash.toString('hex')}:${leaf.entry.size}`
    const held = this.leaves.get(key)
    if (held) return held
    const loading = this.loadNode(leaf.entry, leaf.level, what).then((node) => {
      if (node.level !== 0) throw new CorruptContentError(what, `manifest node (${addressOf(this.keys, leaf.entry.hash).toString('hex')})`, `is level ${node.level}; expected a leaf`)
      return { node, keys: node.entries.map((e) => addressOf(this.keys, e.hash).toString('hex')) }
    })
    this.leaves.set(key, loading)
    loading.catch(() => this.leaves.delete(key))
    return loading
  }

  /** The leaves of a file's manifest tree in file order (every node above them loaded). */
  async resolveLeaves(ref: FileRef, what: string): Promise<LeafRef[]> {
    let level: LeafRef[] = [{ entry: { hash: ref.hash, size: ref.size }, offset: 0, level: null }]
    for (;;) {
      const nodes = await Promise.all(level.map((r) => this.loadNode(r.entry, r.level, what)))
      if (nodes[0]!.level === 0) return level
      const next: LeafRef[] = []
      nodes.forEach((node, i) => {
        for (let j = 0; j < node.entries.length; j++) next.push({ entry: node.entries[j]!, offset: level[i]!.offset + node.offsets[j]!, level: node.level - 1 })
      })
      level = next
    }
  }
}

/**
 * One open file. Its leaves are resolved once (at the first read); a leaf's chunk list is
 * decoded once; reads find their chunks by offset in memory, load them through the shared
 * cache, and keep a sequential reader's next chunks in flight: read-ahead twice the bytes
 * read in a row (the kernel's rule), from MIN_AHEAD_BYTES up to MAX_AHEAD_BYTES, at most
 * AHEAD_IN_FLIGHT chunk loads at once.
 */
export class OpenFile {
  readonly size: number
  private leafRefs: Promise<LeafRef[]> | null = null
  private leafTable: LeafRef[] | null = null
  /** Decoded leaves of this file by leaf index (the few near the reader). */
  private readonly leafChunks = new Map<number, LeafChunks>()
  private readonly leafLoads = new Map<number, Promise<LeafChunks>>()
  /** Furthest byte read so far (exclusive) and bytes read in a row up to it. */
  private readEnd = 0
  private run = 0
  /** Chunks up to this offset have been loaded or asked for. */
  private aheadTo = 0
  private aheadInFlight = 0
  private pumping = false
  /** Chunks read in the current sequential run, oldest first, dropped from the cache once far behind. */
  private behind: ChunkAt[] = []
  /** Content up to this offset has been requested from peers' stores (requestAhead). */
  private requestedTo = 0
  private requesting = false
  /** Counts seeks: a read-ahead pass started before one stops. */
  private seeks = 0
  private closed = false

  constructor(private readonly reader: ContentReader, readonly ref: FileRef, readonly what: string) {
    this.size = ref.size
  }

  /** Starts resolving the manifest and loading the first chunk, before any read asks. */
  prefetchStart(): void {
    this.run = MIN_AHEAD_BYTES / 2
    this.pump()
    this.requestAhead()
  }

  /** Reads [pos, pos + len) into buf; returns the byte count (short at the end of the file). */
  read(buf: Buffer, len: number, pos: number): Promise<number> {
    return this.readInto(buf, len, pos, true)
  }

  /** As read(); `ahead` false: no read-ahead (one-off reads). */
  async readInto(buf: Buffer, len: number, pos: number, ahead: boolean): Promise<number> {
    const end = Math.min(pos + len, this.size)
    if (end <= pos) return 0
    if (ahead) this.follow(pos, end)
    const chunks = await this.chunksIn(pos, end)
    const plains = await Promise.all(chunks.map((c) => this.reader.cachedChunk(c, this.what)))
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!
      const from = Math.max(pos, c.offset)
      const to = Math.min(end, c.offset + c.size)
      plains[i]!.copy(buf, from - pos, from - c.offset, to - c.offset)
    }
    if (ahead && this.run > 0) this.dropBehind(chunks)
    return end - pos
  }

  private dropBehind(read: ChunkAt[]): void {
    for (const c of read) if (this.behind.length === 0 || this.behind[this.behind.length - 1]!.offset < c.offset) this.behind.push(c)
    const limit = this.readEnd - DROP_BEHIND_BYTES
    let n = 0
    while (n < this.behind.length && this.behind[n]!.offset + this.behind[n]!.size <= limit) this.reader.cache.drop(this.behind[n++]!.key)
    if (n > 0) this.behind = this.behind.slice(n)
  }

  close(): void {
    this.closed = true
    this.leafChunks.clear()
  }

  /** The chunks overlapping [start, end), in file order. */
  async * chunks(start: number, end: number): AsyncGenerator<ChunkAt> {
    // A leaf at a time: a stream of a huge file holds one leaf's chunk list, not the file's.
    const leaves = this.leafTable ?? (await this.resolve())
    for (let li = leafAt(leaves, start); li < leaves.length && leaves[li]!.offset < end; li++) yield * await this.inLeaf(li, start, end, [])
  }

  /** The chunks overlapping [start, end) in file order, awaiting only leaves not loaded yet (the read path's hot loop). */
  async chunksIn(start: number, end: number): Promise<ChunkAt[]> {
    const out: ChunkAt[] = []
    const leaves = this.leafTable ?? (await this.resolve())
    for (let li = leafAt(leaves, start); li < leaves.length && leaves[li]!.offset < end; li++) await this.inLeaf(li, start, end, out)
    return out
  }

  /** Appends to `out` the chunks of leaf `li` overlapping [start, end). */
  private async inLeaf(li: number, start: number, end: number, out: ChunkAt[]): Promise<ChunkAt[]> {
    const { node, keys } = this.leafChunks.get(li) ?? (await this.loadLeaf(li))
    const base = this.leafTable![li]!.offset
    const count = node.entries.length
    for (let i = start > base ? entryAt(node, start - base) : 0; i < count && base + node.offsets[i]! < end; i++) {
      out.push({ hash: node.entries[i]!.hash, key: keys[i]!, size: node.entries[i]!.size, offset: base + node.offsets[i]! })
    }
    return out
  }

  private resolve(): Promise<LeafRef[]> {
    this.leafRefs ??= this.reader.resolveLeaves(this.ref, this.what).then((leaves) => {
      this.leafTable = leaves
      return leaves
    })
    const p = this.leafRefs
    // A failure (content missing now, maybe fetched later) is not kept: the next read tries again.
    p.catch(() => { if (this.leafRefs === p) this.leafRefs = null })
    return p
  }

  private loadLeaf(li: number): Promise<LeafChunks> {
    let loading = this.leafLoads.get(li)
    if (!loading) {
      loading = this.reader.loadLeaf(this.leafTable![li]!, this.what).then((leaf) => {
        // Keep the leaves around the reader: the one just loaded and its neighbours.
        for (const k of this.leafChunks.keys()) if (Math.abs(k - li) > 1) this.leafChunks.delete(k)
        if (!this.closed) this.leafChunks.set(li, leaf)
        return leaf
      }).finally(() => this.leafLoads.delete(li))
      this.leafLoads.set(li, loading)
    }
    return loading
  }

  /** Follows the reader: a request near the furthest byte read extends the run, anything else starts over. */
  private follow(pos: number, end: number): void {
    if (Math.abs(pos - this.readEnd) <= SEQUENTIAL_SLACK) {
      this.run += end - pos
      this.readEnd = Math.max(this.readEnd, end)
    } else {
      // A seek: no read-ahead until the next request continues from here.
      this.run = 0
      this.readEnd = end
      this.aheadTo = end
      this.requestedTo = end
      this.behind = []
      this.seeks++
    }
    this.aheadTo = Math.max(this.aheadTo, end)
    if (this.run > 0) {
      this.pump()
      this.requestAhead()
    }
  }

  /**
   * Requests from peers' stores the content the reader will reach: once what is requested
   * ahead of it falls under half the window, everything up to a full window past it (a large
   * range of packs at a time, not pack after pack behind the chunk loads).
   */
  private requestAhead(): void {
    if (this.requesting || this.closed || !this.reader.requestsAhead()) return
    const window = Math.min(MAX_REQUEST_AHEAD_BYTES, Math.max(MIN_REQUEST_AHEAD_BYTES, 8 * this.run))
    const target = Math.min(this.size, this.readEnd + window)
    const from = Math.max(this.requestedTo, this.readEnd)
    if (from >= target || this.requestedTo >= this.readEnd + window / 2) return
    this.requesting = true
    const seeks = this.seeks
    void (async () => {
      const chunks = await this.chunksIn(from, target)
      if (this.seeks !== seeks || this.closed) return false
      this.requestedTo = target
      await this.reader.requestAhead(chunks.map((c) => c.key))
      return true
    })()
      .catch(() => false) // best effort: the reads fetch what they need anyway
      .then((requested) => {
        this.requesting = false
        // The reader moved on meanwhile (its calls found this request busy): catch up with it.
        if (requested) this.requestAhead()
      })
  }

  /** Keeps loads in flight for the chunks in [aheadTo, readEnd + window). */
  private pump(): void {
    if (this.pumping || this.closed) return
    this.pumping = true
    void this.pumpLoop().finally(() => { this.pumping = false })
  }

  private async pumpLoop(): Promise<void> {
    try {
      for (;;) {
        const window = Math.min(MAX_AHEAD_BYTES, this.reader.cache.maxBytes / 4, Math.max(MIN_AHEAD_BYTES, 2 * this.run))
        const target = Math.min(this.size, this.readEnd + window)
        if (this.closed || this.aheadTo >= target || this.aheadInFlight >= AHEAD_IN_FLIGHT) return
        let issued = false
        const seeks = this.seeks
        for (const chunk of await this.chunksIn(this.aheadTo, target)) {
          if (this.closed || this.aheadInFlight >= AHEAD_IN_FLIGHT || this.seeks !== seeks) break
          this.aheadTo = chunk.offset + chunk.size
          if (this.reader.cache.covers(chunk.key)) continue
          issued = true
          this.aheadInFlight++
          this.reader.cachedChunk(chunk, this.what).catch(() => {}).finally(() => {
            this.aheadInFlight--
            this.pump()
          })
        }
        if (this.seeks !== seeks) continue
        if (this.aheadInFlight >= AHEAD_IN_FLIGHT) return
        if (!issued && this.aheadTo < target) this.aheadTo = target
      }
    } catch {
      // Read-ahead is best effort: the read that needs the chunk reports its error.
    }
  }
}

/** Index of the leaf holding `offset` (leaves sorted by offset; the first starts at 0). */
function leafAt(leaves: LeafRef[], offset: number): number {
  let lo = 0
  let hi = leaves.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (leaves[mid]!.offset <= offset) lo = mid
    else hi = mid - 1
  }
  return lo
}

export function checkRef(ref: FileRef, what: string): void {
  if (!Buffer.isBuffer(ref.hash) || ref.hash.length !== HASH_BYTES) throw new TypeError(`${what}: file reference hash must be ${HASH_BYTES} bytes`)
  if (!Number.isSafeInteger(ref.size) || ref.size < 0) throw new TypeError(`${what}: bad file size ${ref.size}`)
}
