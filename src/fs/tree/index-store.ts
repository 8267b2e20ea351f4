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
 * the directory whose page holds them; one file per saved Automerge shard and one for `meta`.
 * Reads are synchronous (the view and the mount are): a parsed bucket is cached within
 * CACHE_BYTES of file bytes, the least recently used dropped first.
 *
 * A cache, never trusted over the logs: a bucket whose digest does not match makes the read
 * fail with IndexDamagedError and removes the manifest, so the next open rebuilds from the logs.
 */
import fs from 'node:fs'
import path from 'node:path'
import { equal, hash } from '../../crypto.js'
import { fsyncDirSync, replaceFileSync } from '../../atomic-file.js'
import { ActorTable, decodeTreeState, row, unrow, type NodeRow } from './checkpoint.js'
import type { BaseEntry, IndexBase } from './index-layers.js'
import { META_SHARD, ROOT_ID, type RawNode } from './model.js'
import { Tree, type TreeParts } from './tree.js'
import { TreeIndex, type IndexMemo } from './view.js'

/** The checkpoint file version that is an index manifest (1-3: whole-file checkpoints, read once to migrate). */
export const INDEX_VERSION = 4
const MAGIC = Buffer.from('BZTC')
const DIGEST_BYTES = 32
export const PAGE_BUCKETS = 1024
export const ID_BUCKETS = 1024
/** Parsed buckets kept in memory, counted in file bytes. */
export const CACHE_BYTES = 48 * 2 ** 20

/** Entries whose directory is remembered from listings. */
const HINTS = 50_000

export class IndexDamagedError extends Error {}

/** Where a bucket lies: segment file, byte offset, byte length, BLAKE2b-256 hex of the bytes. */
type Ref = [string, number, number, string]

interface Manifest {
  extra: unknown
  gen: number
  /** Every segment file and its byte length. */
  segments: Record<string, number>
  /** Page bucket number -> where; id bucket number -> where. Absent: empty. */
  pages: Record<string, Ref>
  ids: Record<string, Ref>
  /** Node shards: [name, heads, where]. */
  shards: [string, string[], Ref][]
  meta: Ref | null
  rootLive: number
  held: [string, string | null, string][]
  problems: [string, string, string][]
  rejected: string[]
  multi: [string, string][]
  counts: [string, number][]
  memo: IndexMemo
  /** Saved views of snapshots: [BLAKE2b-256 hex of the snapshot record text, the index as it was at its heads]. */
  snaps?: [string, SavedView][]
}

/** The index of one state: what a snapshot's view reads. */
interface SavedView { pages: Record<string, Ref>; ids: Record<string, Ref>; rootLive: number; memo: IndexMemo }

type Page = Map<string, Map<string, BaseEntry>>
/** A page bucket file: actors, then per directory its entries [id, name, live, row]. */
interface PageFile { actors: string[]; dirs: [string, [string, string | null, number, number, string | null][]][] }

/** An entry of a parsed page: its row (JSON text) is decoded when first asked for (a stat needs one row, not its directory's). */
class PageEntry implements BaseEntry {
  private decoded: RawNode | null | undefined
  constructor(private text: string | null, private readonly actors: string[], readonly parent: string | null, readonly name: string | null, readonly live: number, readonly versions: number) {}
  get raw(): RawNode | null {
    if (this.decoded === undefined) {
      this.decoded = this.text === null ? null : unrow(JSON.parse(this.text) as NodeRow, this.actors, 3)
      this.text = null
    }
    return this.decoded
  }
}

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
  private cached = 0
  /** Where entries read through a directory's listing live (saves the id bucket reads a `ls -l` would make), most recent last. */
  private readonly hints = new Map<string, string>()
  /** Bucket reads from disk (for tests and benchmarks). */
  reads = 0

  /** The base written over this one (lazy shards read through the newest). */
  successor: IndexFiles | null = null

  constructor(readonly dir: string, readonly manifestFile: string, readonly manifest: Manifest) {}

  /** The saved view of the snapshot with record `text`, read through the newest manifest (commits move buckets). */
  snapshotView(text: string): { base: IndexBase; memo: IndexMemo } | null {
    const key = hash(Buffer.from(text)).toString('hex')
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
        views.set(f, (view = new IndexFiles(f.dir, f.manifestFile, { ...f.manifest, pages: sv.pages, ids: sv.ids, rootLive: sv.rootLive, memo: sv.memo })))
      }
      return view
    }
    const base: IndexBase = {
      get nodeCount() { return v.memo.nodeCount },
      entry: (id) => at().entry(id),
      children: (dir) => at().children(dir),
      entries: () => at().entries(),
    }
    return { base, memo: v.memo }
  }

  private newest(): IndexFiles {
    let f: IndexFiles = this
    while (f.successor) f = f.successor
    return f
  }

  /** Saved bytes of a node shard with these heads, from the newest manifest. */
  shardBytes(name: string, heads: string[]): Uint8Array {
    const f = this.newest()
    const s = f.manifest.shards.find((x) => x[0] === name && sameHeads(x[1], heads))
    if (!s) return f.damaged(`shard ${name} is not in it`)
    return new Uint8Array(f.read(s[2]))
  }

  get nodeCount(): number { return this.manifest.memo.nodeCount }

  entry(id: string): BaseEntry | undefined {
    if (id === ROOT_ID) return { raw: null, parent: null, name: null, live: this.manifest.rootLive, versions: 0 }
    let group = this.hints.get(id)
    if (group === undefined) {
      const ref = this.manifest.ids[idBucket(id)]
      if (ref === undefined) return undefined
      group = this.cachedBucket(ref, parseIds).get(id)
      if (group === undefined) return undefined
    }
    return this.page(group)?.get(id)
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

  *entries(): Iterable<[string, BaseEntry]> {
    for (const ref of Object.values(this.manifest.pages)) {
      for (const entries of parsePage(this.read(ref)).values()) yield* entries
    }
  }

  private page(group: string): Map<string, BaseEntry> | undefined {
    const ref = this.manifest.pages[pageBucket(group)]
    if (ref === undefined) return undefined
    return this.cachedBucket(ref, parsePage).get(group)
  }

  private cachedBucket<T>(ref: Ref, parse: (b: Buffer) => T): T {
    const file = `${ref[0]}@${ref[1]}`
    const c = this.cache.get(file)
    if (c) {
      this.cache.delete(file)
      this.cache.set(file, c)
      return c.value as T
    }
    const bytes = this.read(ref)
    const value = parse(bytes)
    this.cache.set(file, { value, bytes: bytes.length })
    this.cached += bytes.length
    for (const [k, v] of this.cache) {
      if (this.cached <= CACHE_BYTES || k === file) break
      this.cache.delete(k)
      this.cached -= v.bytes
    }
    return value
  }

  /** A bucket's bytes, checked against its digest. */
  read(ref: Ref): Buffer {
    const [seg, offset, length, digest] = ref
    const bytes = Buffer.allocUnsafe(length)
    try {
      const fd = fs.openSync(path.join(this.dir, seg), 'r')
      try {
        if (fs.readSync(fd, bytes, 0, length, offset) !== length) throw new Error('segment too short')
      } finally {
        fs.closeSync(fd)
      }
      if (!equal(hash(bytes), Buffer.from(digest, 'hex'))) throw new Error('digest mismatch')
    } catch (e) {
      this.damaged(`${seg} at ${offset}: ${(e as Error).message}`)
    }
    this.reads++
    return bytes
  }

  /** Removes the manifest (the next open rebuilds from the logs) and throws. */
  damaged(what: string): never {
    fs.rmSync(this.manifestFile, { force: true })
    throw new IndexDamagedError(`the on-disk index ${this.dir} is damaged (${what}): it is rebuilt from the logs at the next open`)
  }
}

function parseIds(b: Buffer): Map<string, string> {
  return new Map(JSON.parse(b.toString('utf8')) as [string, string][])
}

function parsePage(b: Buffer): Page {
  const f = JSON.parse(b.toString('utf8')) as PageFile
  const out: Page = new Map()
  for (const [dir, list] of f.dirs) {
    const m = new Map<string, BaseEntry>()
    for (const [id, name, live, versions, text] of list) m.set(id, new PageEntry(text, f.actors, dir === '' ? null : dir, name, live, versions))
    out.set(dir, m)
  }
  return out
}

function encodePage(page: Page): Buffer {
  const actors = new ActorTable()
  const dirs: PageFile['dirs'] = []
  for (const dir of [...page.keys()].sort()) {
    const m = page.get(dir)!
    if (m.size === 0) continue
    dirs.push([dir, [...m.keys()].sort().map((id) => {
      const e = m.get(id)!
      const raw = e.raw
      return [id, e.name, e.live, raw?.versions.length ?? 0, raw === null ? null : JSON.stringify(row(raw, actors))]
    })])
  }
  return Buffer.from(JSON.stringify({ actors: actors.list, dirs }))
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
  if (buf[4] !== INDEX_VERSION) throw new Error(`index version ${buf[4]} is not supported`)
  const body = buf.subarray(0, buf.length - DIGEST_BYTES)
  if (!equal(hash(body), buf.subarray(buf.length - DIGEST_BYTES))) throw new Error('index manifest is damaged (digest mismatch)')
  if (buf.readUInt32BE(5) !== body.length - 9) throw new Error('index manifest has a bad length')
  const m = JSON.parse(body.toString('utf8', 9)) as Manifest
  if (!m || typeof m.gen !== 'number' || typeof m.segments !== 'object' || typeof m.pages !== 'object' || typeof m.ids !== 'object' || !Array.isArray(m.shards) ||
    !Array.isArray(m.held) || !Array.isArray(m.problems) || !Array.isArray(m.rejected) || !Array.isArray(m.multi) || !Array.isArray(m.counts) || typeof m.memo !== 'object' || typeof m.rootLive !== 'number') {
    throw new Error('bad index manifest')
  }
  return m
}

// ---- open and commit ----------------------------------------------------------------------

/**
 * The tree a checkpoint file holds: an index manifest (entries read on demand from `dir`) or,
 * once, a whole-file checkpoint of versions 1-3 (read into memory; the next commit writes the
 * index). Throws an Error saying what is wrong with anything else: the caller replays the logs.
 */
export function openTreeIndex(file: string, dir: string, actor: string): { tree: Tree; extra: unknown; legacy: boolean } {
  const buf = fs.readFileSync(file)
  if (buf.length > 4 && buf[4] !== INDEX_VERSION && buf.subarray(0, 4).equals(MAGIC)) {
    const { state, extra } = decodeTreeState(buf)
    return { tree: Tree.restore(actor, state), extra, legacy: true }
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
  const files = new IndexFiles(dir, file, m)
  const shards = new Map<string, { bytes: Uint8Array; heads: string[] }>()
  for (const [name, heads] of m.shards) {
    // Read when the shard is first loaded (a write or merge into it), not at open.
    shards.set(name, { heads, get bytes() { return files.shardBytes(name, heads) } })
  }
  const parts: TreeParts = {
    meta: m.meta === null ? null : new Uint8Array(files.read(m.meta)),
    problems: m.problems.map(([shard, id, reason]) => ({ shard, id, reason })),
    held: m.held.map(([shard, tag, hex]) => ({ shard, change: new Uint8Array(Buffer.from(hex, 'hex')), ...(tag === null ? {} : { tag }) })),
    rejected: m.rejected, multi: m.multi, counts: m.counts, memo: m.memo,
  }
  const tree = Tree.open(actor, files, shards, parts)
  tree.setSavedSnapshots((text) => files.snapshotView(text), stateOf(files))
  return { tree, extra: m.extra, legacy: false }
}

/**
 * Writes what changed in `tree`'s index since its base (everything, when it has none) as one
 * new segment, then the manifest naming it with `extra`, then deletes the segments no longer
 * named; the tree's index then reads from the new base. Synchronous, so nothing changes the
 * tree between what is written and the rebase. Returns the bytes written.
 */
export function commitTreeIndex(file: string, dir: string, tree: Tree, extra: unknown): number {
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
  }
  const writes: Buffer[] = []
  let size = 0
  const put = (bytes: Buffer): Ref => {
    const ref: Ref = [seg, size, bytes.length, hash(bytes).toString('hex')]
    writes.push(bytes)
    size += bytes.length
    return ref
  }

  const ids = index.changedIds()
  if (base && !prev) for (const [id] of base.entries()) ids.add(id)
  writeEntries(index, ids, prev, m, put)

  // Shards: an unchanged one (same heads) keeps its bytes where they are.
  const prevShards = new Map((pm?.shards ?? []).map((x) => [x[0], x]))
  for (const [name, heads] of tree.shardHeads()) {
    if (heads.length === 0) continue
    const p = prevShards.get(name)
    if (p && sameHeads(p[1], heads)) m.shards.push(p)
    else m.shards.push([name, heads, put(Buffer.from(tree.shardBytes(name)))])
  }
  if (parts.meta) {
    const digest = hash(Buffer.from(parts.meta)).toString('hex')
    m.meta = pm?.meta && pm.meta[3] === digest ? pm.meta : put(Buffer.from(parts.meta))
  }

  // Snapshots: a view saved before stays while its snapshot does; one whose heads are the
  // state written now (taken here and checkpointed since) is this index.
  const snaps: [string, SavedView][] = []
  const prevSnaps = new Map(pm?.snaps ?? [])
  const nodeHeads = new Map([...tree.shardHeads()].filter(([, h]) => h.length > 0))
  for (const { text, heads } of tree.snapshotRecords()) {
    const key = hash(Buffer.from(text)).toString('hex')
    const kept = prevSnaps.get(key)
    if (kept) snaps.push([key, { ...kept, pages: { ...kept.pages }, ids: { ...kept.ids } }])
    else if (sameState(heads, nodeHeads)) snaps.push([key, { pages: { ...m.pages }, ids: { ...m.ids }, rootLive: m.rootLive, memo: m.memo }])
    else if (prev) {
      // Taken elsewhere (or here, with more changes before this commit): derived from the
      // previous index and the records that differ between its state and the snapshot's.
      const changed = tree.recordsBetween(new Map(pm!.shards.map(([n, h]) => [n, h])), heads)
      if (changed === null) continue // changes it names are not here yet: at() says so
      const view = new TreeIndex({ base: prev, memo: pm!.memo })
      view.update(changed)
      const v: SavedView = { pages: { ...pm!.pages }, ids: { ...pm!.ids }, rootLive: view.entryNow(ROOT_ID).live, memo: view.memo() }
      writeEntries(view, view.changedIds(), prev, v, put)
      snaps.push([key, v])
    }
  }
  if (snaps.length > 0) m.snaps = snaps

  // Old segments stay while they hold live buckets; one that is mostly garbage is copied out.
  const refs = (): Ref[] => [
    ...Object.values(m.pages), ...Object.values(m.ids), ...m.shards.map((x) => x[2]), ...(m.meta ? [m.meta] : []),
    ...snaps.flatMap(([, v]) => [...Object.values(v.pages), ...Object.values(v.ids)]),
  ]
  const live = new Map<string, number>()
  for (const r of refs()) if (r[0] !== seg) live.set(r[0], (live.get(r[0]) ?? 0) + r[2])
  const move = new Set([...live].filter(([sg, n]) => n < (pm!.segments[sg] ?? 0) / 2).map(([sg]) => sg))
  if (move.size > 0) {
    // A bucket shared by the live index and snapshot views is copied once.
    const copies = new Map<string, Ref>()
    const moved = (r: Ref): Ref => {
      if (!move.has(r[0])) return r
      const k = `${r[0]}@${r[1]}`
      let c = copies.get(k)
      if (!c) copies.set(k, (c = put(prev!.read(r))))
      return c
    }
    for (const k of Object.keys(m.pages)) m.pages[k] = moved(m.pages[k])
    for (const k of Object.keys(m.ids)) m.ids[k] = moved(m.ids[k])
    m.shards = m.shards.map(([n, h, r]) => [n, h, moved(r)])
    if (m.meta) m.meta = moved(m.meta)
    for (const [, v] of snaps) {
      for (const k of Object.keys(v.pages)) v.pages[k] = moved(v.pages[k])
      for (const k of Object.keys(v.ids)) v.ids[k] = moved(v.ids[k])
    }
  }
  for (const r of refs()) m.segments[r[0]] = r[0] === seg ? size : pm!.segments[r[0]]

  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (size > 0) {
    const fd = fs.openSync(path.join(dir, seg), 'w', 0o600)
    try {
      for (const b of writes) fs.writeSync(fd, b)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fsyncDirSync(dir)
  }
  const manifest = encodeManifest(m)
  replaceFileSync(file, manifest, { mode: 0o600 })
  for (const name of fs.readdirSync(dir)) if (m.segments[name] === undefined) fs.rmSync(path.join(dir, name), { force: true })
  const next = new IndexFiles(dir, file, m)
  if (base instanceof IndexFiles) base.successor = next
  index.rebase(next, parts.memo)
  tree.setSavedSnapshots((text) => next.snapshotView(text), stateOf(next))
  return size + manifest.length
}

/**
 * Writes the entries of `ids` as `index` holds them now into page and id buckets (`into`,
 * which names the buckets of `prev`'s state): each changed id leaves its old directory's page
 * and joins its new one; a bucket that changed is written whole by `put`.
 */
function writeEntries(index: TreeIndex, ids: Iterable<string>, prev: IndexFiles | null, into: { pages: Record<string, Ref>; ids: Record<string, Ref> }, put: (bytes: Buffer) => Ref): void {
  const pageEdits = new Map<number, { remove: [string, string][]; add: [string, string, BaseEntry][] }>()
  const idEdits = new Map<number, Map<string, string | null>>()
  const edit = (b: number): { remove: [string, string][]; add: [string, string, BaseEntry][] } => {
    let e = pageEdits.get(b)
    if (!e) pageEdits.set(b, (e = { remove: [], add: [] }))
    return e
  }
  for (const id of ids) {
    if (id === ROOT_ID) continue
    const old = prev ? index.baseEntry(id) : undefined
    const now = index.entryNow(id)
    const oldGroup = old ? old.parent ?? '' : null
    const newGroup = now.raw !== null || now.parent !== null || now.live !== 0 ? now.parent ?? '' : null
    if (oldGroup !== null) edit(pageBucket(oldGroup)).remove.push([oldGroup, id])
    if (newGroup !== null) edit(pageBucket(newGroup)).add.push([newGroup, id, now])
    if (oldGroup !== newGroup) {
      const b = idBucket(id)
      let e = idEdits.get(b)
      if (!e) idEdits.set(b, (e = new Map()))
      e.set(id, newGroup)
    }
  }
  for (const [b, e] of pageEdits) {
    const was = prev ? into.pages[b] : undefined
    const page: Page = was !== undefined ? parsePage(prev!.read(was)) : new Map()
    for (const [g, id] of e.remove) page.get(g)?.delete(id)
    for (const [g, id, entry] of e.add) {
      let p = page.get(g)
      if (!p) page.set(g, (p = new Map()))
      p.set(id, entry)
    }
    for (const [g, p] of page) if (p.size === 0) page.delete(g)
    if (page.size === 0) delete into.pages[b]
    else into.pages[b] = put(encodePage(page))
  }
  for (const [b, e] of idEdits) {
    const was = prev ? into.ids[b] : undefined
    const map = was !== undefined ? parseIds(prev!.read(was)) : new Map<string, string>()
    for (const [id, g] of e) {
      if (g === null) map.delete(id)
      else map.set(id, g)
    }
    if (map.size === 0) delete into.ids[b]
    else into.ids[b] = put(Buffer.from(JSON.stringify([...map].sort((x, y) => (x[0] < y[0] ? -1 : 1)))))
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

function sameHeads(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
