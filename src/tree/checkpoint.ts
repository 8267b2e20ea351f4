/**
 * The checkpoint file of a tree: a cache of its state (saved shards, decoded records, held
 * changes) plus whatever the caller needs to know what it covers (the volume stores the log
 * lengths there). Layout (spec/tree.md, "Checkpoints"):
 *
 *   "BZTC" | version u8 | header length u32 BE | header JSON (UTF-8) | blobs | BLAKE2b-256 of all before
 *
 * Blobs: saved shards, the meta shard, held changes, then (version 2) the node rows in chunks.
 *
 * A reader rejects (and the caller rebuilds from the logs) anything it does not recognize:
 * a cache must never be trusted over the logs it summarizes.
 */
import { equal, hash } from '../crypto.js'
import { META_SHARD, isKind, isShard, type Kind, type RawNode } from './model.js'
import { isRdev } from './special.js'
import { isOwner, MOUNTER } from './owners.js'
import type { Problem, TreeState } from './tree.js'

/**
 * 2: node rows in blobs of NODE_CHUNK rows (1: all rows in the header; still read). 3: a row
 * may end with the shard of a record a split put deeper (written only when some record has
 * one, so a volume that never split keeps files older readers read).
 */
export const CHECKPOINT_VERSION = 3
const NODE_CHUNK = 2000
const MAGIC = Buffer.from('BZTC')
const DIGEST_BYTES = 32

/**
 * A decoded record, with actor hexes replaced by indexes into the header's `actors` table
 * (three 64-char actors per record would otherwise be most of the file).
 */
export type NodeRow = [string, Kind, [string, string, number, number, string | null, string | null], number, number, number, string | null,
  [string, number, number, number, string][], [number, number, string[]][], (string | null)?, RowExtra?]
/** A row's optional last element: the attributes of issue 13 a record may have (spec/tree.md "The index on disk"). */
export interface RowExtra {
  a?: number
  c?: number
  u?: number
  g?: number
  x?: 1
  /** Devices: the device number. */
  r?: number
  /** Further names (hard links): [lid, loc as in the row, removal [writer, time] | null]. */
  l?: [string, [string, string, number, number, string | null, string | null], [number, number] | null][]
  /** The first name's removal [writer, time]. */
  lx?: [number, number]
}

interface Header {
  extra: unknown
  shards: [string, string[], number][]
  meta: number | null
  held: [string, string | null, number][]
  actors: string[]
  /** Version 1 only. */
  nodes?: NodeRow[]
  /** Version 2: byte lengths of the node blobs (each a JSON array of rows), after the held changes. */
  nodeBlobs?: number[]
  problems: [string, string, string][]
  /** Absent in files written before it existed: none. */
  rejected?: string[]
}

export class ActorTable {
  readonly list: string[] = []
  private readonly index = new Map<string, number>()
  of(actor: string): number {
    let i = this.index.get(actor)
    if (i === undefined) {
      i = this.list.length
      this.list.push(actor)
      this.index.set(actor, i)
    }
    return i
  }
}

export function row(n: RawNode, t: ActorTable): NodeRow {
  const l = n.loc
  const r: NodeRow = [n.id, n.kind, [l.parent, l.name, t.of(l.writer), l.time, l.prev?.parent ?? null, l.prev?.name ?? null], n.mode, n.mtime, t.of(n.creator), n.target ?? null,
    n.versions.map((v) => [v.hash, v.size, t.of(v.writer), v.time, v.ver]), n.tombs.map((x) => [t.of(x.writer), x.time, x.seen])]
  const extra: RowExtra = {}
  if (n.atime !== undefined) extra.a = n.atime
  if (n.ctime !== undefined) extra.c = n.ctime
  if (n.links) extra.l = n.links.map((x) => [x.lid, locRow(x.loc, t), x.gone ? [t.of(x.gone.writer), x.gone.time] : null])
  if (n.gone) extra.lx = [t.of(n.gone.writer), n.gone.time]
  if (n.uid !== undefined) extra.u = n.uid
  if (n.gid !== undefined) extra.g = n.gid
  if (n.rdev !== undefined) extra.r = n.rdev
  if (n.xattrs) extra.x = 1
  if (Object.keys(extra).length > 0) r.push(n.shard ?? null, extra)
  else if (n.shard !== undefined) r.push(n.shard)
  return r
}

function locRow(l: RawNode['loc'], t: ActorTable): [string, string, number, number, string | null, string | null] {
  return [l.parent, l.name, t.of(l.writer), l.time, l.prev?.parent ?? null, l.prev?.name ?? null]
}

export function unrow(r: NodeRow, actors: string[], version: number): RawNode {
  if (!Array.isArray(r) || (r.length !== 9 && !(version >= 3 && (r.length === 10 || r.length === 11)))) throw new Error('bad node row')
  const [id, kind, l, mode, mtime, creator, target, versions, tombs, shardOrNull, extra] = r
  const shard = shardOrNull ?? undefined
  if (typeof id !== 'string' || !isKind(kind) || !Array.isArray(l) || l.length !== 6) throw new Error('bad node row')
  if (typeof mode !== 'number' || typeof mtime !== 'number' || !Array.isArray(versions) || !Array.isArray(tombs)) throw new Error(`bad node row ${id}`)
  if (shard !== undefined && (typeof shard !== 'string' || !isShard(shard) || shard === META_SHARD || shard.length <= 2 || !id.startsWith(shard))) throw new Error(`node row ${id}: bad shard`)
  const actor = (i: number): string => {
    const a = actors[i]
    if (a === undefined) throw new Error(`node row ${id}: no actor ${i}`)
    return a
  }
  const n: RawNode = {
    id, kind, mode, mtime, creator: actor(creator),
    loc: { parent: l[0], name: l[1], writer: actor(l[2]), time: l[3], prev: l[4] === null ? null : { parent: l[4], name: l[5] as string } },
    versions: versions.map(([hash, size, writer, time, ver]) => ({ hash, size, writer: actor(writer), time, ver })),
    tombs: tombs.map(([writer, time, seen]) => ({ writer: actor(writer), time, seen })),
  }
  if (target !== null) n.target = target
  if (shard !== undefined) n.shard = shard
  if (extra !== undefined) {
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new Error(`node row ${id}: bad attributes`)
    if (extra.a !== undefined) {
      if (typeof extra.a !== 'number') throw new Error(`node row ${id}: bad atime`)
      n.atime = extra.a
    }
    if (extra.c !== undefined) {
      if (typeof extra.c !== 'number') throw new Error(`node row ${id}: bad ctime`)
      n.ctime = extra.c
    }
    if (extra.l !== undefined) {
      if (!Array.isArray(extra.l)) throw new Error(`node row ${id}: bad names`)
      n.links = extra.l.map(([lid, x, gone]) => {
        if (typeof lid !== 'string' || !Array.isArray(x) || x.length !== 6) throw new Error(`node row ${id}: bad name`)
        return {
          lid, loc: { parent: x[0], name: x[1], writer: actor(x[2]), time: x[3], prev: x[4] === null ? null : { parent: x[4], name: x[5] as string } },
          gone: gone ? { writer: actor(gone[0]), time: gone[1] } : null,
        }
      })
    }
    if (extra.lx !== undefined) {
      if (!Array.isArray(extra.lx) || extra.lx.length !== 2) throw new Error(`node row ${id}: bad removal`)
      n.gone = { writer: actor(extra.lx[0]), time: extra.lx[1] }
    }
    if (extra.x !== undefined) {
      if (extra.x !== 1) throw new Error(`node row ${id}: bad xattrs flag`)
      n.xattrs = true
    }
    if (extra.u !== undefined) {
      if (!isOwner(extra.u) || extra.u === MOUNTER) throw new Error(`node row ${id}: bad uid`)
      n.uid = extra.u
    }
    if (extra.r !== undefined) {
      if (!isRdev(extra.r)) throw new Error(`node row ${id}: bad rdev`)
      n.rdev = extra.r
    }
    if (extra.g !== undefined) {
      if (!isOwner(extra.g) || extra.g === MOUNTER) throw new Error(`node row ${id}: bad gid`)
      n.gid = extra.g
    }
  }
  return n
}

export function encodeTreeState(state: TreeState, extra: unknown): Buffer {
  const blobs: Uint8Array[] = []
  const actors = new ActorTable()
  // Rows go in blobs of NODE_CHUNK: a reader parses and converts one at a time, so it never
  // holds the whole volume as JSON text and parsed arrays at once (that was most of the
  // reopening process's peak RSS).
  const nodeBlobs: Buffer[] = []
  let long = false
  for (let i = 0; i < state.nodes.length; i += NODE_CHUNK) {
    const rows = state.nodes.slice(i, i + NODE_CHUNK).map((n) => row(n, actors))
    long ||= rows.some((r) => r.length > 9)
    nodeBlobs.push(Buffer.from(JSON.stringify(rows)))
  }
  const header: Header = {
    extra, shards: [], meta: null, held: [], actors: actors.list, nodeBlobs: nodeBlobs.map((b) => b.length),
    problems: state.problems.map((p) => [p.shard, p.id, p.reason]), rejected: state.rejected,
  }
  for (const [name, s] of [...state.shards].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    header.shards.push([name, s.heads, s.bytes.length])
    blobs.push(s.bytes)
  }
  if (state.meta) {
    header.meta = state.meta.length
    blobs.push(state.meta)
  }
  for (const h of state.held) {
    header.held.push([h.shard, h.tag ?? null, h.change.length])
    blobs.push(h.change)
  }
  blobs.push(...nodeBlobs)
  const json = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(json.length)
  // Rows of 10 or 11 elements (a deeper shard, or the attributes of issue 13) need version 3.
  const version = long ? CHECKPOINT_VERSION : 2
  const body = Buffer.concat([MAGIC, Buffer.from([version]), len, json, ...blobs])
  return Buffer.concat([body, hash(body)])
}

/** Throws an Error saying what is wrong when `buf` is not a checkpoint this version reads. */
export function decodeTreeState(buf: Buffer): { state: TreeState; extra: unknown } {
  if (buf.length < MAGIC.length + 5 + DIGEST_BYTES || !buf.subarray(0, 4).equals(MAGIC)) throw new Error('not a tree checkpoint')
  const version = buf[4]
  if (version !== 1 && version !== 2 && version !== CHECKPOINT_VERSION) throw new Error(`checkpoint version ${version} is not supported`)
  const body = buf.subarray(0, buf.length - DIGEST_BYTES)
  if (!equal(hash(body), buf.subarray(buf.length - DIGEST_BYTES))) throw new Error('checkpoint is damaged (digest mismatch)')
  const hlen = buf.readUInt32BE(5)
  let at = 9 + hlen
  if (at > body.length) throw new Error('checkpoint header overruns the file')
  const header = JSON.parse(body.subarray(9, at).toString('utf8')) as Header
  if (!header || !Array.isArray(header.shards) || !Array.isArray(header.held) || !Array.isArray(header.actors) || !Array.isArray(header.problems)) throw new Error('bad checkpoint header')
  if (version === 1 ? !Array.isArray(header.nodes) : !Array.isArray(header.nodeBlobs)) throw new Error('bad checkpoint header: nodes')
  const take = (n: unknown): Uint8Array => {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || at + n > body.length) throw new Error('checkpoint blob overruns the file')
    const out = new Uint8Array(body.subarray(at, at + n))
    at += n
    return out
  }
  const shards = new Map<string, { bytes: Uint8Array; heads: string[] }>()
  for (const [name, heads, n] of header.shards) shards.set(name, { heads, bytes: take(n) })
  const meta = header.meta === null ? null : take(header.meta)
  const held = header.held.map(([shard, tag, n]) => ({ shard, change: take(n), ...(tag === null ? {} : { tag }) }))
  const nodes: RawNode[] = version === 1 ? header.nodes!.map((r) => unrow(r, header.actors, version)) : []
  for (const n of header.nodeBlobs ?? []) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || at + n > body.length) throw new Error('checkpoint blob overruns the file')
    const rows = JSON.parse(body.toString('utf8', at, at + n)) as NodeRow[]
    at += n
    if (!Array.isArray(rows)) throw new Error('bad node blob')
    for (const r of rows) nodes.push(unrow(r, header.actors, version))
  }
  if (at !== body.length) throw new Error('checkpoint has trailing bytes')
  const problems: Problem[] = header.problems.map(([shard, id, reason]) => ({ shard, id, reason }))
  const rejected = header.rejected ?? []
  if (!Array.isArray(rejected) || !rejected.every((x) => typeof x === 'string')) throw new Error('bad checkpoint header: rejected')
  return { state: { shards, meta, held, nodes, problems, rejected }, extra: header.extra }
}
