/**
 * The page buckets of the index on disk (spec/tree.md "The index on disk", Page buckets): the
 * one home of their encoding. A page bucket holds the entries attached under some directories.
 *
 * Version 2 (written now): names apart from rows, rows in chunks, so a lookup of one name in a
 * 10k-entry directory reads and parses one small header and one chunk, not the directory:
 *
 *   "BZIP" | version u8 (2) | header length u32 BE | header JSON (UTF-8) | chunks
 *
 * Header `{actors: [hex…], dirs: [[dir id, entry count, [[first name, byte length, BLAKE2b-256
 * hex]…]]…]}`: dirs sorted by id, each dir's chunks back to back in header order (a dir's first
 * chunk follows the previous dir's last). A chunk is UTF-8 JSON `[[id, name | null, live,
 * versions, row | null]…]` of at most CHUNK_ENTRIES entries; a dir's entries are sorted by
 * (name, id), a null name sorting as "". The bucket's ref digest (the manifest's) is BLAKE2b-256
 * of the bytes before the chunks; each chunk is checked against its digest in the header.
 *
 * Version 1 (read; written by indexes of manifest version 4): UTF-8 JSON `{actors, dirs: [[dir
 * id, [[id, name, live, versions, row]…]]…]}`, the ref digest over the whole bucket.
 */
import { equal, hash } from '../crypto.js'
import { ActorTable, row, unrow, type NodeRow } from './checkpoint.js'
import type { BaseEntry } from './index-layers.js'
import type { RawNode } from './model.js'

export const PAGE_MAGIC = Buffer.from('BZIP')
export const PAGE_VERSION = 2
/** Entries per chunk: a name lookup parses one chunk (~15-25 KiB of JSON). */
export const CHUNK_ENTRIES = 64
/** Bytes read first for a version 2 header (more are read when it is longer). */
export const HEAD_PROBE = 16 * 1024
const PREFIX = 9

/** Entries by directory, then by node id. */
export type Page = Map<string, Map<string, BaseEntry>>

type EntryRow = [string, string | null, number, number, string | null]

/** An entry of a parsed page: its row (JSON text) is decoded when first asked for (a stat needs one row, not its directory's). */
export class PageEntry implements BaseEntry {
  private decoded: RawNode | null | undefined
  constructor(private text: string | null, readonly actors: string[], readonly parent: string | null, readonly name: string | null, readonly live: number, readonly versions: number) {}
  get raw(): RawNode | null {
    if (this.decoded === undefined) {
      this.decoded = this.text === null ? null : unrow(JSON.parse(this.text) as NodeRow, this.actors, 3)
      this.text = null
    }
    return this.decoded
  }
  /** The row text as read, while it was not decoded (a commit copies it when the actor table is the same). */
  get rowText(): string | null | undefined { return this.decoded === undefined ? this.text : undefined }
}

/** One chunk as the header names it; `offset` from the start of the bucket. */
export interface ChunkRef { first: string; offset: number; length: number; digest: string }
export interface PageHead { actors: string[]; dirs: Map<string, { count: number; chunks: ChunkRef[] }>; length: number }

/** The header length of a version 2 bucket whose first bytes are `probe`, or null when it is not one (version 1). */
export function headLength(probe: Buffer): number | null {
  if (probe.length < PREFIX || !probe.subarray(0, 4).equals(PAGE_MAGIC)) return null
  if (probe[4] !== PAGE_VERSION) throw new Error(`page version ${probe[4]} is not supported`)
  return PREFIX + probe.readUInt32BE(5)
}

/** Parses a version 2 header (`head`: the bucket's first headLength bytes; checked by the caller against the ref digest). */
export function parseHead(head: Buffer, bucketLength: number): PageHead {
  const j = JSON.parse(head.toString('utf8', PREFIX)) as { actors: string[]; dirs: [string, number, [string, number, string][]][] }
  if (!j || !Array.isArray(j.actors) || !Array.isArray(j.dirs)) throw new Error('bad page header')
  const dirs = new Map<string, { count: number; chunks: ChunkRef[] }>()
  let offset = head.length
  for (const [dir, count, list] of j.dirs) {
    const chunks: ChunkRef[] = []
    for (const [first, length, d] of list) {
      chunks.push({ first, offset, length, digest: d })
      offset += length
    }
    dirs.set(dir, { count, chunks })
  }
  if (offset !== bucketLength) throw new Error('page chunks do not fill the bucket')
  return { actors: j.actors, dirs, length: head.length }
}

/** Throws unless BLAKE2b-256 of `bytes` is `digest` (hex). */
export function checkDigest(bytes: Buffer, digest: string, what = 'digest mismatch'): void {
  if (!equal(hash(bytes), Buffer.from(digest, 'hex'))) throw new Error(what)
}

/**
 * Checks a whole bucket against its ref digest: a version 2 page by its header and each chunk;
 * anything else (a version 1 page, an id bucket, a shard save) by the digest of all its bytes.
 */
export function checkBucket(b: Buffer, digest: string): void {
  const hl = headLength(b)
  if (hl === null) return checkDigest(b, digest)
  const head = b.subarray(0, hl)
  checkDigest(head, digest)
  for (const { chunks } of parseHead(head, b.length).dirs.values()) for (const c of chunks) checkDigest(b.subarray(c.offset, c.offset + c.length), c.digest, 'chunk digest mismatch')
}

/** The entries of one chunk of `dir`; `check`: against its digest (skipped for bytes checked whole). */
export function parseChunk(bytes: Buffer, c: ChunkRef, dir: string, actors: string[], check = true): [string, PageEntry][] {
  if (check) checkDigest(bytes, c.digest, 'chunk digest mismatch')
  const parent = dir === '' ? null : dir
  return (JSON.parse(bytes.toString('utf8')) as EntryRow[]).map(([id, name, live, versions, text]) => [id, new PageEntry(text, actors, parent, name, live, versions)])
}

/** The chunks of a dir that may hold entries named `name` (they are sorted by name). */
export function chunksNamed(chunks: ChunkRef[], name: string): ChunkRef[] {
  let lo = 0, hi = chunks.length
  // The last chunk whose first name sorts before `name` (or the first chunk).
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (chunks[mid].first < name) lo = mid
    else hi = mid
  }
  const out: ChunkRef[] = []
  for (let i = lo; i < chunks.length && (i === lo || chunks[i].first <= name); i++) out.push(chunks[i])
  return out
}

/** A whole bucket of either version, already checked (checkBucket): a commit rewrites it, `entries()` lists it. */
export function parsePage(b: Buffer): { page: Page; actors: string[] } {
  const hl = headLength(b)
  const page: Page = new Map()
  if (hl === null) {
    const f = JSON.parse(b.toString('utf8')) as { actors: string[]; dirs: [string, EntryRow[]][] }
    for (const [dir, list] of f.dirs) {
      const m = new Map<string, BaseEntry>()
      for (const [id, name, live, versions, text] of list) m.set(id, new PageEntry(text, f.actors, dir === '' ? null : dir, name, live, versions))
      page.set(dir, m)
    }
    return { page, actors: f.actors }
  }
  const head = parseHead(b.subarray(0, hl), b.length)
  for (const [dir, { chunks }] of head.dirs) {
    const m = new Map<string, BaseEntry>()
    for (const c of chunks) for (const [id, e] of parseChunk(b.subarray(c.offset, c.offset + c.length), c, dir, head.actors, false)) m.set(id, e)
    page.set(dir, m)
  }
  return { page, actors: head.actors }
}

/**
 * Encodes a page bucket in version 2; returns its bytes and the digest its ref names. `seed`:
 * the actor table of the bucket it replaces: rows read from it and not decoded since are copied
 * as they are.
 */
export function encodePage(page: Page, seed: string[] | null): { bytes: Buffer; digest: string } {
  const actors = new ActorTable()
  for (const a of seed ?? []) actors.of(a)
  const dirs: [string, number, [string, number, string][]][] = []
  const chunks: Buffer[] = []
  for (const dir of [...page.keys()].sort()) {
    const m = page.get(dir)!
    if (m.size === 0) continue
    const list = [...m].map(([id, e]) => ({ id, e, key: e.name ?? '' })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const refs: [string, number, string][] = []
    for (let i = 0; i < list.length; i += CHUNK_ENTRIES) {
      const part = list.slice(i, i + CHUNK_ENTRIES)
      const rows: EntryRow[] = part.map(({ id, e }) => [id, e.name, e.live, e.versions, rowOf(e, actors, seed)])
      const bytes = Buffer.from(JSON.stringify(rows))
      refs.push([part[0].key, bytes.length, hash(bytes).toString('hex')])
      chunks.push(bytes)
    }
    dirs.push([dir, m.size, refs])
  }
  const json = Buffer.from(JSON.stringify({ actors: actors.list, dirs }))
  const head = Buffer.alloc(PREFIX + json.length)
  PAGE_MAGIC.copy(head)
  head[4] = PAGE_VERSION
  head.writeUInt32BE(json.length, 5)
  json.copy(head, PREFIX)
  return { bytes: Buffer.concat([head, ...chunks]), digest: hash(head).toString('hex') }
}

function rowOf(e: BaseEntry, actors: ActorTable, seed: string[] | null): string | null {
  if (seed !== null && e instanceof PageEntry && e.actors === seed) {
    const t = e.rowText
    if (t !== undefined) return t
  }
  const raw = e.raw
  return raw === null ? null : JSON.stringify(row(raw, actors))
}
