/**
 * The Automerge document schema of the directory state and the encodings of its atomic values.
 * See spec/tree.md: every value written here is part of the replicated format.
 */
import * as A from '@automerge/automerge'
import { badName, isWellFormed } from './paths.js'
import { recordHasXattrs } from './xattrs.js'
import { isOwner, MOUNTER } from './owners.js'
import { isDevice, isRdev, isSpecialKind, type SpecialKind } from './special.js'

export type Kind = 'file' | 'dir' | 'symlink' | SpecialKind

/** Whether `v` names a kind this reader knows (spec/tree.md: an unknown kind makes the record invalid). */
export function isKind(v: unknown): v is Kind {
  return v === 'file' || v === 'dir' || v === 'symlink' || isSpecialKind(v)
}

/** The root directory: fixed id, never stored as a record, always exists. */
export const ROOT_ID = '0'.repeat(32)
/** The shard that holds snapshots and the root's attributes. */
export const META_SHARD = 'meta'
/** Version 1 records: a map of keys v, kind, loc, mode, mtime, by, content/target (8 Automerge ops per new record). */
export const RECORD_VERSION = 1
/**
 * Version 2 records (what this code writes): a map whose one key `c` holds the creation
 * `[2, kind, by, time, {initial values}]` (2 ops per new record); later edits assign the v1
 * keys, which override the initial values (spec/tree.md "Documents").
 */
export const RECORD_VERSION_2 = 2
export type RecordVersion = 1 | 2
/** Values are JSON arrays whose first element is this format number. */
export const VALUE_VERSION = 1
export const SNAP_PREFIX = 'snap.'
export const ROOT_MODE_KEY = 'root.mode'
export const ROOT_MTIME_KEY = 'root.mtime'
export const ROOT_ATIME_KEY = 'root.atime'
export const ROOT_CTIME_KEY = 'root.ctime'
/** The root's owner (spec/tree.md "Owners"): ints as a record's `uid`/`gid`; absent: -1, the mounting user. */
export const ROOT_UID_KEY = 'root.uid'
export const ROOT_GID_KEY = 'root.gid'
export const MAX_TARGET_BYTES = 4096
/** `meta` key of the volume's copy rule (`bazil volume copies`): an int 1..MAX_COPIES; anything else is no rule. */
export const COPIES_KEY = 'placement.copies'
export const MAX_COPIES = 16
/** `meta` key of the volume's snapshot retention rule (`bazil volume snapshot keep`, src/retention.ts): `[1, last, hourly, daily, weekly]`. */
export const RETENTION_KEY = 'snap-retention'

export const DEFAULT_MODE: Record<Kind, number> = { file: 0o644, dir: 0o755, symlink: 0o777, fifo: 0o644, socket: 0o755, chardev: 0o644, blockdev: 0o644 }

const NODE_ID = /^[0-9a-f]{32}$/
/** A node shard: 2 to MAX_SHARD_DIGITS lowercase hex digits, a prefix of the ids of the records it may hold. */
const SHARD = /^[0-9a-f]{2,8}$/
const HEX = /^(?:[0-9a-f]{2})+$/

export function isNodeId(s: string): boolean { return NODE_ID.test(s) && s !== ROOT_ID }
export function isShard(s: string): boolean { return s === META_SHARD || SHARD.test(s) }
export function isHex(s: string): boolean { return HEX.test(s) }
/** Longest node shard name (spec/tree.md "Shard layout"). */
export const MAX_SHARD_DIGITS = 8
/** The top-level shard of a node: the first two hex digits of its id (where every record of a 256-shard volume lives). */
export function shardOf(id: string): string { return id.slice(0, 2) }
/** The shard holding node `n`'s record: a deeper prefix of its id when a split put it there, else its top-level shard. */
export function homeOf(n: RawNode): string { return n.shard ?? n.id.slice(0, 2) }
/** Whether key `id` of node shard `shard` can be a record: a node id of which the shard's name is a prefix. */
export function onPath(shard: string, id: string): boolean { return isNodeId(id) && id.startsWith(shard) && shard !== META_SHARD }
/** Eight hex digits of an actor: the "whose" part of conflict names. */
export function shortActor(actor: string): string { return actor.slice(0, 8) }

/** Where a node is: one atomic value, so a move is one assignment. `prev` drives cycle breaking. */
export interface Loc {
  parent: string
  name: string
  writer: string
  time: number
  prev: { parent: string; name: string } | null
}

/** One content version of a file. `ver` is random: it identifies this assignment. */
export interface Version {
  hash: string
  size: number
  writer: string
  time: number
  ver: string
}

/** A deletion. `seen` lists the content versions (their `ver`) the deleter saw; [] for non-files. */
export interface Tomb {
  writer: string
  time: number
  seen: string[]
}

/** A name's removal (hard links, key `lx.<nid>`): who removed it, when. */
export interface Removal {
  writer: string
  time: number
}

/** A further name of a node (hard links, key `ln.<lid>`), and its removal when removed (`lx.<lid>`). */
export interface NodeName {
  lid: string
  loc: Loc
  gone: Removal | null
}

/** Record key prefixes of a node's further names and of a name's removal; the first name's id (its key is `loc`). spec/tree.md "Hard links". */
export const NAME_PREFIX = 'ln.'
export const REMOVAL_PREFIX = 'lx.'
export const FIRST_NAME = 'loc'
const LID = /^[0-9a-f]{16}$/

export interface SnapshotRecord {
  time: number
  writer: string
  /** null: the snapshot was removed (`snapshot rm`, spec/tree.md "Snapshots"). Format 2: {} until its parts are read (snapshot-heads.ts). */
  heads: Record<string, string[]> | null
  /** Format 2: the BLAKE2b-256 hex of each part of its heads, stored apart in `meta` (snapshot-heads.ts). */
  parts?: string[]
}

/** Format of a snapshot record whose heads are stored apart, in parts (spec/tree.md "Snapshots"). */
export const SNAPSHOT_PARTS_VERSION = 2

/** A node as decoded from its record: the Automerge winner of each key, plus all content versions and tombstones. */
export interface RawNode {
  id: string
  kind: Kind
  loc: Loc
  mode: number
  mtime: number
  /** Last access, when set (`atime` key; absent: the view shows mtime). spec/tree.md "Times". */
  atime?: number
  /** Last metadata-only change (`ctime` key: chmod, utimens); the view's ctime also counts the loc's time and mtime (times.ts). */
  ctime?: number
  /** Owner ids (`uid`, `gid` keys; owners.ts): absent or MOUNTER = the mounting user. */
  uid?: number
  gid?: number
  creator: string
  target?: string
  /** Devices (chardev, blockdev): the device number (`rdev` key; special.ts). */
  rdev?: number
  /** The winning version first, then the other concurrent ones ordered by (writer, time, ver). */
  versions: Version[]
  tombs: Tomb[]
  /** Further names (hard links: keys `ln.<lid>`, in lid order); absent: the node has one name. Never on a dir. */
  links?: NodeName[]
  /** Removal of the first name (`lx.loc`), when removed while the node has further names. */
  gone?: Removal
  /** The shard the record was read from, when deeper than the top-level one (spec/tree.md "Shard layout"); absent: shardOf(id). */
  shard?: string
  /** The record holds extended attributes (keys `x.NAME`, xattrs.ts): their values are read from the record, not kept here. */
  xattrs?: true
}

export type MetaDoc = Record<string, A.ImmutableString | number>

export const imm = (s: string): A.ImmutableString => new A.ImmutableString(s)

/** Values of a key as read back: ImmutableString in the doc, plain string inside getConflicts. */
export function strOf(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (v instanceof A.ImmutableString) return v.val
  return null
}

/**
 * Why a record or value does not decode. Not an Error: hostile records are data, and
 * capturing a stack for each of thousands of them (~6 µs apiece) would be the cost of a bad entry.
 */
export class Invalid {
  constructor(readonly message: string) {}
}

// ---- value encodings -------------------------------------------------------------------

export function encodeLoc(l: Loc): string {
  return JSON.stringify([VALUE_VERSION, l.parent, l.name, l.writer, l.time, l.prev ? l.prev.parent : null, l.prev ? l.prev.name : null])
}

export function encodeVersion(v: Version): string {
  return JSON.stringify([VALUE_VERSION, v.hash, v.size, v.writer, v.time, v.ver])
}

export function encodeTomb(t: Tomb): string {
  return JSON.stringify([VALUE_VERSION, t.writer, t.time, [...t.seen].sort()])
}

export function encodeSnapshot(s: SnapshotRecord): string {
  if (s.parts) return JSON.stringify([SNAPSHOT_PARTS_VERSION, s.time, s.writer, { parts: [...s.parts].sort() }])
  if (s.heads === null) return JSON.stringify([VALUE_VERSION, s.time, s.writer, null])
  const heads: Record<string, string[]> = {}
  for (const shard of Object.keys(s.heads).sort()) heads[shard] = [...s.heads[shard]!].sort()
  return JSON.stringify([VALUE_VERSION, s.time, s.writer, heads])
}

function parseArray(text: string, what: string, length: number): unknown[] {
  let v: unknown
  try { v = JSON.parse(text) } catch { throw new Invalid(`${what}: not JSON`) }
  if (!Array.isArray(v)) throw new Invalid(`${what}: not an array`)
  if (v[0] !== VALUE_VERSION) throw new Invalid(`${what}: unknown format version ${JSON.stringify(v[0])}`)
  if (v.length !== length) throw new Invalid(`${what}: expected ${length} fields, got ${v.length}`)
  return v
}

function isTime(v: unknown): v is number { return typeof v === 'number' && Number.isFinite(v) && v >= 0 }
function isActor(v: unknown): v is string { return typeof v === 'string' && isHex(v) }
function isDirId(v: unknown): v is string { return typeof v === 'string' && (v === ROOT_ID || isNodeId(v)) }
function isName(v: unknown): v is string { return typeof v === 'string' && badName(v) === null }

export function decodeLoc(text: string): Loc {
  const [, parent, name, writer, time, pp, pn] = parseArray(text, 'loc', 7)
  if (!isDirId(parent)) throw new Invalid('loc: bad parent id')
  if (!isName(name)) throw new Invalid(`loc: bad name${typeof name === 'string' ? `: ${badName(name)}` : ''}`)
  if (!isActor(writer)) throw new Invalid('loc: bad writer')
  if (!isTime(time)) throw new Invalid('loc: bad time')
  if (pp === null && pn === null) return { parent, name, writer, time, prev: null }
  if (!isDirId(pp) || !isName(pn)) throw new Invalid('loc: bad previous location')
  return { parent, name, writer, time, prev: { parent: pp, name: pn } }
}

export function decodeVersion(text: string): Version {
  const [, hash, size, writer, time, ver] = parseArray(text, 'content', 6)
  if (typeof hash !== 'string' || !isHex(hash) || hash.length > 128) throw new Invalid('content: bad hash')
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new Invalid('content: bad size')
  if (!isActor(writer)) throw new Invalid('content: bad writer')
  if (!isTime(time)) throw new Invalid('content: bad time')
  if (typeof ver !== 'string' || !/^[0-9a-f]{16}$/.test(ver)) throw new Invalid('content: bad version id')
  return { hash, size, writer, time, ver }
}

export function decodeTomb(text: string): Tomb {
  const [, writer, time, seen] = parseArray(text, 'tombstone', 4)
  if (!isActor(writer)) throw new Invalid('tombstone: bad writer')
  if (!isTime(time)) throw new Invalid('tombstone: bad time')
  if (!Array.isArray(seen) || !seen.every((s) => typeof s === 'string')) throw new Invalid('tombstone: bad seen list')
  return { writer, time, seen: [...(seen as string[])].sort() }
}

export function encodeRemoval(r: Removal): string {
  return JSON.stringify([VALUE_VERSION, r.writer, r.time])
}

export function decodeRemoval(text: string): Removal {
  const [, writer, time] = parseArray(text, 'name removal', 3)
  if (!isActor(writer)) throw new Invalid('name removal: bad writer')
  if (!isTime(time)) throw new Invalid('name removal: bad time')
  return { writer, time }
}

/**
 * The names a record's keys give (hard links): `ln.<lid>` locs, `lx.<nid>` removals. Throws
 * Invalid for a value that does not decode; a removal of a name the record does not have is ignored.
 */
function readNames(m: Record<string, unknown>): { links?: NodeName[]; gone?: Removal } {
  const links: NodeName[] = []
  const removals = new Map<string, Removal>()
  for (const key of Object.keys(m)) {
    if (key.startsWith(NAME_PREFIX)) {
      const lid = key.slice(NAME_PREFIX.length)
      const text = strOf(m[key])
      if (!LID.test(lid)) continue
      if (text === null) throw new Invalid(`${key}: not a string`)
      links.push({ lid, loc: decodeLoc(text), gone: null })
    } else if (key.startsWith(REMOVAL_PREFIX)) {
      const text = strOf(m[key])
      if (text === null) throw new Invalid(`${key}: not a string`)
      removals.set(key.slice(REMOVAL_PREFIX.length), decodeRemoval(text))
    }
  }
  const out: { links?: NodeName[]; gone?: Removal } = {}
  if (links.length > 0) {
    links.sort((a, b) => (a.lid < b.lid ? -1 : a.lid > b.lid ? 1 : 0))
    for (const l of links) l.gone = removals.get(l.lid) ?? null
    out.links = links
  }
  const first = removals.get(FIRST_NAME)
  if (first) out.gone = first
  return out
}

export function decodeSnapshot(text: string): SnapshotRecord {
  if (text.startsWith(`[${SNAPSHOT_PARTS_VERSION},`)) {
    let v: unknown
    try { v = JSON.parse(text) } catch { throw new Invalid('snapshot: not JSON') }
    if (!Array.isArray(v) || v.length !== 4) throw new Invalid('snapshot: expected 4 fields')
    const [, time, writer, body] = v as unknown[]
    if (!isTime(time)) throw new Invalid('snapshot: bad time')
    if (!isActor(writer)) throw new Invalid('snapshot: bad writer')
    const parts = (body as { parts?: unknown } | null)?.parts
    if (typeof body !== 'object' || body === null || !Array.isArray(parts) || parts.length === 0 || !parts.every((d) => typeof d === 'string' && /^[0-9a-f]{64}$/.test(d))) throw new Invalid('snapshot: bad parts')
    return { time, writer, heads: {}, parts: parts as string[] }
  }
  const [, time, writer, heads] = parseArray(text, 'snapshot', 4)
  if (!isTime(time)) throw new Invalid('snapshot: bad time')
  if (!isActor(writer)) throw new Invalid('snapshot: bad writer')
  if (heads === null) return { time, writer, heads: null }
  if (typeof heads !== 'object' || heads === null || Array.isArray(heads)) throw new Invalid('snapshot: bad heads')
  const out: Record<string, string[]> = {}
  for (const [shard, hs] of Object.entries(heads)) {
    if (!isShard(shard)) throw new Invalid(`snapshot: bad shard name ${JSON.stringify(shard)}`)
    if (!Array.isArray(hs) || !hs.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))) throw new Invalid(`snapshot: bad heads of shard ${shard}`)
    out[shard] = hs as string[]
  }
  return { time, writer, heads: out }
}

/** What a version 2 record's `c` holds: its fixed fields and the initial values of its mutable keys. */
export interface Creation {
  kind: Kind
  creator: string
  loc: Loc
  mode: number
  mtime: number
  /** Initial atime, when not the mtime (init key `atime`). */
  atime?: number
  /** Initial owner ids, when not the mounting user (init keys `uid`, `gid`; owners.ts). */
  uid?: number
  gid?: number
  version: Version | null
  target?: string
  rdev?: number
}

/**
 * The `c` value of a version 2 record: `[2, kind, by, time, init]`, init an object of the
 * initial values: `loc: [parent, name]` (writer `by`, time `time`, no previous place),
 * `mode`, `mtime`, files `content: [hash, size, time, ver]` (writer `by`), symlinks `target`.
 */
export function encodeCreation(c: Creation): string {
  const init: Record<string, unknown> = { loc: [c.loc.parent, c.loc.name], mode: c.mode, mtime: c.mtime }
  if (c.atime !== undefined) init.atime = c.atime
  if (c.uid !== undefined && c.uid !== MOUNTER) init.uid = c.uid
  if (c.gid !== undefined && c.gid !== MOUNTER) init.gid = c.gid
  if (c.version) init.content = [c.version.hash, c.version.size, c.version.time, c.version.ver]
  if (c.target !== undefined) init.target = c.target
  if (c.rdev !== undefined) init.rdev = c.rdev
  return JSON.stringify([RECORD_VERSION_2, c.kind, c.creator, c.loc.time, init])
}

/**
 * Decodes a `c` value; throws Invalid for another version, length or bad fields. Keys of init
 * this reader does not know are ignored (later attributes add keys, spec/tree.md); a kind it
 * does not know makes the record invalid.
 */
export function decodeCreation(text: string): Creation {
  let v: unknown
  try { v = JSON.parse(text) } catch { throw new Invalid('c: not JSON') }
  if (!Array.isArray(v)) throw new Invalid('c: not an array')
  if (v[0] !== RECORD_VERSION_2) throw new Invalid('unknown record version')
  if (v.length !== 5) throw new Invalid(`c: expected 5 fields, got ${v.length}`)
  const [, kind, creator, time, init] = v
  if (!isKind(kind)) throw new Invalid(`unknown kind ${JSON.stringify(kind)}`)
  if (!isActor(creator)) throw new Invalid('bad creator')
  if (!isTime(time)) throw new Invalid('c: bad time')
  if (typeof init !== 'object' || init === null || Array.isArray(init)) throw new Invalid('c: bad initial values')
  const { loc, mode, mtime, atime, uid, gid, content, target, rdev } = init as Record<string, unknown>
  if (!Array.isArray(loc) || loc.length !== 2) throw new Invalid('c: bad loc')
  const [parent, name] = loc
  if (!isDirId(parent)) throw new Invalid('loc: bad parent id')
  if (!isName(name)) throw new Invalid(`loc: bad name${typeof name === 'string' ? `: ${badName(name)}` : ''}`)
  if (!isMode(mode)) throw new Invalid('bad mode')
  if (!isTime(mtime)) throw new Invalid('bad mtime')
  const out: Creation = { kind, creator, loc: { parent, name, writer: creator, time, prev: null }, mode, mtime, version: null }
  if (atime !== undefined) {
    if (!isTime(atime)) throw new Invalid('bad atime')
    out.atime = atime
  }
  if (uid !== undefined) {
    if (!isOwner(uid)) throw new Invalid('bad uid')
    out.uid = uid
  }
  if (gid !== undefined) {
    if (!isOwner(gid)) throw new Invalid('bad gid')
    out.gid = gid
  }
  if (kind === 'file' && content !== undefined) {
    if (!Array.isArray(content) || content.length !== 4) throw new Invalid('c: bad content')
    const [hash, size, ctime, ver] = content
    if (typeof hash !== 'string' || !isHex(hash) || hash.length > 128) throw new Invalid('content: bad hash')
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new Invalid('content: bad size')
    if (!isTime(ctime)) throw new Invalid('content: bad time')
    if (typeof ver !== 'string' || !/^[0-9a-f]{16}$/.test(ver)) throw new Invalid('content: bad version id')
    out.version = { hash, size, writer: creator, time: ctime, ver }
  }
  if (kind === 'symlink' && target !== undefined) {
    if (typeof target !== 'string') throw new Invalid('bad symlink target')
    out.target = target
  }
  if (isDevice(kind) && rdev !== undefined) {
    if (!isRdev(rdev)) throw new Invalid('bad rdev')
    out.rdev = rdev
  }
  return out
}

// ---- records ---------------------------------------------------------------------------

function isMode(v: unknown): v is number { return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o7777 }

type Handle = ReturnType<typeof A.getBackend>
type Full = NonNullable<ReturnType<Handle['getWithType']>>

function strValue(v: Full | null): string | null { return v && v[0] === 'str' ? v[1] : null }
function numValue(v: Full | null): number | null {
  return v && (v[0] === 'int' || v[0] === 'uint' || v[0] === 'f64') ? v[1] : null
}

function byWriterTimeVer(a: Version, b: Version): number {
  return a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : a.time - b.time || (a.ver < b.ver ? -1 : a.ver > b.ver ? 1 : 0)
}

/**
 * Decodes the record of node `id` from a shard (at `heads`, or current); throws with a reason
 * if malformed. Only the Automerge winner of each key counts, except `content` and `del`,
 * whose concurrent values all count. `materialized`: the record's winners, when the caller has
 * them; `conflicted`: with them, the only keys that may hold concurrent values (others are
 * not asked of Automerge again).
 */
export function readRecord(h: Handle, id: string, heads?: string[], materialized?: unknown, conflicted?: ReadonlySet<string>): RawNode {
  // One materialize call (or the caller's bulk one) for the winners; getAll only for the keys whose
  // concurrent values count: per-key wasm calls dominate the cost of reading 10k+ records.
  let value = materialized
  let obj: string | null = null
  const objOf = (): string => {
    if (obj === null) {
      const top = h.getWithType('_root', id, heads)
      if (!top || top[0] !== 'map') throw new Invalid('record is not a map')
      obj = top[1] as string
    }
    return obj
  }
  if (value === undefined) value = h.materialize(objOf(), heads)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid('record is not a map')
  const m = value as Record<string, unknown>
  const get = (key: string): Full | null => {
    const v = m[key]
    if (typeof v === 'number') return ['f64', v]
    const s = strOf(v)
    return s === null ? null : ['str', s]
  }
  // `conflicted` (from patches): the keys that may hold several values; the others hold just the winner.
  const all = (key: string): string[] => {
    if (m[key] === undefined) return []
    if (conflicted && !conflicted.has(key)) {
      const s = strOf(m[key])
      if (s === null) throw new Invalid(`${key}: a value is not a string`)
      return [s]
    }
    return h.getAll(objOf(), key, heads).map((v) => {
      if (v[0] !== 'str') throw new Invalid(`${key}: a value is not a string`)
      return v[1] as string
    })
  }
  // Version 1: key `v` is 1 and every field is a key. Version 2 (no `v`): `c` holds the fixed
  // fields and the initial values; a mutable key present overrides its initial value.
  let init: Creation | null = null
  if (m.v !== undefined) {
    if (numValue(get('v')) !== RECORD_VERSION) throw new Invalid(`unknown record version`)
  } else {
    const c = strValue(get('c'))
    if (c === null) throw new Invalid(`unknown record version`)
    init = decodeCreation(c)
  }
  const kind = init ? init.kind : strValue(get('kind'))
  if (!isKind(kind)) throw new Invalid(`unknown kind ${JSON.stringify(kind)}`)
  const locText = strValue(get('loc'))
  if (locText === null && !init) throw new Invalid('loc missing')
  const loc = locText === null ? init!.loc : decodeLoc(locText)
  const mode = m.mode === undefined && init ? init.mode : numValue(get('mode'))
  if (!isMode(mode)) throw new Invalid('bad mode')
  const mtime = m.mtime === undefined && init ? init.mtime : numValue(get('mtime'))
  if (!isTime(mtime)) throw new Invalid('bad mtime')
  const atime = m.atime === undefined ? init?.atime : numValue(get('atime'))
  if (atime !== undefined && !isTime(atime)) throw new Invalid('bad atime')
  const ctime = m.ctime === undefined ? undefined : numValue(get('ctime'))
  if (ctime !== undefined && !isTime(ctime)) throw new Invalid('bad ctime')
  const uid = m.uid === undefined ? init?.uid : numValue(get('uid'))
  if (uid !== undefined && !isOwner(uid)) throw new Invalid('bad uid')
  const gid = m.gid === undefined ? init?.gid : numValue(get('gid'))
  if (gid !== undefined && !isOwner(gid)) throw new Invalid('bad gid')
  const creator = init ? init.creator : strValue(get('by'))
  if (creator === null || !isHex(creator)) throw new Invalid('bad creator')
  const node: RawNode = { id, kind, loc, mode, mtime, creator, versions: [], tombs: [] }
  if (atime !== undefined) node.atime = atime
  if (ctime !== undefined) node.ctime = ctime
  if (recordHasXattrs(m)) node.xattrs = true
  if (uid !== undefined && uid !== MOUNTER) node.uid = uid
  if (gid !== undefined && gid !== MOUNTER) node.gid = gid
  if (kind === 'file') {
    const winner = strValue(get('content'))
    if (winner === null && m.content === undefined && init?.version) node.versions.push(init.version)
    else if (winner !== null) {
      const first = decodeVersion(winner)
      node.versions.push(first)
      // Values with one `ver` are one version (re-assigned by resolve or by unlinking a copy, by
      // whoever did it): the winner's, else the first in (writer, time, ver) order.
      const seen = new Set([first.ver])
      for (const v of all('content').filter((t) => t !== winner).map(decodeVersion).sort(byWriterTimeVer)) {
        if (seen.has(v.ver)) continue
        seen.add(v.ver)
        node.versions.push(v)
      }
    }
  } else if (kind === 'symlink') {
    const target = m.target === undefined && init ? init.target ?? null : strValue(get('target'))
    if (target === null || target === '' || target.includes('\0') || !isWellFormed(target)) throw new Invalid('bad symlink target')
    node.target = target
  } else if (isDevice(kind)) {
    const rdev = m.rdev === undefined ? init?.rdev ?? 0 : numValue(get('rdev'))
    if (!isRdev(rdev)) throw new Invalid('bad rdev')
    node.rdev = rdev
  }
  node.tombs = all('del').map(decodeTomb)
  if (kind !== 'dir') {
    const { links, gone } = readNames(m)
    if (links) node.links = links
    if (gone) node.gone = gone
  }
  return node
}

/**
 * The record's key -> winning value map that decodes (readRecord) to `n` again, for a node with
 * at most one content version and one tombstone: the base that patches are applied to.
 */
export function recordWinners(n: RawNode): Record<string, unknown> {
  const m: Record<string, unknown> = { v: RECORD_VERSION, kind: n.kind, loc: encodeLoc(n.loc), mode: n.mode, mtime: n.mtime, by: n.creator }
  if (n.atime !== undefined) m.atime = n.atime
  if (n.ctime !== undefined) m.ctime = n.ctime
  if (n.uid !== undefined) m.uid = n.uid
  if (n.gid !== undefined) m.gid = n.gid
  if (n.versions.length > 0) m.content = encodeVersion(n.versions[0])
  if (n.target !== undefined) m.target = n.target
  if (n.rdev !== undefined) m.rdev = n.rdev
  if (n.tombs.length > 0) m.del = encodeTomb(n.tombs[0])
  Object.assign(m, nameKeys(n))
  return m
}

/** The hard-link keys of a record state (`ln.<lid>`, `lx.<nid>`), as strings. */
function nameKeys(n: RawNode): Record<string, string> {
  const m: Record<string, string> = {}
  for (const l of n.links ?? []) {
    m[NAME_PREFIX + l.lid] = encodeLoc(l.loc)
    if (l.gone) m[REMOVAL_PREFIX + l.lid] = encodeRemoval(l.gone)
  }
  if (n.gone) m[REMOVAL_PREFIX + FIRST_NAME] = encodeRemoval(n.gone)
  return m
}

/** Writes a new record (local creation) through the low-level handle, as one hydrated map: version 2 unless `version` is 1. */
export function putRecord(h: Handle, id: string, r: RawNode, version: RecordVersion = RECORD_VERSION_2): void {
  h.putObjectFromHydrate('_root', id, recordValue(r, version))
}

/** The map a new record is created as (putRecord; bulk-create.ts hydrates many at once). */
export function recordValue(r: RawNode, version: RecordVersion = RECORD_VERSION_2): Record<string, number | A.ImmutableString> {
  const first = r.versions[0] ?? null
  if (version === RECORD_VERSION_2) {
    // A creation folded with later local edits (tree.ts edit()) may hold a moved loc: then that
    // loc is a key of its own, as is a version by another writer (c's values are by the creator).
    const ownVersion = first !== null && first.writer === r.creator
    const c: Creation = { kind: r.kind, creator: r.creator, loc: r.loc, mode: r.mode, mtime: r.mtime, version: ownVersion ? first : null }
    if (r.target !== undefined) c.target = r.target
    if (r.rdev !== undefined) c.rdev = r.rdev
    if (r.atime !== undefined) c.atime = r.atime
    if (r.uid !== undefined) c.uid = r.uid
    if (r.gid !== undefined) c.gid = r.gid
    const rec: Record<string, number | A.ImmutableString> = { c: imm(encodeCreation(c)) }
    if (r.ctime !== undefined) rec.ctime = r.ctime
    if (r.loc.prev !== null || r.loc.writer !== r.creator) rec.loc = imm(encodeLoc(r.loc))
    if (first !== null && !ownVersion) rec.content = imm(encodeVersion(first))
    for (const [k, v] of Object.entries(nameKeys(r))) rec[k] = imm(v)
    return rec
  }
  const rec: Record<string, number | A.ImmutableString> = {
    v: RECORD_VERSION, kind: imm(r.kind), loc: imm(encodeLoc(r.loc)), mode: r.mode, mtime: r.mtime, by: imm(r.creator),
  }
  if (first !== null) rec.content = imm(encodeVersion(first))
  if (r.target !== undefined) rec.target = imm(r.target)
  if (r.rdev !== undefined) rec.rdev = r.rdev
  if (r.atime !== undefined) rec.atime = r.atime
  if (r.ctime !== undefined) rec.ctime = r.ctime
  if (r.uid !== undefined) rec.uid = r.uid
  if (r.gid !== undefined) rec.gid = r.gid
  for (const [k, v] of Object.entries(nameKeys(r))) rec[k] = imm(v)
  return rec
}

/** The object id of node `id`'s record map. */
export function recordObj(h: Handle, id: string): string {
  const top = h.getWithType('_root', id)
  if (!top || top[0] !== 'map') throw new Error(`no record for node ${id}`)
  return top[1] as string
}

export function putTime(h: Handle, obj: string, key: string, t: number): void {
  h.put(obj, key, t, Number.isSafeInteger(t) ? 'int' : 'f64')
}

function sameSet(sortedA: readonly string[], sortedB: readonly string[]): boolean {
  if (sortedA.length !== sortedB.length) return false
  for (let i = 0; i < sortedA.length; i++) if (sortedA[i] !== sortedB[i]) return false
  return true
}

/** The `ver`s of a file's current versions, sorted: what a tombstone must have seen to delete it. */
export function seenVersions(n: RawNode): string[] {
  return n.versions.map((v) => v.ver).sort()
}

/**
 * Alive = not deleted. A file is deleted only by a tombstone that saw exactly its current
 * set of versions, so a write concurrent with (or after) the delete revives it.
 */
export function isAlive(n: RawNode): boolean {
  if (n.tombs.length === 0) return true
  if (n.kind !== 'file') return false
  const cur = seenVersions(n)
  return !n.tombs.some((t) => sameSet(t.seen, cur))
}
