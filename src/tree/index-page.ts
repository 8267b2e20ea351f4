/**
 * The page buckets of the index on disk (spec/tree.md "The index on disk", Page buckets): the
 * one home of their encoding. A page bucket holds the entries attached under some directories.
 *
 * Version 5 (written now): version 4 whose chunks may lie outside the bucket, where an earlier
 * commit wrote them: after the actor table a segment table (u16 count, str8 names); each chunk
 * record ends with a segment u16 (0xFFFF: in the bucket, after the header, in record order;
 * else an index into the table, then the chunk's offset in that segment file, u32 high and u32
 * low). A commit that changes a few names of a big dir writes their chunks and a new header,
 * not the dir (patchPage).
 *
 * Version 4 (read, and patched into 5): version 3 with, per dir after its entry count, what the view's name
 * table of it counts (DirSummary: visible named entries, names shared by several of them,
 * those with several content versions): a change in a 10k-entry directory then costs the
 * names it touches, not a name table of every entry (view.ts).
 *
 * Version 3 (read; written by indexes of manifest versions 6 and 7): binary, names apart from rows, rows in chunks, so a lookup of one
 * name in a 10k-entry directory reads one small header and one chunk, and decodes only the
 * entries of that name (no JSON parse of a header or a chunk):
 *
 *   "BZIP" | version u8 (3) | header length u32 BE | header | chunks
 *
 * Integers big-endian; a string is its UTF-8 bytes after their length (str8: u8, str16: u16).
 * Header: actor count u16, actors (str8 each); dir count u32; per dir (sorted by id): id
 * (str16), entry count u32, chunk count u32, per chunk: byte length u32, BLAKE2b-256 (32 bytes),
 * first name (str16). Chunk: entry count u16, per entry: id (str16), flags u8 (1: name, 2:
 * row), name (str16, when flag 1), live u32, versions u32, row (u32 length + the row's JSON
 * text, when flag 2). Order, chunking and digests as in version 2.
 *
 * Version 2 (read; written by indexes of manifest version 5): "BZIP" | 2 | header length u32
 * BE | header JSON `{actors: [hex…], dirs: [[dir id, entry count, [[first name, byte length,
 * BLAKE2b-256 hex]…]]…]}` | chunks, each UTF-8 JSON `[[id, name | null, live, versions, row |
 * null]…]` of at most CHUNK_ENTRIES entries; a dir's entries sorted by (name, id), a null name
 * sorting as "". The bucket's ref digest (the manifest's) is BLAKE2b-256 of the bytes before
 * the chunks; each chunk is checked against its digest in the header.
 *
 * Version 1 (read; written by indexes of manifest version 4): UTF-8 JSON `{actors, dirs: [[dir
 * id, [[id, name, live, versions, row]…]]…]}`, the ref digest over the whole bucket.
 */
import { equal, hash } from '../crypto.js'
import { ActorTable, row, unrow, type NodeRow } from './checkpoint.js'
import type { BaseEntry, DirSummary } from './index-layers.js'
import type { RawNode } from './model.js'

export const PAGE_MAGIC = Buffer.from('BZIP')
export const PAGE_VERSION = 5
/** Chunked versions read (1 is told apart by its lack of the magic). */
const CHUNKED = [2, 3, 4, 5]
/** In a version 5 chunk record: the chunk follows the header (no segment). */
const INLINE = 0xffff
/** A dir whose chunks would lie in more segments than this is written whole again (a listing reads each segment's chunks apart). */
export const MAX_DIR_SEGMENTS = 8
/** Entries per chunk: a name lookup parses one chunk (~15-25 KiB of JSON). */
export const CHUNK_ENTRIES = 64
/** Bytes read first for a version 2 header (more are read when it is longer). */
export const HEAD_PROBE = 16 * 1024
const PREFIX = 9

/** Entries by directory, then by node id. */
export type Page = Map<string, Map<string, BaseEntry>>

type EntryRow = [string, string | null, number, number, string | null]

/** An entry of a parsed page: its row (JSON text, or its UTF-8 bytes) is decoded when first asked for (a stat needs one row, not its directory's). */
export class PageEntry implements BaseEntry {
  private decoded: RawNode | null | undefined
  constructor(private text: string | Buffer | null, readonly actors: string[], readonly parent: string | null, readonly name: string | null, readonly live: number, readonly versions: number) {}
  get raw(): RawNode | null {
    if (this.decoded === undefined) {
      const t = this.text
      this.decoded = t === null ? null : unrow(JSON.parse(typeof t === 'string' ? t : t.toString('utf8')) as NodeRow, this.actors, 3)
      this.text = null
    }
    return this.decoded
  }
  /** The row text (or its bytes) as read, while it was not decoded (a commit copies it when the actor table is the same). */
  get rowText(): string | Buffer | null | undefined { return this.decoded === undefined ? this.text : undefined }
}

/**
 * One chunk as the header names it: `offset` from the start of the bucket, or (version 5, a
 * chunk a commit did not change) in segment `seg`, where an earlier commit wrote it.
 */
export interface ChunkRef { first: string; offset: number; length: number; digest: string; seg?: string }
/** The summary of a dir's entries (what a version 4 header carries). */
export function summarize(entries: Iterable<BaseEntry>): DirSummary {
  const names = new Map<string, number>()
  let vis = 0, groups = 0, copies = 0
  for (const e of entries) {
    if (e.live <= 0 || e.name === null) continue
    vis++
    const n = (names.get(e.name) ?? 0) + 1
    names.set(e.name, n)
    if (n === 2) groups++
    if (e.versions > 1) copies++
  }
  return { vis, groups, copies }
}

/** A dir of a chunked header: its entry count, its chunks (all, or those that may hold a name: version 3 decodes only those), its summary (version 4; null before). */
export interface DirHead { count: number; readonly chunks: ChunkRef[]; named(name: string): ChunkRef[]; summary: DirSummary | null }
export interface PageHead { version: number; actors: string[]; dirs: Map<string, DirHead>; length: number }

/** The header length of a version 2 bucket whose first bytes are `probe`, or null when it is not one (version 1). */
export function headLength(probe: Buffer): number | null {
  if (probe.length < PREFIX || !probe.subarray(0, 4).equals(PAGE_MAGIC)) return null
  if (!CHUNKED.includes(probe[4])) throw new Error(`page version ${probe[4]} is not supported`)
  return PREFIX + probe.readUInt32BE(5)
}

/** Parses a chunked header (`head`: the bucket's first headLength bytes; checked by the caller against the ref digest). */
export function parseHead(head: Buffer, bucketLength: number): PageHead {
  const version = head[4]
  const dirs = new Map<string, DirHead>()
  let offset = head.length
  let actors: string[]
  if (version === 2) {
    const j = JSON.parse(head.toString('utf8', PREFIX)) as { actors: string[]; dirs: [string, number, [string, number, string][]][] }
    if (!j || !Array.isArray(j.actors) || !Array.isArray(j.dirs)) throw new Error('bad page header')
    actors = j.actors
    for (const [dir, count, list] of j.dirs) {
      const chunks: ChunkRef[] = []
      for (const [first, length, d] of list) {
        chunks.push({ first, offset, length, digest: d })
        offset += length
      }
      dirs.set(dir, { count, chunks, named: (name) => chunksNamed(chunks, name), summary: null })
    }
  } else {
    // Versions 3 and 4: the dirs' chunk records are only located here (no string decoded); a dir's
    // records are decoded when asked for, a name lookup decodes the first names it compares.
    const r = new Reader(head, PREFIX)
    actors = []
    for (let n = r.u16(); n > 0; n--) actors.push(r.str8())
    const segNames: string[] = []
    if (version >= 5) for (let n = r.u16(); n > 0; n--) segNames.push(r.str8())
    for (let n = r.u32(); n > 0; n--) {
      const dir = r.str16()
      const count = r.u32()
      const summary = version >= 4 ? { vis: r.u32(), groups: r.u32(), copies: r.u32() } : null
      if (summary && (summary.vis > count || summary.groups > summary.vis || summary.copies > summary.vis)) throw new Error('page header counts do not fit')
      const k = r.u32()
      if (k * CHUNK_RECORD > head.length) throw new Error('page header names more chunks than it holds')
      const recs = new Uint32Array(k)
      const offsets = new Float64Array(k)
      const segs = version >= 5 ? new Int32Array(k) : null
      for (let c = 0; c < k; c++) {
        recs[c] = r.at
        const length = r.u32()
        r.need(32)
        r.skip16()
        const sg = segs ? r.u16() : INLINE
        if (sg === INLINE) {
          offsets[c] = offset
          offset += length
          if (segs) segs[c] = -1
        } else {
          if (sg >= segNames.length) throw new Error('page chunk names no segment')
          offsets[c] = r.u32() * 2 ** 32 + r.u32()
          segs![c] = sg
        }
      }
      dirs.set(dir, new LazyDir(head, count, recs, offsets, summary, segs, segNames))
    }
    if (r.at !== head.length) throw new Error('page header has trailing bytes')
  }
  if (offset !== bucketLength) throw new Error('page chunks do not fill the bucket')
  return { version, actors, dirs, length: head.length }
}

/** Bytes of a version 3 chunk record before its first name: length u32, digest. */
const CHUNK_RECORD = 4 + 32 + 2

/** A dir of a version 3-5 header; `segs`: per chunk (version 5), its segment in `segNames` (-1: in the bucket). */
class LazyDir implements DirHead {
  private all: ChunkRef[] | null = null
  constructor(readonly head: Buffer, readonly count: number, readonly recs: Uint32Array, readonly offsets: Float64Array, readonly summary: DirSummary | null,
    readonly segs: Int32Array | null = null, readonly segNames: string[] = []) {}
  get chunks(): ChunkRef[] {
    if (!this.all) this.all = Array.from(this.recs, (_, i) => this.chunk(i))
    return this.all
  }
  private first(i: number): string {
    const at = this.recs[i] + 36
    return this.head.toString('utf8', at + 2, at + 2 + this.head.readUInt16BE(at))
  }
  chunk(i: number): ChunkRef {
    const at = this.recs[i]
    const c: ChunkRef = { first: this.first(i), offset: this.offsets[i], length: this.head.readUInt32BE(at), digest: this.head.toString('hex', at + 4, at + 36) }
    const sg = this.segs?.[i] ?? -1
    if (sg >= 0) c.seg = this.segNames[sg]
    return c
  }
  /** The chunks `[lo, hi)` that may hold entries named `name` (chunksNamed's rule). */
  range(name: string): [number, number] {
    const n = this.recs.length
    if (n === 0) return [0, 0]
    let lo = 0, hi = n
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1
      if (this.first(mid) < name) lo = mid
      else hi = mid
    }
    let end = lo + 1
    while (end < n && this.first(end) <= name) end++
    return [lo, end]
  }
  named(name: string): ChunkRef[] {
    const [lo, hi] = this.range(name)
    const out: ChunkRef[] = []
    for (let i = lo; i < hi; i++) out.push(this.chunk(i))
    return out
  }
}

/** Reads the binary fields of version 3; throws on bytes that run out. */
class Reader {
  constructor(readonly b: Buffer, public at: number) {}
  need(n: number): number {
    const at = this.at
    if (at + n > this.b.length) throw new Error('page bytes end early')
    this.at = at + n
    return at
  }
  u8(): number { return this.b[this.need(1)] }
  u16(): number { return this.b.readUInt16BE(this.need(2)) }
  u32(): number { return this.b.readUInt32BE(this.need(4)) }
  str8(): string { const n = this.u8(); const at = this.need(n); return this.b.toString('utf8', at, at + n) }
  str16(): string { const n = this.u16(); const at = this.need(n); return this.b.toString('utf8', at, at + n) }
  hex32(): string { const at = this.need(32); return this.b.toString('hex', at, at + 32) }
  /** A length-prefixed run of bytes: its offset (the reader moves past it). */
  skip16(): [number, number] { const n = this.u16(); return [this.need(n), n] }
  bytes32(): Buffer { const n = this.u32(); const at = this.need(n); return this.b.subarray(at, at + n) }
}

/** Throws unless BLAKE2b-256 of `bytes` is `digest` (hex). */
export function checkDigest(bytes: Buffer, digest: string, what = 'digest mismatch'): void {
  if (!equal(hash(bytes), Buffer.from(digest, 'hex'))) throw new Error(what)
}

/** Reads a chunk a version 5 page names in another segment. */
export type ChunkReader = (c: ChunkRef) => Buffer

/** A chunk's bytes: in the bucket `b`, or read where it lies. */
function chunkOf(b: Buffer, c: ChunkRef, elsewhere?: ChunkReader): Buffer {
  if (c.seg === undefined) return b.subarray(c.offset, c.offset + c.length)
  if (!elsewhere) throw new Error(`page chunk in ${c.seg}: no reader`)
  return elsewhere(c)
}

/**
 * Checks a whole bucket against its ref digest: a version 2 page by its header and each chunk
 * (one in another segment read by `elsewhere`); anything else (a version 1 page, an id bucket,
 * a shard save) by the digest of all its bytes.
 */
export function checkBucket(b: Buffer, digest: string, elsewhere?: ChunkReader): void {
  const hl = headLength(b)
  if (hl === null) return checkDigest(b, digest)
  const head = b.subarray(0, hl)
  checkDigest(head, digest)
  for (const { chunks } of parseHead(head, b.length).dirs.values()) for (const c of chunks) checkDigest(chunkOf(b, c, elsewhere), c.digest, 'chunk digest mismatch')
}

/** The entries of one chunk of `dir` in a page of `version`; `check`: against its digest (skipped for bytes checked whole). */
export function parseChunk(bytes: Buffer, c: ChunkRef, dir: string, actors: string[], check = true, version = PAGE_VERSION): [string, PageEntry][] {
  if (check) checkDigest(bytes, c.digest, 'chunk digest mismatch')
  const parent = dir === '' ? null : dir
  if (version === 2) return (JSON.parse(bytes.toString('utf8')) as EntryRow[]).map(([id, name, live, versions, text]) => [id, new PageEntry(text, actors, parent, name, live, versions)])
  const out: [string, PageEntry][] = []
  const r = new Reader(bytes, 0)
  for (let n = r.u16(); n > 0; n--) out.push(readEntry(r, actors, parent))
  if (r.at !== bytes.length) throw new Error('page chunk has trailing bytes')
  return out
}

/** One entry; `copy`: its row bytes copied out of the chunk (an entry kept alone must not hold its whole chunk in memory). */
function readEntry(r: Reader, actors: string[], parent: string | null, copy = false): [string, PageEntry] {
  const id = r.str16()
  const flags = r.u8()
  if (flags > 3) throw new Error(`page entry flags ${flags}`)
  const name = flags & 1 ? r.str16() : null
  const live = r.u32()
  const versions = r.u32()
  const row = flags & 2 ? (copy ? Buffer.from(r.bytes32()) : r.bytes32()) : null
  return [id, new PageEntry(row, actors, parent, name, live, versions)]
}

/**
 * The entries named `name` in one chunk of version 3 (already checked against its digest): only
 * those are decoded (the others' names are compared as bytes).
 */
export function chunkNamed(bytes: Buffer, dir: string, actors: string[], name: string): [string, PageEntry][] {
  const want = Buffer.from(name)
  const parent = dir === '' ? null : dir
  const out: [string, PageEntry][] = []
  const r = new Reader(bytes, 0)
  // Entries of other names are stepped over by their lengths: nothing allocated for them (a
  // merge looks up thousands of names, each scanning a chunk of 64 entries).
  const end = bytes.length
  let at = 2
  for (let n = r.u16(); n > 0; n--) {
    const start = at
    if (at + 3 > end) throw new Error('page bytes end early')
    at += 2 + bytes.readUInt16BE(at)
    if (at + 1 > end) throw new Error('page bytes end early')
    const flags = bytes[at++]
    let match = false
    if (flags & 1) {
      if (at + 2 > end) throw new Error('page bytes end early')
      const len = bytes.readUInt16BE(at)
      at += 2
      match = len === want.length && bytes.compare(want, 0, len, at, at + len) === 0
      at += len
    }
    at += 8
    if (flags & 2) {
      if (at + 4 > end) throw new Error('page bytes end early')
      at += 4 + bytes.readUInt32BE(at)
    }
    if (at > end) throw new Error('page bytes end early')
    if (match) {
      r.at = start
      out.push(readEntry(r, actors, parent, true))
    }
  }
  return out
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

/**
 * A whole bucket of any version (chunks elsewhere read by `elsewhere`): a commit rewrites it,
 * `entries()` lists it. With its ref `digest`, it is checked as it is parsed (its header, or a
 * version 1 bucket whole, against the digest; each chunk against its own), every byte read
 * once; without, it was checked already (checkBucket), but for chunks elsewhere.
 */
export function parsePage(b: Buffer, elsewhere?: ChunkReader, digest?: string): { page: Page; actors: string[] } {
  const hl = headLength(b)
  const page: Page = new Map()
  if (digest !== undefined) checkDigest(hl === null ? b : b.subarray(0, hl), digest)
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
    for (const c of chunks) for (const [id, e] of parseChunk(chunkOf(b, c, elsewhere), c, dir, head.actors, digest !== undefined || c.seg !== undefined, head.version)) m.set(id, e)
    page.set(dir, m)
  }
  return { page, actors: head.actors }
}

/**
 * Encodes a page bucket in version 5, every chunk in it (3, 4: what indexes before it wrote;
 * tests make them); returns its bytes and the digest its ref names. `seed`: the actor table of
 * the bucket it replaces: rows read from it and not decoded since are copied as they are.
 */
export function encodePage(page: Page, seed: string[] | null, version: 3 | 4 | 5 = PAGE_VERSION): { bytes: Buffer; digest: string } {
  const actors = seeded(seed)
  const dirs: DirOut[] = []
  const chunks: Buffer[] = []
  const w = new Writer(64 * 1024)
  for (const dir of [...page.keys()].sort()) {
    const m = page.get(dir)!
    if (m.size === 0) continue
    const list = sortedEntries(m)
    const sizes: number[] = []
    for (let i = 0; i < list.length; i += CHUNK_ENTRIES) sizes.push(Math.min(CHUNK_ENTRIES, list.length - i))
    dirs.push({ id: dir, count: m.size, summary: summarize(m.values()), recs: encodeChunks(list, sizes, actors, seed, chunks, w) })
  }
  return assemble(version, actors, dirs, chunks)
}

/** A chunk record as written: the chunk's byte length, digest and first name; `seg`, `at`: where it lies when not in the bucket (version 5). */
interface ChunkRec { length: number; digest: Buffer; first: string; seg?: string; at?: number }
/** A dir of a header as written. */
type DirOut = { id: string; count: number; summary: DirSummary; recs: ChunkRec[] }
/** A page bucket as encoded: `ext`, the bytes of its chunks in each other segment (the manifest counts them live there). */
export interface EncodedPage { bytes: Buffer; digest: string; ext?: Record<string, number> }
type Sorted = { id: string; e: BaseEntry; key: string }[]

function seeded(seed: string[] | null): ActorTable {
  const actors = new ActorTable()
  for (const a of seed ?? []) actors.of(a)
  return actors
}

/** A dir's entries in page order: by (name, id), a null name as "". */
function sortedEntries(entries: Iterable<[string, BaseEntry]>): Sorted {
  return Array.from(entries, ([id, e]) => ({ id, e, key: e.name ?? '' })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** Encodes `list` in order as chunks of `sizes` entries: their bytes are appended to `chunks`, their records returned. */
function encodeChunks(list: Sorted, sizes: number[], actors: ActorTable, seed: string[] | null, chunks: Buffer[], w: Writer): ChunkRec[] {
  const recs: ChunkRec[] = []
  let i = 0
  for (const n of sizes) {
    const part = list.slice(i, i + n)
    i += n
    const bytes = encodeChunk(part.map(({ id, e }) => [id, e, rowOf(e, actors, seed)]), w)
    recs.push({ length: bytes.length, digest: hash(bytes), first: part[0].key })
    chunks.push(bytes)
  }
  return recs
}

/** A header of `version` over `dirs` (sorted by id), followed by `chunks` (those of the records with no `seg`, in order). */
function assemble(version: number, actors: ActorTable, dirs: DirOut[], chunks: Buffer[]): EncodedPage {
  const w = new Writer()
  if (actors.list.length > 0xffff) throw new Error('page: too many actors')
  w.u16(actors.list.length)
  for (const a of actors.list) w.str8(a)
  const segs = new Map<string, number>()
  const ext: Record<string, number> = {}
  if (version >= 5) {
    for (const d of dirs) {
      for (const r of d.recs) {
        if (r.seg === undefined) continue
        if (!segs.has(r.seg)) segs.set(r.seg, segs.size)
        ext[r.seg] = (ext[r.seg] ?? 0) + r.length
      }
    }
    if (segs.size >= INLINE) throw new Error('page: too many segments')
    w.u16(segs.size)
    for (const name of segs.keys()) w.str8(name)
  }
  w.u32(dirs.length)
  for (const d of dirs) {
    w.str16(d.id)
    w.u32(d.count)
    if (version >= 4) {
      w.u32(d.summary.vis)
      w.u32(d.summary.groups)
      w.u32(d.summary.copies)
    }
    w.u32(d.recs.length)
    for (const r of d.recs) {
      w.u32(r.length)
      w.raw(r.digest)
      w.str16(r.first)
      if (version < 5) {
        if (r.seg !== undefined) throw new Error(`page: version ${version} holds no chunk of another segment`)
        continue
      }
      if (r.seg === undefined) {
        w.u16(INLINE)
        continue
      }
      w.u16(segs.get(r.seg)!)
      w.u32(Math.floor(r.at! / 2 ** 32))
      w.u32(r.at! % 2 ** 32)
    }
  }
  const body = w.done()
  const head = Buffer.alloc(PREFIX + body.length)
  PAGE_MAGIC.copy(head)
  head[4] = version
  head.writeUInt32BE(body.length, 5)
  body.copy(head, PREFIX)
  const out: EncodedPage = { bytes: Buffer.concat([head, ...chunks]), digest: hash(head).toString('hex') }
  if (segs.size > 0) out.ext = ext
  return out
}

/** What a commit changes in one dir of a page: entries removed (id, and the name they had there: where they lie) and entries added or replaced. */
export interface DirEdits { remove: [id: string, name: string | null][]; add: [id: string, entry: BaseEntry][] }

/** A page a commit patches: its header (checked against its ref digest), where its bucket lies, and a reader of any of its chunks (in the bucket or elsewhere). */
export interface OldPage { head: PageHead; seg: string; offset: number; chunk: ChunkReader }

/**
 * A page of version 4 or 5 (`old`) with `edits` applied, written in version 5: the chunks that
 * hold a name the edits touch are decoded (checked against their digests), edited, sorted and
 * cut again into chunks of at most CHUNK_ENTRIES (evenly: a chunk that grows past it splits in
 * two, one that empties is dropped), and written in the bucket; every other chunk stays where
 * it lies (in the old bucket's segment, or wherever that one named it): the new header names
 * its segment and offset, so it is neither read, copied nor hashed. A commit so costs what
 * changed in a page, not the size of its dirs (a 10k-entry dir: ~3 MB). A dir's count and
 * summary follow from the old ones plus what the touched names' entries were and are (every
 * entry of a name lies in that name's chunks). A dir whose chunks fall under a third full on
 * average, or would lie in more than MAX_DIR_SEGMENTS segments, is cut again whole into the
 * bucket. Rows in chunks left in place index the old actor table: it is kept, new actors
 * appended. A dir new to the page is encoded as encodePage does. Returns 'empty' when no entry
 * is left; null when the page is of another version or a removed entry is not where its name
 * says (the caller encodes it whole).
 */
export function patchPage(old: OldPage, edits: ReadonlyMap<string, DirEdits>): EncodedPage | 'empty' | null {
  const h = old.head
  if (h.version !== 4 && h.version !== 5) return null
  const seed = h.actors
  const actors = seeded(seed)
  const dirs: DirOut[] = []
  const chunks: Buffer[] = []
  const w = new Writer(64 * 1024)
  for (const id of [...new Set([...h.dirs.keys(), ...edits.keys()])].sort()) {
    const d = h.dirs.get(id) as LazyDir | undefined
    const e = edits.get(id)
    if (d && d.recs.length > 0) {
      const out = patchDir(old, id, d, e ?? { remove: [], add: [] }, actors, seed, chunks, w, false)
      if (out === null) return null
      if (out !== 'empty') dirs.push(out)
    } else if (e) {
      // New to the page (or a dir without chunks): its added entries, encoded whole.
      const m = new Map(e.add)
      if (m.size === 0) continue
      const list = sortedEntries(m)
      dirs.push({ id, count: m.size, summary: summarize(m.values()), recs: encodeChunks(list, evenSizes(list.length), actors, seed, chunks, w) })
    }
  }
  if (dirs.length === 0) return 'empty'
  return assemble(PAGE_VERSION, actors, dirs, chunks)
}

/** A page whose bytes are at hand (its bucket, at `offset` in segment `seg`), as patchPage and inlinePage read one (its header checked by the caller). */
export function pageAt(bytes: Buffer, seg: string, offset: number, elsewhere: ChunkReader): OldPage {
  const head = bytes.subarray(0, headLength(bytes)!)
  return { head: parseHead(head, bytes.length), seg, offset, chunk: (c) => chunkOf(bytes, c, elsewhere) }
}

/** A chunk left where it lies: its record, naming the segment and offset. */
function inPlace(old: OldPage, c: ChunkRef): ChunkRec {
  return { length: c.length, digest: Buffer.from(c.digest, 'hex'), first: c.first, seg: c.seg ?? old.seg, at: c.seg !== undefined ? c.offset : old.offset + c.offset }
}

function segmentCount(recs: ChunkRec[]): number {
  const segs = new Set<string>()
  for (const r of recs) if (r.seg !== undefined) segs.add(r.seg)
  return segs.size
}

/**
 * A page of version 5 with every chunk in the bucket again (a segment holding some of its
 * chunks is being emptied): the same dirs, records and chunk bytes; `old.chunk` reads them.
 */
export function inlinePage(old: OldPage): EncodedPage {
  const h = old.head
  const dirs: DirOut[] = []
  const chunks: Buffer[] = []
  for (const [id, dh] of [...h.dirs].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const d = dh as LazyDir
    const recs: ChunkRec[] = []
    for (const c of d.chunks) {
      const bytes = old.chunk(c)
      checkDigest(bytes, c.digest, 'chunk digest mismatch')
      recs.push({ length: c.length, digest: Buffer.from(c.digest, 'hex'), first: c.first })
      chunks.push(bytes)
    }
    dirs.push({ id, count: d.count, summary: d.summary ?? summarize([]), recs })
  }
  return assemble(PAGE_VERSION, seeded(h.actors), dirs, chunks)
}

/** Sizes of ceil(n / CHUNK_ENTRIES) chunks holding n entries, as even as can be (a chunk split leaves room on both sides). */
function evenSizes(n: number): number[] {
  const k = Math.ceil(n / CHUNK_ENTRIES)
  const sizes: number[] = []
  for (let i = 0; i < k; i++) sizes.push(Math.floor(n / k) + (i < n % k ? 1 : 0))
  return sizes
}

/**
 * One dir of patchPage: its header record (its new chunks appended to `chunks`), 'empty' when no
 * entry is left, null when the edits do not fit the page. `all`: every chunk is cut again.
 */
function patchDir(old: OldPage, dir: string, d: LazyDir, e: DirEdits, actors: ActorTable, seed: string[], chunks: Buffer[], w: Writer, all: boolean): DirOut | 'empty' | null {
  const chunksBefore = chunks.length
  const k = d.recs.length
  const touched = new Uint8Array(k)
  if (all) touched.fill(1)
  /** The names touched (as sort keys): every entry of each lies in the chunks marked for it. */
  const keys = new Set<string>()
  const mark = (name: string | null): number => {
    const key = name ?? ''
    keys.add(key)
    const [lo, hi] = d.range(key)
    touched.fill(1, lo, hi)
    return lo
  }
  const removeAt = e.remove.map(([id, name]) => [id, mark(name)] as const)
  const addAt = e.add.map(([id, entry]) => [id, entry, mark(entry.name)] as const)
  // Runs of touched chunks next to each other are cut again together (a name's chunks are one run).
  const runOf = new Int32Array(k).fill(-1)
  const runs: { start: number; end: number; remove: Set<string>; add: Map<string, BaseEntry> }[] = []
  for (let i = 0; i < k; i++) {
    if (!touched[i]) continue
    if (i > 0 && touched[i - 1]) runs[runs.length - 1].end = i + 1
    else runs.push({ start: i, end: i + 1, remove: new Set(), add: new Map() })
    runOf[i] = runs.length - 1
  }
  for (const [id, at] of removeAt) runs[runOf[at]].remove.add(id)
  for (const [id, entry, at] of addAt) runs[runOf[at]].add.set(id, entry)
  const summary = { ...d.summary! }
  let count = d.count
  const recs: ChunkRec[] = []
  let run = 0
  for (let i = 0; i < k; ) {
    if (!touched[i]) {
      recs.push(inPlace(old, d.chunk(i)))
      i++
      continue
    }
    const r = runs[run++]
    const was: Sorted = []
    for (let j = r.start; j < r.end; j++) {
      const c = d.chunk(j)
      for (const [id, entry] of parseChunk(old.chunk(c), c, dir, seed, true, old.head.version)) was.push({ id, e: entry, key: entry.name ?? '' })
    }
    let removed = 0
    const list: Sorted = []
    for (const x of was) {
      if (r.remove.has(x.id)) removed++
      else if (!r.add.has(x.id)) list.push(x)
    }
    if (removed !== r.remove.size) return null
    for (const [id, entry] of r.add) list.push({ id, e: entry, key: entry.name ?? '' })
    const sorted = sortedEntries(list.map((x) => [x.id, x.e]))
    const before = summarize(was.filter((x) => keys.has(x.key)).map((x) => x.e))
    const after = summarize(sorted.filter((x) => keys.has(x.key)).map((x) => x.e))
    summary.vis += after.vis - before.vis
    summary.groups += after.groups - before.groups
    summary.copies += after.copies - before.copies
    count += sorted.length - was.length
    recs.push(...encodeChunks(sorted, evenSizes(sorted.length), actors, seed, chunks, w))
    i = r.end
  }
  if (count === 0) return recs.length === 0 ? 'empty' : null
  if (summary.vis < 0 || summary.groups < 0 || summary.copies < 0 || summary.vis > count || summary.groups > summary.vis || summary.copies > summary.vis) return null
  if (!all && (recs.length > 3 * Math.ceil(count / CHUNK_ENTRIES) + 1 || segmentCount(recs) > MAX_DIR_SEGMENTS)) {
    // Too many small chunks (removals over many commits), or chunks spread over too many
    // segments (a listing reads each apart): the dir cut again whole, this attempt's chunks dropped.
    chunks.length = chunksBefore
    return patchDir(old, dir, d, e, actors, seed, chunks, w, true)
  }
  return { id: dir, count, summary, recs }
}

/** One chunk appended to `w`: its bytes (a view of w's buffer: a page's chunks share one, copied once into the bucket). */
function encodeChunk(entries: [string, BaseEntry, string | Buffer | null][], w: Writer): Buffer {
  const start = w.length
  w.u16(entries.length)
  for (const [id, e, row] of entries) {
    w.str16(id)
    w.u8((e.name !== null ? 1 : 0) | (row !== null ? 2 : 0))
    if (e.name !== null) w.str16(e.name)
    w.u32(e.live)
    w.u32(e.versions)
    if (row !== null) {
      if (typeof row === 'string') w.str32(row)
      else {
        w.u32(row.length)
        w.raw(row)
      }
    }
  }
  return w.since(start)
}

/** Builds a version 3 header or chunk: fields appended into a growing buffer. */
class Writer {
  private b: Buffer
  private at = 0
  constructor(size = 4096) { this.b = Buffer.allocUnsafe(size) }
  private room(n: number): number {
    if (this.at + n > this.b.length) {
      const b = Buffer.allocUnsafe(Math.max(this.b.length * 2, this.at + n))
      this.b.copy(b, 0, 0, this.at)
      this.b = b
    }
    const at = this.at
    this.at += n
    return at
  }
  // room() may replace the buffer: the offset is taken before the buffer is named.
  u8(n: number): void {
    const at = this.room(1)
    this.b[at] = n
  }
  u16(n: number): void {
    const at = this.room(2)
    this.b.writeUInt16BE(n, at)
  }
  u32(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`page: ${n} does not fit a u32`)
    const at = this.room(4)
    this.b.writeUInt32BE(n, at)
  }
  raw(x: Uint8Array): void {
    const at = this.room(x.length)
    this.b.set(x, at)
  }
  private str(s: string, lenBytes: 1 | 2 | 4): void {
    const n = Buffer.byteLength(s)
    if (n >= 2 ** (8 * lenBytes)) throw new Error(`page: a string of ${n} bytes is too long`)
    if (lenBytes === 1) this.u8(n)
    else if (lenBytes === 2) this.u16(n)
    else this.u32(n)
    const at = this.room(n)
    this.b.write(s, at, n, 'utf8')
  }
  str8(s: string): void { this.str(s, 1) }
  str16(s: string): void { this.str(s, 2) }
  str32(s: string): void { this.str(s, 4) }
  done(): Buffer { return Buffer.from(this.b.subarray(0, this.at)) }
  get length(): number { return this.at }
  /** The bytes written since `start`, not copied (a later write that grows the buffer leaves them in the old one). */
  since(start: number): Buffer { return this.b.subarray(start, this.at) }
}

function rowOf(e: BaseEntry, actors: ActorTable, seed: string[] | null): string | Buffer | null {
  if (seed !== null && e instanceof PageEntry && e.actors === seed) {
    const t = e.rowText
    if (t !== undefined) return t
  }
  const raw = e.raw
  return raw === null ? null : JSON.stringify(row(raw, actors))
}
