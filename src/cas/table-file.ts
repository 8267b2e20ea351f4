// The pack table saved between runs (spec/cas.md section 7): a cache of what the `pack-index`
// core holds, so that opening a store of a million objects reads one file instead of every
// index block. Deleting it costs one full read of the index at the next open.
import fs from 'node:fs'
import os from 'node:os'
import { hash, HASH_BYTES } from '../crypto.js'
import { PackTable } from './pack-table.js'
import { PackBits } from './pack-bits.js'

/** In the corestore's directory, beside corestore's own files (DATA/corestore/pack-table). */
export const TABLE_FILE_NAME = 'pack-table'
const MAGIC = Buffer.from('bzpacktb', 'latin1')
/** 2: the dropped packs' bitmap follows the slots (version 1 files are read as absent: one full index read). */
export const TABLE_FILE_VERSION = 2
/** magic, version, index key, length, tree hash, object bytes, slot word count. */
const HEADER_BYTES = 8 + 4 + 32 + 8 + 32 + 8 + 4

/** What a table file covers: the index core (by key) up to `length` blocks, with that prefix's merkle tree hash. */
export interface TableCoverage {
  indexKey: Buffer
  length: number
  treeHash: Buffer
  /** The sum of the covered objects' lengths (ChunkStore.stats().bytes). */
  objectBytes: number
}

export function encodeTableFile(table: PackTable, coverage: TableCoverage): Buffer {
  const words = table.slotWords
  const dropped = table.dropped.encode()
  const body = HEADER_BYTES + words.byteLength + 4 + dropped.length
  const out = Buffer.allocUnsafe(body + HASH_BYTES)
  let at = MAGIC.copy(out, 0)
  at = out.writeUInt32LE(TABLE_FILE_VERSION, at)
  at += coverage.indexKey.copy(out, at)
  at = out.writeBigUInt64LE(BigInt(coverage.length), at)
  at += coverage.treeHash.copy(out, at)
  at = out.writeBigUInt64LE(BigInt(coverage.objectBytes), at)
  at = out.writeUInt32LE(words.length, at)
  const slots = Buffer.from(words.buffer, words.byteOffset, words.byteLength)
  slots.copy(out, at)
  if (os.endianness() === 'BE') out.subarray(at, at + slots.length).swap32() // the file holds little-endian words
  at += slots.length
  at = out.writeUInt32LE(dropped.length, at)
  out.set(dropped, at)
  hash(out.subarray(0, body)).copy(out, body)
  return out
}

/** Parses a table file; throws (with the reason) on anything it does not recognize exactly. */
export function decodeTableFile(data: Buffer): { table: PackTable; coverage: TableCoverage } {
  if (data.length < HEADER_BYTES + HASH_BYTES || !data.subarray(0, 8).equals(MAGIC)) throw new Error('not a pack table file')
  const version = data.readUInt32LE(8)
  if (version === 1) throw new Error('a version 1 table file (without the dropped packs)')
  if (version !== TABLE_FILE_VERSION) throw new Error(`unknown pack table file version ${version}`)
  const body = data.subarray(0, data.length - HASH_BYTES)
  if (!hash(body).equals(data.subarray(body.length))) throw new Error('digest mismatch (truncated or corrupt)')
  const indexKey = Buffer.from(data.subarray(12, 44))
  const length = data.readBigUInt64LE(44)
  const treeHash = Buffer.from(data.subarray(52, 84))
  const objectBytes = data.readBigUInt64LE(84)
  const count = data.readUInt32LE(92)
  if (length > BigInt(Number.MAX_SAFE_INTEGER) || objectBytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('covered length out of range')
  const slotsEnd = HEADER_BYTES + 4 * count
  if (body.length < slotsEnd + 4) throw new Error(`${body.length - HEADER_BYTES} bytes of slots, the header says ${count} words`)
  const droppedBytes = body.readUInt32LE(slotsEnd)
  if (body.length !== slotsEnd + 4 + droppedBytes) throw new Error(`${body.length - slotsEnd - 4} bytes of dropped packs, the file says ${droppedBytes}`)
  if (droppedBytes > 0 && body[body.length - 1] === 0) throw new Error('the dropped packs end with a zero byte')
  // The slots are used where they lie in the file's buffer when aligned (a store of a million
  // objects: ~56 MiB not copied, half the open's peak for the table); else a copy.
  // Only a buffer of its own (a file read): a pooled one shares its memory with others.
  const own = data.byteOffset === 0 && data.buffer.byteLength === data.length
  const words = own ? new Uint32Array(data.buffer, HEADER_BYTES, count) : new Uint32Array(count)
  const bytes = Buffer.from(words.buffer, words.byteOffset, words.byteLength)
  if (!own) body.copy(bytes, 0, HEADER_BYTES, slotsEnd)
  if (os.endianness() === 'BE') bytes.swap32()
  const dropped = new PackBits(Uint8Array.from(body.subarray(slotsEnd + 4)))
  return { table: PackTable.fromSlots(words, dropped), coverage: { indexKey, length: Number(length), treeHash, objectBytes: Number(objectBytes) } }
}

/** Reads a table file: null when there is none; throws when it is unreadable or unrecognized. */
export async function readTableFile(file: string): Promise<{ table: PackTable; coverage: TableCoverage } | null> {
  let data: Buffer
  try {
    data = await fs.promises.readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  return decodeTableFile(data)
}
