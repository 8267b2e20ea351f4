// Files under one sharing key: chunked, convergently encrypted, stored in the node's
// ChunkStore, described by a manifest tree whose root hash (with the size) is the FileRef.
import fsp, { type FileHandle } from 'node:fs/promises'
import type { ChunkStore, StoredObject } from './chunk-store.js'
import { gearTable, type GearTable } from './chunker.js'
import { openSealStream, sealWholeFiles, type SealedChunk } from './sealer.js'
import { addressOf, casKeys, openObject, sealObject, type CasKeys } from './convergent.js'
import { CorruptContentError, MissingContentError } from './errors.js'
import { ManifestBuilder, decodeManifestNode, entryAt, type ManifestEntry, type ManifestNode } from './manifest.js'
import { HASH_BYTES } from '../../crypto.js'
import { Lru } from './lru.js'

export interface FileRef {
  /** Plaintext hash P of the file's root manifest node (32 bytes). */
  hash: Buffer
  /** File length in bytes. */
  size: number
}

interface ChunkAt {
  hash: Buffer
  size: number
  /** Offset of the chunk's first byte in the file. */
  offset: number
}

/** Objects per ChunkStore.put (the store group-commits puts of concurrent writers). */
const PUT_BATCH = 64
/** Puts in flight while the next batch is chunked and sealed. */
const PUTS_IN_FLIGHT = 2
/** Chunks fetched ahead while reading. */
const READ_AHEAD = 16
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

export class Cas {
  private readonly keys: CasKeys
  private readonly gear: GearTable
  private readonly nodes = new Lru<string, ManifestNode>(256)

  constructor(private readonly store: ChunkStore, sharingKey: Buffer) {
    this.keys = casKeys(sharingKey)
    this.gear = gearTable(sharingKey)
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

  /** The whole file, chunk by chunk, each verified before it is yielded. Errors name `what`. */
  async * readFile(ref: FileRef, what = 'file'): AsyncGenerator<Buffer> {
    checkRef(ref, what)
    const ahead: Promise<Buffer>[] = []
    for await (const chunk of this.chunksIn(ref, 0, ref.size, what)) {
      const loading = this.loadChunk(chunk, what)
      loading.catch(() => {}) // awaited in order below, or dropped if the reader stops early
      ahead.push(loading)
      if (ahead.length >= READ_AHEAD) yield await ahead.shift()!
    }
    while (ahead.length > 0) yield await ahead.shift()!
  }

  /** Bytes [offset, offset + length) of the file, cut short at its end; fetches only the chunks needed. */
  async read(ref: FileRef, offset: number, length: number, what = 'file'): Promise<Buffer> {
    checkRef(ref, what)
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${what}: bad read offset ${offset}`)
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`${what}: bad read length ${length}`)
    const start = Math.min(offset, ref.size)
    const end = Math.min(offset + length, ref.size)
    const out = Buffer.alloc(end - start)
    if (end === start) return out
    const pending: Promise<void>[] = []
    const copy = async (chunk: ChunkAt): Promise<void> => {
      const plain = await this.loadChunk(chunk, what)
      const from = Math.max(start, chunk.offset)
      const to = Math.min(end, chunk.offset + chunk.size)
      plain.copy(out, from - start, from - chunk.offset, to - chunk.offset)
    }
    for await (const chunk of this.chunksIn(ref, start, end, what)) {
      const p = copy(chunk)
      p.catch(() => {})
      pending.push(p)
      if (pending.length >= READ_AHEAD) await pending.shift()
    }
    await Promise.all(pending)
    return out
  }

  /** Whether the manifest tree and every chunk of the file are held by this node. */
  async has(ref: FileRef): Promise<boolean> {
    checkRef(ref, 'file')
    try {
      let batch: Promise<boolean>[] = []
      for await (const chunk of this.chunksIn(ref, 0, ref.size, 'file')) {
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

  private async loadChunk(chunk: ChunkAt, what: string): Promise<Buffer> {
    const label = `chunk at offset ${chunk.offset}`
    const plain = await this.loadObject(chunk.hash, what, label)
    if (plain.length !== chunk.size) {
      throw new CorruptContentError(what, `${label} (${this.addressHex(chunk.hash)})`, `holds ${plain.length} bytes, manifest says ${chunk.size}`)
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
    }
    if (!block) throw new MissingContentError(what, name)
    let plain: Buffer
    try {
      plain = openObject(this.keys, hash, block)
    } catch (err) {
      throw new CorruptContentError(what, name, (err as Error).message, { cause: err })
    }
    if (fetched) this.store.fetchedVerified(address, block)
    return plain
  }

  private addressHex(hash: Buffer): string {
    return addressOf(this.keys, hash).toString('hex')
  }

  /** The manifest node an entry points to, checked against what the entry says of it. */
  private async loadNode(entry: ManifestEntry, level: number | null, what: string): Promise<ManifestNode> {
    const key = entry.hash.toString('hex')
    let node = this.nodes.get(key)
    if (!node) {
      const label = 'manifest node'
      const plain = await this.loadObject(entry.hash, what, label)
      try {
        node = decodeManifestNode(plain)
      } catch (err) {
        throw new CorruptContentError(what, `${label} (${this.addressHex(entry.hash)})`, (err as Error).message, { cause: err })
      }
      this.nodes.set(key, node)
    }
    if (node.size !== entry.size || (level !== null && node.level !== level)) {
      const expected = level === null ? `${entry.size} bytes` : `level ${level}, ${entry.size} bytes`
      throw new CorruptContentError(what, `manifest node (${this.addressHex(entry.hash)})`, `is level ${node.level}, ${node.size} bytes; expected ${expected}`)
    }
    return node
  }

  /** The chunks overlapping [start, end), in file order. */
  private async * chunksIn(ref: FileRef, start: number, end: number, what: string): AsyncGenerator<ChunkAt> {
    const walk = async function * (this: Cas, entry: ManifestEntry, level: number | null, base: number): AsyncGenerator<ChunkAt> {
      const node = await this.loadNode(entry, level, what)
      const count = node.entries.length
      for (let i = start > base ? entryAt(node, start - base) : 0; i < count && base + node.offsets[i]! < end; i++) {
        const child = node.entries[i]!
        const offset = base + node.offsets[i]!
        if (node.level === 0) yield { hash: child.hash, size: child.size, offset }
        else yield * walk.call(this, child, node.level - 1, offset)
      }
    }
    yield * walk.call(this, { hash: ref.hash, size: ref.size }, null, 0)
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

function checkRef(ref: FileRef, what: string): void {
  if (!Buffer.isBuffer(ref.hash) || ref.hash.length !== HASH_BYTES) throw new TypeError(`${what}: file reference hash must be ${HASH_BYTES} bytes`)
  if (!Number.isSafeInteger(ref.size) || ref.size < 0) throw new TypeError(`${what}: bad file size ${ref.size}`)
}
