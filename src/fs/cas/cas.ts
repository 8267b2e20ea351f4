// Files under one sharing key: chunked, convergently encrypted, stored in the node's
// ChunkStore, described by a manifest tree whose root hash (with the size) is the FileRef.
import { createReadStream } from 'node:fs'
import type { ChunkStore, StoredObject } from './chunk-store.js'
import { chunkBuffer, chunkStream, gearTable, type GearTable } from './chunker.js'
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

/** Objects per ChunkStore.put: ~4 MiB of chunks, one append and one index batch. */
const PUT_BATCH = 64
/** Puts in flight while the next batch is chunked and sealed. */
const PUTS_IN_FLIGHT = 2
/** Chunks fetched ahead while reading. */
const READ_AHEAD = 8
const READ_BUFFER_BYTES = 1024 * 1024

export class Cas {
  private readonly keys: CasKeys
  private readonly gear: GearTable
  private readonly nodes = new Lru<string, ManifestNode>(256)

  constructor(private readonly store: ChunkStore, sharingKey: Buffer) {
    this.keys = casKeys(sharingKey)
    this.gear = gearTable(sharingKey)
  }

  /** Imports a file (a path on disk, or a stream of pieces) without holding it in memory. */
  async writeFile(source: string | AsyncIterable<Uint8Array>): Promise<FileRef> {
    const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: READ_BUFFER_BYTES }) : source
    return this.writeChunks(chunkStream(this.gear, input))
  }

  async writeBuffer(data: Buffer): Promise<FileRef> {
    return this.writeChunks(chunkBuffer(this.gear, data))
  }

  private async writeChunks(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<FileRef> {
    const builder = new ManifestBuilder()
    const inFlight: Promise<void>[] = []
    let batch: StoredObject[] = []
    const add = (plain: Buffer): Buffer => {
      const sealed = sealObject(this.keys, plain)
      batch.push({ address: sealed.address, block: sealed.block })
      return sealed.hash
    }
    const flush = async (): Promise<void> => {
      if (batch.length > 0) {
        const put = this.store.put(batch)
        put.catch(() => {}) // awaited below; this only keeps an early throw from leaving it unhandled
        inFlight.push(put)
        batch = []
      }
      while (inFlight.length >= PUTS_IN_FLIGHT) await inFlight.shift()
    }
    for await (const chunk of chunks) {
      const hash = add(chunk)
      for (const node of builder.add({ hash, size: chunk.length })) add(node)
      if (batch.length >= PUT_BATCH) await flush()
    }
    const { root, nodes } = builder.finish()
    for (const node of nodes) add(node)
    await flush()
    await Promise.all(inFlight)
    return { hash: root.hash, size: root.size }
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
    if (!block) throw new MissingContentError(what, name)
    try {
      return openObject(this.keys, hash, block)
    } catch (err) {
      throw new CorruptContentError(what, name, (err as Error).message, { cause: err })
    }
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

function checkRef(ref: FileRef, what: string): void {
  if (!Buffer.isBuffer(ref.hash) || ref.hash.length !== HASH_BYTES) throw new TypeError(`${what}: file reference hash must be ${HASH_BYTES} bytes`)
  if (!Number.isSafeInteger(ref.size) || ref.size < 0) throw new TypeError(`${what}: bad file size ${ref.size}`)
}
