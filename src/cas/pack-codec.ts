// Every encoding of the pack store (spec/cas.md section 4): a pack block (block i of core
// `packs`: many sealed objects) and its index block (block i of core `pack-index`: where each
// object of pack i lies). Versioned; decoders reject anything they don't recognize exactly,
// and their work is bounded by the input's length (a count is checked against the bytes
// present before anything is allocated).
import { HASH_BYTES, TAG_BYTES } from '../crypto.js'

/** One object of the store: its address and its sealed block (what a pack holds). */
export interface StoredObject {
  address: Buffer
  block: Buffer
}

export const PACK_VERSION = 1
export const INDEX_BLOCK_VERSION = 1
/** A sealed object is at least its header (version, A) and the AEAD tag (spec/cas.md section 2). */
export const MIN_OBJECT_BYTES = 1 + HASH_BYTES + TAG_BYTES
/** No pack block is larger (a writer's target is far below: ~1 MiB; one object is at most ~256 KiB). */
export const MAX_PACK_BYTES = 16 * 1024 * 1024
/** u8 version, u32 count. */
const PACK_HEADER_BYTES = 5
/** u8 version, u64 pack number, u32 count. */
const INDEX_HEADER_BYTES = 13
/** A (32), u32 offset, u32 length. */
const INDEX_ENTRY_BYTES = HASH_BYTES + 8

/** An object within a pack block: its address (header bytes 1..33) and its bytes' place in the block. */
export interface PackedObject {
  address: Buffer
  offset: number
  length: number
}

function packHeaderBytes(count: number): number {
  return PACK_HEADER_BYTES + 4 * count
}

/** Packs sealed objects (each a stored block of spec/cas.md section 2) in the given order. */
export function encodePack(objects: Buffer[]): { pack: Buffer; entries: PackedObject[] } {
  if (objects.length === 0) throw new Error('pack: no objects')
  let size = packHeaderBytes(objects.length)
  for (const o of objects) {
    if (o.length < MIN_OBJECT_BYTES) throw new Error(`pack: object of ${o.length} bytes (less than ${MIN_OBJECT_BYTES})`)
    size += o.length
  }
  if (size > MAX_PACK_BYTES) throw new Error(`pack: ${size} bytes (more than ${MAX_PACK_BYTES})`)
  const pack = Buffer.allocUnsafe(size)
  pack[0] = PACK_VERSION
  pack.writeUInt32LE(objects.length, 1)
  const entries: PackedObject[] = []
  let at = packHeaderBytes(objects.length)
  for (let i = 0; i < objects.length; i++) {
    const o = objects[i]!
    pack.writeUInt32LE(o.length, PACK_HEADER_BYTES + 4 * i)
    o.copy(pack, at)
    entries.push({ address: pack.subarray(at + 1, at + 1 + HASH_BYTES), offset: at, length: o.length })
    at += o.length
  }
  return { pack, entries }
}

/**
 * The objects of a pack block, in order; each address is a view into `pack` (bytes 1..33 of
 * the object, not checked here: a reader verifies every object by its address and content).
 */
export function decodePackEntries(pack: Buffer): PackedObject[] {
  if (pack.length < PACK_HEADER_BYTES) throw new Error(`pack: truncated header (${pack.length} bytes)`)
  if (pack[0] !== PACK_VERSION) throw new Error(`pack: unknown version ${pack[0]}`)
  if (pack.length > MAX_PACK_BYTES) throw new Error(`pack: ${pack.length} bytes (more than ${MAX_PACK_BYTES})`)
  const count = pack.readUInt32LE(1)
  if (count === 0) throw new Error('pack: no objects')
  // Every object takes its 4-byte length and at least MIN_OBJECT_BYTES.
  if (count > (pack.length - PACK_HEADER_BYTES) / (4 + MIN_OBJECT_BYTES)) throw new Error(`pack: count ${count} too large for ${pack.length} bytes`)
  const entries: PackedObject[] = []
  let at = packHeaderBytes(count)
  for (let i = 0; i < count; i++) {
    const length = pack.readUInt32LE(PACK_HEADER_BYTES + 4 * i)
    if (length < MIN_OBJECT_BYTES) throw new Error(`pack: object ${i} of ${length} bytes (less than ${MIN_OBJECT_BYTES})`)
    if (length > pack.length - at) throw new Error(`pack: object ${i} ends past the block (offset ${at}, length ${length}, block ${pack.length} bytes)`)
    entries.push({ address: pack.subarray(at + 1, at + 1 + HASH_BYTES), offset: at, length })
    at += length
  }
  if (at !== pack.length) throw new Error(`pack: ${pack.length - at} trailing bytes`)
  return entries
}

/** The index block of pack number `pack`: its entries exactly as encodePack/decodePackEntries give them. */
export function encodeIndexBlock(pack: number, entries: PackedObject[]): Buffer {
  if (!Number.isSafeInteger(pack) || pack < 0) throw new Error(`pack index: bad pack number ${pack}`)
  checkLayout(entries, 'pack index')
  const out = Buffer.allocUnsafe(INDEX_HEADER_BYTES + INDEX_ENTRY_BYTES * entries.length)
  out[0] = INDEX_BLOCK_VERSION
  out.writeBigUInt64LE(BigInt(pack), 1)
  out.writeUInt32LE(entries.length, 9)
  let at = INDEX_HEADER_BYTES
  for (const e of entries) {
    if (e.address.length !== HASH_BYTES) throw new Error(`pack index: address of ${e.address.length} bytes`)
    at += e.address.copy(out, at)
    at = out.writeUInt32LE(e.offset, at)
    at = out.writeUInt32LE(e.length, at)
  }
  return out
}

/** Parses an index block; its entries' addresses are copies (they outlive the block). */
export function decodeIndexBlock(block: Buffer): { pack: number; entries: PackedObject[] } {
  if (block.length < INDEX_HEADER_BYTES) throw new Error(`pack index: truncated header (${block.length} bytes)`)
  if (block[0] !== INDEX_BLOCK_VERSION) throw new Error(`pack index: unknown version ${block[0]}`)
  const pack = block.readBigUInt64LE(1)
  if (pack > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('pack index: pack number out of range')
  const count = block.readUInt32LE(9)
  if (count === 0) throw new Error('pack index: no objects')
  if (block.length !== INDEX_HEADER_BYTES + INDEX_ENTRY_BYTES * count) {
    throw new Error(`pack index: ${block.length} bytes for ${count} entries (expected ${INDEX_HEADER_BYTES + INDEX_ENTRY_BYTES * count})`)
  }
  const entries: PackedObject[] = []
  let at = INDEX_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    entries.push({
      address: Buffer.from(block.subarray(at, at + HASH_BYTES)),
      offset: block.readUInt32LE(at + HASH_BYTES),
      length: block.readUInt32LE(at + HASH_BYTES + 4)
    })
    at += INDEX_ENTRY_BYTES
  }
  checkLayout(entries, 'pack index')
  return { pack: Number(pack), entries }
}

/** The pack block's length an index block's entries describe (the end of its last object). */
export function packLength(entries: PackedObject[]): number {
  const last = entries[entries.length - 1]
  return last ? last.offset + last.length : 0
}

/**
 * Entries must be exactly a pack's layout: the first object right after the header of
 * `entries.length` lengths, each next one right after the previous, none shorter than an
 * object can be, the whole within MAX_PACK_BYTES. (So they can't overlap or point outside.)
 */
function checkLayout(entries: PackedObject[], what: string): void {
  if (entries.length === 0) throw new Error(`${what}: no objects`)
  let at = packHeaderBytes(entries.length)
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    if (e.offset !== at) throw new Error(`${what}: object ${i} at offset ${e.offset}, expected ${at} (overlapping or out of place)`)
    if (!Number.isInteger(e.length) || e.length < MIN_OBJECT_BYTES) throw new Error(`${what}: object ${i} of ${e.length} bytes (less than ${MIN_OBJECT_BYTES})`)
    at += e.length
    if (at > MAX_PACK_BYTES) throw new Error(`${what}: object ${i} ends at ${at}, past the largest pack (${MAX_PACK_BYTES} bytes)`)
  }
}

// ---- drop records (spec/gc.md, spec/cas.md section 4.1) ----------------------------------
// A compaction appends, at one position i of both cores, a record naming the packs it emptied
// (their live objects were appended before i): block i of `packs` is the drop record, block i
// of `pack-index` says the same. Readers of the index forget every object still located in a
// named pack; mirrors and copies may clear those packs once they hold packs 0..i-1.

export const DROP_PACK_VERSION = 2
export const DROP_INDEX_VERSION = 2
/** Packs one drop record names at most (8 bytes each: a record stays far below a pack's size). */
export const MAX_DROPPED_PACKS = 65536

/** What an index block says: where the objects of pack i lie, or which packs position i drops. */
export type IndexRecord =
  | { kind: 'pack'; pack: number; entries: PackedObject[] }
  | { kind: 'drop'; position: number; packs: number[] }

function checkDropped(packs: number[], position: number | null, what: string): void {
  if (packs.length === 0) throw new Error(`${what}: no packs`)
  if (packs.length > MAX_DROPPED_PACKS) throw new Error(`${what}: ${packs.length} packs (more than ${MAX_DROPPED_PACKS})`)
  for (let i = 0; i < packs.length; i++) {
    const p = packs[i]!
    if (!Number.isSafeInteger(p) || p < 0) throw new Error(`${what}: bad pack number ${p}`)
    if (i > 0 && p <= packs[i - 1]!) throw new Error(`${what}: pack numbers not strictly increasing`)
    if (position !== null && p >= position) throw new Error(`${what}: drops pack ${p}, not before its own position ${position}`)
  }
}

function writePackList(out: Buffer, at: number, packs: number[]): void {
  for (const p of packs) at = out.writeBigUInt64LE(BigInt(p), at)
}

function readPackList(block: Buffer, at: number, count: number, what: string): number[] {
  const packs: number[] = []
  for (let i = 0; i < count; i++) {
    const p = block.readBigUInt64LE(at + 8 * i)
    if (p > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what}: pack number out of range`)
    packs.push(Number(p))
  }
  return packs
}

/** Block `position` of core `packs` when it is a drop record: u8 2, u32 n, n x u64 pack numbers. */
export function encodeDropPack(packs: number[]): Buffer {
  checkDropped(packs, null, 'drop record')
  const out = Buffer.allocUnsafe(5 + 8 * packs.length)
  out[0] = DROP_PACK_VERSION
  out.writeUInt32LE(packs.length, 1)
  writePackList(out, 5, packs)
  return out
}

/** The packs a drop record in core `packs` names (throws unless the block is exactly one). */
export function decodeDropPack(block: Buffer, position: number): number[] {
  if (block.length < 5 || block[0] !== DROP_PACK_VERSION) throw new Error('not a drop record')
  const count = block.readUInt32LE(1)
  if (block.length !== 5 + 8 * count) throw new Error(`drop record: ${block.length} bytes for ${count} packs`)
  const packs = readPackList(block, 5, count, 'drop record')
  checkDropped(packs, position, 'drop record')
  return packs
}

/** Block `position` of core `pack-index` for a drop record: u8 2, u64 position, u32 n, n x u64 pack numbers. */
export function encodeDropIndex(position: number, packs: number[]): Buffer {
  if (!Number.isSafeInteger(position) || position < 0) throw new Error(`drop record: bad position ${position}`)
  checkDropped(packs, position, 'drop record')
  const out = Buffer.allocUnsafe(INDEX_HEADER_BYTES + 8 * packs.length)
  out[0] = DROP_INDEX_VERSION
  out.writeBigUInt64LE(BigInt(position), 1)
  out.writeUInt32LE(packs.length, 9)
  writePackList(out, INDEX_HEADER_BYTES, packs)
  return out
}

/** Whether a block of core `packs` is a drop record rather than a pack (by its version byte). */
export function isDropPack(block: Buffer): boolean {
  return block.length > 0 && block[0] === DROP_PACK_VERSION
}

/** Any index block: a pack's entries (version 1) or a drop record (version 2). */
export function decodeIndexRecord(block: Buffer): IndexRecord {
  if (block.length >= 1 && block[0] === DROP_INDEX_VERSION) {
    if (block.length < INDEX_HEADER_BYTES) throw new Error(`pack index: truncated drop record (${block.length} bytes)`)
    const position = block.readBigUInt64LE(1)
    if (position > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('pack index: position out of range')
    const count = block.readUInt32LE(9)
    if (block.length !== INDEX_HEADER_BYTES + 8 * count) throw new Error(`pack index: drop record of ${block.length} bytes for ${count} packs`)
    const packs = readPackList(block, INDEX_HEADER_BYTES, count, 'pack index: drop record')
    checkDropped(packs, Number(position), 'pack index: drop record')
    return { kind: 'drop', position: Number(position), packs }
  }
  const { pack, entries } = decodeIndexBlock(block)
  return { kind: 'pack', pack, entries }
}

/** The packs index block `block` at `position` drops, if it is a drop record (spec/gc.md section 4); null for a pack's index block, or a block that does not decode (its pack must then be held). */
export function storeDrops(block: Buffer, position: number): number[] | null {
  try {
    const r = decodeIndexRecord(block)
    return r.kind === 'drop' && r.position === position ? r.packs : null
  } catch {
    return null
  }
}
