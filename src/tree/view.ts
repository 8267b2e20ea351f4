/**
 * The derived read index: the one place where the deterministic view rules live (liveness,
 * cycle breaking, name conflicts, conflict copies). Fed decoded records, never reads Automerge.
 */
import { TreeError } from './errors.js'
import { childPath, splitPath } from './paths.js'
import { DEFAULT_MODE, ROOT_ID, shortActor, type Kind, type RawNode, type Version } from './model.js'
import { entryAlive, isNameEntry, locOf, nameEntries, namesTime, nlinkOf, nodeIdOf } from './links.js'
import { Layered, NOT_HELD, type BaseEntry, type IndexBase } from './index-layers.js'
import { atimeOf, ctimeOf, type RootOwner, type RootTimes } from './times.js'
import { MOUNTER } from './owners.js'

export interface ContentRef { hash: string; size: number }

export interface Stat {
  id: string
  kind: Kind
  name: string
  parent: string
  path: string
  mode: number
  mtime: number
  /** Last access (spec/tree.md "Times"). */
  atime: number
  /** Last change of the node's content or metadata, derived (times.ts). */
  ctime: number
  /** Owner ids (owners.ts): MOUNTER (-1) = the mounting user. */
  uid: number
  gid: number
  /** Devices: the device number (special.ts). */
  rdev?: number
  size: number
  content?: ContentRef
  target?: string
  /** Names of the node (hard links: spec/tree.md "Names of a linked node"); absent: 1. */
  nlink?: number
}

export interface ConflictVersion { writer: string; time: number; size: number; hash: string; path: string }
export interface ContentConflict { path: string; versions: ConflictVersion[] }

export interface ReadTree {
  lookup(path: string): Stat | null
  stat(path: string): Stat
  readdir(path: string): Stat[]
  walk(path?: string): Iterable<Stat>
}

/** A directory entry: a node, or (with `ver`) a read-only conflict copy of a losing content version. */
export interface Entry { id: string; ver?: Version }

interface Place { parent: string; name: string }

/**
 * The name table of a directory: whole, or (built from the base's counts, IndexBase.dirSummary)
 * partial: then it holds the children of the names looked up or changed since, each name's
 * children read from the base when first needed (`loadName`), and counts of the rest; a
 * change in a 10k-entry directory costs the names it touches. Any use that needs every name
 * (a listing, conflict names) makes it whole first (`whole`).
 */
interface DirNames {
  /** Visible children by their own (loc) name; an array when several share it (a partial table: of the loaded names only). */
  byName: Map<string, string | string[]>
  /** Names held by several visible children (all names, loaded or not). */
  groups: number
  /** Visible children with more than one content version (a partial table: of the loaded names). */
  copies: Set<string>
  /** Visible children, all names. */
  vis: number
  /** A partial table: the names whose children byName holds; null: whole. */
  loaded: Set<string> | null
  /** A partial table: the copies among the children of the names not loaded. */
  copiesOut: number
  display: Display | null
}

const newDir = (): DirNames => ({ byName: new Map(), groups: 0, copies: new Set(), vis: 0, loaded: null, copiesOut: 0, display: null })

interface Display {
  byName: Map<string, Entry>
  nodeName: Map<string, string>
  copyName: Map<string, string>
}

const CONFLICT = '.conflict-'
const EMPTY = new Set<string>()

/** What the index keeps whole in memory beside its on-disk base (saved with it: index-store.ts). */
export interface IndexMemo {
  broken: string[]
  /** Pending nodes and the parent each waits for. */
  waiting: [string, string][]
  conflicted: string[]
  nodeCount: number
}

/** Directory name tables built from the base and kept in memory (the most recently used). */
const KEEP_BUILT_DIRS = 32
/**
 * Entries read from the base and kept in memory (the most recently used), per map: a base
 * read costs several bucket lookups, and the same few (the directories on the paths being
 * written or listed) are asked for on every file (pathOf, kindOf, addLive): after an index
 * commit in the middle of an import, 5.8 of 60 s at 100k files without them.
 */
const KEEP_BUILT_ENTRIES = 1024

export class TreeIndex implements ReadTree {
  private readonly raw: Layered<RawNode>
  /** Effective parent of attached nodes (after cycle breaking). Absent = detached (pending or removed). */
  private readonly parentOf: Layered<string>
  private readonly nameOf: Layered<string>
  /** Number of alive nodes in the subtree (self included). Visible iff > 0. */
  private readonly live: Layered<number>
  private readonly dirs: Layered<DirNames>
  /** Nodes not shown at their loc because of cycle breaking: re-examined on every update. */
  private readonly broken = new Set<string>()
  private readonly waiting = new Map<string, Set<string>>()
  private readonly waitingFor = new Map<string, string>()
  private readonly conflicted = new Set<string>()
  private count = 0
  private base: IndexBase | null = null
  /** Between markCommit and commitDone / commitAbandoned. */
  private committing = false
  rootMode = DEFAULT_MODE.dir
  /** The root's times; mtime 0: never set (spec/tree.md "Times"). */
  rootTimes: RootTimes = { mtime: 0, atime: 0, ctime: 0 }
  /** The root's owner (spec/tree.md "Owners"; MOUNTER: the mounting user). */
  rootOwner: RootOwner = { uid: MOUNTER, gid: MOUNTER }

  /**
   * An empty index, or (with `saved`) one whose nodes are read on demand from an index on
   * disk: the view rules below run the same on both (the maps are layered: index-layers.ts).
   */
  constructor(saved?: { base: IndexBase; memo: IndexMemo }) {
    this.raw = new Layered<RawNode>(null, KEEP_BUILT_ENTRIES)
    this.parentOf = new Layered<string>(null, KEEP_BUILT_ENTRIES)
    this.nameOf = new Layered<string>(null, KEEP_BUILT_ENTRIES)
    this.live = new Layered<number>(null, KEEP_BUILT_ENTRIES)
    this.dirs = new Layered<DirNames>(null, KEEP_BUILT_DIRS)
    if (saved) this.rebase(saved.base, saved.memo)
    else this.live.set(ROOT_ID, 1)
  }

  get size(): number { return this.count }

  node(id: string): RawNode | undefined { return this.raw.get(id) }

  /** Every decoded record the index holds (visible or not). */
  nodes(): IterableIterator<RawNode> {
    const all = this.entries()
    return (function* () { for (const r of all) if (!isNameEntry(r.id)) yield r })()
  }

  /** Every entry's record: the nodes' and (under `<node id>+<lid>`) their further names'. */
  private entries(): IterableIterator<RawNode> {
    const base = this.base
    const baseRaw = function* (): Iterable<[string, RawNode | undefined]> {
      if (base) for (const [id, e] of base.entries()) yield [id, e.raw ?? undefined]
    }
    const it = this.raw.entries(baseRaw())
    return (function* () { for (const [, r] of it) yield r })()
  }

  // ---- the on-disk base (index-store.ts) ------------------------------------------------

  /** Ids whose entry changed since the base was written. */
  changedIds(): Set<string> {
    const out = new Set<string>()
    for (const m of [this.raw, this.parentOf, this.nameOf, this.live]) for (const id of m.changed()) out.add(id)
    return out
  }

  /** Entries changed since the base (changedIds) are at most this many. */
  get changedCount(): number {
    return Math.max(this.raw.changedCount, this.parentOf.changedCount, this.nameOf.changedCount, this.live.changedCount)
  }

  /** The entry of `id` now (what the next base must hold for it). */
  entryNow(id: string): BaseEntry {
    const raw = this.raw.get(id) ?? null
    return { raw, parent: this.parentOf.get(id) ?? null, name: this.nameOf.get(id) ?? null, live: this.live.get(id) ?? 0, versions: raw?.versions.length ?? 0 }
  }

  /** The entry of `id` as it was at markCommit (what the commit begun then writes for it). */
  entryAtMark(id: string): BaseEntry {
    const raw = this.raw.atMark(id) ?? null
    return { raw, parent: this.parentOf.atMark(id) ?? null, name: this.nameOf.atMark(id) ?? null, live: this.live.atMark(id) ?? 0, versions: raw?.versions.length ?? 0 }
  }

  /** The on-disk index this one reads from (null: all in memory). */
  get diskBase(): IndexBase | null { return this.base }

  /** Keeps what the base reads until released (IndexBase.hold): a batch of updates reads each bucket once. */
  holdBase(): () => void {
    return this.base?.hold?.() ?? (() => {})
  }

  /** The entry of `id` in the current base, if any. */
  baseEntry(id: string): BaseEntry | undefined { return this.base?.entry(id) }

  memo(): IndexMemo {
    return { broken: [...this.broken], waiting: [...this.waitingFor], conflicted: [...this.conflicted], nodeCount: this.count }
  }

  /** Continues from `base` (which holds this index's state, or is being opened): the overlay is dropped. */
  rebase(base: IndexBase, memo: IndexMemo): void {
    this.rebaseMaps(base)
    this.broken.clear()
    for (const b of memo.broken) this.broken.add(b)
    this.waiting.clear()
    this.waitingFor.clear()
    for (const [x, p] of memo.waiting) this.wait(x, p)
    this.conflicted.clear()
    for (const c of memo.conflicted) this.conflicted.add(c)
    this.count = memo.nodeCount
  }

  /**
   * A commit of the index as it is now starts (index-store.ts): what changes from here on (the
   * commit may run in slices while the mount and replay go on) stays in the overlay when the
   * commit's base comes (commitDone). The commit reads the entries as of now (entryAtMark).
   */
  markCommit(): void {
    if (this.committing) throw new Error('an index commit is already running')
    this.committing = true
    for (const m of this.maps()) m.mark()
  }

  /** The commit begun by markCommit wrote `base`: it holds the state of then; later changes stay over it (the memo kept is the current one). */
  commitDone(base: IndexBase): void {
    this.rebaseMaps(base)
    this.committing = false
  }

  /** The commit begun by markCommit failed: the overlay holds everything still. */
  commitAbandoned(): void {
    for (const m of this.maps()) m.unmark()
    this.committing = false
  }

  private maps(): Layered<unknown>[] { return [this.raw, this.parentOf, this.nameOf, this.live, this.dirs] }

  private rebaseMaps(base: IndexBase): void {
    this.base = base
    // The four maps below ask for the same id one after another: one base read serves them.
    let lastId: string | null = null
    let last: BaseEntry | undefined
    const entry = (id: string): BaseEntry | undefined => {
      if (id !== lastId) {
        last = base.entry(id)
        lastId = id
      }
      return last
    }
    this.raw.rebase((id) => entry(id)?.raw ?? undefined)
    this.parentOf.rebase((id) => entry(id)?.parent ?? undefined)
    this.nameOf.rebase((id) => entry(id)?.name ?? undefined)
    this.live.rebase((id) => entry(id)?.live || undefined)
    this.dirs.rebase((dir) => this.dirFromBase(base, dir))
  }

  /**
   * The name table of `dir` from the base (what dirAdd built for the visible entries under it):
   * partial from the base's counts when it has them, else whole from its entries.
   */
  private dirFromBase(base: IndexBase, dir: string): DirNames | undefined {
    if (base.dirSummary) {
      const s = base.dirSummary(dir)
      if (s === undefined || s?.vis === 0) return undefined
      if (s) return { byName: new Map(), groups: s.groups, copies: new Set(), vis: s.vis, loaded: new Set(), copiesOut: s.copies, display: null }
    }
    const d = newDir()
    for (const [x, e] of base.children(dir)) {
      if (e.live <= 0 || e.name === null) continue
      addName(d, e.name, x)
      d.vis++
      if (e.versions > 1) d.copies.add(x)
    }
    return d.byName.size > 0 ? d : undefined
  }

  /** A partial table of `dir`: the children named `name` read from the base, once (their count is in the table's already). */
  private loadName(dir: string, d: DirNames, name: string): void {
    if (d.loaded === null || d.loaded.has(name)) return
    d.loaded.add(name)
    for (const [x, e] of this.base!.named!(dir, name)) {
      if (e.live <= 0 || e.name !== name) continue
      addLoaded(d, name, x)
      if (e.versions > 1) {
        d.copies.add(x)
        d.copiesOut--
      }
    }
  }

  /** `d` made whole (the base's children of the names not loaded added), for uses that need every name. */
  private whole(dir: string, d: DirNames): DirNames {
    if (d.loaded === null) return d
    for (const [x, e] of this.base!.children(dir)) {
      if (e.live <= 0 || e.name === null || d.loaded.has(e.name)) continue
      addLoaded(d, e.name, x)
      if (e.versions > 1) d.copies.add(x)
    }
    d.loaded = null
    d.copiesOut = 0
    d.display = null
    return d
  }

  /** Applies new decoded states of some nodes (null = record gone or unreadable). */
  update(changed: Map<string, RawNode | null>): void {
    this.deferringLive(() => this.applyChanged(this.withNames(changed)))
  }

  private applyChanged(changed: Map<string, RawNode | null>): void {
    const affected = new Set<string>()
    for (const [id, r] of changed) {
      affected.add(id)
      if (r && !this.raw.has(id)) for (const c of this.waiting.get(id) ?? EMPTY) affected.add(c)
    }
    for (const b of this.broken) affected.add(b)
    this.broken.clear()

    for (const x of affected) this.detach(x)

    for (const [id, r] of changed) {
      const old = this.raw.get(id)
      if (!isNameEntry(id)) {
        if (r && !old) this.count++
        else if (!r && old) this.count--
      }
      const delta = (r && entryAlive(r) ? 1 : 0) - (old && entryAlive(old) ? 1 : 0)
      if (r) this.raw.set(id, r)
      else this.raw.delete(id)
      if (delta !== 0) this.addLive(id, delta)
      if (r && r.versions.length > 1) this.conflicted.add(id)
      else this.conflicted.delete(id)
    }

    this.place(affected)
  }

  /**
   * The changes of some nodes with the entries of their further names (hard links): each
   * name is placed as an entry of its own, `<node id>+<lid>`, holding the node's record.
   */
  private withNames(changed: Map<string, RawNode | null>): Map<string, RawNode | null> {
    let out: Map<string, RawNode | null> | null = null
    for (const [id, r] of changed) {
      if (isNameEntry(id)) continue
      const old = this.raw.get(id)
      // Nearly every node has one name: nothing to add (no allocation per node of an import).
      if (!old?.links && !r?.links) continue
      const names = new Set([...nameEntries(old), ...nameEntries(r)])
      out ??= new Map(changed)
      const mine = new Set(nameEntries(r))
      for (const e of names) out.set(e, r && mine.has(e) ? { ...r, id: e } : null)
    }
    return out ?? changed
  }

  /**
   * Fills an empty index with a checkpoint's nodes: the state `update` reaches from the same
   * nodes, without its bookkeeping for nodes that were already there (a third of a reopen).
   */
  load(nodes: Iterable<RawNode>): void {
    if (this.count > 0 || this.base) throw new Error('TreeIndex.load: the index is not empty')
    const ids = new Set<string>()
    const add = (r: RawNode): void => {
      this.raw.set(r.id, r)
      ids.add(r.id)
      // What addLive does for a node not attached yet: its own count only.
      if (entryAlive(r)) this.live.set(r.id, (this.live.get(r.id) ?? 0) + 1)
      if (r.versions.length > 1) this.conflicted.add(r.id)
    }
    for (const r of nodes) {
      if (isNameEntry(r.id)) continue
      if (!this.raw.has(r.id)) this.count++
      add(r)
      for (const e of nameEntries(r)) add({ ...r, id: e })
    }
    this.deferringLive(() => this.place(ids))
  }

  /**
   * Subtree counts moved by detach and attach while `fn` runs are summed per parent, then
   * carried up to the root once each (addLive): a batch that adds 10k files to a directory
   * walks its ancestors once, not 10k times, and a node detached and attached again in the
   * same place walks nothing. The counts end the same: additions commute, and addLive
   * lists or unlists a node when its own count crosses zero, whenever that happens.
   */
  private deferringLive(fn: () => void): void {
    const outer = this.deferred
    const moved = (this.deferred = outer ?? new Map<string, number>())
    try {
      fn()
    } finally {
      if (!outer) {
        this.deferred = null
        for (const [p, d] of moved) if (d !== 0) this.addLive(p, d)
      }
    }
  }

  /** Subtree counts to carry up from a parent once the batch is placed (deferringLive). */
  private deferred: Map<string, number> | null = null

  private moveLive(p: string, delta: number): void {
    if (this.deferred) this.deferred.set(p, (this.deferred.get(p) ?? 0) + delta)
    else this.addLive(p, delta)
  }

  /** Places the detached `affected` nodes: proposals, cycle breaking, then attach or wait. */
  private place(affected: Set<string>): void {
    const next = new Map<string, Place | null>()
    for (const x of affected) next.set(x, this.proposal(x))
    const succ = (n: string): string | null =>
      affected.has(n) ? next.get(n)?.parent ?? null : this.parentOf.get(n) ?? null

    // Round 1: in each cycle, the node whose loc is latest is shown where it was before that move.
    const altered = new Set<string>()
    for (const cycle of findCycles(affected, succ)) {
      const m = this.latestMove(cycle)
      if (!affected.has(m)) {
        // An unchanged node can be the one to move: take it out of the old graph first.
        this.detach(m)
        affected.add(m)
      }
      next.set(m, this.previousPlace(m))
      altered.add(m)
    }
    // Round 2: a previous place that leads into a cycle again: altered nodes of such cycles go under root.
    if (altered.size > 0) {
      for (const cycle of findCycles(altered, succ)) {
        for (const n of cycle) if (altered.has(n)) next.set(n, { parent: ROOT_ID, name: locOf(this.raw.get(n)!).name })
      }
    }
    for (const a of altered) this.broken.add(a)

    for (const x of affected) {
      const place = next.get(x)
      if (place) this.attach(x, place)
      else {
        const r = this.raw.get(x)
        if (r) this.wait(x, locOf(r).parent)
      }
    }
  }

  private proposal(x: string): Place | null {
    const r = this.raw.get(x)
    if (!r) return null
    const loc = locOf(r)
    const p = loc.parent
    if (p === ROOT_ID) return { parent: p, name: loc.name }
    const pr = this.raw.get(p)
    if (!pr) return null
    if (pr.kind !== 'dir') return { parent: ROOT_ID, name: loc.name }
    return { parent: p, name: loc.name }
  }

  private latestMove(cycle: string[]): string {
    let best = cycle[0]
    for (const n of cycle.slice(1)) {
      const a = locOf(this.raw.get(n)!)
      const b = locOf(this.raw.get(best)!)
      if (a.time > b.time || (a.time === b.time && (a.writer > b.writer || (a.writer === b.writer && n > best)))) best = n
    }
    return best
  }

  private previousPlace(m: string): Place {
    const loc = locOf(this.raw.get(m)!)
    const prev = loc.prev
    if (prev && prev.parent !== m && (prev.parent === ROOT_ID || this.raw.get(prev.parent)?.kind === 'dir')) return { ...prev }
    return { parent: ROOT_ID, name: loc.name }
  }

  private wait(x: string, parent: string): void {
    this.waitingFor.set(x, parent)
    let s = this.waiting.get(parent)
    if (!s) this.waiting.set(parent, (s = new Set()))
    s.add(x)
  }

  private unwait(x: string): void {
    const p = this.waitingFor.get(x)
    if (p === undefined) return
    this.waitingFor.delete(x)
    const s = this.waiting.get(p)!
    s.delete(x)
    if (s.size === 0) this.waiting.delete(p)
  }

  private detach(x: string): void {
    this.unwait(x)
    const p = this.parentOf.get(x)
    if (p === undefined) return
    const l = this.live.get(x) ?? 0
    if (l > 0) {
      this.dirRemove(p, x)
      this.moveLive(p, -l)
    }
    this.parentOf.delete(x)
    this.nameOf.delete(x)
  }

  private attach(x: string, place: Place): void {
    this.parentOf.set(x, place.parent)
    this.nameOf.set(x, place.name)
    const l = this.live.get(x) ?? 0
    if (l > 0) {
      this.dirAdd(place.parent, x)
      this.moveLive(place.parent, l)
    }
  }

  /** Adds `delta` alive nodes to the subtree counts of `a` and its attached ancestors. */
  private addLive(a: string, delta: number): void {
    for (;;) {
      const before = this.live.get(a) ?? 0
      const after = before + delta
      if (after === 0) this.live.delete(a)
      else this.live.set(a, after)
      if (a === ROOT_ID) return
      const p = this.parentOf.get(a)
      if (p === undefined) return
      if (before > 0 !== after > 0) {
        if (after > 0) this.dirAdd(p, a)
        else this.dirRemove(p, a)
      }
      a = p
    }
  }

  private dirAdd(p: string, x: string): void {
    let d = this.dirs.forWrite(p, copyDir)
    if (!d) this.dirs.set(p, (d = newDir()))
    const name = this.nameOf.get(x)!
    this.loadName(p, d, name)
    addName(d, name, x)
    d.vis++
    if ((this.raw.get(x)?.versions.length ?? 0) > 1) d.copies.add(x)
    d.display = null
  }

  private dirRemove(p: string, x: string): void {
    const d = this.dirs.forWrite(p, copyDir)
    if (!d) return
    const name = this.nameOf.get(x)!
    this.loadName(p, d, name)
    const cur = d.byName.get(name)
    if (cur === x) {
      d.byName.delete(name)
      d.vis--
    } else if (Array.isArray(cur) && cur.includes(x)) {
      const rest = cur.filter((i) => i !== x)
      if (rest.length === 1) {
        d.byName.set(name, rest[0])
        d.groups--
      } else d.byName.set(name, rest)
      d.vis--
    }
    d.copies.delete(x)
    d.display = null
    if (d.loaded === null ? d.byName.size === 0 : d.vis === 0) this.dirs.delete(p)
  }

  // ---- display names -------------------------------------------------------------------

  private simple(d: DirNames): boolean { return d.groups === 0 && d.copies.size === 0 && d.copiesOut === 0 }

  /**
   * Names in a directory with conflicts. Own names are never taken away from the group winner
   * (lowest id); losers become `name.conflict-<writer8>` (writer of their loc), copies of losing
   * versions `<shown name>.conflict-<writer8>`; a generated name already taken gets `~2`, `~3`...
   */
  private display(dir: string, table: DirNames): Display {
    const d = this.whole(dir, table)
    if (d.display) return d.display
    const byName = new Map<string, Entry>()
    const nodeName = new Map<string, string>()
    const copyName = new Map<string, string>()
    const losers: { id: string; base: string }[] = []
    for (const [name, v] of d.byName) {
      const ids = typeof v === 'string' ? [v] : [...v].sort()
      byName.set(name, { id: ids[0] })
      nodeName.set(ids[0], name)
      for (const id of ids.slice(1)) losers.push({ id, base: name + CONFLICT + shortActor(locOf(this.raw.get(id)!).writer) })
    }
    const claim = (base: string): string => {
      let name = base
      for (let k = 2; byName.has(name); k++) name = `${base}~${k}`
      return name
    }
    losers.sort((a, b) => cmp(a.base, b.base) || cmp(a.id, b.id))
    for (const l of losers) {
      const name = claim(l.base)
      byName.set(name, { id: l.id })
      nodeName.set(l.id, name)
    }
    for (const id of [...d.copies].sort()) {
      const versions = this.raw.get(id)!.versions
      for (const ver of versions.slice(1)) {
        const name = claim(nodeName.get(id)! + CONFLICT + shortActor(ver.writer))
        byName.set(name, { id, ver })
        copyName.set(ver.ver, name)
      }
    }
    d.display = { byName, nodeName, copyName }
    return d.display
  }

  private childOf(dir: string, name: string): Entry | undefined {
    const held = this.dirs.held(dir)
    if (held === NOT_HELD && this.base?.named && !name.includes(CONFLICT)) {
      // Unchanged since the base, name table not built: the entries of that name alone say it.
      // A name without CONFLICT is a node's own (generated names all hold it): the group's
      // winner, the lowest id among the visible children of that name.
      let best: string | undefined
      for (const [x, e] of this.base.named(dir, name)) if (e.live > 0 && e.name === name && (best === undefined || x < best)) best = x
      return best === undefined ? undefined : { id: best }
    }
    const d = held === NOT_HELD ? this.dirs.get(dir) : held
    if (!d) return undefined
    if (this.simple(d)) {
      this.loadName(dir, d, name)
      const v = d.byName.get(name)
      return typeof v === 'string' ? { id: v } : undefined
    }
    return this.display(dir, d).byName.get(name)
  }

  private children(dir: string): [string, Entry][] {
    const t = this.dirs.get(dir)
    if (!t) return []
    const d = this.whole(dir, t)
    const out: [string, Entry][] = []
    if (this.simple(d)) for (const [name, v] of d.byName) out.push([name, { id: v as string }])
    else for (const [name, e] of this.display(dir, d).byName) out.push([name, e])
    return out.sort((a, b) => cmp(a[0], b[0]))
  }

  hasChildren(dir: string): boolean {
    return this.dirs.has(dir)
  }

  private shownName(x: string): string {
    const p = this.parentOf.get(x)!
    const d = this.dirs.get(p)!
    return this.simple(d) ? this.nameOf.get(x)! : this.display(p, d).nodeName.get(x)!
  }

  /** Visible = attached through visible ancestors to the root. */
  visible(x: string): boolean {
    for (let n = x; n !== ROOT_ID;) {
      if ((this.live.get(n) ?? 0) <= 0) return false
      const p = this.parentOf.get(n)
      if (p === undefined) return false
      n = p
    }
    return true
  }

  brokenNodes(): string[] { return [...this.broken] }

  effectiveParent(x: string): string | undefined { return this.parentOf.get(x) }
  effectiveName(x: string): string | undefined { return this.nameOf.get(x) }

  /** Path of a visible node (caller checks visibility). */
  pathOf(x: string): string {
    const names: string[] = []
    for (let n = x; n !== ROOT_ID; n = this.parentOf.get(n)!) names.push(this.shownName(n))
    return '/' + names.reverse().join('/')
  }

  // ---- resolution ----------------------------------------------------------------------

  kindOf(e: Entry): Kind {
    if (e.ver) return 'file'
    if (e.id === ROOT_ID) return 'dir'
    return this.raw.get(e.id)!.kind
  }

  /** Resolves names from the root; throws ENOENT / ENOTDIR naming `path`. */
  resolve(names: readonly string[], path: string): Entry {
    let cur: Entry = { id: ROOT_ID }
    for (const name of names) {
      if (this.kindOf(cur) !== 'dir') throw new TreeError('ENOTDIR', path)
      const next = this.childOf(cur.id, name)
      if (!next) throw new TreeError('ENOENT', path)
      cur = next
    }
    return cur
  }

  /** Resolves the directory that would hold the last name of `names`. */
  resolveParent(names: readonly string[], path: string): string {
    const e = this.resolve(names.slice(0, -1), path)
    if (this.kindOf(e) !== 'dir') throw new TreeError('ENOTDIR', path)
    return e.id
  }

  entryOf(dir: string, name: string): Entry | undefined { return this.childOf(dir, name) }

  // ---- stats ---------------------------------------------------------------------------

  private statOf(e: Entry, name: string, path: string): Stat {
    if (e.id === ROOT_ID) {
      const { mtime, atime, ctime } = this.rootTimes
      return { id: ROOT_ID, kind: 'dir', name: '', parent: ROOT_ID, path: '/', mode: this.rootMode, mtime, atime: atime || mtime, ctime: Math.max(ctime, mtime), uid: this.rootOwner.uid, gid: this.rootOwner.gid, size: 0 }
    }
    const r = this.raw.get(e.id)!
    const parent = this.parentOf.get(e.id)!
    const node = nodeIdOf(e.id)
    if (e.ver) {
      const v = e.ver
      return { id: `${node}:${v.ver}`, kind: 'file', name, parent, path, mode: r.mode, mtime: v.time, atime: v.time, ctime: v.time, uid: r.uid ?? MOUNTER, gid: r.gid ?? MOUNTER, size: v.size, content: { hash: v.hash, size: v.size } }
    }
    const s: Stat = { id: node, kind: r.kind, name, parent, path, mode: r.mode, mtime: r.mtime, atime: atimeOf(r), ctime: ctimeOf(r), uid: r.uid ?? MOUNTER, gid: r.gid ?? MOUNTER, size: 0 }
    if (r.links || r.gone) {
      s.nlink = nlinkOf(r)
      s.ctime = Math.max(s.ctime, namesTime(r))
    }
    if (r.kind === 'file') {
      const v = r.versions[0]
      if (v) {
        s.size = v.size
        s.content = { hash: v.hash, size: v.size }
      }
    } else if (r.kind === 'symlink') {
      s.target = r.target
      s.size = Buffer.byteLength(r.target ?? '', 'utf8')
    } else if (r.rdev !== undefined) {
      s.rdev = r.rdev
    }
    return s
  }

  /**
   * The stat of an index entry or conflict copy (`<entry>:<ver>`). A node id whose own name is
   * not shown (a linked node whose first name was removed) stands for the first of its
   * further names that is.
   */
  statId(id: string): Stat | null {
    const [entry, ver] = id.split(':')
    if (entry === ROOT_ID) return ver === undefined ? this.statOf({ id: ROOT_ID }, '', '/') : null
    const nodeId = this.shownEntry(entry)
    if (nodeId === undefined) return null
    if (ver === undefined) {
      const path = this.pathOf(nodeId)
      return this.statOf({ id: nodeId }, path.slice(path.lastIndexOf('/') + 1), path)
    }
    const v = this.raw.get(nodeId)!.versions.slice(1).find((x) => x.ver === ver)
    if (!v) return null
    const dir = this.parentOf.get(nodeId)!
    const name = this.display(dir, this.dirs.get(dir)!).copyName.get(ver)!
    const path = childPath(this.pathOf(this.parentOf.get(nodeId)!), name)
    return this.statOf({ id: nodeId, ver: v }, name, path)
  }

  private shownEntry(entry: string): string | undefined {
    const r = this.raw.get(entry)
    if (!r) return undefined
    if (this.visible(entry)) return entry
    if (isNameEntry(entry)) return undefined
    for (const e of nameEntries(r)) if (this.raw.has(e) && this.visible(e)) return e
    return undefined
  }

  lookup(path: string): Stat | null {
    try {
      return this.stat(path)
    } catch (e) {
      if (e instanceof TreeError && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null
      throw e
    }
  }

  stat(path: string): Stat {
    const names = splitPath(path)
    const e = this.resolve(names, path)
    return this.statOf(e, names.length ? names[names.length - 1] : '', '/' + names.join('/'))
  }

  readdir(path: string): Stat[] {
    const names = splitPath(path)
    const e = this.resolve(names, path)
    if (this.kindOf(e) !== 'dir') throw new TreeError('ENOTDIR', path)
    const base = '/' + names.join('/')
    return this.children(e.id).map(([name, c]) => this.statOf(c, name, childPath(base, name)))
  }

  *walk(path = '/'): Iterable<Stat> {
    const top = this.stat(path)
    yield top
    if (top.kind !== 'dir') return
    const stack: [string, Stat[]][] = [[top.id, this.readdirId(top.id, top.path)]]
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]
      const s = frame[1].shift()
      if (!s) {
        stack.pop()
        continue
      }
      yield s
      if (s.kind === 'dir') stack.push([s.id, this.readdirId(s.id, s.path)])
    }
  }

  private readdirId(id: string, path: string): Stat[] {
    return this.children(id).map(([name, c]) => this.statOf(c, name, childPath(path, name)))
  }

  /**
   * Checks the view's invariants: every alive node is visible (nothing lost), parent chains
   * end at the root (no cycle), each visible node's path leads back to it, and a walk from the
   * root sees every visible node and conflict copy exactly once. Returns what does not hold.
   */
  audit(): string[] {
    const out: string[] = []
    let visibleCount = 0
    let copies = 0
    for (const r of this.entries()) {
      const id = r.id
      let steps = 0
      let n = id
      while (n !== ROOT_ID && steps <= this.count) {
        const p = this.parentOf.get(n)
        if (p === undefined) break
        n = p
        steps++
      }
      if (steps > this.count) {
        out.push(`cycle through node ${id}`)
        continue
      }
      const vis = this.visible(id)
      if (entryAlive(r) && !vis) out.push(`alive node ${id} (${locOf(r).name}) is not reachable from the root${this.waitingFor.has(id) ? ' (its parent record is missing)' : ''}`)
      if (!vis) continue
      visibleCount++
      copies += Math.max(0, r.versions.length - 1)
      const path = this.pathOf(id)
      const back = this.lookup(path)
      if (!back || back.id !== nodeIdOf(id)) out.push(`path ${path} of node ${id} resolves to ${back?.id ?? 'nothing'}`)
    }
    // Hard links: a node shows as many names as its link count says (copies apart).
    const names = new Map<string, { nlink: number; shown: number }>()
    for (const st of this.walk('/')) {
      if (st.id.includes(':') || st.id === ROOT_ID) continue
      const n = names.get(st.id) ?? { nlink: st.nlink ?? 1, shown: 0 }
      n.shown++
      names.set(st.id, n)
    }
    for (const [id, n] of names) if (n.nlink !== n.shown) out.push(`node ${id} has link count ${n.nlink} but shows ${n.shown} names`)
    const walked = [...this.walk('/')].length - 1
    if (walked !== visibleCount + copies) out.push(`walk from the root saw ${walked} entries, expected ${visibleCount} nodes + ${copies} conflict copies`)
    return out
  }

  conflicts(): ContentConflict[] {
    const out: ContentConflict[] = []
    for (const id of this.conflicted) {
      if (!this.visible(id)) continue
      const r = this.raw.get(id)!
      const path = this.pathOf(id)
      const dir = path.slice(0, path.lastIndexOf('/')) || '/'
      const p = this.parentOf.get(id)!
      const display = this.display(p, this.dirs.get(p)!)
      out.push({
        path,
        versions: r.versions.map((v, i) => ({
          writer: v.writer, time: v.time, size: v.size, hash: v.hash,
          path: i === 0 ? path : childPath(dir, display.copyName.get(v.ver)!),
        })),
      })
    }
    return out.sort((a, b) => cmp(a.path, b.path))
  }
}

function cmp(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0 }

/** A name table to change: its own maps (the base's stays as built). */
function copyDir(d: DirNames): DirNames {
  const byName = new Map<string, string | string[]>()
  for (const [k, v] of d.byName) byName.set(k, typeof v === 'string' ? v : [...v])
  return { byName, groups: d.groups, copies: new Set(d.copies), vis: d.vis, loaded: d.loaded && new Set(d.loaded), copiesOut: d.copiesOut, display: null }
}

/** Adds child `x` of a name read from the base to a partial table (its group is counted in the table already). */
function addLoaded(d: DirNames, name: string, x: string): void {
  const cur = d.byName.get(name)
  d.byName.set(name, cur === undefined ? x : typeof cur === 'string' ? [cur, x] : [...cur, x])
}

/** Adds child `x` under `name` (a second child of a name makes a group). */
function addName(d: DirNames, name: string, x: string): void {
  const cur = d.byName.get(name)
  if (cur === undefined) d.byName.set(name, x)
  else if (typeof cur === 'string') {
    d.byName.set(name, [cur, x])
    d.groups++
  } else cur.push(x)
}

/** Cycles of the successor graph reachable from `starts` (the graph is functional: each node has ≤ 1 successor). */
function findCycles(starts: Iterable<string>, succ: (n: string) => string | null): string[][] {
  const mark = new Map<string, number>()
  const cycles: string[][] = []
  let stamp = 0
  for (const s of starts) {
    if (mark.has(s)) continue
    stamp++
    const path: string[] = []
    let n: string | null = s
    while (n !== null && n !== ROOT_ID && !mark.has(n)) {
      mark.set(n, stamp)
      path.push(n)
      n = succ(n)
    }
    if (n !== null && n !== ROOT_ID && mark.get(n) === stamp) cycles.push(path.slice(path.indexOf(n)))
  }
  return cycles
}
