// The store's address filter (an in-memory Bloom filter over every indexed or appended address)
// and its file in the data dir, so that opening the store doesn't scan the whole index
// (spec/cas.md, "The address filter file"). Hyperbee lookups cost ~0.3 ms each, which alone
// would cap imports near 200 MiB/s; new content (the common case on import) is ruled out here
// without touching the index. Addresses are keyed BLAKE2b output, so their own bytes serve as
// the hash functions. "Maybe" answers are confirmed in the index.
import fs from 'node:fs'
import os from 'node:os'
import { hash, HASH_BYTES } from '../../crypto.js'

const BITS_PER_ENTRY = 10
const PROBES = 7 // ~1% false positives per layer at 10 bits per entry
const FIRST_CAPACITY = 1 << 16
/** A layer's capacity beyond which a file is taken as foreign (2^16 << 20 = 2^36 entries). */
const MAX_LAYERS = 21

interface Layer {
  bits: Int32Array
  mask: number
  capacity: number
  count: number
}

function bitCountFor(capacity: number): number {
  // A power-of-two bit count: probes are masked, not divided.
  return 2 ** Math.ceil(Math.log2(capacity * BITS_PER_ENTRY))
}

function layer(capacity: number, bits?: Int32Array): Layer {
  const bitCount = bitCountFor(capacity)
  return { bits: bits ?? new Int32Array(bitCount / 32), mask: bitCount - 1, capacity, count: 0 }
}

/** A filter's layers in the file's byte order (bits: little-endian 32-bit words). */
export type FilterLayers = Array<{ capacity: number; count: number; bits: Buffer }>

/** Grows by adding layers of doubling size (a scalable Bloom filter): entries are never rehashed. */
export class AddressFilter {
  private readonly layers: Layer[]

  constructor(layers?: Layer[]) {
    this.layers = layers ?? [layer(FIRST_CAPACITY)]
  }

  /** Addresses added (counting repeats). */
  get count(): number {
    let n = 0
    for (const l of this.layers) n += l.count
    return n
  }

  add(address: Buffer): void {
    let top = this.layers[this.layers.length - 1]!
    if (top.count >= top.capacity) {
      top = layer(top.capacity * 2)
      this.layers.push(top)
    }
    const h1 = address.readUInt32LE(0)
    const h2 = address.readUInt32LE(4) | 1
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & top.mask
      top.bits[bit >>> 5]! |= 1 << (bit & 31)
    }
    top.count++
  }

  /** False only when the address was certainly never added. */
  mayHold(address: Buffer): boolean {
    const h1 = address.readUInt32LE(0)
    const h2 = address.readUInt32LE(4) | 1
    for (const l of this.layers) {
      let all = true
      for (let i = 0; i < PROBES && all; i++) {
        const bit = (h1 + Math.imul(i, h2)) & l.mask
        all = (l.bits[bit >>> 5]! & (1 << (bit & 31))) !== 0
      }
      if (all) return true
    }
    return false
  }

  /** The layers as they are now (copies: the filter keeps changing while a save is written). */
  snapshot(): FilterLayers {
    return this.layers.map((l) => {
      const bits = Buffer.from(new Uint8Array(l.bits.buffer, l.bits.byteOffset, l.bits.byteLength)) // a copy
      if (os.endianness() === 'BE') bits.swap32() // the file holds little-endian 32-bit words
      return { capacity: l.capacity, count: l.count, bits }
    })
  }

  static fromLayers(layers: FilterLayers): AddressFilter {
    return new AddressFilter(layers.map((l) => {
      const words = new Int32Array(l.bits.length / 4)
      const bytes = new Uint8Array(words.buffer)
      bytes.set(l.bits)
      if (os.endianness() === 'BE') Buffer.from(words.buffer).swap32()
      const out = layer(l.capacity, words)
      out.count = l.count
      return out
    }))
  }
}

// ---- the file ----

const MAGIC = Buffer.from('bzcasflt', 'latin1')
export const FILTER_FILE_VERSION = 1
const HEADER_BYTES = 8 + 4 + 32 + 8 + 32 + 4 // magic, version, index key, length, tree hash, layer count
const LAYER_HEADER_BYTES = 12 // capacity, count, log2 of the bit count (u32 each)

/** What a filter file covers: the index core (by key) up to `length` blocks, with that prefix's merkle tree hash. */
export interface FilterCoverage {
  indexKey: Buffer
  length: number
  treeHash: Buffer
}

/** The file for a filter's layers (from snapshot(), taken when `coverage.length` was read). */
export function encodeFilterFile(layers: FilterLayers, coverage: FilterCoverage): Buffer {
  let size = HEADER_BYTES
  for (const l of layers) size += LAYER_HEADER_BYTES + l.bits.length
  const out = Buffer.alloc(size + HASH_BYTES)
  let at = MAGIC.copy(out, 0)
  at = out.writeUInt32LE(FILTER_FILE_VERSION, at)
  at += coverage.indexKey.copy(out, at)
  at = out.writeBigUInt64LE(BigInt(coverage.length), at)
  at += coverage.treeHash.copy(out, at)
  at = out.writeUInt32LE(layers.length, at)
  for (const l of layers) {
    at = out.writeUInt32LE(l.capacity, at)
    at = out.writeUInt32LE(l.count, at)
    at = out.writeUInt32LE(Math.log2(l.bits.length * 8), at)
    at += l.bits.copy(out, at)
  }
  hash(out.subarray(0, at)).copy(out, at)
  return out
}

/** Parses a filter file; throws (with the reason) on anything it does not recognize exactly. */
export function decodeFilterFile(data: Buffer): { filter: AddressFilter; coverage: FilterCoverage } {
  if (data.length < HEADER_BYTES + HASH_BYTES || !data.subarray(0, 8).equals(MAGIC)) throw new Error('not a filter file')
  const version = data.readUInt32LE(8)
  if (version !== FILTER_FILE_VERSION) throw new Error(`unknown filter file version ${version}`)
  const body = data.subarray(0, data.length - HASH_BYTES)
  if (!hash(body).equals(data.subarray(body.length))) throw new Error('digest mismatch (truncated or corrupt)')
  const indexKey = Buffer.from(data.subarray(12, 44))
  const length = data.readBigUInt64LE(44)
  if (length > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('covered length out of range')
  const treeHash = Buffer.from(data.subarray(52, 84))
  const count = data.readUInt32LE(84)
  if (count < 1 || count > MAX_LAYERS) throw new Error(`bad layer count ${count}`)
  const layers: FilterLayers = []
  let at = HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (at + LAYER_HEADER_BYTES > body.length) throw new Error('truncated layer')
    const capacity = body.readUInt32LE(at)
    const n = body.readUInt32LE(at + 4)
    const log2Bits = body.readUInt32LE(at + 8)
    at += LAYER_HEADER_BYTES
    // The layers are exactly those add() makes: doubling capacities, all but the last full.
    if (capacity !== FIRST_CAPACITY * 2 ** i) throw new Error(`layer ${i}: capacity ${capacity}`)
    if (2 ** log2Bits !== bitCountFor(capacity)) throw new Error(`layer ${i}: bit count 2^${log2Bits}`)
    if (n > capacity || (i < count - 1 && n !== capacity)) throw new Error(`layer ${i}: ${n} entries`)
    const bytes = 2 ** log2Bits / 8
    if (at + bytes > body.length) throw new Error('truncated layer')
    layers.push({ capacity, count: n, bits: body.subarray(at, at + bytes) })
    at += bytes
  }
  if (at !== body.length) throw new Error('trailing bytes')
  return { filter: AddressFilter.fromLayers(layers), coverage: { indexKey, length: Number(length), treeHash } }
}

/** Reads a filter file: null when there is none; throws when it is unreadable or unrecognized. */
export async function readFilterFile(file: string): Promise<{ filter: AddressFilter; coverage: FilterCoverage } | null> {
  let data: Buffer
  try {
    data = await fs.promises.readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  return decodeFilterFile(data)
}

