/**
 * The derived index of a tree on disk, read on demand (spec/tree.md "The index on disk").
 *
 * A checkpoint file (version 4) is a manifest: what the index covers (the caller's `extra`:
 * log positions), the small in-memory parts of the tree, and where each bucket lies (segment
 * file, offset, length, digest) in the segment files of a directory beside it. Segments are
 * never changed: a commit appends the buckets that changed as one new segment (plus the live
 * buckets of segments that became mostly garbage), then replaces the manifest (the commit
 * point), then deletes the segments no manifest names. A crash leaves the old manifest and
 * its segments: a consistent index that the logs' newer entries update at the next open.
 *
 * Buckets: page buckets hold the entries of the nodes attached under some directories (a
 * directory's children are read together: `ls` reads one bucket); id buckets map node ids to
 * the directory whose page holds them; one per saved Automerge shard and one for `meta`, each
 * possibly followed by buckets of the changes later commits appended to it (a whole save costs
 * the shard's size, these what changed).
 * Reads are synchronous (the view and the mount are): a parsed bucket is cached within
 * CACHE_BYTES of file bytes, the least recently used dropped first.
 *
 * A cache, never trusted over the logs: a bucket whose digest does not match makes the read
 * fail with IndexDamagedError and removes the manifest, so the next open rebuilds from the logs.
 */
import fs from 'node:fs'
import path from 'node:path'
import { equal, hash } from '../crypto.js'
import { fsyncDir, fsyncDirSync, replaceFile, replaceFileSync } from '../atomic-file.js'
import { decodeTreeState } from './checkpoint.js'
import type { BaseEntry, DirSummary, IndexBase } from './index-layers.js'
import { encodeIds, parseIds, patchIds, type IdPlace } from './index-ids.js'
import { HEAD_PROBE, checkBucket, checkDigest, chunkNamed, encodePage, headLength, inlinePage, pageAt, parseChunk, parseHead, parsePage, patchPage, type ChunkReader, type ChunkRef, type DirEdits, type EncodedPage, type OldPage, type Page, type PageEntry, type PageHead } from './index-page.js'
import { META_SHARD, ROOT_ID, type RawNode } from './model.js'
import { PageEncoders } from './page-encode-pool.js'
import { SegmentFiles } from './segment-files.js'
import { defaultLoadWorkers } from './state-load-pool.js'
import { Tree, type TreeParts } from './tree.js'
import { TreeIndex, type IndexMemo } from './view.js'
import { decodeNamed, namedRows, snapshotKey, type NamedRow, type NamedSnapshot, type SavedSnapshots } from './snapshot-names.js'

/**
 * The checkpoint file version that is an index manifest (1-3: whole-file checkpoints, read once
 * to migrate). 10: a page bucket (version 5) may name chunks that lie in other segments, and
 * its ref then says how many bytes in each (its fifth element), which a reader of 9 would not
 * keep alive: 9 (still read) has none. 9: a node shard may be a save plus appended changes (its row's fourth element),
 * which a reader of 8 would ignore (loading the shard without them): 8 (still read) has none.
 * 8: every page bucket of version 4 (index-page.ts: with the name tables' counts)
 * and every id bucket of version 2 (index-ids.ts: binary, with the entries' names); 7 (still
 * read): `meta` may be a save plus appended changes (`metaMore`); 6 (still read): page buckets
 * of version 3 may be named; 5 (still read): pages of versions 1 and 2; 4 (still read): only
 * version 1 pages. A commit over an index of a version before 8 rewrites every page and id
 * bucket (the view's per-name reads need every bucket's counts and names); later commits
 * rewrite the buckets that changed.
 */
export const INDEX_VERSION = 10
/** The oldest version whose page and id buckets a commit keeps (before it, every one is rewritten). */
const BUCKETS_VERSION = 8
/** The oldest version whose node shards may have appended changes. */
const SHARD_MORE_VERSION = 9
/** The oldest version whose page refs may name chunks in other segments. */
const EXT_CHUNKS_VERSION = 10
const OLDEST_INDEX_VERSION = 4
const MAGIC = Buffer.from('BZTC')
const DIGEST_BYTES = 32
export const PAGE_BUCKETS = 1024
export const ID_BUCKETS = 1024
/** Appended change buckets of `meta` at most, before a commit saves it whole again (also when they outgrow half its save). */
const META_MORE = 16
/** The same for a node shard: appended change buckets at most, before a commit saves it whole again (also when they outgrow half its save). */
const SHARD_MORE = 16
/** Parsed buckets kept in memory, counted in file bytes. */
export const CACHE_BYTES = 48 * 2 ** 20
/**
 * While a batch holds the cache (hold()): the bound instead of CACHE_BYTES. A merge of 10k ops
 * spread over a 1M-file volume touches most buckets; dropped and read again within the batch,
 * each was read, checked and parsed once per change that touched it (118 s at 1M).
 */
export const HELD_CACHE_BYTES = 1024 * 2 ** 20

/** Entries whose directory is remembered from listings. */
const HINTS = 50_000
/** Entries read by a name lookup, kept for the stat that follows it. */
const RECENT = 4096
/** Name lookups answered, kept (a manifest's buckets never change): a warm stat decodes nothing. */
const NAMED = 8192

/** The first bytes of a page bucket are read into this buffer (what is kept of them is copied). */
const probe = Buffer.allocUnsafeSlow(HEAD_PROBE)
/**
 * A page bucket up to this size is read whole in one read, not its header and then a chunk: the
 * levels of a path are looked up one after the other, so on a cold page cache each read is a
 * disk round trip a stat waits for (a deep directory's bucket at 1M files: ~30 KiB, 90% under
 * 90 KiB). A cold read of 128 KiB costs ~3x one of 16 KiB on the disks measured, two reads 2x.
 */
const WHOLE_READ = 128 * 1024

export class IndexDamagedError extends Error {}

/** Bucket reads from disk and their bytes by every index of this process (benchmarks: what a merge read). */
export const indexReads = { reads: 0, bytes: 0 }
/**
 * Sliced commits (for benchmarks): the longest first step (what is read from the tree at once)
 * and the longest later step, in ms, and which step that was (its number).
 */
export const commitSlices = { firstMs: 0, longestMs: 0, longestStep: 0 }

/**
 * Where a bucket lies: segment file, byte offset, byte length, BLAKE2b-256 hex of the bytes;
 * a page bucket's may add the bytes of its chunks in other segments, by segment.
 */
type Ref = [string, number, number, string, Ext?]
type Ext = Record<string, number>

interface Manifest {
  extra: unknown
  gen: number
  /** Every segment file and its byte length. */
  segments: Record<string, number>
  /** Page bucket number -> where; id bucket number -> where. Absent: empty. */
  pages: Record<string, Ref>
  ids: Record<string, Ref>
  /** Node shards: [name, heads, where, changes appended to that save (version 9), oldest first]. */
  shards: ShardRow[]
  meta: Ref | null
  /** Changes of `meta` appended to its save, oldest first (version 7): a commit that changed `meta` writes only its new changes. */
  metaMore?: Ref[]
  /** Heads of `meta` and its keys that are the root's attributes (absent in manifests written before 2026-12-06: `meta` is loaded at open). */
  metaHeads?: string[]
  root?: Record<string, unknown>
  rootLive: number
  held: [string, string | null, string][]
  problems: [string, string, string][]
  rejected: string[]
  multi: [string, string][]
  counts: [string, number][]
  memo: IndexMemo
  /** Saved views of snapshots: [BLAKE2b-256 hex of the snapshot record text, the index as it was at its heads]. */
  snaps?: [string, SavedView][]
  /** `meta`'s snapshots not removed: [name, record key, time, root attributes at its heads | null (no saved view)] (snapshot-names.ts). */
  named?: NamedRow[]
}

/** A node shard in the manifest: its name, heads, saved bytes and changes appended to them (absent: none). */
type ShardRow = [name: string, heads: string[], where: Ref, more?: Ref[]]

/** The index of one state: what a snapshot's view reads. */
interface SavedView { pages: Record<string, Ref>; ids: Record<string, Ref>; rootLive: number; memo: IndexMemo }

/** A page bucket as read: version 1 parsed whole, a chunked one (2, 3) its header (chunks read as needed). */
type PageFile = { v: 1; page: Page } | { v: 2; head: PageHead; ref: Ref; whole: Buffer | null }

export function pageBucket(dir: string): number { return fnv(dir) % PAGE_BUCKETS }
export function idBucket(id: string): number { return fnv(id) % ID_BUCKETS }

function fnv(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** The index files of one manifest: an IndexBase read on demand. */
export class IndexFiles implements IndexBase {
  private readonly cache = new Map<string, { value: unknown; bytes: number }>()
  private cachedBytes = 0
  /** Batches holding the cache (hold()): while > 0 the cache is bounded by `heldCacheBytes`. */
  private holds = 0
  /** The cache's bounds (file bytes), alone and while held (tests make them small). */
  cacheBytes = CACHE_BYTES
  heldCacheBytes = HELD_CACHE_BYTES
  /** Where entries read through a directory's listing live (saves the id bucket reads a `ls -l` would make), most recent last. */
  private readonly hints = new Map<string, string>()
  /** Entries a name lookup read (most recent last): a lookup is followed by the stat of what it found. */
  private readonly recent = new Map<string, BaseEntry>()
  /** Answers of `named`, by dir and name, most recent last. */
  private readonly namedCache = new Map<string, [string, BaseEntry][]>()
  /** Bucket reads from disk and their bytes (for tests and benchmarks). */
  reads = 0
  bytesRead = 0

  /** The base written over this one (lazy shards read through the newest). */
  successor: IndexFiles | null = null

  /**
   * `segments`: the open segment files, shared with the manifests before and after this one in
   * `dir`; `version`: the manifest's (before 8, the next commit rewrites every page and id bucket).
   */
  constructor(readonly dir: string, readonly manifestFile: string, readonly manifest: Manifest, readonly segments = new SegmentFiles(dir), readonly version = INDEX_VERSION) {}

  /** What a tree reads its snapshots from without `meta` (Tree.setSavedSnapshots). */
  savedSnapshots(): SavedSnapshots {
    return { named: this.manifest.named ? decodeNamed(this.manifest.named) : null, view: (key) => this.snapshotView(key) }
  }

  /** The saved view of the snapshot whose record key is `key`, read through the newest manifest (commits move buckets). */
  snapshotView(key: string): { base: IndexBase; memo: IndexMemo } | null {
    const find = (f: IndexFiles): SavedView | undefined => f.manifest.snaps?.find((x) => x[0] === key)?.[1]
    const v = find(this.newest())
    if (!v) return null
    const views = new Map<IndexFiles, IndexFiles>()
    const at = (): IndexFiles => {
      const f = this.newest()
      let view = views.get(f)
      if (!view) {
        const sv = find(f) ?? v
        views.clear()
        views.set(f, (view = new IndexFiles(f.dir, f.manifestFile, { ...f.manifest, pages: sv.pages, ids: sv.ids, rootLive: sv.rootLive, memo: sv.memo }, f.segments, f.version)))
      }
      return view
    }
    const base: IndexBase = {
      get nodeCount() { return v.memo.nodeCount },
      entry: (id) => at().entry(id),
      children: (dir) => at().children(dir),
      named: (dir, name) => at().named(dir, name),
      dirSummary: (dir) => at().dirSummary(dir),
      entries: () => at().entries(),
    }
    return { base, memo: v.memo }
  }

  private newest(): IndexFiles {
    let f: IndexFiles = this
    while (f.successor) f = f.successor
    return f
  }

  /** Saved bytes of a node shard with these heads, from the newest manifest: its save and the changes appended to it. */
  shardBytes(name: string, heads: string[]): Uint8Array {
    const f = this.newest()
    const s = f.manifest.shards.find((x) => x[0] === name && sameHeads(x[1], heads))
    if (!s) return f.damaged(`shard ${name} is not in it`)
    const base = f.read(s[2], `shard ${name}`)
    return new Uint8Array(s[3] ? Buffer.concat([base, ...s[3].map((r, i) => f.read(r, `shard ${name}'s appended changes ${i + 1} of ${s[3]!.length}`))]) : base)
  }

  get nodeCount(): number { return this.manifest.memo.nodeCount }

  entry(id: string): BaseEntry | undefined {
    if (id === ROOT_ID) return { raw: null, parent: null, name: null, live: this.manifest.rootLive, versions: 0 }
    const r = this.recent.get(id)
    if (r !== undefined) return r
    const group = this.hints.get(id)
    if (group !== undefined) return this.page(group)?.get(id)
    const ref = this.manifest.ids[idBucket(id)]
    if (ref === undefined) return undefined
    const place = this.cached(`${ref[0]}@${ref[1]}`, () => {
      const b = this.read(ref)
      return { value: parseIds(b), bytes: b.length }
    }).get(id)
    if (place === undefined) return undefined
    const [dir, name] = place
    // Named: the one chunk of that name (a page's header and a chunk, not the directory's entries).
    if (typeof name === 'string') {
      for (const [x, e] of this.named(dir, name)) if (x === id) return e
      return this.damaged(`entry ${id} is not where its id bucket says`)
    }
    return this.page(dir)?.get(id)
  }

  children(dir: string): Iterable<[string, BaseEntry]> {
    const page = this.page(dir)
    if (!page) return []
    for (const id of page.keys()) {
      this.hints.delete(id)
      this.hints.set(id, dir)
    }
    for (const id of this.hints.keys()) {
      if (this.hints.size <= HINTS) break
      this.hints.delete(id)
    }
    return page.entries()
  }

  /** The entries attached under `dir` whose name is `name`: a chunked page (versions 2, 3) reads only the chunks that may hold it. */
  named(dir: string, name: string): [string, BaseEntry][] {
    const k = `${dir}/${name}`
    const known = this.namedCache.get(k)
    if (known !== undefined) {
      this.namedCache.delete(k)
      this.namedCache.set(k, known)
      this.remember(known)
      return known
    }
    const found = this.lookupNamed(dir, name)
    this.namedCache.set(k, found)
    if (this.namedCache.size > NAMED) this.namedCache.delete(this.namedCache.keys().next().value!)
    this.remember(found)
    return found
  }

  /** Keeps the entries a lookup found for the stat that follows it. */
  private remember(found: [string, BaseEntry][]): void {
    for (const [id, e] of found) {
      this.recent.delete(id)
      this.recent.set(id, e)
      if (this.recent.size > RECENT) this.recent.delete(this.recent.keys().next().value!)
    }
  }

  private lookupNamed(dir: string, name: string): [string, BaseEntry][] {
    const ref = this.manifest.pages[pageBucket(dir)]
    if (ref === undefined) return []
    const f = this.pageFile(ref)
    let found: [string, BaseEntry][]
    const whole = f.v === 1 ? f.page.get(dir) : this.peek<Map<string, BaseEntry>>(`${ref[0]}@${ref[1]}/${dir}`)
    if (whole !== undefined) found = [...whole].filter(([, e]) => e.name === name)
    else if (f.v === 1) return []
    else {
      const d = f.head.dirs.get(dir)
      if (d === undefined) return []
      found = []
      for (const c of d.named(name)) {
        const key = c.seg !== undefined ? `${c.seg}@${c.offset}#` : `${ref[0]}@${ref[1] + c.offset}#`
        if (f.head.version === 2) {
          const list = this.cached(key, () => ({ value: parseChunk(this.pageBytes(f, c.offset, c.length), c, dir, f.head.actors, true, 2), bytes: c.length }))
          for (const x of list) if (x[1].name === name) found.push(x)
        } else {
          // Version 3: the chunk's bytes, checked once; only the entries of that name are decoded.
          const bytes = this.cached(key, () => {
            const b = this.chunkBytes(f, c)
            checkDigest(b, c.digest, 'chunk digest mismatch')
            return { value: b, bytes: c.length }
          })
          found.push(...chunkNamed(bytes, dir, f.head.actors, name))
        }
      }
    }
    return found
  }

  dirSummary(dir: string): DirSummary | null | undefined {
    const ref = this.manifest.pages[pageBucket(dir)]
    if (ref === undefined) return undefined
    const f = this.pageFile(ref)
    if (f.v === 1) return f.page.has(dir) ? null : undefined
    const d = f.head.dirs.get(dir)
    return d === undefined ? undefined : d.summary
  }

  *entries(): Iterable<[string, BaseEntry]> {
    for (const ref of Object.values(this.manifest.pages)) {
      for (const entries of this.readPage(ref).page.values()) yield* entries
    }
  }

  /** A page bucket read whole (with its chunks in other segments), checked and parsed in one pass. */
  readPage(ref: Ref): { page: Page; actors: string[] } {
    const bytes = this.readAt(ref, 0, ref[2])
    try {
      return parsePage(bytes, this.elsewhere, ref[3])
    } catch (e) {
      if (e instanceof IndexDamagedError) throw e
      return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
    }
  }

  /** Reads a chunk a page names in another segment (checked by the caller). */
  readonly elsewhere: ChunkReader = (c) => this.readRaw(c.seg!, c.offset, c.length)

  /**
   * Page `ref` with `edits` applied (index-page.ts patchPage: the chunks they touch rewritten,
   * the others left where they lie); null when it is not of a version patched so.
   */
  patchPage(ref: Ref, edits: ReadonlyMap<string, DirEdits>): EncodedPage | 'empty' | null {
    const old = this.oldPage(ref)
    if (old === null) return null
    try {
      return patchPage(old, edits)
    } catch (e) {
      return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
    }
  }

  /**
   * Id bucket `ref` with `edits` applied (index-ids.ts patchIds: its other records copied as
   * bytes), read unchecked into one buffer kept for the next (the largest ~100 KiB); the records
   * of a version 1 bucket, to edit and encode (it has no names to patch).
   */
  patchIds(ref: Ref, edits: ReadonlyMap<string, IdPlace | null>): Buffer | 'empty' | Map<string, IdPlace> {
    try {
      if (this.scratch.length < ref[2]) this.scratch = Buffer.allocUnsafeSlow(Math.max(ref[2], 2 * this.scratch.length))
      const bytes = this.readAt(ref, 0, ref[2], this.scratch).subarray(0, ref[2])
      checkDigest(bytes, ref[3])
      return patchIds(bytes, edits) ?? new Map<string, IdPlace>(parseIds(bytes).entries())
    } catch (e) {
      if (e instanceof IndexDamagedError) throw e
      return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
    }
  }

  private scratch = Buffer.alloc(0)

  /** Page `ref` with every chunk in its bucket again (a segment holding some of them is being emptied). */
  inlinePage(ref: Ref): EncodedPage {
    const old = this.oldPage(ref)
    if (old === null) return this.damaged(`${ref[0]} at ${ref[1]}: a page of version 1 names no chunk elsewhere`)
    try {
      return inlinePage(old)
    } catch (e) {
      return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
    }
  }

  private oldPage(ref: Ref): OldPage | null {
    const f = this.pageFile(ref)
    if (f.v === 1) return null
    return { head: f.head, seg: ref[0], offset: ref[1], chunk: (c) => this.chunkBytes(f, c) }
  }

  private page(group: string): Map<string, BaseEntry> | undefined {
    const ref = this.manifest.pages[pageBucket(group)]
    if (ref === undefined) return undefined
    const f = this.pageFile(ref)
    if (f.v === 1) return f.page.get(group)
    const d = f.head.dirs.get(group)
    if (d === undefined || d.chunks.length === 0) return undefined
    return this.cached(`${ref[0]}@${ref[1]}/${group}`, () => {
      const m = new Map<string, BaseEntry>()
      let bytes = 0
      // Chunks that lie back to back (in the bucket, or left in an earlier segment together) are read at once.
      const chunks = d.chunks
      for (let i = 0; i < chunks.length; ) {
        let j = i + 1
        while (j < chunks.length && chunks[j].seg === chunks[i].seg && chunks[j].offset === chunks[j - 1].offset + chunks[j - 1].length) j++
        const first = chunks[i], last = chunks[j - 1]
        const run = this.chunkBytes(f, { ...first, length: last.offset + last.length - first.offset })
        for (const c of chunks.slice(i, j)) {
          for (const [id, e] of parseChunk(run.subarray(c.offset - first.offset, c.offset - first.offset + c.length), c, group, f.head.actors, true, f.head.version)) m.set(id, e)
        }
        bytes += run.length
        i = j
      }
      return { value: m, bytes }
    })
  }

  /** A page bucket: version 1 read and parsed whole; a chunked one (2, 3) its header only. */
  private pageFile(ref: Ref): PageFile {
    return this.cached(`${ref[0]}@${ref[1]}`, () => {
      // A small bucket whole; else its first bytes into the one probe buffer (only what is kept is copied out of it).
      const small = ref[2] <= WHOLE_READ
      const n = small ? ref[2] : HEAD_PROBE
      const first = small ? this.readAt(ref, 0, n) : this.readAt(ref, 0, n, probe).subarray(0, n)
      let hl: number | null
      try {
        hl = headLength(first)
      } catch (e) {
        return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
      }
      if (hl === null) {
        const bytes = small ? this.checked(ref, first) : this.read(ref)
        return { value: { v: 1, page: parsePage(bytes).page } as PageFile, bytes: bytes.length }
      }
      // A small bucket came whole with its header: its chunks are served from these bytes.
      const whole = small ? first : null
      const head = whole ? whole.subarray(0, hl) : hl <= n ? Buffer.from(first.subarray(0, hl)) : this.readAt(ref, 0, hl)
      try {
        checkDigest(head, ref[3])
        return { value: { v: 2, head: parseHead(head, ref[2]), ref, whole } as PageFile, bytes: whole?.length ?? hl }
      } catch (e) {
        return this.damaged(`${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
      }
    })
  }

  private pageBytes(f: PageFile & { v: 2 }, offset: number, length: number): Buffer {
    return f.whole ? f.whole.subarray(offset, offset + length) : this.readAt(f.ref, offset, length)
  }

  /** A chunk of page `f`, in its bucket or in the segment it names (unchecked). */
  private chunkBytes(f: PageFile & { v: 2 }, c: ChunkRef): Buffer {
    return c.seg !== undefined ? this.readRaw(c.seg, c.offset, c.length) : this.pageBytes(f, c.offset, c.length)
  }

  hold(): () => void {
    this.holds++
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.holds === 0) this.trim(this.cacheBytes, null)
    }
  }

  /** Drops the least recently used values until the cache is within `bound` (`keep` stays). */
  private trim(bound: number, keep: string | null): void {
    for (const [k, v] of this.cache) {
      if (this.cachedBytes <= bound) break
      if (k === keep) continue
      this.cache.delete(k)
      this.cachedBytes -= v.bytes
    }
  }

  private peek<T>(key: string): T | undefined {
    return this.cache.get(key)?.value as T | undefined
  }

  /** A parsed value cached under `key` within CACHE_BYTES (counted in the file bytes it came from). */
  private cached<T>(key: string, load: () => { value: T; bytes: number }): T {
    const c = this.cache.get(key)
    if (c) {
      this.cache.delete(key)
      this.cache.set(key, c)
      return c.value as T
    }
    let value: T, bytes: number
    try {
      ({ value, bytes } = load())
    } catch (e) {
      if (e instanceof IndexDamagedError) throw e
      return this.damaged(`${key}: ${(e as Error).message}`)
    }
    this.cache.set(key, { value, bytes })
    this.cachedBytes += bytes
    this.trim(this.holds > 0 ? this.heldCacheBytes : this.cacheBytes, key)
    return value
  }

  /** `length` bytes at `offset` inside the bucket `ref` (into `into` when given), unchecked (the caller checks them). */
  private readAt(ref: Ref, offset: number, length: number, into?: Buffer): Buffer {
    return this.readRaw(ref[0], ref[1] + offset, length, into, ref[1])
  }

  /** `length` bytes at `at` in segment `seg` (`bucket`: the offset of the bucket they belong to, for the error). */
  private readRaw(seg: string, at: number, length: number, into?: Buffer, bucket = at): Buffer {
    const bytes = into ?? Buffer.allocUnsafe(length)
    try {
      this.segments.read(seg, bytes, length, at)
    } catch (e) {
      this.damaged(`${seg} at ${bucket}: ${(e as Error).message}`)
    }
    this.reads++
    this.bytesRead += length
    indexReads.reads++
    indexReads.bytes += length
    return bytes
  }

  /** `what`: the bucket's part in the index, named in the error (a shard's). */
  private checked(ref: Ref, bytes: Buffer, what?: string): Buffer {
    try {
      checkBucket(bytes, ref[3], this.elsewhere)
    } catch (e) {
      this.damaged(`${what ? `${what}, ` : ''}${ref[0]} at ${ref[1]}: ${(e as Error).message}`)
    }
    return bytes
  }

  /** A bucket's bytes, checked against its digest (a chunked page: its header's and every chunk's). */
  read(ref: Ref, what?: string): Buffer {
    return this.checked(ref, this.readAt(ref, 0, ref[2]), what)
  }

  /** Removes the manifest (the next open rebuilds from the logs) and throws. */
  damaged(what: string): never {
    fs.rmSync(this.manifestFile, { force: true })
    throw new IndexDamagedError(`the on-disk index ${this.dir} is damaged (${what}): it is rebuilt from the logs at the next open`)
  }
}

// ---- the manifest -------------------------------------------------------------------------

function encodeManifest(m: Manifest): Buffer {
  const json = Buffer.from(JSON.stringify(m))
  const head = Buffer.alloc(9)
  MAGIC.copy(head)
  head[4] = INDEX_VERSION
  head.writeUInt32BE(json.length, 5)
  const body = Buffer.concat([head, json])
  return Buffer.concat([body, hash(body)])
}

function decodeManifest(buf: Buffer): Manifest {
  if (buf.length < 9 + DIGEST_BYTES || !buf.subarray(0, 4).equals(MAGIC)) throw new Error('not a tree checkpoint')
  if (buf[4] < OLDEST_INDEX_VERSION || buf[4] > INDEX_VERSION) throw new Error(`index version ${buf[4]} is not supported`)
  const body = buf.subarray(0, buf.length - DIGEST_BYTES)
  if (!equal(hash(body), buf.subarray(buf.length - DIGEST_BYTES))) throw new Error('index manifest is damaged (digest mismatch)')
  if (buf.readUInt32BE(5) !== body.length - 9) throw new Error('index manifest has a bad length')
  const m = JSON.parse(body.toString('utf8', 9)) as Manifest
  if (!m || typeof m.gen !== 'number' || typeof m.segments !== 'object' || typeof m.pages !== 'object' || typeof m.ids !== 'object' || !Array.isArray(m.shards) ||
    !Array.isArray(m.held) || !Array.isArray(m.problems) || !Array.isArray(m.rejected) || !Array.isArray(m.multi) || !Array.isArray(m.counts) || typeof m.memo !== 'object' || typeof m.rootLive !== 'number') {
    throw new Error('bad index manifest')
  }
  if (m.named !== undefined) decodeNamed(m.named)
  // Page refs, the live index's and the saved views': a fifth element (chunks in other segments) only from version 10.
  for (const pages of [m.pages, ...(m.snaps ?? []).map(([, v]) => v?.pages)]) {
    if (typeof pages !== 'object' || pages === null) throw new Error('bad index manifest (pages)')
    for (const r of Object.values(pages)) if (!isPageRef(r) || (r.length === 5 && buf[4] < EXT_CHUNKS_VERSION)) throw new Error('bad index manifest (a page ref)')
  }
  if (m.metaMore !== undefined && !(m.meta && Array.isArray(m.metaMore) && m.metaMore.every(isRef))) throw new Error('bad index manifest (meta changes)')
  for (const r of m.shards) {
    if (!(Array.isArray(r) && (r.length === 3 || r.length === 4) && typeof r[0] === 'string' && Array.isArray(r[1]) && isRef(r[2]))) throw new Error('bad index manifest (shards)')
    if (r.length === 4 && !(buf[4] >= SHARD_MORE_VERSION && Array.isArray(r[3]) && r[3].length > 0 && r[3].every(isRef))) throw new Error(`bad index manifest (changes of shard ${r[0]})`)
  }
  if ((m.metaHeads !== undefined && !(Array.isArray(m.metaHeads) && m.metaHeads.every((h) => typeof h === 'string'))) ||
    (m.root !== undefined && !(m.root && typeof m.root === 'object' && !Array.isArray(m.root)))) {
    throw new Error('bad index manifest (meta heads or root attributes)')
  }
  return m
}

// ---- open and commit ----------------------------------------------------------------------

/**
 * The tree a checkpoint file holds: an index manifest (entries read on demand from `dir`) or,
 * once, a whole-file checkpoint of versions 1-3 (read into memory; the next commit writes the
 * index). `rewrite`: the next commit writes the whole index again (an older version). Throws an Error saying what is wrong with anything else: the caller replays the logs.
 */
export function openTreeIndex(file: string, dir: string, actor: string): { tree: Tree; extra: unknown; legacy: boolean; rewrite: boolean } {
  const buf = fs.readFileSync(file)
  if (buf.length > 4 && buf[4] < OLDEST_INDEX_VERSION && buf.subarray(0, 4).equals(MAGIC)) {
    const { state, extra } = decodeTreeState(buf)
    return { tree: Tree.restore(actor, state), extra, legacy: true, rewrite: true }
  }
  const m = decodeManifest(buf)
  for (const [name, size] of Object.entries(m.segments)) {
    let st
    try {
      st = fs.statSync(path.join(dir, name))
    } catch {
      throw new Error(`index segment ${name} is missing`)
    }
    if (st.size !== size) throw new Error(`index segment ${name} has ${st.size} bytes, not ${size}`)
  }
  const files = new IndexFiles(dir, file, m, undefined, buf[4])
  const shards = new Map<string, { bytes: Uint8Array; heads: string[]; size: number }>()
  for (const [name, heads, ref, more] of m.shards) {
    // Read when the shard is first loaded (a write or merge into it), not at open; its size is the manifest's.
    shards.set(name, { heads, size: ref[2] + refBytes(more ?? []), get bytes() { return files.shardBytes(name, heads) } })
  }
  const parts: TreeParts = {
    meta: m.meta === null ? null : new Uint8Array(Buffer.concat([files.read(m.meta), ...(m.metaMore ?? []).map((r) => files.read(r))])),
    problems: m.problems.map(([shard, id, reason]) => ({ shard, id, reason })),
    held: m.held.map(([shard, tag, hex]) => ({ shard, change: new Uint8Array(Buffer.from(hex, 'hex')), ...(tag === null ? {} : { tag }) })),
    rejected: m.rejected, multi: m.multi, counts: m.counts, memo: m.memo,
    ...(m.metaHeads && m.root ? { metaHeads: m.metaHeads, root: m.root } : {}),
  }
  const tree = Tree.open(actor, files, shards, parts)
  tree.setSavedSnapshots(files.savedSnapshots(), stateOf(files))
  // Before version 8 the next commit rewrites every page and id bucket (INDEX_VERSION).
  return { tree, extra: m.extra, legacy: false, rewrite: buf[4] < BUCKETS_VERSION }
}

/**
 * Writes what changed in `tree`'s index since its base (everything, when it has none) as one
 * new segment, then the manifest naming it with `extra`, then deletes the segments no longer
 * named; the tree's index then reads from the new base. Returns the bytes written.
 */
export function commitTreeIndex(file: string, dir: string, tree: Tree, extra: unknown): number {
  const steps = commitSteps(file, dir, tree, extra)
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

/**
 * commitTreeIndex in slices of about `sliceMs`, between which the event loop runs (a joiner's
 * first commit writes every entry of the volume; a commit after a big merge rewrites many
 * buckets: the mount answers meanwhile). What it writes is read from the tree before this
 * returns its promise (commitSteps' first step); the tree may change meanwhile, and what
 * changes stays in its index's overlay for the next commit. One commit of a tree at a time.
 */
export async function commitTreeIndexSliced(file: string, dir: string, tree: Tree, extra: unknown, sliceMs = 25, workers = defaultLoadWorkers()): Promise<number> {
  let encoders: PageEncoders | null = null
  const steps = commitSteps(file, dir, tree, extra, () => (encoders ??= workers > 0 ? new PageEncoders(workers) : null), false)
  try {
    let start = performance.now()
    /** A yielded promise that failed: thrown into the steps at their yield, so their own cleanup runs. */
    let failed: { err: unknown } | null = null
    for (let k = 0; ; k++) {
      const t = performance.now()
      const r = failed ? steps.throw(failed.err) : steps.next()
      failed = null
      const ms = performance.now() - t
      if (k === 0) commitSlices.firstMs = Math.max(commitSlices.firstMs, ms)
      else if (ms > commitSlices.longestMs) Object.assign(commitSlices, { longestMs: ms, longestStep: k })
      if (r.done) return r.value
      if (r.value instanceof Promise) {
        try {
          await r.value
        } catch (err) {
          failed = { err }
        }
        start = performance.now()
      } else if (performance.now() - start >= sliceMs) {
        await new Promise((resolve) => setImmediate(resolve))
        start = performance.now()
      }
    }
  } finally {
    await (encoders as PageEncoders | null)?.close()
  }
}

/** A step of a commit: a point where a sliced commit may let the event loop run, or a promise it awaits first (a page encoded on a worker, a wait for the disk). */
type Step = void | Promise<unknown>
/** Page buckets sent to the encode workers ahead of the one put. */
const ENCODE_WINDOW = 16

/**
 * The steps of a commit; each `yield` is a point where a sliced commit may let the event loop
 * run. Not `sync`: the waits for the disk are promises the steps yield. `encoders`: when it gives a pool and the commit writes the whole index (no earlier one to
 * build on), the page buckets are encoded there (the steps then yield promises).
 */
function* commitSteps(file: string, dir: string, tree: Tree, extra: unknown, encoders: () => PageEncoders | null = () => null, sync = true): Generator<Step, number, void> {
  const index = tree.view
  const parts = tree.parts()
  const base = index.diskBase
  // Incremental over the base when its manifest is the one in place; else every entry is written.
  const prev = base instanceof IndexFiles && base.dir === dir && base.manifestFile === file && fs.existsSync(file) ? base : null
  const pm = prev?.manifest
  // A new segment name is never one the base or the manifest in place still reads from.
  let gen = (base instanceof IndexFiles ? base.manifest.gen : 0) + 1
  if (!prev && fs.existsSync(dir)) {
    for (const name of fs.readdirSync(dir)) {
      const n = /^seg\.(\d+)$/.exec(name)
      if (n) gen = Math.max(gen, Number(n[1]) + 1)
    }
  }
  const seg = `seg.${gen}`
  const m: Manifest = {
    extra, gen, segments: {}, pages: { ...pm?.pages }, ids: { ...pm?.ids }, shards: [], meta: null,
    rootLive: index.entryNow(ROOT_ID).live,
    held: parts.held.map((h) => [h.shard, h.tag ?? null, Buffer.from(h.change).toString('hex')]),
    problems: parts.problems.map((p) => [p.shard, p.id, p.reason]), rejected: parts.rejected, multi: parts.multi, counts: parts.counts, memo: parts.memo,
    ...(parts.metaHeads && parts.root ? { metaHeads: parts.metaHeads, root: parts.root } : {}),
  }
  /** The buckets put, by offset in the new segment, in order (written at the end). */
  const fresh = new Map<number, Buffer>()
  let size = 0
  const put = (bytes: Buffer, digest = hash(bytes).toString('hex')): Ref => {
    const ref: Ref = [seg, size, bytes.length, digest]
    fresh.set(size, bytes)
    size += bytes.length
    return ref
  }

  // Everything the commit writes is read from the tree here, before the first yield: a sliced
  // commit lets the mount and replay change the tree between its steps. What they change stays
  // in the index's overlay for the next commit (markCommit / commitDone).
  const ids = index.changedIds()
  if (base && !prev) for (const [id] of base.entries()) ids.add(id)

  // Shards: an unchanged one (same heads) keeps its bytes where they are.
  const prevShards = new Map((pm?.shards ?? []).map((x) => [x[0], x]))
  const nodeHeads = new Map<string, string[]>()
  for (const [name, heads] of tree.shardHeads()) {
    if (heads.length === 0) continue
    nodeHeads.set(name, heads)
    const p = prevShards.get(name)
    if (p && sameHeads(p[1], heads)) m.shards.push(p)
    else m.shards.push(shardRow(tree, name, heads, p, put))
  }
  // `meta`: unchanged since the manifest in place, its buckets stay; changed, its new changes are
  // appended (a whole save of ~1 MB at 1M files costs more than the take that changed it).
  const pmMore = pm?.metaMore ?? []
  if (pm?.meta && pm.metaHeads && parts.metaHeads && sameSet(pm.metaHeads, parts.metaHeads)) {
    m.meta = pm.meta
    if (pmMore.length > 0) m.metaMore = [...pmMore]
  } else {
    const more = pm?.meta && pm.metaHeads && parts.metaHeads && pmMore.length < META_MORE ? tree.metaSince(pm.metaHeads) : null
    if (more !== null && more.length + pmMore.reduce((n, r) => n + r[2], 0) <= pm!.meta![2] / 2) {
      m.meta = pm!.meta
      m.metaMore = more.length > 0 ? [...pmMore, put(Buffer.from(more))] : [...pmMore]
      if (m.metaMore.length === 0) delete m.metaMore
    } else {
      const bytes = parts.meta
      if (bytes) {
        const digest = hash(Buffer.from(bytes)).toString('hex')
        m.meta = pm?.meta && pm.meta[3] === digest && pmMore.length === 0 ? pm.meta : put(Buffer.from(bytes))
      }
    }
  }
  const snapPlan = planSnapshots(tree, prev, nodeHeads)
  index.markCommit()
  const source: EntrySource = { baseEntry: (id) => index.baseEntry(id), entryNow: (id) => index.entryAtMark(id) }
  let done = false
  try {
    yield
    // Over an index of a version before 8: every page and id bucket rewritten (see INDEX_VERSION).
    yield* writeEntries(source, ids, prev, m, put, prev === null ? encoders() : null, prev !== null && prev.version < BUCKETS_VERSION)

    // Snapshots: a view saved before stays while its snapshot does; one whose heads are the
    // state written now (taken here and checkpointed since) is this index; one taken elsewhere
    // is derived from the previous index and the records that differ (read from the tree above).
    const snaps: [string, SavedView][] = []
    for (const s of snapPlan.views) {
      if (s.kind === 'kept') snaps.push([s.key, { ...s.view, pages: { ...s.view.pages }, ids: { ...s.view.ids } }])
      else if (s.kind === 'now') snaps.push([s.key, { pages: { ...m.pages }, ids: { ...m.ids }, rootLive: m.rootLive, memo: m.memo }])
      else {
        const view = new TreeIndex({ base: prev!, memo: pm!.memo })
        view.update(s.changed)
        const v: SavedView = { pages: { ...pm!.pages }, ids: { ...pm!.ids }, rootLive: view.entryNow(ROOT_ID).live, memo: view.memo() }
        yield* writeEntries(view, view.changedIds(), prev, v, put)
        snaps.push([s.key, v])
      }
    }
    const named = snapPlan.named
    if (snaps.length > 0) m.snaps = snaps
    if (named) m.named = namedRows(named)

    // Old segments stay while they hold live buckets; one that is mostly garbage is copied out.
    const refs = (): Ref[] => [
      ...Object.values(m.pages), ...Object.values(m.ids), ...m.shards.flatMap((x) => [x[2], ...(x[3] ?? [])]), ...(m.meta ? [m.meta] : []), ...(m.metaMore ?? []),
      ...snaps.flatMap(([, v]) => [...Object.values(v.pages), ...Object.values(v.ids)]),
    ]
    const live = new Map<string, number>()
    for (const [sg, n] of liveBytes(refs())) if (sg !== seg) live.set(sg, (live.get(sg) ?? 0) + n)
    const move = new Set([...live].filter(([sg, n]) => n < (pm!.segments[sg] ?? 0) / 2).map(([sg]) => sg))
    if (move.size > 0) {
      // A bucket shared by the live index and snapshot views is copied once; a page with chunks
      // in a segment being emptied takes them in (its own bucket copied whole would still name them there).
      const copies = new Map<string, Ref>()
      for (const r of refs()) {
        const k = `${r[0]}@${r[1]}`
        if (copies.has(k)) continue
        let c: Ref
        if (Object.keys(r[4] ?? {}).some((sg) => move.has(sg))) {
          // A page put by this commit is read from memory (its segment is not written yet).
          const e = r[0] === seg ? inlinePage(pageAt(fresh.get(r[1])!, r[0], r[1], prev!.elsewhere)) : prev!.inlinePage(r)
          c = put(e.bytes, e.digest)
        } else if (move.has(r[0])) {
          c = put(prev!.read(r), r[3])
          if (r[4]) c.push(r[4])
        } else continue
        copies.set(k, c)
        yield
      }
      const moved = (r: Ref): Ref => copies.get(`${r[0]}@${r[1]}`) ?? r
      for (const k of Object.keys(m.pages)) m.pages[k] = moved(m.pages[k])
      for (const k of Object.keys(m.ids)) m.ids[k] = moved(m.ids[k])
      m.shards = m.shards.map(([n, h, r, more]) => (more ? [n, h, moved(r), more.map(moved)] : [n, h, moved(r)]))
      if (m.meta) m.meta = moved(m.meta)
      if (m.metaMore) m.metaMore = m.metaMore.map(moved)
      for (const [, v] of snaps) {
        for (const k of Object.keys(v.pages)) v.pages[k] = moved(v.pages[k])
        for (const k of Object.keys(v.ids)) v.ids[k] = moved(v.ids[k])
      }
    }
    for (const [sg] of liveBytes(refs())) m.segments[sg] = sg === seg ? size : pm!.segments[sg]

    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (size > 0) {
      const fd = fs.openSync(path.join(dir, seg), 'w', 0o600)
      try {
        for (const b of fresh.values()) {
          fs.writeSync(fd, b)
          yield
        }
        // Sliced, the waits for the disk (an fsync of a few hundred MB after a big merge: ~0.3 s) are not the event loop's.
        if (sync) fs.fsyncSync(fd)
        else yield fsyncFd(fd)
      } finally {
        fs.closeSync(fd)
      }
      if (sync) fsyncDirSync(dir)
      else yield fsyncDir(dir)
    }
    const manifest = encodeManifest(m)
    if (sync) replaceFileSync(file, manifest, { mode: 0o600 })
    else yield replaceFile(file, manifest, { mode: 0o600 })
    // The open segment files carry over to the new manifest (the same files); deleted ones are closed.
    const segments = base instanceof IndexFiles && base.dir === dir ? base.segments : new SegmentFiles(dir)
    const unnamed = fs.readdirSync(dir).filter((name) => m.segments[name] === undefined)
    for (const name of unnamed) segments.forget(name)
    const next = new IndexFiles(dir, file, m, segments)
    if (base instanceof IndexFiles) base.successor = next
    index.commitDone(next)
    done = true
    tree.setSavedSnapshots(next.savedSnapshots(), stateOf(next))
    // Unlinking a segment of hundreds of MB takes a while too; one left by a crash goes at the next commit.
    if (sync) for (const name of unnamed) fs.rmSync(path.join(dir, name), { force: true })
    else yield Promise.all(unnamed.map((name) => fs.promises.rm(path.join(dir, name), { force: true })))
    return size + manifest.length
  } finally {
    if (!done) index.commitAbandoned()
  }
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())))
}

/** What writeEntries reads of an index: an entry as in the previous base (which stays until the commit is done), and as it is to be written. */
interface EntrySource {
  baseEntry(id: string): BaseEntry | undefined
  entryNow(id: string): BaseEntry
}

/** What a commit writes of a snapshot (read from the tree before the commit's first step): its view kept, this index, or derived from the previous one with these records. */
type SnapshotPlan = { key: string } & ({ kind: 'kept'; view: SavedView } | { kind: 'now' } | { kind: 'derived'; changed: Map<string, RawNode | null> })

/**
 * The snapshots' part of a commit, read from the tree: per snapshot with a view, how it is
 * written; every snapshot named with the root's attributes at its heads when it has a view
 * (null: `meta` not read since the open, the manifest's names are kept).
 */
function planSnapshots(tree: Tree, prev: IndexFiles | null, nodeHeads: Map<string, string[]>): { views: SnapshotPlan[]; named: NamedSnapshot[] | null } {
  const pm = prev?.manifest
  const views: SnapshotPlan[] = []
  const prevSnaps = new Map(pm?.snaps ?? [])
  // `meta` not read since the open: the snapshots are those of the manifest in place, kept as
  // they are (a snapshot whose view could not be derived then is derived when first read).
  // A snapshot whose view is kept needs only its key: its heads (parts in `meta`) are not read.
  const metaUnread = prev !== null && tree.metaUnread
  const records = metaUnread ? (pm!.snaps ?? []).map(([key]) => ({ key, heads: () => null })) : tree.snapshotTexts().map((r) => ({ ...r, key: snapshotKey(r.text) }))
  // The snapshots named with their root attributes (reading one then needs no `meta`); copied while `meta` is unread.
  const prevNamed = new Map(pm?.named ? decodeNamed(pm.named).map((n) => [n.key, n]) : [])
  const named: NamedSnapshot[] | null = metaUnread ? (pm!.named ? decodeNamed(pm!.named) : null) : []
  for (const { key, heads: headsOf } of records) {
    const kept = prevSnaps.get(key)
    if (kept) {
      views.push({ key, kind: 'kept', view: kept })
      continue
    }
    const heads = headsOf()
    if (heads === null) continue
    if (sameState(heads, nodeHeads)) views.push({ key, kind: 'now' })
    else if (prev) {
      const changed = tree.recordsBetween(new Map(pm!.shards.map(([n, h]) => [n, h])), heads)
      if (changed !== null) views.push({ key, kind: 'derived', changed }) // else changes it names are not here yet: at() says so
    }
  }
  const withView = new Set(views.map((v) => v.key))
  if (named && !metaUnread) {
    for (const r of records) {
      if (!('name' in r)) continue
      let root: Record<string, unknown> | null = null
      if (withView.has(r.key)) {
        root = prevNamed.get(r.key)?.root ?? null
        // Not named before (a new snapshot, or a manifest of before 2026-12-06): the root as `meta` held it at its heads.
        const heads = root === null ? r.heads() : null
        if (heads) root = heads[META_SHARD] ? tree.rootAttrsAt(heads[META_SHARD]) : {}
      }
      named.push({ name: r.name, key: r.key, time: r.time, root })
    }
  }
  return { views, named }
}

/**
 * The manifest row of node shard `name`, now at `heads`, which changed since the manifest in
 * place (`p`: its row there, if any). Its changes since then are appended to that row's buckets
 * (a whole save deflates and hashes the whole shard: after a spread merge at 1M files, 2.7 s
 * for the ~760 shards two writers touched) while they stay few and small: at most SHARD_MORE
 * and half the save's bytes; else it is saved whole (also when it lacks `p`'s heads, or is cold
 * at other heads: its bytes are then at hand).
 */
function shardRow(tree: Tree, name: string, heads: string[], p: ShardRow | undefined, put: (bytes: Buffer) => Ref): ShardRow {
  const more = p?.[3] ?? []
  const room = p && more.length < SHARD_MORE ? Math.floor(p[2][2] / 2) - refBytes(more) : -1
  const since = p && room > 0 ? tree.shardSince(name, p[1], room) : null
  if (since === null) return [name, heads, put(bufferOf(tree.shardBytes(name)))]
  const added = since.length > 0 ? [...more, put(bufferOf(since))] : more
  return added.length > 0 ? [name, heads, p![2], added] : [name, heads, p![2]]
}

/** The bytes of `refs` together. */
function refBytes(refs: Ref[]): number {
  return refs.reduce((n, r) => n + r[2], 0)
}

/** A Buffer over the same memory. */
function bufferOf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/**
 * Writes the entries of `ids` as `index` holds them now into page and id buckets (`into`,
 * which names the buckets of `prev`'s state): each changed id leaves its old directory's page
 * and joins its new one; a bucket that changed is written whole by `put`. `rewrite`: every
 * bucket of `prev` is written again in the current versions, the id buckets from the pages
 * (an index of a version before 8: id buckets without names, pages without counts).
 */
function* writeEntries(index: EntrySource, ids: Iterable<string>, prev: IndexFiles | null, into: { pages: Record<string, Ref>; ids: Record<string, Ref> }, put: (bytes: Buffer, digest?: string) => Ref,
  encoders: PageEncoders | null = null, rewrite = false): Generator<Step, void, void> {
  /** Per page bucket, per dir: the entries leaving it (with the name they had) and joining it. */
  const pageEdits = new Map<number, Map<string, DirEdits>>()
  /** Per id bucket: the new place of each id whose place changed (null: no entry any more). */
  const idEdits = new Map<number, Map<string, IdPlace | null>>()
  const edit = (g: string): DirEdits => {
    const b = pageBucket(g)
    let p = pageEdits.get(b)
    if (!p) pageEdits.set(b, (p = new Map()))
    let e = p.get(g)
    if (!e) p.set(g, (e = { remove: [], add: [] }))
    return e
  }
  let n = 0
  // Each base entry may cost a bucket read (~0.2 ms at 1M files): a step every 64 of them, so a slice stays near its 25 ms.
  const every = prev ? 64 : 1024
  for (const id of ids) {
    if (++n % every === 0) yield
    if (id === ROOT_ID) continue
    const old = prev ? index.baseEntry(id) : undefined
    const now = index.entryNow(id)
    const oldGroup = old ? old.parent ?? '' : null
    const newGroup = now.raw !== null || now.parent !== null || now.live !== 0 ? now.parent ?? '' : null
    if (oldGroup !== null) edit(oldGroup).remove.push([id, old!.name])
    if (newGroup !== null) edit(newGroup).add.push([id, now])
    // The id bucket names the entry's directory and name (index-ids.ts): either changed, it is rewritten.
    if (oldGroup !== newGroup || (newGroup !== null && old?.name !== now.name)) {
      const b = idBucket(id)
      let e = idEdits.get(b)
      if (!e) idEdits.set(b, (e = new Map()))
      e.set(id, newGroup === null ? null : [newGroup, now.name])
    }
  }
  if (rewrite) for (const b of Object.keys(into.pages)) if (!pageEdits.has(Number(b))) pageEdits.set(Number(b), new Map())
  /** rewrite: every entry's place, by id bucket, from the pages as written. */
  const places = new Map<number, [string, IdPlace][]>()
  // Buckets encoded on workers (a bucket with no earlier version) are put in the same order as
  // the others: a window of them in flight, each awaited (a yielded promise) when its turn comes.
  const queue: { b: number; enc: Promise<EncodedPage> | EncodedPage | null }[] = []
  function* drain(keep: number): Generator<Step, void, void> {
    while (queue.length > keep) {
      const q = queue.shift()!
      let enc = q.enc
      if (enc instanceof Promise) {
        const box: { got?: EncodedPage } = {}
        yield enc.then((x) => { box.got = x })
        enc = box.got!
      }
      if (enc === null) delete into.pages[q.b]
      else into.pages[q.b] = pageRef(put(enc.bytes, enc.digest), enc)
    }
  }
  for (const [b, e] of pageEdits) {
    const was = prev ? into.pages[b] : undefined
    // A page of the current version: only the chunks of the names edited are rewritten (patchPage).
    const p = was !== undefined && !rewrite ? prev!.patchPage(was, e) : null
    if (p !== null) {
      queue.push({ b, enc: p === 'empty' ? null : p })
      yield* drain(encoders ? ENCODE_WINDOW : 0)
      yield
      continue
    }
    const { page, actors } = was !== undefined ? prev!.readPage(was) : { page: new Map() as Page, actors: null }
    for (const [g, d] of e) for (const [id] of d.remove) page.get(g)?.delete(id)
    for (const [g, d] of e) {
      if (d.add.length === 0) continue
      let p = page.get(g)
      if (!p) page.set(g, (p = new Map()))
      for (const [id, entry] of d.add) p.set(id, entry)
    }
    for (const [g, p] of page) if (p.size === 0) page.delete(g)
    if (rewrite) {
      for (const [g, p] of page) {
        for (const [id, entry] of p) {
          const ib = idBucket(id)
          let list = places.get(ib)
          if (!list) places.set(ib, (list = []))
          list.push([id, [g, entry.name]])
        }
      }
    }
    if (page.size === 0) queue.push({ b, enc: null })
    else if (encoders && actors === null) {
      const enc = encoders.encode(page)
      enc.catch(() => {})
      queue.push({ b, enc })
    } else queue.push({ b, enc: encodePage(page, actors) })
    yield* drain(encoders ? ENCODE_WINDOW : 0)
    yield
  }
  yield* drain(0)
  if (rewrite) {
    for (const b of Object.keys(into.ids)) delete into.ids[b]
    for (const [b, list] of places) {
      into.ids[b] = put(encodeIds(list))
      yield
    }
    return
  }
  for (const [b, e] of idEdits) {
    const was = prev ? into.ids[b] : undefined
    // A bucket of version 2: its records edited in place (patchIds), the others copied.
    const p = was !== undefined ? prev!.patchIds(was, e) : null
    if (p === 'empty') delete into.ids[b]
    else if (Buffer.isBuffer(p)) into.ids[b] = put(p)
    if (p === 'empty' || Buffer.isBuffer(p)) {
      yield
      continue
    }
    // Records of a version 1 bucket carry no name (undefined): written so, a lookup reads their page.
    const map = p ?? new Map<string, IdPlace>()
    for (const [id, place] of e) {
      if (place === null) map.delete(id)
      else map.set(id, place)
    }
    if (map.size === 0) delete into.ids[b]
    else into.ids[b] = put(encodeIds(map))
    yield
  }
}

/** A page's ref as put, with the bytes of its chunks in other segments. */
function pageRef(ref: Ref, enc: EncodedPage): Ref {
  if (enc.ext) ref.push(enc.ext)
  return ref
}

/** The buckets of `refs` and, as refs of their bytes alone, the chunks pages name in other segments: what keeps a segment alive. */
function* liveBytes(refs: Ref[]): Iterable<[segment: string, bytes: number]> {
  for (const r of refs) {
    yield [r[0], r[2]]
    for (const [sg, n] of Object.entries(r[4] ?? {})) yield [sg, n]
  }
}

/** The state of an index on disk (for Tree.setSavedSnapshots): what a snapshot view is derived from. */
function stateOf(files: IndexFiles): () => { base: IndexBase; memo: IndexMemo; heads: ReadonlyMap<string, string[]> } {
  let heads: Map<string, string[]> | null = null
  return () => ({ base: files, memo: files.manifest.memo, heads: (heads ??= new Map(files.manifest.shards.map(([n, h]) => [n, h]))) })
}

/** Whether a snapshot's heads name exactly the node shards' state `now` (its meta heads aside). */
function sameState(snap: Record<string, string[]>, now: Map<string, string[]>): boolean {
  const shards = Object.keys(snap).filter((k) => k !== META_SHARD)
  if (shards.length !== now.size) return false
  return shards.every((k) => {
    const h = now.get(k)
    return h !== undefined && sameHeads([...h].sort(), [...snap[k]].sort())
  })
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && sameHeads([...a].sort(), [...b].sort())
}

function isRef(r: unknown): r is Ref {
  return Array.isArray(r) && r.length === 4 && typeof r[0] === 'string' && Number.isSafeInteger(r[1]) && Number.isSafeInteger(r[2]) && typeof r[3] === 'string'
}

/** A page bucket's ref: may name the bytes of its chunks in other segments. */
function isPageRef(r: unknown): r is Ref {
  return Array.isArray(r) && r.length === 5 ? isExt(r[4]) && isRef(r.slice(0, 4)) : isRef(r)
}

function isExt(x: unknown): x is Ext {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && Object.values(x).every((n) => Number.isSafeInteger(n) && n > 0)
}

function sameHeads(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
