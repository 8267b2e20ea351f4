// A volume's history, read from its op log (spec/history.md): the writers' logs merged into
// one order, the names a path had over time (renames followed back), a file's versions,
// per-path summaries of who changed what, and bringing an earlier version back as a logged op.
// The tree keeps only the current versions; the log's audit ops (path, size, hash, mode, time)
// keep every one. The CLI and the web view reach this through the control ops of
// src/control/ops/history.ts.
import { UserError } from '../datadir.js'
import { EntryError, type AuditOp, type LogEntry } from '../logs/index.js'
import { TreeError, joinPath, splitPath, type Stat } from '../tree/index.js'
import type { Volume } from './volume.js'

/** An entry of some writer log, with whether the writer set accepts it (only those are applied). */
export interface PlacedEntry { log: string; entry: LogEntry; authorised: boolean }

/** Where an op sits in the merged order: entry time, then writer log key (hex), seq, the op's index in its entry. */
export interface OpPlace { time: number; log: string; seq: number; index: number }

/** One audit op of an authorised or unauthorised entry, in the merged order. */
export interface PlacedOp extends OpPlace { op: AuditOp; authorised: boolean }

export interface ReadScope {
  /** Only these writer logs (key hex); default every known one. */
  logs?: ReadonlySet<string>
  /** Only entries whose time is in [since, until] (ms since the epoch). */
  since?: number
  until?: number
}

/** Whether an entry at `time` is in the scope's time window. */
function inTime(scope: ReadScope, time: number): boolean {
  return (scope.since === undefined || time >= scope.since) && (scope.until === undefined || time <= scope.until)
}

/** Audit ops whose `path` is no path in the tree (a snapshot's name, a rule's text). */
const NOT_PATHS = new Set(['snapshot', 'snapshot-rm', 'snapshot-keep', 'copies'])
/** Ops that change a node's attributes, not its content or names: no version of a file. */
const ATTR_OPS = new Set(['setattr', 'setxattr', 'removexattr'])

export function comparePlaces(a: OpPlace, b: OpPlace): number {
  if (a.time !== b.time) return a.time - b.time
  if (a.log !== b.log) return a.log < b.log ? -1 : 1
  if (a.seq !== b.seq) return a.seq - b.seq
  return a.index - b.index
}

/**
 * Every entry of the volume's writer logs held here, merged into one order: by entry time
 * (the writer's clock), then writer and seq. Each log is read in seq order, so a log whose
 * clock went back stays in its own order. Unreadable entries come as EntryError where they
 * are met. Memory is one entry per log. Queued edits of this node are flushed first: they
 * are part of the history.
 */
export async function* mergedEntries(vol: Volume, scope: ReadScope = {}): AsyncGenerator<PlacedEntry | EntryError> {
  await vol.flush()
  const heads: { log: string; it: AsyncIterator<LogEntry | EntryError>; cur: LogEntry | null }[] = []
  for (const [hex, log] of vol.writers) {
    if (scope.logs && !scope.logs.has(hex)) continue
    heads.push({ log: hex, it: log.read({ wait: false })[Symbol.asyncIterator](), cur: null })
  }
  const errors: EntryError[] = []
  const advance = async (h: (typeof heads)[number]): Promise<void> => {
    for (;;) {
      const r = await h.it.next()
      if (r.done) {
        h.cur = null
        return
      }
      if (r.value instanceof EntryError) errors.push(r.value)
      else {
        h.cur = r.value
        return
      }
    }
  }
  try {
    for (const h of heads) await advance(h)
    for (;;) {
      yield* errors.splice(0)
      let best: (typeof heads)[number] | null = null
      for (const h of heads) {
        if (h.cur === null) continue
        if (best === null || comparePlaces(placeOf(h.log, h.cur, 0), placeOf(best.log, best.cur!, 0)) < 0) best = h
      }
      if (best === null) return
      const entry = best.cur!
      if (inTime(scope, entry.body.time)) yield { log: best.log, entry, authorised: vol.writerSet.valid(best.log, entry.seq) }
      await advance(best)
    }
  } finally {
    for (const h of heads) await h.it.return?.()
  }
}

function placeOf(log: string, entry: LogEntry, index: number): OpPlace {
  return { time: entry.body.time, log, seq: entry.seq, index }
}

/** The audit ops of merged entries, one by one (control ops are not audit ops: see mergedEntries). */
export async function* mergedOps(vol: Volume, scope: ReadScope = {}): AsyncGenerator<PlacedOp | EntryError> {
  for await (const x of mergedEntries(vol, scope)) {
    if (x instanceof EntryError) {
      yield x
      continue
    }
    const ops = x.entry.body.ops
    for (let i = 0; i < ops.length; i++) yield { ...placeOf(x.log, x.entry, i), op: ops[i]!, authorised: x.authorised }
  }
}

/** A path in its canonical form (leading '/', no trailing one); a malformed path is the tree's EINVAL. */
export function canonicalPath(path: string): string {
  return joinPath(splitPath(path))
}

/** `p` is `dir` or below it: what follows `dir` in `p` ('' when equal), else null. */
function below(p: string, dir: string): string | null {
  if (p === dir) return ''
  if (dir === '/') return p
  return p.startsWith(dir + '/') ? p.slice(dir.length) : null
}

/** An entry as a path's pass keeps it: its place and audit ops, not its changes. */
export interface EntryOps { log: string; seq: number; time: number; ops: readonly AuditOp[]; authorised: boolean }

/**
 * One pass over the logs for a path: the entries `keep` accepts (read with the ops of every
 * entry, as the trail of `path` needs), and that trail. The kept entries wait for the end of
 * the pass: which of their ops concern the path depends on the renames after them. Entries
 * arriving during the pass wait for the next read. Stops early (with what it has) once `signal` aborts.
 */
export async function readForPath(vol: Volume, path: string, keep: (x: PlacedEntry) => boolean, opts: { onError?: (e: EntryError) => void; signal?: AbortSignal } = {}): Promise<{ trail: PathTrail; entries: EntryOps[] }> {
  const renames: Rename[] = []
  const entries: EntryOps[] = []
  for await (const x of mergedEntries(vol)) {
    if (opts.signal?.aborted) break
    if (x instanceof EntryError) {
      opts.onError?.(x)
      continue
    }
    const { entry } = x
    if (x.authorised) {
      entry.body.ops.forEach((op, index) => {
        if (op.op === 'rename' && op.path !== undefined && op.to !== undefined) renames.push({ place: placeOf(x.log, entry, index), from: op.path, to: op.to })
      })
    }
    if (keep(x)) entries.push({ log: x.log, seq: entry.seq, time: entry.body.time, ops: entry.body.ops, authorised: x.authorised })
  }
  return { trail: new PathTrail(canonicalPath(path), renames), entries }
}

/** The entries of `scope` (its logs and time window) of a path's pass. */
export function inScope(scope: ReadScope): (x: PlacedEntry) => boolean {
  return (x) => (!scope.logs || scope.logs.has(x.log)) && inTime(scope, x.entry.body.time)
}

/** A rename the writer set accepts, where it sits in the merged order. */
interface Rename { place: OpPlace; from: string; to: string }

/**
 * The names the file (or directory) now or last at a path had over time, renames followed
 * back: from each rename that moved it (or a directory above it) there, the name before.
 */
export class PathTrail {
  /** Newest first: from `from` on (inclusive; null: from the start) the name was `name`. */
  readonly names: readonly { from: OpPlace | null; name: string }[]

  /** `renames`: every accepted rename, in the merged order. */
  constructor(readonly path: string, renames: readonly Rename[]) {
    const names: { from: OpPlace | null; name: string }[] = []
    let name = path
    for (let i = renames.length - 1; i >= 0; i--) {
      const r = renames[i]!
      const rest = below(name, r.to)
      if (rest === null) continue
      names.push({ from: r.place, name })
      name = r.from === '/' ? rest || '/' : r.from + rest
    }
    names.push({ from: null, name })
    this.names = names
  }

  /** The name at that place in the merged order. */
  nameAt(place: OpPlace): string {
    for (const n of this.names) if (n.from === null || comparePlaces(n.from, place) <= 0) return n.name
    return this.path
  }

  /**
   * Whether the op concerns the path: it names the path as it was then (with `under`, or a
   * path below it), or it renamed a directory above it.
   */
  concerns(place: OpPlace, op: AuditOp, under: boolean): boolean {
    if (NOT_PATHS.has(op.op)) return false
    const name = this.nameAt(place)
    const hit = (p: string | undefined): boolean => p !== undefined && (p === name || (under && below(p, name) !== null))
    if (hit(op.path) || hit(op.to)) return true
    if (op.op !== 'rename') return false
    return (op.path !== undefined && below(name, op.path) !== null) || (op.to !== undefined && below(name, op.to) !== null)
  }
}

/** One event in a file's history: a version written or brought back, a rename, a delete. */
export interface HistoryEvent extends OpPlace {
  /** write, restore, resolve, rename, delete, link, symlink, mknod, mkdir... (`unlink`/`rmdir` of the log read `delete`). */
  op: string
  /** The path the op was on: an older name before a rename. */
  path: string
  /** A rename's or link's destination. */
  to?: string
  size?: number
  hash?: string
  mode?: number
  /** restore: `version` or `snapshot`; resolve: mine, theirs, both or hash. */
  kind?: string
  /** restore from a snapshot: its name. */
  snapshot?: string
  /** This version is the file's content now. */
  current?: true
  /** This version is shown now as this read-only conflict copy. */
  conflictCopy?: string
}

export interface FileHistory {
  path: string
  /** What is at the path now (null: nothing; the history is of a path that no longer exists). */
  now: Stat | null
  /** Oldest first. */
  events: HistoryEvent[]
}

/**
 * Every version of the file now or last at `path` (a conflict copy's path: its file's),
 * oldest first: its writes, restores and
 * conflict resolutions with their content hash and size, and its renames (earlier names
 * followed) and deletes. Only ops the writer set accepts (those applied) count. A user
 * error when no op ever named the path.
 */
export async function fileHistory(vol: Volume, path: string): Promise<FileHistory> {
  const { trail, entries } = await readForPath(vol, fileOfCopy(vol, canonicalPath(path)), (x) => x.authorised && x.entry.body.ops.length > 0)
  const events: HistoryEvent[] = []
  for (const x of entries) {
    x.ops.forEach((op, index) => {
      if (ATTR_OPS.has(op.op) || (op.op === 'resolve' && op.kind === 'attr')) return
      const place = { time: x.time, log: x.log, seq: x.seq, index }
      if (!trail.concerns(place, op, false)) return
      const e: HistoryEvent = { ...place, op: op.op === 'unlink' || op.op === 'rmdir' ? 'delete' : op.op, path: op.path ?? trail.nameAt(place) }
      if (op.to !== undefined) e.to = op.to
      if (op.size !== undefined && op.op !== 'rename') e.size = op.size
      if (op.hash !== undefined) e.hash = op.hash
      if (op.mode !== undefined) e.mode = op.mode
      if (op.kind !== undefined) e.kind = op.kind
      if (op.op === 'restore' && op.target !== undefined) e.snapshot = op.target
      events.push(e)
    })
  }
  if (events.length === 0) throw new UserError(`no op of volume "${vol.name}" names ${trail.path}: nothing to show (\`bazil log show ${vol.name}\` lists what happened)`)
  const now = vol.tree.lookup(trail.path)
  // The versions the tree holds now: the winner under the path, the others as conflict copies.
  const latest = (hash: string, log?: string): HistoryEvent | undefined => {
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i]!
      if (e.hash === hash && (log === undefined || e.log === log)) return e
    }
    return undefined
  }
  if (now?.kind === 'file' && now.content) {
    const conflict = vol.tree.conflicts().find((c) => c.path === now.path)
    if (conflict) {
      for (const v of conflict.versions) {
        const e = latest(v.hash, v.writer) ?? latest(v.hash)
        if (!e) continue
        if (v.path === now.path) e.current = true
        else e.conflictCopy = v.path
      }
    } else {
      const e = latest(now.content.hash)
      if (e) e.current = true
    }
  }
  return { path: trail.path, now, events }
}

/** The file a conflict copy shows a version of (its history is the file's), or the path itself. */
function fileOfCopy(vol: Volume, path: string): string {
  if (!path.includes('.conflict-')) return path
  return vol.tree.conflicts().find((c) => c.versions.some((v) => v.path === path))?.path ?? path
}

/** Where a restore takes its content from: a version of the file's history (8+ hex digits of its hash), or a snapshot. */
export type RestoreSource = { version: string } | { snapshot: string }

export interface Restored {
  /** Where the content went. */
  path: string
  size: number
  hash: string
  /** The path had no file: it was made (parents too). */
  created: boolean
  /** The content the file had before, now an older version (null: created). */
  previous: string | null
  /** The file had this content already: nothing was logged. */
  unchanged: boolean
}

const HASH_PREFIX = /^[0-9a-f]{8,128}$/

/**
 * Brings an earlier version of the file at `path` back, at `path` or at `to`: a `restore` op
 * in this node's log that replicates like any write. Over an existing file it is a new
 * version (the one it replaces stays in the history); at a path with no file it makes the
 * file (and missing parent directories). Content not held here is fetched from a peer
 * holding it, or the restore is refused. Every check runs before anything is logged.
 */
export async function restoreVersion(vol: Volume, path: string, source: RestoreSource, to?: string): Promise<Restored> {
  const from = canonicalPath(path)
  const dest = to === undefined ? from : canonicalPath(to)
  if (dest === '/') throw new UserError('cannot restore over the root of a volume: name a file path')
  let content: { hash: string; size: number; mode?: number }
  let audit: Pick<AuditOp, 'kind' | 'target'>
  if ('snapshot' in source) {
    const st = vol.view(source.snapshot).lookup(from)
    if (!st) throw new UserError(`snapshot "${source.snapshot}" of volume "${vol.name}" has no ${from} (\`bazil volume ls --snapshot=${source.snapshot} ${vol.name}\` lists it)`)
    if (st.kind !== 'file' || !st.content) throw new UserError(`${from} in snapshot "${source.snapshot}" is a ${st.kind === 'file' ? 'file without content' : st.kind}: only files are restored`)
    content = { hash: st.content.hash, size: st.content.size, mode: st.mode }
    audit = { kind: 'snapshot', target: source.snapshot }
  } else {
    const want = source.version.toLowerCase()
    if (!HASH_PREFIX.test(want)) throw new UserError(`--version must be 8 or more hex digits of a version's hash, got "${source.version}" (\`bazil volume history ${vol.name} ${from}\` lists them)`)
    const h = await fileHistory(vol, from)
    const matches = h.events.filter((e) => e.hash?.startsWith(want) && e.size !== undefined)
    const hashes = new Set(matches.map((e) => e.hash))
    if (hashes.size === 0) throw new UserError(`no version of ${h.path} has a hash starting with ${want} (\`bazil volume history ${vol.name} ${h.path}\` lists them)`)
    if (hashes.size > 1) throw new UserError(`${hashes.size} versions of ${h.path} have a hash starting with ${want}: give more digits`)
    const e = matches[matches.length - 1]!
    content = { hash: e.hash!, size: e.size!, ...(e.mode !== undefined ? { mode: e.mode } : {}) }
    audit = { kind: 'version' }
  }
  const existing = vol.tree.lookup(dest)
  if (existing && existing.kind !== 'file') throw new UserError(`${dest} is a ${existing.kind === 'dir' ? 'directory' : existing.kind}: restore to another path with --to=NEWPATH`)
  if (existing && existing.content?.hash === content.hash && vol.tree.versions(dest).length < 2) {
    return { path: existing.path, size: content.size, hash: content.hash, created: false, previous: content.hash, unchanged: true }
  }
  if (!vol.canWrite) throw new UserError(vol.writeRefusal())
  await fetchWhole(vol, content, from)
  // Parents missing (the directory went with the file): made again, in the same entry.
  const parents = splitPath(dest).slice(0, -1)
  for (let i = 1; i <= parents.length; i++) {
    const dir = vol.tree.lookup(joinPath(parents.slice(0, i)))
    if (dir && dir.kind !== 'dir') throw new TreeError('ENOTDIR', dest, `${dir.path} is not a directory`)
  }
  if (parents.length > 0) vol.mkdirp(joinPath(parents))
  const st = vol.mutate(
    (t) => t.writeFile(dest, { hash: content.hash, size: content.size }, existing || content.mode === undefined ? {} : { mode: content.mode & 0o7777 }),
    (s) => ({ op: 'restore', path: s.path, size: content.size, hash: content.hash, mode: s.mode, mtime: s.mtime, ...audit })
  )
  await vol.flush()
  return { path: st.path, size: content.size, hash: content.hash, created: !existing, previous: existing?.content?.hash ?? null, unchanged: false }
}

/** Makes sure the content is held here: read whole (fetched from peers) when it is not; a user error when it cannot be. */
async function fetchWhole(vol: Volume, content: { hash: string; size: number }, path: string): Promise<void> {
  const ref = { hash: Buffer.from(content.hash, 'hex'), size: content.size }
  if (await vol.cas.has(ref)) return
  try {
    for await (const chunk of vol.cas.readFile(ref, path)) void chunk
  } catch (err) {
    throw new UserError(`version ${content.hash.slice(0, 16)} of ${path} is not held on this node and could not be fetched (${(err as Error).message.split('\n')[0]}): connect a peer that holds it (\`bazil volume storage add\`) and try again`)
  }
}

/** Who changed a path, and how often: per writer log (key hex). */
export interface BlameStats {
  changes: number
  last: PlacedOp | null
  /** Changes per writer log key (hex). */
  byLog: Map<string, number>
}

export interface BlameRow extends BlameStats {
  /** The entry's path now. */
  path: string
  kind: Stat['kind']
}

/** A path trie the forward pass of blame keeps: a rename moves a subtree, a delete drops one. */
interface Trie { stats: BlameStats; children: Map<string, Trie> }

const newTrie = (): Trie => ({ stats: { changes: 0, last: null, byLog: new Map() }, children: new Map() })

/**
 * Who changed what under `path`: for a file, its own row; for a directory, one row per entry
 * in it, a subdirectory counting every change below it. Each row has the number of changes
 * (by writer log) and the last one. Renames are followed (a file's changes under its earlier
 * names count), deletes forget. One pass over the logs; memory grows with the paths touched.
 */
export async function blame(vol: Volume, path = '/'): Promise<{ path: string; rows: BlameRow[] }> {
  const target = canonicalPath(path)
  const st = vol.tree.stat(target)
  const root = newTrie()
  const find = (p: string, make: boolean): Trie | null => {
    let t = root
    for (const name of splitPath(p)) {
      let c = t.children.get(name)
      if (!c) {
        if (!make) return null
        c = newTrie()
        t.children.set(name, c)
      }
      t = c
    }
    return t
  }
  const detach = (p: string): Trie | null => {
    const names = splitPath(p)
    if (names.length === 0) return null
    const parent = find(joinPath(names.slice(0, -1)), false)
    const t = parent?.children.get(names[names.length - 1]!) ?? null
    if (t) parent!.children.delete(names[names.length - 1]!)
    return t
  }
  const count = (t: Trie, x: PlacedOp): void => {
    t.stats.changes++
    t.stats.last = x
    t.stats.byLog.set(x.log, (t.stats.byLog.get(x.log) ?? 0) + 1)
  }
  for await (const x of mergedOps(vol)) {
    if (x instanceof EntryError || !x.authorised) continue
    const op = x.op
    if (NOT_PATHS.has(op.op) || op.path === undefined) continue
    try {
      if (op.op === 'rename' && op.to !== undefined) {
        const moved = detach(op.path) ?? newTrie()
        const names = splitPath(op.to)
        if (names.length === 0) continue
        const parent = find(joinPath(names.slice(0, -1)), true)!
        parent.children.set(names[names.length - 1]!, moved)
        count(moved, x)
      } else if (op.op === 'unlink' || op.op === 'rmdir') {
        detach(op.path)
      } else count(find(op.to ?? op.path, true)!, x) // a link counts for its new name
    } catch (err) {
      if (!(err instanceof TreeError)) throw err // a malformed path in an old entry: not a path
    }
  }
  const sum = (t: Trie, into: BlameStats): void => {
    into.changes += t.stats.changes
    if (t.stats.last && (into.last === null || comparePlaces(t.stats.last, into.last) > 0)) into.last = t.stats.last
    for (const [k, n] of t.stats.byLog) into.byLog.set(k, (into.byLog.get(k) ?? 0) + n)
    for (const c of t.children.values()) sum(c, into)
  }
  const row = (s: Stat): BlameRow => {
    const stats: BlameStats = { changes: 0, last: null, byLog: new Map() }
    const t = find(s.path, false)
    if (t) sum(t, stats)
    return { path: s.path, kind: s.kind, ...stats }
  }
  const rows = st.kind === 'dir' ? vol.tree.readdir(st.path).map(row) : [row(st)]
  return { path: st.path, rows }
}

/** The node (key hex) each writer log of the volume is bound to, where known. */
export function logNodes(vol: Volume, ownNode: Buffer): Map<string, string | null> {
  const out = new Map<string, string | null>()
  for (const k of vol.knownLogs()) out.set(k.log, k.node)
  out.set(vol.log.key.toString('hex'), ownNode.toString('hex'))
  return out
}
