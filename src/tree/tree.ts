/** The directory state API: local operations become Automerge changes; reads go to the derived index. */
import * as A from '@automerge/automerge'
import { randomHex } from '../crypto.js'
import { nodeIdNear } from './placement.js'
import { conflictedTouched } from './conflicted.js'
import { type AttrConflict, recordAttrConflicted } from './attr-conflicts.js'
import { StateMismatchError, TreeError } from './errors.js'
import {
  COPIES_KEY, RETENTION_KEY, DEFAULT_MODE, MAX_COPIES, MAX_TARGET_BYTES, META_SHARD, ROOT_ID, ROOT_MODE_KEY, ROOT_MTIME_KEY, ROOT_ATIME_KEY, ROOT_CTIME_KEY, ROOT_UID_KEY, ROOT_GID_KEY,
  decodeLoc, decodeRemoval, decodeTomb, decodeVersion, encodeLoc, encodeRemoval, NAME_PREFIX, encodeTomb, encodeVersion, homeOf, imm, isHex,
  MAX_SHARD_DIGITS, onPath, putRecord, recordValue, putTime, readRecord, recordObj, recordWinners, seenVersions, shardOf, strOf, type Kind, type RecordVersion, type MetaDoc, type RawNode, type Version,
} from './model.js'
import { isWellFormed, splitPath } from './paths.js'
import { Shards, type Handle } from './shards.js'
import { recordsBetween } from './snapshot-views.js'
import type { SavedSnapshots } from './snapshot-names.js'
import { INLINE_BYTES } from './snapshot-heads.js'
import { entryBudget, readChangeHeader, type ChangeBudget } from './change-header.js'
import { checkChange, shardProblem } from './change-check.js'
import { heapNeeded, reserveAutomergeHeap } from './wasm-heap.js'
import { createInto, type Put } from './bulk-create.js'
import { readRootAttrs, isRootAttrKey } from './times.js'
import { DirTimes } from './dir-times.js'
import { aliveNames, entryId, nameIdOf, nameKey, nodeIdOf, isNameEntry, removalKey, withLoc, withName, withRemoval } from './links.js'
import { checkOwner, setOwners } from './owners.js'
import { isDevice, isRdev, isSpecialKind, type SpecialKind } from './special.js'
import { TreeIndex, type ContentConflict, type ContentRef, type Entry, type IndexMemo, type ReadTree, type Stat } from './view.js'
import type { IndexBase } from './index-layers.js'
import type { SavedShardRead } from './saved-shard.js'
import { SavedShardReaders, defaultLoadWorkers } from './state-load-pool.js'
import { checkContent, checkMode, checkTime } from './arg-checks.js'
import type { Edit, TreeCore } from './tree-core.js'
import { TreeConflicts } from './tree-conflicts.js'
import { SnapshotTree, TreeSnapshots, type IndexState, type SnapshotInfo } from './tree-snapshots.js'
import { TreeXattrs } from './tree-xattrs.js'

export type { SnapshotInfo } from './tree-snapshots.js'
export interface ShardChange { shard: string; change: Uint8Array }
/** Attributes a caller sets; `atime` only through setattr (spec/tree.md "Times"). */
export interface Attrs {
  mode?: number
  mtime?: number
  atime?: number
  /** Owner ids (owners.ts): MOUNTER = the mounting user; absent: no change (new nodes: the mounting user). */
  uid?: number
  gid?: number
}
export interface Problem { shard: string; id: string; reason: string }
/** A change from a log: `writer` (actor hex) is who must have made it; `tag` comes back with a rejection. */
export interface IncomingChange extends ShardChange { writer?: string; tag?: string }
export interface Rejected { shard: string; tag?: string; reason: string }
/** How a joiner's tree fills from a state (Tree.fromSaved): who sees it first, and its progress (awaited: a caller may pace it). */
export interface JoinFill {
  onTree?: (t: Tree) => void
  onShard?: (done: number) => void | Promise<void>
  /** Length of a slice (default SLICE_MS; tests set 0: every shard its own slice). */
  sliceMs?: number
  /** Worker threads reading the saved shards (default defaultLoadWorkers(); 0: on this thread). */
  workers?: number
}

/** Shards sent to the load workers ahead of the one taken in. */
const LOAD_WINDOW = 64

/** A joiner's shard loads run in slices of about this long, between which the event loop (the mount) runs. */
const SLICE_MS = 25

/**
 * `splitAt`: a shard takes new records while it holds fewer than this many (as known here);
 * then they go one hex digit deeper (spec/tree.md "Shard layout"). Tests set it small.
 */
export interface TreeOptions {
  clock?: () => number
  random?: (bytes: number) => string
  splitAt?: number
  recordVersion?: RecordVersion
  /** A new node's id (default: placement.ts nodeIdNear with random bytes; with `random` given and no `nodeId`: random(16)). */
  nodeId?: (parent: string, kind: Kind) => string
  /** Snapshot records longer than this store their heads in parts (default INLINE_BYTES; tests set it low). */
  snapshotInline?: number
}
/** Records a shard takes before new ones go to a deeper shard: Automerge's cost per applied change grows with the document (~0.3 ms at 1k records, 4-7 ms at 4k). */
export const SPLIT_AT = 512
/** What a checkpoint holds of a tree (encoded by checkpoint.ts). */
export interface TreeState {
  shards: Map<string, { bytes: Uint8Array; heads: string[] }>
  meta: Uint8Array | null
  nodes: RawNode[]
  problems: Problem[]
  held: { shard: string; change: Uint8Array; tag?: string }[]
  /** Hashes of rejected changes: what builds on them is rejected too. */
  rejected: string[]
}
/** What the on-disk index (index-store.ts) keeps of a tree beside its index entries and shard saves. */
export interface TreeParts {
  meta: Uint8Array | null
  problems: Problem[]
  held: { shard: string; change: Uint8Array; tag?: string }[]
  rejected: string[]
  /** Nodes with several content values or tombstones (re-read after every remote apply), by shard. */
  multi: [string, string][]
  /** Records per shard (where a new record goes: spec/tree.md "Shard layout"). */
  counts: [string, number][]
  memo: IndexMemo
  /** Heads of `meta` and its keys that are the root's attributes (times.ts isRootAttrKey): with both, `meta` stays unloaded until first read. */
  metaHeads?: string[]
  root?: Record<string, unknown>
}
/** A checked change (held, or on its way to Automerge); `ops`, `writer`: while it is being applied (applySteps). */
interface Held { shard: string; change: Uint8Array; hash: string; deps: string[]; objs: string[]; tag?: string; entry?: string; ops?: number; writer?: string }
/** Tree.applySteps: `next` applies one step and returns what it rejected (null once all are applied); `remaining`: the changes of the steps not applied yet; `close`: stops early. */
export interface ApplySteps {
  next(): Rejected[] | null
  remaining(): IncomingChange[]
  close(): void
}

/** The `meta` keys that are the root's attributes, with their values. */
function rootAttrKeys(meta: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(meta)) if (isRootAttrKey(k)) out[k] = v
  return out
}

export class Tree implements ReadTree {
  private readonly shards: Shards
  /** The root's attribute keys of `meta` as the index on disk kept them, while `meta` is not loaded. */
  private rootKeys: Record<string, unknown> | null = null
  private index = new TreeIndex()
  private pending: ShardChange[] = []
  /** Local edits not yet turned into Automerge changes: flushed as one change per shard. */
  private readonly unflushed = new Map<string, Put[]>()
  /** Shards local edits went into since the last takeTouched (META_SHARD included). */
  private touched = new Set<string>()
  /**
   * Nodes created since the last flush whose creation can still absorb later local edits:
   * where it sits in `unflushed`. A later edit that a creation can express (no tombstone, one
   * content version at most) replaces it with the creation of the node's new state: `tar x`
   * (create, write, chmod, utimens) then costs one Automerge record put per file, not four.
   */
  private readonly foldable = new Map<string, { list: Put[]; at: number }>()
  /** Every extended attribute of the nodes whose attributes were set or removed since the last flush (their records do not show it yet). */
  private readonly xattrEdits = new Map<string, Map<string, Buffer>>()
  /** Directories whose entries changed since the last flush (dir-times.ts): one mtime put each per flush. */
  private readonly dirTimes = new DirTimes()
  /** Nodes with several content values or tombstones, per shard: re-read after every remote apply. */
  private readonly multi = new Map<string, Set<string>>()
  /** Nodes whose last read found several values of an owner or attribute key (attr-conflicts.ts): kept in `multi`. */
  private readonly attrConflicted = new Set<string>()
  private readonly problemsById = new Map<string, Problem>()
  /** While a tree fills from a state (fromSaved): `owners` names the owner of every key seen, so ownerOf looks nowhere else. */
  private ownersAll = false
  /** Views of snapshots made (tree-snapshots.ts): dropped when the tree is freed. */
  private readonly snapshotTrees = new Map<string, SnapshotTree>()
  private readonly snaps: TreeSnapshots
  private readonly xattrOps: TreeXattrs
  private readonly conflictOps: TreeConflicts
  /** Changes waiting for dependencies, by shard (see `apply`). */
  private readonly held = new Map<string, Held[]>()
  /** Hashes of changes rejected (they, or a change they build on, do not apply). */
  private readonly rejectedHashes = new Set<string>()
  /** Records known per node shard (keys that decoded at least once): where a new record goes (`placeOf`). */
  private readonly counts = new Map<string, number>()
  /** New records placed by writeFiles but not yet counted (their edit is applied at the end of the batch). */
  private readonly placing = new Map<string, number>()
  /** During one apply: the shard whose key now counts for a node (spec/tree.md "Shard layout": the shallowest). */
  private owners = new Map<string, string>()

  private readonly clock: () => number
  private readonly splitAt: number
  private readonly random: (bytes: number) => string
  private readonly nodeId: (parent: string, kind: Kind) => string
  /** The format of new records (spec/tree.md "Documents"): 2; tests write 1 to build mixed volumes. */
  private readonly recordVersion: RecordVersion

  private constructor(readonly actor: string, opts: TreeOptions) {
    this.shards = new Shards(actor)
    this.clock = opts.clock ?? Date.now
    this.random = opts.random ?? randomHex
    this.nodeId = opts.nodeId ?? (opts.random ? () => this.random(16) : (parent, kind) => nodeIdNear(parent, kind, randomHex))
    this.splitAt = opts.splitAt ?? SPLIT_AT
    this.recordVersion = opts.recordVersion ?? 2
    if (!Number.isSafeInteger(this.splitAt) || this.splitAt < 1) throw new TreeError('EINVAL', '', `splitAt must be a positive integer, got ${opts.splitAt}`)
    const core: TreeCore = {
      actor,
      shards: this.shards,
      index: () => this.index,
      clock: () => this.clock(),
      random: (bytes) => this.random(bytes),
      flush: () => this.flush(),
      edit: (edits) => this.edit(edits),
      changeMeta: (fn) => this.changeMeta(fn),
      readRootAttrs: () => this.readRootAttrs(),
      writable: (e, path) => this.writable(e, path),
      unfold: (id) => this.foldable.delete(id),
      createFile: (parent, name, attrs, path, version) => this.create(parent, name, 'file', attrs, path, { version }),
      setattr: (path, attrs) => this.setattr(path, attrs),
      setxattr: (path, name, value) => this.setxattr(path, name, value),
    }
    this.snaps = new TreeSnapshots(core, this.snapshotTrees, opts.snapshotInline ?? INLINE_BYTES)
    this.xattrOps = new TreeXattrs(core, this.snaps, this.xattrEdits)
    this.conflictOps = new TreeConflicts(core, this.multi)
  }

  /**
   * `actor`: the writer's id as hex (Automerge actor ids must be hex). `opts.clock` and
   * `opts.random` replace the wall clock and the random node/version ids (tests replay
   * schedules with them; in use they must stay unique across writers).
   */
  static create(actor: string, opts: TreeOptions = {}): Tree {
    if (typeof actor !== 'string' || !isHex(actor) || actor.length > 128) throw new TreeError('EINVAL', '', `actor must be an even-length hex string, got ${JSON.stringify(actor)}`)
    return new Tree(actor, opts)
  }

  // ---- replication ---------------------------------------------------------------------

  /**
   * Applies changes from any writer, in any order; already-applied changes are ignored and
   * changes whose dependencies are missing wait (see `apply`). Throws EINVAL naming the shard
   * if any change is malformed or does not apply; the others are applied all the same.
   */
  applyChanges(changes: ShardChange[]): void {
    const rejected = this.apply(changes)
    if (rejected.length > 0) throw new TreeError('EINVAL', '', `changes of shard ${rejected[0].shard} do not apply: ${rejected[0].reason}`)
  }

  /**
   * Applies changes and returns the ones rejected, with why (a malformed change, one by
   * another actor than `writer`, or one Automerge refuses). A change whose dependencies are
   * not all present is held here (not inside Automerge, whose queue is lost on save) until
   * they arrive: so whether a change applies never depends on arrival order, and every
   * replica rejects the same changes. A shard name that is not one (spec/tree.md "Shard
   * layout") is data from a log like any other: rejected. Throws only for arguments of the wrong shape.
   */
  apply(changes: IncomingChange[]): Rejected[] {
    const release = this.holdIndex()
    try {
      return this.applyHeld(changes)
    } finally {
      release()
    }
  }

  /**
   * Keeps the buckets of the index on disk read from now on in memory until the returned
   * release is called: a caller applying many batches (replay's windows) holds it across them,
   * so each bucket is read, checked and decoded once, not once per change that touches it.
   */
  holdIndex(): () => void {
    return this.index.holdBase()
  }

  private applyHeld(changes: IncomingChange[]): Rejected[] {
    const { byShard, rejected } = this.checkIncoming(changes)
    this.reserveFor(byShard)
    this.applyShards(byShard, rejected)
    return rejected
  }

  /**
   * Applies `changes` as `apply` does, in steps of about `stepOps` ops (CheckedChange.ops) each
   * with the event loop free between them (replay's windows: many entries at once). Every
   * shard's changes go to Automerge in as few calls as the steps allow (one, unless they are
   * over `stepOps`): Automerge's cost per call into a shard, and the diff and the records read
   * back around it, are paid once per shard per window, not once per entry group that touches
   * it (a spread merge at 1M: ~8,000 calls per writer, now ~400). Entries are checked against
   * their limits whole before the first step, so an entry's changes may land in several steps.
   * The outcome is that of `apply` (spec/tree.md "Applying changes": a function of the set).
   */
  applySteps(changes: IncomingChange[], stepOps: number): ApplySteps {
    const release = this.holdIndex()
    let released = false
    const close = (): void => {
      if (!released) release()
      released = true
    }
    const { byShard, rejected } = this.checkIncoming(changes)
    const steps: Map<string, Held[]>[] = []
    let step = new Map<string, Held[]>()
    let ops = 0
    // Shallow shards first, as in one apply; a shard over stepOps is cut in arrival order.
    for (const shard of [...byShard.keys()].sort(byDepth)) {
      for (const x of byShard.get(shard)!) {
        if (ops > 0 && ops + x.ops! > stepOps) {
          steps.push(step)
          step = new Map()
          ops = 0
        }
        let list = step.get(shard)
        if (!list) step.set(shard, (list = []))
        list.push(x)
        ops += x.ops!
      }
    }
    if (step.size > 0) steps.push(step)
    let at = 0
    let first = true
    return {
      next: () => {
        if (released) throw new Error('applySteps: closed')
        if (at >= steps.length && !first) {
          close()
          return null
        }
        // One reserve for the whole window (wasm-heap.ts): its estimate covers every step.
        if (first) this.reserveFor(byShard)
        const out = first ? rejected : []
        first = false
        if (at < steps.length) this.applyShards(steps[at++]!, out)
        return out
      },
      remaining: () => {
        const out: IncomingChange[] = []
        for (let i = at; i < steps.length; i++) for (const list of steps[i]!.values()) for (const x of list) out.push({ shard: x.shard, change: x.change, writer: x.writer, tag: x.tag })
        return out
      },
      close,
    }
  }

  /**
   * Rules 1-3 of spec/tree.md "Applying changes" for every change, the changes of one entry (one
   * tag; an untagged change is an entry alone) sharing one allowance of ops and bytes, checked
   * before anything is inflated or applied: an entry over it is rejected whole, on every replica
   * alike (the outcome depends on the entry only). What passes, by shard in arrival order.
   */
  private checkIncoming(changes: IncomingChange[]): { byShard: Map<string, Held[]>; rejected: Rejected[] } {
    const rejected: Rejected[] = []
    const budgets = new Map<string, ChangeBudget>()
    const overLimit = new Map<string, string>()
    const ok: Held[] = []
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]
      if (!c || typeof c.shard !== 'string') throw new TreeError('EINVAL', '', `change ${i}: no shard name`)
      if (!(c.change instanceof Uint8Array)) throw new TreeError('EINVAL', '', `change ${i}: not bytes`)
      const badShard = shardProblem(i, c.shard)
      if (badShard !== null) {
        rejected.push({ shard: c.shard, tag: c.tag, reason: badShard })
        continue
      }
      const entry = c.tag ?? `#${i}`
      const over = overLimit.get(entry)
      if (over !== undefined) {
        rejected.push({ shard: c.shard, tag: c.tag, reason: over })
        continue
      }
      let budget = budgets.get(entry)
      if (!budget) budgets.set(entry, (budget = entryBudget()))
      const v = checkChange(i, c.shard, c.change, c.writer, budget)
      if (!('header' in v)) {
        if (v.overLimit) overLimit.set(entry, v.reason)
        rejected.push({ shard: c.shard, tag: c.tag, reason: v.reason })
        continue
      }
      const header = v.header
      ok.push({ shard: c.shard, change: header.chunk, hash: header.hash, deps: header.deps, objs: header.valueObjs, tag: c.tag, entry, ops: header.ops, writer: c.writer })
    }
    const byShard = new Map<string, Held[]>()
    for (const x of ok) {
      const over = overLimit.get(x.entry!)
      if (over !== undefined) {
        rejected.push({ shard: x.shard, tag: x.tag, reason: over })
        continue
      }
      delete x.entry
      let list = byShard.get(x.shard)
      if (!list) byShard.set(x.shard, (list = []))
      list.push(x)
    }
    return { byShard, rejected }
  }

  /** Headroom in Automerge's heap for applying `byShard` (wasm-heap.ts). */
  private reserveFor(byShard: Map<string, Held[]>): void {
    let bytes = 0
    for (const list of byShard.values()) for (const x of list) bytes += x.change.length
    const need = heapNeeded(bytes, this.shards.coldBytes(byShard.keys()))
    if (need !== null) reserveAutomergeHeap(need)
  }

  /** Applies checked changes, shard by shard, and re-reads the records they changed into the index. */
  private applyShards(byShard: Map<string, Held[]>, rejected: Rejected[]): void {
    this.flush()
    const changed = new Map<string, RawNode | null>()
    this.owners = new Map()
    // Shallow shards first: where two shards on a node's path hold its key, the shallowest counts.
    for (const shard of [...byShard.keys()].sort(byDepth)) this.applyShard(shard, byShard.get(shard)!, changed, rejected)
    this.owners = new Map()
    this.updateIndex(changed)
  }

  /** Local edits exist that are not yet taken as changes (takeChanges). */
  get dirty(): boolean { return this.unflushed.size > 0 || this.pending.length > 0 }

  /** Changes held for missing dependencies, by shard. */
  get heldCount(): number {
    let n = 0
    for (const l of this.held.values()) n += l.length
    return n
  }

  private applyShard(shard: string, incoming: Held[], changed: Map<string, RawNode | null>, rejected: Rejected[]): void {
    const isMeta = shard === META_SHARD
    const h = isMeta ? A.getBackend(this.shards.meta()) : this.shards.node(shard)
    const seen = new Set<string>()
    const all: Held[] = []
    for (const x of [...(this.held.get(shard) ?? []), ...incoming]) {
      if (!seen.has(x.hash)) {
        seen.add(x.hash)
        all.push(x)
      }
    }
    // A change built on a rejected one can never apply: it is rejected too (and reported),
    // on every replica alike, rather than held forever.
    for (let found = true; found;) {
      found = false
      for (let i = all.length - 1; i >= 0; i--) {
        const x = all[i]
        const bad = x.deps.find((d) => this.rejectedHashes.has(d))
        if (bad === undefined) continue
        this.rejectedHashes.add(x.hash)
        rejected.push({ shard, tag: x.tag, reason: `builds on change ${bad.slice(0, 8)}, which does not apply` })
        all.splice(i, 1)
        found = true
      }
    }
    const deps = [...new Set(all.flatMap((x) => x.deps))]
    const missing = new Set(deps.length > 0 ? h.getMissingDeps(deps) : [])
    // Closure: a change is ready when each dependency is in the document or ready before it.
    const ready = new Set<string>()
    let order: Held[] = []
    let rest = all
    for (let progress = true; progress;) {
      progress = false
      const next: Held[] = []
      for (const x of rest) {
        if (x.deps.every((d) => ready.has(d) || !missing.has(d))) {
          ready.add(x.hash)
          order.push(x)
          progress = true
        } else next.push(x)
      }
      rest = next
    }
    if (order.length === 0) {
      this.setHeld(shard, rest)
      return
    }
    const before = h.getHeads()
    // The incremental diff (from a cursor set just before applying) costs a fraction of
    // diff(before, after), which re-walks the document: it dominated merges of 10k changes.
    if (!isMeta && before.length > 0) h.updateDiffCursor()
    const touched = new Set<string>()
    const run = (list: Uint8Array[]): void => {
      if (!isMeta) h.applyChanges(list)
      else {
        const patchCallback = (patches: A.Patch[]): void => {
          for (const p of patches) if (typeof p.path[0] === 'string') touched.add(p.path[0])
        }
        this.shards.setMeta(A.applyChanges(this.shards.meta(), list, { patchCallback })[0])
      }
    }
    try {
      run(order.map((x) => x.change))
    } catch {
      // One bad change: apply one at a time to find it; what depends on it waits forever.
      const failed = new Set<string>()
      for (const x of order) {
        const bad = x.deps.find((d) => failed.has(d))
        if (bad !== undefined) {
          failed.add(x.hash)
          rejected.push({ shard, tag: x.tag, reason: `builds on change ${bad.slice(0, 8)}, which does not apply` })
          continue
        }
        try {
          run([x.change])
        } catch (e) {
          failed.add(x.hash)
          rejected.push({ shard, tag: x.tag, reason: (e as Error).message })
        }
      }
      for (const x of failed) this.rejectedHashes.add(x)
      order = order.filter((x) => !failed.has(x.hash))
    }
    this.setHeld(shard, rest)
    if (isMeta) {
      if ([...touched].some(isRootAttrKey)) this.readRootAttrs()
      return
    }
    const after = h.getHeads()
    if (sameHeads(before, after)) return
    if (before.length === 0) {
      // A shard seen for the first time: read it whole with one materialize call.
      const whole = h.materialize('_root') as Record<string, unknown>
      for (const id of Object.keys(whole)) if (!this.foreign(shard, id)) changed.set(id, this.readNode(h, shard, id, whole[id]))
      return
    }
    const patches = new Map<string, A.Patch[]>()
    for (const p of h.diffIncremental()) {
      const id = p.path[0]
      if (typeof id !== 'string') continue
      let list = patches.get(id)
      if (!list) patches.set(id, (list = []))
      list.push(p)
    }
    // Automerge emits no patch when a further losing value joins an already conflicted key:
    // records with concurrent values are read whole after every apply.
    // Only those an applied change wrote a value on (conflicted.ts); patched ones are read whole below.
    const multi = this.multi.get(shard) ?? new Set<string>()
    for (const id of conflictedTouched(h, multi, new Set(order.flatMap((x) => x.objs)))) {
      const o = this.owners.get(id)
      if ((o === undefined || o === shard) && !patches.has(id)) changed.set(id, this.readNode(h, shard, id))
    }
    for (const [id, list] of patches) {
      if (multi.has(id)) {
        const o = this.owners.get(id)
        if (o === undefined || o === shard) changed.set(id, this.readNode(h, shard, id))
        continue
      }
      if (this.foreign(shard, id)) continue
      // The record as decoded from this shard before (not from another shard on its path).
      const old = changed.has(id) ? undefined : this.index.node(id)
      const p = patchRecord(old && homeOf(old) === shard ? old : undefined, list)
      changed.set(id, p ? this.readNode(h, shard, id, p.winners, p.conflicted) : this.readNode(h, shard, id))
    }
  }

  private setHeld(shard: string, list: Held[]): void {
    if (list.length > 0) this.held.set(shard, list)
    else this.held.delete(shard)
  }

  /** The index of a restored tree, from the checkpoint's nodes (an empty index only). */
  private loadIndex(nodes: RawNode[]): void {
    for (const r of nodes) {
      this.counts.set(homeOf(r), (this.counts.get(homeOf(r)) ?? 0) + 1)
      if (r.versions.length > 1 || r.tombs.length > 1) {
        const shard = homeOf(r)
        let set = this.multi.get(shard)
        if (!set) this.multi.set(shard, (set = new Set()))
        set.add(r.id)
      }
    }
    this.index.load(nodes)
  }

  private updateIndex(changed: Map<string, RawNode | null>): void {
    for (const [id, r] of changed) {
      const old = this.index.node(id)
      if (r && (!old || homeOf(old) !== homeOf(r))) this.counts.set(homeOf(r), (this.counts.get(homeOf(r)) ?? 0) + 1)
      if (old && (!r || homeOf(old) !== homeOf(r))) this.multi.get(homeOf(old))?.delete(id)
      if (!r) continue
      const shard = homeOf(r)
      let set = this.multi.get(shard)
      if (r.versions.length > 1 || r.tombs.length > 1 || this.attrConflicted.has(id)) {
        if (!set) this.multi.set(shard, (set = new Set()))
        set.add(id)
      } else if (set) set.delete(id)
    }
    if (changed.size > 0) this.index.update(changed)
  }

  /**
   * Turns buffered local edits into Automerge changes (one per shard, or one per
   * EDITS_PER_CHANGE edits of a shard), queued for takeChanges: each change stays well inside
   * one entry's limits (CHANGE_LIMITS), so entryGroups can always place it.
   */
  private flush(): void {
    // Bulk local writes (an import) grow Automerge's heap ~1 KiB per record: reserved first,
    // as the apply path does, so the growth costs no GC per 64 KiB grow (wasm-heap.ts).
    let count = 0
    for (const edits of this.unflushed.values()) count += edits.length
    if (count >= BULK_EDITS) reserveAutomergeHeap(count * HEAP_PER_EDIT)
    for (const [shard, edits] of this.unflushed) {
      const h = this.shards.node(shard)
      // A shard with no changes yet (a new one, as an import fills shards) takes its first
      // creations in one call: a fraction of Automerge's cost per record.
      const bulk = createInto(h, edits)
      if (bulk > 0) {
        h.commit(null, null)
        const change = h.getLastLocalChange()
        if (change) this.pending.push({ shard, change })
      }
      for (let at = bulk; at < edits.length;) {
        // At most EDITS_PER_CHANGE edits, and fewer when some carry big values (xattrs).
        for (let n = 0, bytes = 0; at < edits.length && n < EDITS_PER_CHANGE; n++, at++) {
          bytes += edits[at].bytes ?? EDIT_BYTES
          if (n > 0 && bytes > EDITS_PER_CHANGE * EDIT_BYTES) break
          edits[at](h)
        }
        h.commit(null, null)
        const change = h.getLastLocalChange()
        if (change) this.pending.push({ shard, change })
      }
    }
    const rootTime = this.dirTimes.root
    if (rootTime !== null) this.changeMeta((m) => { m[ROOT_MTIME_KEY] = rootTime })
    this.unflushed.clear()
    this.foldable.clear()
    this.xattrEdits.clear()
    this.dirTimes.clear()
  }

  /**
   * The shards local edits went into since the last call: the changes an operation's edits
   * end up in are those of these shards (a flush that must drop a change drops the operations
   * that touched its shard, and the changes of every shard those touched).
   */
  takeTouched(): Set<string> {
    const t = this.touched
    this.touched = new Set()
    return t
  }

  /** The changes made locally since the last call, in the order made: one log entry carries them. */
  takeChanges(): ShardChange[] {
    this.flush()
    const out = this.pending
    this.pending = []
    return out
  }

  heads(): Record<string, string[]> {
    this.flush()
    return this.shards.heads()
  }

  /** Records that could not be decoded (ignored by the view). */
  problems(): Problem[] { return [...this.problemsById.values()] }

  free(): void {
    this.unflushed.clear()
    this.foldable.clear()
    this.xattrEdits.clear()
    this.shards.free()
    this.snapshotTrees.clear()
    this.held.clear()
    this.rejectedHashes.clear()
  }

  // ---- checkpoints and memory ------------------------------------------------------------

  /**
   * Everything needed to continue from this state without the logs: saved shards, the decoded
   * records the index is built from, held changes. Local edits are flushed first (so take
   * the changes and log them before checkpointing what they cover).
   */
  exportState(): TreeState {
    this.flush()
    const shards = new Map<string, { bytes: Uint8Array; heads: string[] }>()
    for (const name of this.shards.names()) shards.set(name, this.shards.save(name))
    const held: TreeState['held'] = []
    for (const list of this.held.values()) for (const x of list) held.push({ shard: x.shard, change: x.change, tag: x.tag })
    return { shards, meta: this.shards.saveMeta(), nodes: [...this.index.nodes()], problems: this.problems(), held, rejected: [...this.rejectedHashes] }
  }

  /** A new tree with saved shards (cold), problems, rejected and held changes in place: what restore and open share. */
  private static resume(actor: string, shards: Map<string, { bytes: Uint8Array; heads: string[]; size?: number }>,
    saved: Pick<TreeState, 'meta' | 'problems' | 'rejected' | 'held'> & { metaHeads?: string[] }, opts: TreeOptions): Tree {
    const t = Tree.create(actor, opts)
    t.shards.restore(shards, saved.meta, saved.metaHeads)
    for (const p of saved.problems) t.problemsById.set(`${p.shard}/${p.id}`, p)
    for (const x of saved.rejected) t.rejectedHashes.add(x)
    for (const x of saved.held) {
      const hd = readChangeHeader(x.change)
      let list = t.held.get(x.shard)
      if (!list) t.held.set(x.shard, (list = []))
      list.push({ shard: x.shard, change: hd.chunk, hash: hd.hash, deps: hd.deps, objs: hd.valueObjs, tag: x.tag })
    }
    return t
  }

  /** A tree continuing from `exportState()`: shards stay unloaded until written or merged into. */
  static restore(actor: string, state: TreeState, opts: TreeOptions = {}): Tree {
    const t = Tree.resume(actor, state.shards, state, opts)
    t.loadIndex(state.nodes)
    t.readRootAttrs()
    return t
  }

  // ---- the on-disk index (index-store.ts) -----------------------------------------------

  /** The derived index (for index-store.ts: its entries changed since its base). */
  get view(): TreeIndex { return this.index }

  /** What the on-disk index saves beside the entries; local edits are flushed first. */
  parts(): TreeParts {
    this.flush()
    const held: TreeParts['held'] = []
    for (const list of this.held.values()) for (const x of list) held.push({ shard: x.shard, change: x.change, tag: x.tag })
    const multi: [string, string][] = []
    for (const [shard, set] of this.multi) for (const id of set) multi.push([shard, id])
    const shards = this.shards
    return {
      // Saved only when asked for (a commit appends `meta`'s changes to its previous save instead).
      get meta() { return shards.saveMeta() },
      problems: this.problems(), held, rejected: [...this.rejectedHashes], multi, counts: [...this.counts], memo: this.index.memo(),
      metaHeads: this.shards.metaHeads(), root: this.shards.metaUnread && this.rootKeys ? this.rootKeys : rootAttrKeys(this.shards.meta()),
    }
  }

  /** The changes of `meta` not covered by `heads`, as change chunks to append to a save at `heads` (null: `meta` lacks some of them). */
  metaSince(heads: string[]): Uint8Array | null {
    this.flush()
    return this.shards.metaSince(heads)
  }

  /** Heads of every node shard with a document (hot or cold), without loading any. */
  shardHeads(): Map<string, string[]> {
    this.flush()
    const out = new Map<string, string[]>()
    const all = this.shards.heads()
    for (const name of this.shards.names()) out.set(name, all[name] ?? [])
    return out
  }

  /** Saved bytes of one node shard (a cold one's as restored or evicted). */
  shardBytes(name: string): Uint8Array { return this.shards.save(name).bytes }

  /** The changes of node shard `name` not covered by `heads`, as change chunks to append to a save at `heads` (null: it lacks some of them, they exceed `max` bytes, or it is cold at other heads). */
  shardSince(name: string, heads: string[], max: number): Uint8Array | null {
    this.flush()
    return this.shards.since(name, heads, max)
  }

  /**
   * A tree continuing from an on-disk index: its entries are read on demand from `base`,
   * shards start cold (their bytes read when first loaded).
   */
  static open(actor: string, base: IndexBase, shards: Map<string, { bytes: Uint8Array; heads: string[]; size?: number }>, parts: TreeParts, opts: TreeOptions = {}): Tree {
    const t = Tree.resume(actor, shards, parts, opts)
    for (const [shard, id] of parts.multi) {
      let set = t.multi.get(shard)
      if (!set) t.multi.set(shard, (set = new Set()))
      set.add(id)
    }
    for (const [shard, n] of parts.counts) t.counts.set(shard, n)
    t.index = new TreeIndex({ base, memo: parts.memo })
    if (parts.root && parts.metaHeads) {
      t.rootKeys = parts.root
      readRootAttrs(parts.root, t.index)
    } else t.readRootAttrs()
    return t
  }

  /**
   * A tree from saved shard documents that are not trusted (a state a joiner starts from,
   * spec/tree.md "Starting from a state"): each must load (Automerge checks that a saved
   * document's changes hash to its heads) to exactly the heads given, which the caller took
   * from the signed logs (state-check.ts), else StateMismatchError naming the shard. Shards are
   * loaded, checked and read on worker threads (saved-shard.ts, state-load-pool.ts), a window
   * ahead of the one taken in. The index is built from every record read once, shallow shards
   * first, in slices of about SLICE_MS
   * between which the event loop runs. `fill.onTree` gets the tree before the first shard: a
   * shard is put in it only once checked and its records are in the index at the end of its
   * slice, so a reader (the mount) sees the tree fill with checked records while it loads. On
   * a mismatch the tree is freed: the caller takes back what it handed out.
   */
  static async fromSaved(actor: string, shards: Map<string, { bytes: Uint8Array; heads: string[] }>, meta: { bytes: Uint8Array; heads: string[] } | null,
    held: { shard: string; change: Uint8Array; tag?: string }[], opts: TreeOptions = {}, fill: JoinFill = {}): Promise<Tree> {
    const t = Tree.resume(actor, new Map(), { meta: null, problems: [], rejected: [], held }, opts)
    let readers: SavedShardReaders | null = null
    try {
      if (meta) {
        let doc
        try {
          doc = A.load<MetaDoc>(meta.bytes, { actor })
        } catch (e) {
          throw new StateMismatchError(`shard meta does not load: ${(e as Error).message}`)
        }
        t.shards.setMeta(doc)
        if (!sameHeads([...A.getHeads(doc)].sort(), [...meta.heads].sort())) throw new StateMismatchError('shard meta is not at the heads its logs give')
      }
      t.readRootAttrs()
      fill.onTree?.(t)
      let changed = new Map<string, RawNode | null>()
      let done = 0
      let sliceStart = performance.now()
      const order = [...shards.keys()].sort((a, b) => a.length - b.length || cmp(a, b))
      // Loaded, checked and read on worker threads (saved-shard.ts), a window of shards ahead;
      // taken in here in order, shallowest first (the shallowest record of a node counts).
      readers = new SavedShardReaders(actor, fill.workers ?? defaultLoadWorkers())
      const window = readers.threaded ? LOAD_WINDOW : 1
      // Every record reaches the index through foreign(), which names its owner.
      t.ownersAll = true
      const reads: (Promise<SavedShardRead> | undefined)[] = []
      let asked = 0
      for (const [i, name] of order.entries()) {
        while (asked < order.length && asked < i + window) {
          const s = shards.get(order[asked]!)!
          const p = readers.read(order[asked]!, s.bytes, s.heads)
          // Its failure is seen when its turn comes (not before a shallower shard's).
          p.catch(() => {})
          reads[asked++] = p
        }
        const r = await reads[i]!
        reads[i] = undefined
        if ('mismatch' in r) throw new StateMismatchError(r.mismatch)
        // Read only: its saved bytes are what the tree keeps (nothing to save).
        t.shards.restore(new Map([[name, shards.get(name)!]]), null)
        for (const [id, node, reason, attrConflict] of r.records) if (!t.foreign(name, id)) changed.set(id, t.recordRead(name, id, node, reason, attrConflict))
        done++
        if (performance.now() - sliceStart >= (fill.sliceMs ?? SLICE_MS) || done === shards.size) {
          t.updateIndex(changed)
          changed = new Map()
          await fill.onShard?.(done)
          await new Promise((resolve) => setImmediate(resolve))
          sliceStart = performance.now()
        }
      }
      t.updateIndex(changed)
      t.owners = new Map()
      t.ownersAll = false
      t.readRootAttrs()
      return t
    } catch (e) {
      t.free()
      throw e
    } finally {
      await readers?.close()
    }
  }

  /**
   * Saves and frees the Automerge documents of shards, keeping the `keep` most recently used
   * and those used in the last `idleMs`. Returns how many were freed.
   */
  evict(keep = 0, idleMs = 0): number {
    this.flush()
    return this.shards.evict(keep, idleMs)
  }

  /** Shards loaded as Automerge documents now, and loads from saved bytes so far. */
  get shardStats(): { hot: number; total: number; loads: number; metaLoads: number } {
    return { hot: this.shards.hotCount, total: this.shards.names().length, loads: this.shards.loads, metaLoads: this.shards.metaLoads }
  }

  /**
   * Whether `id` (a key of `shard`'s root map) is not the record that counts for a node: a key
   * that is not a node id on the shard's path (the shard's name is not a prefix of it), or one
   * that a shallower shard on the id's path also holds (the shallowest counts: spec/tree.md
   * "Shard layout"). Such a key is listed as a problem and never reaches the index, so a record
   * put in another shard can neither hide nor replace the node of that id. Shards are applied
   * shallow first within a batch; a shallower key arriving later takes over from a deeper one.
   */
  private foreign(shard: string, id: string): boolean {
    if (!onPath(shard, id)) {
      this.problemsById.set(`${shard}/${id}`, { shard, id, reason: 'key is not a node id of this shard (ignored)' })
      return true
    }
    const owner = this.ownerOf(id)
    if (owner !== undefined && owner.length < shard.length) {
      this.problemsById.set(`${shard}/${id}`, { shard, id, reason: `shadowed: shard ${owner} holds this node's record (ignored)` })
      return true
    }
    if (owner !== undefined && owner.length > shard.length) {
      this.problemsById.set(`${owner}/${id}`, { shard: owner, id, reason: `shadowed: shard ${shard} holds this node's record (ignored)` })
    }
    this.owners.set(id, shard)
    return false
  }

  /** The shard whose key counts for node `id` so far: this batch's, the index's, or a shallow one whose record does not decode. */
  private ownerOf(id: string): string | undefined {
    const now = this.owners.get(id)
    if (now !== undefined || this.ownersAll) return now
    const n = this.index.node(id)
    if (n) return homeOf(n)
    for (let len = 2; len <= MAX_SHARD_DIGITS; len++) {
      const p = this.problemsById.get(`${id.slice(0, len)}/${id}`)
      if (p && !p.reason.startsWith('shadowed')) return p.shard
    }
    return undefined
  }

  private readNode(h: Handle, shard: string, id: string, materialized?: unknown, conflicted?: ReadonlySet<string>): RawNode | null {
    let n: RawNode
    let obj: string | null = null
    try {
      if (materialized === undefined) {
        // Materialized here rather than in readRecord: recordAttrConflicted reads the record's keys from it.
        const top = h.getWithType('_root', id)
        if (top && top[0] === 'map') materialized = h.materialize((obj = top[1] as string))
      }
      n = readRecord(h, id, undefined, materialized, conflicted)
      if (CHECK_PATCHED && conflicted) {
        const full = JSON.stringify(readRecord(h, id))
        if (JSON.stringify(n) !== full) throw new Error(`patched record ${id} differs from the document: ${JSON.stringify(n)} != ${full}`)
      }
    } catch (e) {
      return this.recordRead(shard, id, null, (e as Error).message)
    }
    return this.recordRead(shard, id, n, null, recordAttrConflicted(h, id, obj, materialized as Record<string, unknown>, conflicted))
  }

  /**
   * A record of `shard` as read (readRecord's result, or why it did not decode): its problem set
   * or cleared; `attrConflict`: it holds several values of an owner or attribute key (kept in
   * `multi`, listed by attrConflicts).
   */
  private recordRead(shard: string, id: string, n: RawNode | null, reason: string | null, attrConflict = false): RawNode | null {
    const key = `${shard}/${id}`
    if (attrConflict && n !== null) this.attrConflicted.add(id)
    else this.attrConflicted.delete(id)
    if (n === null) {
      this.problemsById.set(key, { shard, id, reason: reason ?? 'record does not decode' })
      return null
    }
    if (shard !== shardOf(id)) n.shard = shard
    this.problemsById.delete(key)
    return n
  }

  private readRootAttrs(): void {
    readRootAttrs(this.shards.meta(), this.index)
    // An entry changed in the root since the last flush: its mtime is written at the flush.
    if (this.dirTimes.root !== null) this.index.rootTimes = { ...this.index.rootTimes, mtime: this.dirTimes.root }
  }

  // ---- reads ---------------------------------------------------------------------------

  lookup(path: string): Stat | null { return this.index.lookup(path) }
  stat(path: string): Stat { return this.index.stat(path) }
  readdir(path: string): Stat[] { return this.index.readdir(path) }
  walk(path?: string): Iterable<Stat> { return this.index.walk(path) }
  statId(id: string): Stat | null { return this.index.statId(id) }
  conflicts(): ContentConflict[] { return this.index.conflicts() }
  /** Every current content version of the file or conflict copy at `path`: the winner first. */
  versions(path: string): Version[] {
    const e = this.index.resolve(splitPath(path), path)
    return [...(this.index.node(nodeIdOf(e.id))?.versions ?? [])]
  }
  /** Nodes shown away from their loc by cycle breaking now. */
  get brokenCount(): number { return this.index.brokenNodes().length }
  /** Violated invariants of the current view (empty when all hold): see TreeIndex.audit. */
  audit(): string[] { return this.index.audit() }

  // ---- local operations ----------------------------------------------------------------

  mkdir(path: string, attrs: Attrs = {}): Stat {
    const { parent, name } = this.freshName(path)
    return this.create(parent, name, 'dir', attrs, path, {})
  }

  /** Creates the file or records a new version of it. */
  writeFile(path: string, content: ContentRef, attrs: Attrs = {}): Stat {
    checkContent(content, path)
    const names = splitPath(path)
    if (names.length === 0) throw new TreeError('EISDIR', path)
    const parent = this.index.resolveParent(names, path)
    const name = names[names.length - 1]
    const e = this.index.entryOf(parent, name)
    const now = this.clock()
    const version = { hash: content.hash, size: content.size, writer: this.actor, time: now, ver: this.random(8) }
    if (!e) return this.create(parent, name, 'file', attrs, path, { version })
    this.writable(e, path)
    const kind = this.index.kindOf(e)
    if (kind === 'dir') throw new TreeError('EISDIR', path)
    if (kind !== 'file') throw new TreeError('EINVAL', path, `is a ${kind}`)
    const mode = checkMode(attrs.mode, path)
    const mtime = checkTime(attrs.mtime, path) ?? now
    const text = encodeVersion(version)
    const old = this.index.node(nodeIdOf(e.id))!
    this.edit([[{ ...old, versions: [decodeVersion(text)], mtime, mode: mode ?? old.mode }, (h, obj) => {
      h.put(obj, 'content', text, 'str')
      putTime(h, obj, 'mtime', mtime)
      if (mode !== undefined) h.put(obj, 'mode', mode, 'int')
    }]])
    return this.index.statId(e.id)!
  }

  /**
   * writeFile of many files (an import's batch): the new ones enter the index in one edit, not
   * one each; when half a shard or more of them go into one directory, they pass over a
   * top-level shard that holds changes (placeOf; spec/tree.md "Bulk creation"). Stops at the first file that fails, with the files before it written; returns
   * their stats and that error.
   */
  writeFiles(files: readonly { path: string; content: ContentRef; attrs?: Attrs }[]): { stats: Stat[]; error: Error | null } {
    const stats: Stat[] = []
    let fresh: RawNode[] = []
    const names = new Set<string>()
    // Directories that get half a shard or more of new files from this batch (bulk placement).
    const perDir = new Map<string, number>()
    for (const f of files) {
      const slash = f.path.lastIndexOf('/')
      const dir = f.path.slice(0, Math.max(slash, 0))
      perDir.set(dir, (perDir.get(dir) ?? 0) + 1)
    }
    const bulk = (path: string): boolean => (perDir.get(path.slice(0, Math.max(path.lastIndexOf('/'), 0))) ?? 0) >= this.splitAt / 2
    const apply = (): void => {
      if (fresh.length === 0) return
      this.edit(fresh.map((raw) => [raw, null]))
      // The time of the batch's last new entry: what writeFile one file after another leaves.
      this.touchDirs(fresh.map((raw) => raw.loc.parent), fresh[fresh.length - 1]!.loc.time)
      this.placing.clear()
      for (const raw of fresh) stats.push(this.index.statId(raw.id)!)
      fresh = []
      names.clear()
    }
    try {
      for (const f of files) {
        checkContent(f.content, f.path)
        const parts = splitPath(f.path)
        const parent = parts.length === 0 ? null : this.index.resolveParent(parts, f.path)
        const name = parts[parts.length - 1]
        const key = `${parent}/${name}`
        if (parent === null || names.has(key) || this.index.entryOf(parent, name!)) {
          // A new version, or a path twice in the batch: the one-file path, after what came before.
          apply()
          stats.push(this.writeFile(f.path, f.content, f.attrs))
          continue
        }
        const version = { hash: f.content.hash, size: f.content.size, writer: this.actor, time: this.clock(), ver: this.random(8) }
        const raw = this.newNode(parent, name!, 'file', f.attrs ?? {}, f.path, { version, bulk: bulk(f.path) })
        const shard = homeOf(raw)
        this.placing.set(shard, (this.placing.get(shard) ?? 0) + 1)
        fresh.push(raw)
        names.add(key)
      }
    } catch (err) {
      apply()
      return { stats, error: err as Error }
    }
    apply()
    return { stats, error: null }
  }

  symlink(path: string, target: string, attrs: Attrs = {}): Stat {
    if (typeof target !== 'string' || target === '' || target.includes('\0') || Buffer.byteLength(target) > MAX_TARGET_BYTES || !isWellFormed(target))
      throw new TreeError('EINVAL', path, `symlink target must be 1..${MAX_TARGET_BYTES} bytes of well-formed Unicode without NUL`)
    const { parent, name } = this.freshName(path)
    return this.create(parent, name, 'symlink', { mtime: attrs.mtime, uid: attrs.uid, gid: attrs.gid }, path, { target })
  }

  /** Creates a special file (special.ts): a fifo, socket or device (`rdev`: its number; 0 for the others). */
  mknod(path: string, kind: SpecialKind, rdev: number, attrs: Attrs = {}): Stat {
    if (!isSpecialKind(kind)) throw new TreeError('EINVAL', path, `not a special kind: ${String(kind)}`)
    if (!isRdev(rdev)) throw new TreeError('EINVAL', path, `bad device number ${rdev}`)
    const { parent, name } = this.freshName(path)
    return this.create(parent, name, kind, attrs, path, isDevice(kind) ? { rdev } : {})
  }

  rename(from: string, to: string): void {
    const fromNames = splitPath(from)
    const toNames = splitPath(to)
    if (fromNames.length === 0) throw new TreeError('EINVAL', from, 'cannot rename the root')
    if (toNames.length === 0) throw new TreeError('EINVAL', to, 'cannot replace the root')
    const src = this.index.resolve(fromNames, from)
    this.writable(src, from)
    const dstParent = this.index.resolveParent(toNames, to)
    const name = toNames[toNames.length - 1]
    const kind = this.index.kindOf(src)
    if (kind === 'dir') {
      for (let n: string | undefined = dstParent; n !== undefined && n !== ROOT_ID; n = this.index.effectiveParent(n)) {
        if (n === src.id) throw new TreeError('EINVAL', to, `cannot move ${from} into itself`)
      }
    }
    const dst = this.index.entryOf(dstParent, name)
    const edits: Edit[] = []
    if (dst) {
      // Onto itself, or onto another name of the same node (hard links): nothing to do (POSIX).
      if (nodeIdOf(dst.id) === nodeIdOf(src.id) && !dst.ver) return
      this.writable(dst, to)
      const dstKind = this.index.kindOf(dst)
      if (kind === 'dir' && dstKind !== 'dir') throw new TreeError('ENOTDIR', to)
      if (kind !== 'dir' && dstKind === 'dir') throw new TreeError('EISDIR', to)
      if (dstKind === 'dir' && this.index.hasChildren(dst.id)) throw new TreeError('ENOTEMPTY', to)
      edits.push(this.removeEdit(dst.id))
    }
    const prev = { parent: this.index.effectiveParent(src.id)!, name: this.index.effectiveName(src.id)! }
    const now = this.clock()
    const loc = encodeLoc({ parent: dstParent, name, writer: this.actor, time: now, prev })
    // Placements made by cycle breaking become real locs, so later moves don't resurrect the undone move.
    for (const b of this.index.brokenNodes()) {
      if (b === src.id || isNameEntry(b) || edits.some((e) => e[0].id === b)) continue
      const place = { parent: this.index.effectiveParent(b)!, name: this.index.effectiveName(b)! }
      const old = this.index.node(b)!
      const text = encodeLoc({ ...place, writer: this.actor, time: this.clock(), prev: old.loc.prev })
      edits.push([{ ...old, loc: decodeLoc(text) }, (h, obj) => h.put(obj, 'loc', text, 'str')])
    }
    // The name moved: the record's `loc`, or a further name's `ln.<lid>` (hard links).
    const nid = nameIdOf(src.id)
    edits.push([withLoc(this.index.node(nodeIdOf(src.id))!, nid, decodeLoc(loc)), (h, obj) => h.put(obj, nameKey(nid), loc, 'str')])
    this.edit(edits)
    this.touchDirs([prev.parent, dstParent], now)
  }

  /** Removes a file or symlink. On a conflict copy: settles the conflict, keeping the current version. */
  unlink(path: string): void {
    const names = splitPath(path)
    if (names.length === 0) throw new TreeError('EISDIR', path)
    const e = this.index.resolve(names, path)
    if (e.ver) {
      // The winning version again (same ver), now written by this writer: a value names its writer.
      const node = this.index.node(nodeIdOf(e.id))!
      const winner = { ...node.versions[0], writer: this.actor }
      const text = encodeVersion(winner)
      this.edit([[{ ...node, versions: [winner] }, (h, obj) => h.put(obj, 'content', text, 'str')]])
      return
    }
    if (this.index.kindOf(e) === 'dir') throw new TreeError('EISDIR', path)
    const parent = this.index.effectiveParent(e.id)!
    this.edit([this.removeEdit(e.id)])
    this.touchDirs([parent])
  }

  /**
   * A new name for the file or symlink at `from` (a hard link, spec/tree.md "Hard links"):
   * EPERM for a directory or a conflict copy, EEXIST if `to` exists.
   */
  link(from: string, to: string): Stat {
    const src = this.index.resolve(splitPath(from), from)
    if (src.ver) throw new TreeError('EPERM', from, 'conflict copies are read-only (unlink settles the conflict)')
    if (this.index.kindOf(src) === 'dir') throw new TreeError('EPERM', from, 'cannot make a hard link to a directory')
    const { parent, name } = this.freshName(to)
    const node = this.index.node(nodeIdOf(src.id))!
    const lid = this.random(8)
    const now = this.clock()
    const text = encodeLoc({ parent, name, writer: this.actor, time: now, prev: null })
    this.edit([[withName(node, { lid, loc: decodeLoc(text), gone: null }), (h, obj) => h.put(obj, NAME_PREFIX + lid, text, 'str')]])
    this.touchDirs([parent], now)
    return this.index.statId(entryId(node.id, lid))!
  }

  rmdir(path: string): void {
    const names = splitPath(path)
    if (names.length === 0) throw new TreeError('EPERM', path, 'cannot remove the root')
    const e = this.index.resolve(names, path)
    if (this.index.kindOf(e) !== 'dir') throw new TreeError('ENOTDIR', path)
    if (this.index.hasChildren(e.id)) throw new TreeError('ENOTEMPTY', path)
    const parent = this.index.effectiveParent(e.id)!
    this.edit([this.tombEdit(e.id)])
    this.touchDirs([parent])
  }

  setattr(path: string, attrs: Attrs): Stat {
    const names = splitPath(path)
    const mode = checkMode(attrs.mode, path)
    const mtime = checkTime(attrs.mtime, path)
    const atime = checkTime(attrs.atime, path)
    const uid = checkOwner(attrs.uid, (msg) => new TreeError('EINVAL', path, msg))
    const gid = checkOwner(attrs.gid, (msg) => new TreeError('EINVAL', path, msg))
    // A metadata-only change sets ctime (times.ts); a change of nothing changes nothing.
    const ctime = this.clock()
    if (names.length === 0) {
      if (mode === undefined && mtime === undefined && atime === undefined && uid === undefined && gid === undefined) return this.index.stat('/')
      if (mtime !== undefined) this.dirTimes.root = null
      this.changeMeta((m) => {
        if (mode !== undefined) m[ROOT_MODE_KEY] = mode
        if (uid !== undefined) m[ROOT_UID_KEY] = uid
        if (gid !== undefined) m[ROOT_GID_KEY] = gid
        if (mtime !== undefined) m[ROOT_MTIME_KEY] = mtime
        if (atime !== undefined) m[ROOT_ATIME_KEY] = atime
        m[ROOT_CTIME_KEY] = ctime
      })
      this.readRootAttrs()
      return this.index.stat('/')
    }
    const e = this.index.resolve(names, path)
    this.writable(e, path)
    if (mode === undefined && mtime === undefined && atime === undefined && uid === undefined && gid === undefined) return this.index.statId(e.id)!
    const old = this.index.node(nodeIdOf(e.id))!
    const next: RawNode = { ...old, mode: mode ?? old.mode, mtime: mtime ?? old.mtime, atime: atime ?? old.atime, ctime }
    setOwners(next, uid, gid)
    this.edit([[next, (h, obj) => {
      if (mode !== undefined) h.put(obj, 'mode', mode, 'int')
      if (uid !== undefined) h.put(obj, 'uid', uid, 'int')
      if (gid !== undefined) h.put(obj, 'gid', gid, 'int')
      if (mtime !== undefined) putTime(h, obj, 'mtime', mtime)
      if (atime !== undefined) putTime(h, obj, 'atime', atime)
      putTime(h, obj, 'ctime', ctime)
    }]])
    return this.index.statId(e.id)!
  }

  /**
   * Records that the node at `path` was read at `atime`: the `atime` key alone, without ctime
   * (an access is not a metadata change; spec/tree.md "Times"). For mounts with `--atime`.
   */
  touchAtime(path: string, atime: number): Stat {
    const t = checkTime(atime, path)!
    const names = splitPath(path)
    if (names.length === 0) {
      this.changeMeta((m) => { m[ROOT_ATIME_KEY] = t })
      this.readRootAttrs()
      return this.index.stat('/')
    }
    const e = this.index.resolve(names, path)
    this.writable(e, path)
    const old = this.index.node(nodeIdOf(e.id))!
    this.edit([[{ ...old, atime: t }, (h, obj) => putTime(h, obj, 'atime', t)]])
    return this.index.statId(e.id)!
  }

  // ---- extended attributes (tree-xattrs.ts; spec/tree.md "Extended attributes") ---------

  /** Every extended attribute of the node at `path` (or of a snapshot's node), sorted by name. */
  xattrs(path: string, snapshot?: string): ReadonlyMap<string, Buffer> { return this.xattrOps.list(path, snapshot) }

  /** Sets attribute `name` of the node at `path` (flags: XATTR_CREATE, XATTR_REPLACE); sets ctime. */
  setxattr(path: string, name: string, value: Uint8Array, flags = 0): Stat {
    return this.xattrOps.change(path, name, flags, Buffer.from(value))
  }

  /** Removes attribute `name` of the node at `path` (ENODATA when it has none of that name); sets ctime. */
  removexattr(path: string, name: string): Stat { return this.xattrOps.change(path, name, 0, null) }

  /** Names of the node's attributes set concurrently by several writers (every replica shows the same winner). */
  conflictedXattrs(path: string): string[] { return this.xattrOps.conflicted(path) }

  // ---- conflicts (tree-conflicts.ts) ----------------------------------------------------

  /** Owners and extended attributes set concurrently by several writers, sorted by path then attribute. */
  attrConflicts(): AttrConflict[] { return this.conflictOps.attrConflicts() }

  /** Settles the conflict of owner or attribute `attribute` at `path`, keeping the value `writer` set. */
  resolveAttr(path: string, attribute: string, writer: string): Stat { return this.conflictOps.resolveAttr(path, attribute, writer) }

  /** Settles the content conflict of the file at `path`; `keep`: mine, theirs, both or a version's hash. */
  resolve(path: string, keep: string): { kept: Stat; created: Stat[] } { return this.conflictOps.resolve(path, keep) }

  // ---- snapshots (tree-snapshots.ts) ----------------------------------------------------

  snapshot(name: string, time?: number): void { this.snaps.snapshot(name, time) }

  /** Removes a snapshot: its value becomes a removal record (heads null); what only it referenced becomes garbage (spec/gc.md). */
  removeSnapshot(name: string, time?: number): void { this.snaps.remove(name, time) }

  snapshots(): SnapshotInfo[] { return this.snaps.list() }

  /** A read-only view of the tree as it was when the snapshot was taken. */
  at(name: string): ReadTree { return this.snaps.at(name) }

  /** The root's attributes in `meta` at `heads` (a snapshot's: what its saved view shows for the root). */
  rootAttrsAt(heads: string[]): Record<string, unknown> { return this.snaps.rootAttrsAt(heads) }

  /**
   * Where at() finds the saved view of a snapshot instead of building it, and the state of the
   * index on disk (to derive a view from). Called by every commit (index-store.ts).
   */
  setSavedSnapshots(saved: SavedSnapshots, state?: IndexState): void { this.snaps.setSaved(saved, state) }

  /** The records that differ between the node shards at `from` and the heads `to`, read at `to` (snapshot-views.ts); null if changes are missing. */
  recordsBetween(from: ReadonlyMap<string, string[]>, to: Readonly<Record<string, string[]>>): Map<string, RawNode | null> | null {
    return recordsBetween(this.shards, from, to)
  }

  /** Every snapshot not removed: its record text and the heads it names. */
  snapshotRecords(): { text: string; heads: Record<string, string[]> }[] { return this.snaps.records() }

  /** Every snapshot not removed, its heads read only when asked for (null: they do not decode). */
  snapshotTexts(): { name: string; time: number; text: string; heads: () => Record<string, string[]> | null }[] { return this.snaps.texts() }

  // ---- volume settings (in `meta`) ------------------------------------------------------

  /** Whether `meta` (snapshots, volume settings) is as restored from the index and not read since. */
  get metaUnread(): boolean { return this.shards.metaUnread }

  /** The volume's snapshot retention rule as stored (`meta` key `snap-retention`, a string; src/retention.ts decodes it), or null. */
  retentionText(): string | null {
    return strOf(this.shards.meta()[RETENTION_KEY])
  }

  /** Sets the retention rule (encoded by src/retention.ts; concurrent sets: the Automerge winner counts). */
  setRetentionText(text: string): void {
    this.changeMeta((m) => { m[RETENTION_KEY] = imm(text) })
  }

  /** The volume's copy rule (`meta` key `placement.copies`): null if never set, or not an int 1..MAX_COPIES. */
  copies(): number | null {
    const v = this.shards.meta()[COPIES_KEY]
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_COPIES ? v : null
  }

  /** Sets the copy rule (concurrent sets: the Automerge winner counts, on every replica). */
  setCopies(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_COPIES) throw new TreeError('EINVAL', String(n), `copies must be an integer 1..${MAX_COPIES}`)
    this.changeMeta((m) => { m[COPIES_KEY] = n })
  }

  // ---- helpers -------------------------------------------------------------------------

  private freshName(path: string): { parent: string; name: string } {
    const names = splitPath(path)
    if (names.length === 0) throw new TreeError('EEXIST', path)
    const parent = this.index.resolveParent(names, path)
    const name = names[names.length - 1]
    if (this.index.entryOf(parent, name)) throw new TreeError('EEXIST', path)
    return { parent, name }
  }

  private writable(e: Entry, path: string): void {
    if (e.ver) throw new TreeError('EPERM', path, 'conflict copies are read-only (unlink settles the conflict)')
  }

  /**
   * Removes the name index entry `entry` places: the name's removal (`lx.<nid>`) when the node
   * has another alive name (hard links), else the node's tombstone (its last name).
   */
  private removeEdit(entry: string): Edit {
    const node = this.index.node(nodeIdOf(entry))!
    const nid = nameIdOf(entry)
    const alive = aliveNames(node)
    if (alive.length < 2 || !alive.includes(nid)) return this.tombEdit(node.id)
    const text = encodeRemoval({ writer: this.actor, time: this.clock() })
    return [withRemoval(node, nid, decodeRemoval(text)), (h, obj) => h.put(obj, removalKey(nid), text, 'str')]
  }

  private tombEdit(id: string): Edit {
    const old = this.index.node(id)!
    const text = encodeTomb({ writer: this.actor, time: this.clock(), seen: old.kind === 'file' ? seenVersions(old) : [] })
    return [{ ...old, tombs: [decodeTomb(text)] }, (h, obj) => h.put(obj, 'del', text, 'str')]
  }

  private create(parent: string, name: string, kind: Kind, attrs: Attrs, path: string, extra: { version?: Version; target?: string; rdev?: number }): Stat {
    const raw = this.newNode(parent, name, kind, attrs, path, extra)
    this.edit([[raw, null]])
    this.touchDirs([parent], raw.loc.time)
    return this.index.statId(raw.id)!
  }

  /** The state of a new node (created by `edit([[raw, null]])`), placed in its shard. */
  private newNode(parent: string, name: string, kind: Kind, attrs: Attrs, path: string, extra: { version?: Version; target?: string; rdev?: number; bulk?: boolean }): RawNode {
    const mode = checkMode(attrs.mode, path) ?? DEFAULT_MODE[kind]
    const now = this.clock()
    const mtime = checkTime(attrs.mtime, path) ?? now
    const id = this.nodeId(parent, kind)
    // The state the record decodes to (model.ts decodeLoc, decodeVersion), built directly: the
    // names, content and times were checked above, and the record is written from it at flush.
    const loc = { parent, name, writer: this.actor, time: now, prev: null }
    const v = extra.version
    const raw: RawNode = { id, kind, loc, mode, mtime, creator: this.actor, versions: v ? [{ hash: v.hash, size: v.size, writer: v.writer, time: v.time, ver: v.ver }] : [], tombs: [] }
    const shard = this.placeOf(id, extra.bulk)
    if (shard !== shardOf(id)) raw.shard = shard
    if (extra.target !== undefined) raw.target = extra.target
    if (extra.rdev !== undefined) raw.rdev = extra.rdev
    const fail = (msg: string): Error => new TreeError('EINVAL', path, msg)
    setOwners(raw, checkOwner(attrs.uid, fail), checkOwner(attrs.gid, fail))
    return raw
  }

  /**
   * Applies local edits to the index now and buffers them for Automerge. The new state is
   * computed here, not read back: a local assignment supersedes every value of its key, so
   * the record will decode to exactly this once flushed.
   */
  private edit(edits: Edit[]): void {
    const changed = new Map<string, RawNode | null>()
    for (const [edited, fn, bytes] of edits) {
      let raw = edited
      const shard = homeOf(raw)
      this.touched.add(shard)
      let list = this.unflushed.get(shard)
      if (!list) this.unflushed.set(shard, (list = []))
      const id = raw.id
      this.dirTimes.edited(id)
      const created = fn ? this.foldable.get(id) : undefined
      if (created && raw.tombs.length === 0 && raw.versions.length <= 1) {
        // The record written at flush is the node's state now, exactly what the edits in
        // sequence would leave (each local assignment supersedes its key's value).
        // A metadata change folded into the creation leaves ctime at the creation (times.ts): no key.
        if (raw.ctime !== undefined) {
          raw = { ...raw }
          delete raw.ctime
        }
        created.list[created.at] = this.creation(id, raw)
      } else {
        // An edit after the creation keeps its place: nothing later may fold into the creation.
        if (fn) this.foldable.delete(id)
        else this.foldable.set(id, { list, at: list.length })
        const put: Put = fn ? (h) => fn(h, recordObj(h, id)) : this.creation(id, raw)
        if (bytes !== undefined) put.bytes = bytes
        list.push(put)
      }
      changed.set(id, raw)
    }
    this.updateIndex(changed)
  }

  /**
   * Entries of directories `dirs` were created, removed or renamed at time `now` (the op's
   * time): their mtime (and so ctime) is that (dir-times.ts). One index update for all; one put per directory per flush.
   */
  private touchDirs(dirs: Iterable<string>, now = this.clock()): void {
    const changed = new Map<string, RawNode | null>()
    for (const id of dirs) {
      if (changed.has(id)) continue
      if (id === ROOT_ID) {
        this.dirTimes.root = now
        this.index.rootTimes = { ...this.index.rootTimes, mtime: now }
        this.touched.add(META_SHARD)
        continue
      }
      const old = this.index.node(id)
      if (!old || old.kind !== 'dir' || old.tombs.length > 0) continue
      const raw: RawNode = { ...old, mtime: now }
      const shard = homeOf(raw)
      this.touched.add(shard)
      const created = this.foldable.get(id)
      if (created && raw.versions.length <= 1) created.list[created.at] = this.creation(id, raw)
      else {
        const put = this.dirTimes.touch(id, now)
        if (put) {
          let list = this.unflushed.get(shard)
          if (!list) this.unflushed.set(shard, (list = []))
          list.push(put)
        }
      }
      changed.set(id, raw)
    }
    this.updateIndex(changed)
  }

  /** The buffered creation of a record: written alone, or with others into an empty shard (bulk-create.ts). */
  private creation(id: string, raw: RawNode): Put {
    const put: Put = (h) => putRecord(h, id, raw, this.recordVersion)
    put.creation = { id, value: () => recordValue(raw, this.recordVersion) }
    return put
  }

  /**
   * Where a new record goes: the shallowest shard on its id's path holding fewer than
   * `splitAt` records as known here. A local choice (readers find a record in whichever shard
   * on its path holds it), so peers that split at different moments still read the same records.
   */
  private placeOf(id: string, bulk = false): string {
    let s = shardOf(id)
    // A batch of many files of one directory (writeFiles) passes over a top-level shard that
    // already holds changes (every directory's record lands in one): its records there would
    // each be an insertion into a document with changes (~100-150 µs at 1M files), one digit
    // deeper they fill a new shard in one bulk change (bulk-create.ts, ~20-40 µs).
    if (bulk && this.shards.has(s)) s = id.slice(0, s.length + 1)
    while ((this.counts.get(s) ?? 0) + (this.placing.get(s) ?? 0) >= this.splitAt && s.length < MAX_SHARD_DIGITS) s = id.slice(0, s.length + 1)
    return s
  }

  private changeMeta(fn: (m: MetaDoc) => void): void {
    const doc = A.change(this.shards.meta(), fn)
    this.shards.setMeta(doc)
    this.touched.add(META_SHARD)
    const change = A.getLastLocalChange(doc)
    if (change) this.pending.push({ shard: META_SHARD, change })
  }
}

function cmp(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0 }

/** Shallow shards first, then by name. */
function byDepth(a: string, b: string): number { return a.length - b.length || cmp(a, b) }

function sameHeads(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * Local edits per Automerge change: an edit writes at most 8 ops (a new record, counting 15
 * with its root op) and ~10 KiB (a 4 KiB symlink target, two JSON-escaped 255-byte names), so
 * a change stays under ~1,000 ops and 640 KiB, inside one entry's CHANGE_LIMITS.
 */
const EDITS_PER_CHANGE = 64
/** What an edit counts for in a change's bytes unless it says (Put.bytes: an xattr's value): 64 of them are the ~640 KiB above. */
const EDIT_BYTES = 10 * 1024

/** Local edits flushed at once from which Automerge's heap is reserved first, and the heap reserved per edit (measured growth ~1 KiB). */
const BULK_EDITS = 256
const HEAP_PER_EDIT = 4096

/** Record keys that fix a record's format or fields at creation (spec/tree.md "Documents"). */
const FIXED_KEYS = new Set(['v', 'c', 'kind', 'by'])

/** Tests set BAZIL_TREE_CHECK_PATCHED=1: every record read from patches is compared with a full read. */
const CHECK_PATCHED = process.env.BAZIL_TREE_CHECK_PATCHED === '1'

/**
 * The winners of a record after `patches` (from an incremental diff), from its decoded state
 * before them, and the keys that may now hold concurrent values; null when only a full read
 * will do (a record not decoded before, a replaced or deleted record, a nested value, an
 * unexpected patch). Reading a record back from Automerge costs ~100 µs; this, nothing.
 */
function patchRecord(old: RawNode | undefined, patches: A.Patch[]): { winners: Record<string, unknown>; conflicted: Set<string> } | null {
  // A record with xattrs: its decoded state does not hold their values, so a patch's base would lack them.
  if (old && (old.versions.length > 1 || old.tombs.length > 1 || old.xattrs)) return null
  let winners = old ? recordWinners(old) : null
  const conflicted = new Set<string>()
  for (const p of patches) {
    if (p.path.length === 1) {
      // A new record: the map's creation, then its keys.
      const v = p.action === 'put' ? p.value : undefined
      if (old || winners || p.action !== 'put' || p.conflict || typeof v !== 'object' || v === null || Object.keys(v).length > 0) return null
      winners = {}
      continue
    }
    const key = p.path[1]
    if (winners === null || p.path.length !== 2 || typeof key !== 'string') return null
    // The base of an existing record is its v1 shape (recordWinners): a key that decides the
    // format (v, c) or a fixed field, or a deleted key (a v2 record falls back to c), needs a full read.
    if (old && (FIXED_KEYS.has(key) || p.action === 'del')) return null
    if (p.action === 'put') {
      if (typeof p.value === 'object' && p.value !== null && !(p.value instanceof A.ImmutableString)) return null
      winners[key] = p.value
      if (p.conflict) conflicted.add(key)
    } else if (p.action === 'del') {
      delete winners[key]
    } else if (p.action === 'conflict') {
      conflicted.add(key)
    } else return null
  }
  return winners ? { winners, conflicted } : null
}
