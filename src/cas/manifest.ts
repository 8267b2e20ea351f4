// File manifests: a tree of manifest nodes, each a CAS object of its own, so a big file's
// chunk list never becomes one huge block. Leaves (level 0) list data chunks; a node of
// level n lists nodes of level n - 1. Nodes close at content-defined points (a property of
// the entries' hashes), so an insertion near the start of a file changes one node per
// level, not every node after it. Byte layout in spec/cas.md.
import { HASH_BYTES } from '../crypto.js'
import { plainHash } from './convergent.js'
import { MAX_CHUNK } from './chunker.js'

export const MANIFEST_MAGIC = Buffer.from('bzmf', 'ascii')
export const MANIFEST_VERSION = 1
export const MANIFEST_HEADER_BYTES = 16
export const MANIFEST_ENTRY_BYTES = HASH_BYTES + 8
/** A node closes after an entry whose hash starts with a zero byte, once it has this many. */
export const MIN_FANOUT = 32
export const MAX_FANOUT = 1024
/** 1024^7 chunks is far beyond 2^53 bytes: deeper trees are corrupt, not big. */
export const MAX_LEVEL = 6

export interface ManifestEntry {
  /** Plaintext hash P of the chunk (leaf) or child node (interior). */
  hash: Buffer
  /** Bytes of file content the entry covers. */
  size: number
}

export interface ManifestNode {
  level: number
  size: number
  entries: ManifestEntry[]
  /** offsets[i] = file offset (relative to this node) where entry i starts; offsets[count] = size. */
  offsets: Float64Array
}

export function encodeManifestNode(level: number, entries: ManifestEntry[]): Buffer {
  if (entries.length > MAX_FANOUT) throw new Error(`manifest node of ${entries.length} entries exceeds ${MAX_FANOUT}`)
  const out = Buffer.alloc(MANIFEST_HEADER_BYTES + entries.length * MANIFEST_ENTRY_BYTES)
  MANIFEST_MAGIC.copy(out, 0)
  out[4] = MANIFEST_VERSION
  out[5] = level
  out.writeUInt16LE(entries.length, 6)
  let size = 0
  let at = MANIFEST_HEADER_BYTES
  for (const e of entries) {
    e.hash.copy(out, at)
    out.writeBigUInt64LE(BigInt(e.size), at + HASH_BYTES)
    size += e.size
    at += MANIFEST_ENTRY_BYTES
  }
  out.writeBigUInt64LE(BigInt(size), 8)
  return out
}

/** Decodes and checks a manifest node; throws an Error saying what is wrong with it. */
export function decodeManifestNode(data: Buffer): ManifestNode {
  if (data.length < MANIFEST_HEADER_BYTES) throw new Error(`manifest node too short (${data.length} bytes)`)
  if (!data.subarray(0, 4).equals(MANIFEST_MAGIC)) throw new Error('not a manifest node (bad magic)')
  if (data[4] !== MANIFEST_VERSION) throw new Error(`unknown manifest version ${data[4]}`)
  const level = data[5]!
  if (level > MAX_LEVEL) throw new Error(`manifest level ${level} exceeds ${MAX_LEVEL}`)
  const count = data.readUInt16LE(6)
  if (count > MAX_FANOUT) throw new Error(`manifest node of ${count} entries exceeds ${MAX_FANOUT}`)
  if (data.length !== MANIFEST_HEADER_BYTES + count * MANIFEST_ENTRY_BYTES) {
    throw new Error(`manifest node length ${data.length} does not match its ${count} entries`)
  }
  if (level > 0 && count === 0) throw new Error('empty interior manifest node')
  const size = readSize(data, 8)
  const entries: ManifestEntry[] = new Array(count)
  const offsets = new Float64Array(count + 1)
  let sum = 0
  for (let i = 0, at = MANIFEST_HEADER_BYTES; i < count; i++, at += MANIFEST_ENTRY_BYTES) {
    const entrySize = readSize(data, at + HASH_BYTES)
    if (entrySize === 0) throw new Error(`manifest entry ${i} is empty`)
    if (level === 0 && entrySize > MAX_CHUNK) throw new Error(`manifest entry ${i}: chunk of ${entrySize} bytes exceeds ${MAX_CHUNK}`)
    entries[i] = { hash: Buffer.from(data.subarray(at, at + HASH_BYTES)), size: entrySize }
    offsets[i] = sum
    sum += entrySize
  }
  offsets[count] = sum
  if (sum !== size) throw new Error(`manifest entries sum to ${sum} bytes, header says ${size}`)
  return { level, size, entries, offsets }
}

function readSize(data: Buffer, at: number): number {
  const v = data.readBigUInt64LE(at)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`manifest size ${v} out of range`)
  return Number(v)
}

/** Index of the entry holding byte `offset` (0 <= offset < node.size). */
export function entryAt(node: ManifestNode, offset: number): number {
  let lo = 0
  let hi = node.entries.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (node.offsets[mid]! <= offset) lo = mid
    else hi = mid - 1
  }
  return lo
}

function closesNode(entry: ManifestEntry, count: number): boolean {
  return count >= MAX_FANOUT || (count >= MIN_FANOUT && entry.hash[0] === 0)
}

/**
 * Builds the manifest tree of one file from its chunk list, bottom up, as chunks arrive.
 * Synchronous: the caller seals and stores every node it hands out (`nodes`), like chunks.
 */
export class ManifestBuilder {
  private readonly levels: ManifestEntry[][] = [[]]
  /** Whether a level has already closed a node: then it is not the root level. */
  private readonly closed: boolean[] = [false]

  /** Adds the next chunk; returns the plaintexts of the nodes this completed. */
  add(chunk: ManifestEntry): Buffer[] {
    const nodes: Buffer[] = []
    this.push(0, chunk, nodes)
    return nodes
  }

  /** Closes the tree: the root's hash, and the plaintexts of the nodes still to store. */
  finish(): { root: ManifestEntry; nodes: Buffer[] } {
    const nodes: Buffer[] = []
    for (let level = 0; ; level++) {
      const pending = this.levels[level]!
      if (!this.closed[level]) {
        // The topmost level: its pending entries are the whole level.
        if (level > 0 && pending.length === 1) return { root: pending[0]!, nodes }
        const plain = encodeManifestNode(level, pending)
        nodes.push(plain)
        return { root: { hash: plainHash(plain), size: sumSizes(pending) }, nodes }
      }
      if (pending.length > 0) this.close(level, nodes)
    }
  }

  private push(level: number, entry: ManifestEntry, nodes: Buffer[]): void {
    const pending = this.levels[level]!
    pending.push(entry)
    if (closesNode(entry, pending.length)) this.close(level, nodes)
  }

  private close(level: number, nodes: Buffer[]): void {
    const pending = this.levels[level]!
    const plain = encodeManifestNode(level, pending)
    nodes.push(plain)
    this.levels[level] = []
    this.closed[level] = true
    if (this.levels.length === level + 1) {
      if (level + 1 > MAX_LEVEL) throw new Error('file too large for a manifest')
      this.levels.push([])
      this.closed.push(false)
    }
    this.push(level + 1, { hash: plainHash(plain), size: sumSizes(pending) }, nodes)
  }
}

function sumSizes(entries: ManifestEntry[]): number {
  let s = 0
  for (const e of entries) s += e.size
  return s
}
