// FastCDC content-defined chunking (Xia et al. 2016/2020) with normalized chunking, level 2.
//
// The Gear table comes from the sharing key, so the cut points of a known file differ per
// sharing key and chunk sizes seen by a store holder don't fingerprint public files.
import { CONTEXT, deriveKey, expandKey } from '../crypto.js'

export const MIN_CHUNK = 16 * 1024
export const AVG_CHUNK = 64 * 1024
export const MAX_CHUNK = 256 * 1024

// The rolling hash is 30 bits wide, not 32: V8 keeps 31-bit integers unboxed, and the loop
// runs ~40% faster than with full int32 values.
export const HASH_MASK = 0x3fffffff
// Normalized chunking: before the average size a cut needs 18 zero bits (harder), after it
// 14 (easier), which narrows the size distribution around 64 KiB. The bits are the top ones
// of the hash: with h = (h << 1) + gear[byte], bit k depends on the last k + 1 bytes only,
// so the top bits see the widest window (up to 30 bytes).
export const MASK_SMALL = 0x3ffff000 // bits 12..29
export const MASK_LARGE = 0x3fff0000 // bits 16..29

export type GearTable = Int32Array

/** The 256-entry Gear table: expandKey(deriveKey(sharingKey, CONTEXT.gear), 1024) as u32 LE, low 30 bits. */
export function gearTable(sharingKey: Buffer): GearTable {
  const bytes = expandKey(deriveKey(sharingKey, CONTEXT.gear), 256 * 4)
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) table[i] = bytes.readUInt32LE(i * 4) & HASH_MASK
  return table
}

/**
 * Length of the chunk starting at data[start], looking at no more than data[start..end).
 * Call it only with at least MAX_CHUNK bytes available or at the end of the input, or a cut
 * would depend on how the input happened to be split into reads.
 */
export function cutLength(gear: GearTable, data: Uint8Array, start: number, end: number): number {
  const available = end - start
  if (available <= MIN_CHUNK) return available
  const limit = start + Math.min(available, MAX_CHUNK)
  const normal = start + Math.min(available, AVG_CHUNK)
  let h = 0
  let i = start + MIN_CHUNK
  for (; i < normal; i++) {
    h = ((h << 1) + gear[data[i]!]!) & HASH_MASK
    if ((h & MASK_SMALL) === 0) return i + 1 - start
  }
  for (; i < limit; i++) {
    h = ((h << 1) + gear[data[i]!]!) & HASH_MASK
    if ((h & MASK_LARGE) === 0) return i + 1 - start
  }
  return limit - start
}

/** Cuts a whole buffer; the chunks are views into `data`. */
export function chunkBuffer(gear: GearTable, data: Buffer): Buffer[] {
  const chunks: Buffer[] = []
  let start = 0
  while (start < data.length) {
    const n = cutLength(gear, data, start, data.length)
    chunks.push(data.subarray(start, start + n))
    start += n
  }
  return chunks
}

// How much input to gather before cutting: big enough that the copy into one buffer and the
// per-batch overhead vanish next to the hashing, small enough to stay cache- and RAM-friendly.
const GATHER_BYTES = 4 * 1024 * 1024

/**
 * Cut lengths of data[0..), stopping once fewer than MAX_CHUNK bytes remain unless `final`.
 * A plain function on purpose: the same loop inlined into an async generator runs ~3x slower.
 */
export function cutAll(gear: GearTable, data: Uint8Array, final: boolean): number[] {
  const lengths: number[] = []
  let start = 0
  while (final ? start < data.length : data.length - start >= MAX_CHUNK) {
    const n = cutLength(gear, data, start, data.length)
    lengths.push(n)
    start += n
  }
  return lengths
}

/**
 * Cuts a stream into chunks. Holds at most about GATHER_BYTES + MAX_CHUNK of input at a time.
 * Each yielded chunk is its own memory (later input never overwrites it).
 */
export async function * chunkStream(gear: GearTable, source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = []
  let pendingBytes = 0
  for await (const piece of source) {
    if (piece.length === 0) continue
    pending.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.length))
    pendingBytes += piece.length
    if (pendingBytes < GATHER_BYTES + MAX_CHUNK) continue
    const data = Buffer.concat(pending, pendingBytes)
    let start = 0
    for (const n of cutAll(gear, data, false)) {
      yield data.subarray(start, start + n)
      start += n
    }
    // The rest is copied by the next concat, so the chunks yielded above stay untouched.
    pending = [data.subarray(start)]
    pendingBytes = data.length - start
  }
  if (pendingBytes === 0) return
  const data = Buffer.concat(pending, pendingBytes)
  let start = 0
  for (const n of cutAll(gear, data, true)) {
    yield data.subarray(start, start + n)
    start += n
  }
}

/** The chunker of one sharing key. */
export class Chunker {
  readonly gear: GearTable
  constructor(sharingKey: Buffer) {
    this.gear = gearTable(sharingKey)
  }

  /** Cuts a whole buffer lazily; the chunks are views into `data`. */
  * split(data: Buffer): Generator<Buffer> {
    let start = 0
    while (start < data.length) {
      const n = cutLength(this.gear, data, start, data.length)
      yield data.subarray(start, start + n)
      start += n
    }
  }

  stream(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    return chunkStream(this.gear, source)
  }
}
