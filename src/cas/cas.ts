// Files under one sharing key: chunked, convergently encrypted, stored in the node's
// ChunkStore, described by a manifest tree whose root hash (with the size) is the FileRef.
import fsp, { type FileHandle } from 'node:fs/promises'
import type { ChunkStore, StoredObject } from './chunk-store.js'
import { gearTable, type GearTable } from './chunker.js'
import { openSealStream, sealWholeFiles, type SealedChunk } from './sealer.js'
import { addressOf, casKeys, sealObject, type CasKeys } from './convergent.js'
import { ManifestBuilder, type ManifestEntry, type ManifestNode } from './manifest.js'
import { ContentReader, type FileRef, type OpenFile } from './cas-read.js'
import { sharedCache, type ChunkCache } from './chunk-cache.js'
import { openPool, type OpenPool } from './open-pool.js'

export type { FileRef }

/** Objects per ChunkStore.put (the store group-commits puts of concurrent writers). */
const PUT_BATCH = 64
/** Puts in flight while the next batch is chunked and sealed. */
const PUTS_IN_FLIGHT = 2
/** Bytes per read handed to the seal worker; PIECES_IN_FLIGHT of them per file at most. */
const PIECE_BYTES = 2 * 1024 * 1024
const PIECES_IN_FLIGHT = 3
/**
 * Files up to this size are sealed whole on a seal worker, many per request and per store
 * put (read there when given by path); bigger ones are streamed through a worker in pieces.
 */
export const WHOLE_BYTES = 1024 * 1024
/** Whole files per seal request and store put, at most: by count and by bytes. */
export const BATCH_FILES = 256
export const BATCH_BYTES = 8 * 1024 * 1024

interface Gathered {
  items: (string | Buffer)[]
  bytes: number
  owned: boolean
  waiters: { resolve: (ref: FileRef) => void; reject: (err: Error) => void }[]
}

interface Piece {
  data: ArrayBuffer
  length: number
}

/** Where open files are registered while open (OpenFiles in cache-holds.ts): add returns the release. */
export interface OpenFileRegistry {
  add(cas: Cas, ref: FileRef): () => void
}

export class Cas {
  private readonly keys: CasKeys
  private readonly gear: GearTable
  private readonly reader: ContentReader

  /** Where open files are registered so that eviction and GC keep their content (cache-holds.ts). */
  private readonly holds: OpenFileRegistry | null

  constructor(private readonly store: ChunkStore, sharingKey: Buffer, opts: { cache?: ChunkCache; pool?: OpenPool; holds?: OpenFileRegistry } = {}) {
    this.holds = opts.holds ?? null
    this.keys = casKeys(sharingKey)
    this.gear = gearTable(sharingKey)
    this.reader = new ContentReader(store, this.keys, opts.cache ?? sharedCache(), opts.pool ?? openPool())
  }

  /** Calls of writeBuffer/writeFile for small files not sent yet: they go as one batch. */
  private gathered: Gathered | null = null

  /**
   * Imports a file (a path on disk, or a stream of pieces) without holding it in memory,
   * reading it once. `size`: its length if known (saves a stat); a small file is read and
   * sealed on a seal worker, batched with other small files written at the same time.
   */
  async writeFile(source: string | AsyncIterable<Uint8Array>, size?: number): Promise<FileRef> {
    if (typeof source !== 'string') return this.writeSealed(gatherPieces(source))
    size ??= (await fsp.stat(source)).size
    if (size <= WHOLE_BYTES) return this.gather(source, size, false)
    const file = await fsp.open(source, 'r')
    try {
      return await this.writeSealed(filePieces(file))
    } finally {
      await file.close()
    }
  }

  /**
   * Stores a file held in memory. With `owned`, the caller gives the buffer away: when it is
   * all of its own ArrayBuffer, it is moved to the seal worker (no copy) and detached here.
   */
  async writeBuffer(data: Buffer, owned = false): Promise<FileRef> {
    if (data.length <= WHOLE_BYTES) return this.gather(data, data.length, owned)
    return this.writeSealed(bufferPieces(data))
  }

  /**
   * Stores whole files (paths, read by a seal worker, or buffers; each at most WHOLE_BYTES
   * to stay cheap) with one seal request and one store put: what an import of many small
   * files does per batch. All or nothing for the caller: it resolves once every object is
   * stored, or rejects (objects of the batch may then be stored, unreferenced).
   */
  async writeFiles(items: (string | Buffer)[], owned = false): Promise<FileRef[]> {
    if (items.length === 0) return []
    const sealed = await sealWholeFiles(this.keys, this.gear, items, owned)
    const objects: StoredObject[] = []
    for (const f of sealed) for (const o of f.objects) objects.push(o)
    await this.store.put(objects)
    return sealed.map((f) => ({ hash: f.hash, size: f.size }))
  }

  /** Queues a small file for the next batch, sent at the end of this turn of the event loop or once full. */
  private gather(item: string | Buffer, bytes: number, owned: boolean): Promise<FileRef> {
    let g = this.gathered
    if (g && g.owned !== owned) {
      this.sendGathered()
      g = null
    }
    if (!g) {
      g = this.gathered = { items: [], bytes: 0, owned, waiters: [] }
      setImmediate(() => { if (this.gathered === g) this.sendGathered() })
    }
    const batch = g
    const ref = new Promise<FileRef>((resolve, reject) => batch.waiters.push({ resolve, reject }))
    batch.items.push(item)
    batch.bytes += bytes
    if (batch.items.length >= BATCH_FILES || batch.bytes >= BATCH_BYTES) this.sendGathered()
    return ref
  }

  private sendGathered(): void {
    const g = this.gathered
    if (!g) return
    this.gathered = null
    this.writeFiles(g.items, g.owned).then(
      (refs) => { for (let i = 0; i < refs.length; i++) g.waiters[i]!.resolve(refs[i]!) },
      (err: Error) => { for (const w of g.waiters) w.reject(err) }
    )
  }

  /** Chunking and sealing in the seal worker; here only the manifest and the store. */
  private async writeSealed(pieces: AsyncIterable<Piece>): Promise<FileRef> {
    const writer = new ObjectWriter(this.store, this.keys)
    const stream = openSealStream(this.keys, this.gear)
    const replies: Promise<SealedChunk[]>[] = []
    const send = (piece: Piece, final: boolean): void => {
      const reply = stream.send(piece.data, piece.length, final)
      reply.catch(() => {}) // awaited in order below, or dropped after an earlier failure
      replies.push(reply)
    }
    try {
      for await (const piece of pieces) {
        send(piece, false)
        if (replies.length >= PIECES_IN_FLIGHT) for (const chunk of await replies.shift()!) await writer.add(chunk)
      }
      send({ data: new ArrayBuffer(0), length: 0 }, true)
      while (replies.length > 0) for (const chunk of await replies.shift()!) await writer.add(chunk)
      return await writer.finish()
    } catch (err) {
      stream.cancel()
      await writer.abandon()
      throw err
    }
  }

  // ---- reading (cas-read.ts) ----

  /** The whole file, chunk by chunk, each verified before it is yielded. Errors name `what`. */
  readFile(ref: FileRef, what = 'file'): AsyncGenerator<Buffer> {
    return this.reader.readFile(ref, what)
  }

  /** Bytes [offset, offset + length) of the file, cut short at its end; fetches only the chunks needed. */
  read(ref: FileRef, offset: number, length: number, what = 'file'): Promise<Buffer> {
    return this.reader.read(ref, offset, length, what)
  }

  /** The file open for reads: manifest resolved once, chunks cached and read ahead (cas-read.ts). */
  openFile(ref: FileRef, what = 'file'): OpenFile {
    const file = this.reader.openFile(ref, what)
    if (this.holds) {
      const release = this.holds.add(this, ref)
      const close = file.close.bind(file)
      file.close = () => {
        release()
        close()
      }
    }
    return file
  }

  /** Whether the manifest tree and every chunk of the file are held by this node. */
  has(ref: FileRef): Promise<boolean> {
    return this.reader.has(ref)
  }

  /** Whether requestAhead() has anywhere to ask (this node reads from peers' stores). */
  requestsAhead(): boolean {
    return this.reader.requestsAhead()
  }

  /**
   * Requests ahead from peers' stores the root objects of these files (the pack of a small
   * file holds its content too); resolves once requested, never throws.
   */
  requestAhead(refs: FileRef[]): Promise<void> {
    return this.reader.requestAhead(refs.map((r) => addressOf(this.keys, r.hash).toString('hex')))
  }

  /** Store address A of an object, by its plaintext hash P. */
  objectAddress(hash: Buffer): Buffer {
    return addressOf(this.keys, hash)
  }

  /** The manifest node an entry points to: loaded (or fetched), verified, decoded, cached. */
  manifestNode(entry: ManifestEntry, what = 'file'): Promise<ManifestNode> {
    return this.reader.loadNode(entry, null, what)
  }
}

/** Puts a file's objects (chunks, then the manifest nodes they complete) in batches. */
class ObjectWriter {
  private readonly builder = new ManifestBuilder()
  private readonly inFlight: Promise<void>[] = []
  private batch: StoredObject[] = []

  constructor(private readonly store: ChunkStore, private readonly keys: CasKeys) {}

  async add(chunk: SealedChunk): Promise<void> {
    this.batch.push({ address: chunk.address, block: chunk.block })
    for (const node of this.builder.add({ hash: chunk.hash, size: chunk.size })) this.addNode(node)
    if (this.batch.length >= PUT_BATCH) await this.flush()
  }

  async finish(): Promise<FileRef> {
    const { root, nodes } = this.builder.finish()
    for (const node of nodes) this.addNode(node)
    await this.flush()
    await Promise.all(this.inFlight)
    return { hash: root.hash, size: root.size }
  }

  /** After a failure: lets the puts already started settle (their errors are the caller's). */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.inFlight)
  }

  private addNode(plain: Buffer): void {
    const sealed = sealObject(this.keys, plain)
    this.batch.push({ address: sealed.address, block: sealed.block })
  }

  private async flush(): Promise<void> {
    if (this.batch.length > 0) {
      const put = this.store.put(this.batch)
      put.catch(() => {}) // awaited below; this only keeps an early throw from leaving it unhandled
      this.inFlight.push(put)
      this.batch = []
    }
    while (this.inFlight.length >= PUTS_IN_FLIGHT) await this.inFlight.shift()
  }
}

async function * filePieces(file: FileHandle): AsyncGenerator<Piece> {
  for (;;) {
    // A fresh buffer per read: it is transferred to the worker, not copied.
    const data = new ArrayBuffer(PIECE_BYTES)
    const { bytesRead } = await file.read(new Uint8Array(data), 0, PIECE_BYTES, null)
    if (bytesRead === 0) return
    yield { data, length: bytesRead }
  }
}

async function * bufferPieces(source: Buffer): AsyncGenerator<Piece> {
  for (let at = 0; at < source.length; at += PIECE_BYTES) {
    const length = Math.min(PIECE_BYTES, source.length - at)
    const data = new ArrayBuffer(length)
    source.copy(new Uint8Array(data), 0, at, at + length)
    yield { data, length }
  }
}

/** Copies a stream's pieces (whose memory the caller may reuse) into transferable buffers. */
async function * gatherPieces(source: AsyncIterable<Uint8Array>): AsyncGenerator<Piece> {
  let data = new ArrayBuffer(PIECE_BYTES)
  let length = 0
  for await (const piece of source) {
    let at = 0
    while (at < piece.length) {
      const n = Math.min(piece.length - at, PIECE_BYTES - length)
      new Uint8Array(data, length, n).set(piece.subarray(at, at + n))
      length += n
      at += n
      if (length === PIECE_BYTES) {
        yield { data, length }
        data = new ArrayBuffer(PIECE_BYTES)
        length = 0
      }
    }
  }
  if (length > 0) yield { data, length }
}
