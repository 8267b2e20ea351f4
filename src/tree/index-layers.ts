/**
 * The maps of the derived index (view.ts) as two layers: a read-only base (the index on disk,
 * index-store.ts, read on demand) and an in-memory overlay of what changed since that base was
 * written. Without a base a layered map is a plain Map (snapshot views, tests, a first build).
 */
import type { RawNode } from './model.js'

/** One node as the on-disk index holds it: its record and where the view placed it. */
export interface BaseEntry {
  raw: RawNode | null
  /** Effective parent (null: not attached: pending, or its record is gone). */
  parent: string | null
  name: string | null
  /** Alive nodes in its subtree, itself included (0: not visible). */
  live: number
  /** Content versions of its record (> 1: conflict copies are shown), known without decoding it. */
  versions: number
}

/**
 * What the view's name table of a directory counts (view.ts), over the entries attached under
 * it that are visible (live > 0) and named: `vis` of them, `groups` names held by several of
 * them, `copies` of them with several content versions.
 */
export interface DirSummary { vis: number; groups: number; copies: number }

/** The index as last written: read on demand, never changed in place. */
export interface IndexBase {
  /** Nodes with a record. */
  readonly nodeCount: number
  entry(id: string): BaseEntry | undefined
  /** The entries attached under `dir` (its children in the view, visible or not). */
  children(dir: string): Iterable<[string, BaseEntry]>
  /** Every entry, in no particular order. */
  entries(): Iterable<[string, BaseEntry]>
  /** The entries attached under `dir` whose name is `name` (reads less than `children`: a stat in a big directory). */
  named?(dir: string, name: string): Iterable<[string, BaseEntry]>
  /**
   * The counts of `dir`'s name table (undefined: no entry attached under it; null: not known
   * without reading its entries, e.g. a page written before the counts were).
   */
  dirSummary?(dir: string): DirSummary | null | undefined
  /**
   * Keeps what is read from now on until the returned release is called (a batch of changes
   * being applied): each bucket a batch needs is then read, checked and decoded once.
   */
  hold?(): () => void
}

const GONE: unique symbol = Symbol('gone')
export const NOT_HELD: unique symbol = Symbol('not held')

export class Layered<V> {
  private readonly over = new Map<string, V | typeof GONE>()
  /** Base values built by `load` (for values costly to build), most recently used last. */
  private readonly built = new Map<string, V | undefined>()
  /**
   * Keys written since mark() (null: not marked), each with its overlay value before (undefined:
   * none, the base's): what rebase keeps of the overlay, and what atMark reads (a commit of the
   * overlay as it was at mark() runs in slices while it changes).
   */
  private since: Map<string, V | typeof GONE | undefined> | null = null

  constructor(private base: ((key: string) => V | undefined) | null, private readonly keepBuilt = 0) {}

  get(key: string): V | undefined {
    const v = this.over.get(key)
    if (v !== undefined) return v === GONE ? undefined : v
    if (this.base === null) return undefined
    if (this.keepBuilt === 0) return this.base(key)
    if (this.built.has(key)) {
      const b = this.built.get(key)
      this.built.delete(key)
      this.built.set(key, b)
      return b
    }
    const b = this.base(key)
    this.built.set(key, b)
    if (this.built.size > this.keepBuilt) this.built.delete(this.built.keys().next().value!)
    return b
  }

  has(key: string): boolean { return this.get(key) !== undefined }

  /** The value when the overlay or the built values hold the key (undefined: not there); NOT_HELD when only the base would say. */
  held(key: string): V | undefined | typeof NOT_HELD {
    const v = this.over.get(key)
    if (v !== undefined) return v === GONE ? undefined : v
    if (this.base === null) return undefined
    if (this.built.has(key)) return this.built.get(key)
    return NOT_HELD
  }

  set(key: string, value: V): this {
    this.touch(key)
    this.over.set(key, value)
    this.built.delete(key)
    return this
  }

  delete(key: string): boolean {
    // Marked, a removal is kept as such: a plain delete would let the next base's value show through.
    if (this.base === null && this.since === null) return this.over.delete(key)
    this.touch(key)
    this.over.set(key, GONE)
    this.built.delete(key)
    return true
  }

  /** The value to change in place: a base value is copied into the overlay first. */
  forWrite(key: string, copy: (v: V) => V): V | undefined {
    const v = this.over.get(key)
    if (v !== undefined) {
      if (v === GONE) return undefined
      this.touch(key)
      return v
    }
    const b = this.get(key)
    if (b === undefined) return undefined
    const c = copy(b)
    this.set(key, c)
    return c
  }

  /** Keys changed (set or deleted) since the base. */
  changed(): IterableIterator<string> { return this.over.keys() }

  get changedCount(): number { return this.over.size }

  /** Every key with a value: base keys from `baseKeys` (with their base value), then keys only in the overlay. */
  *entries(baseKeys: Iterable<[string, V | undefined]>): Iterable<[string, V]> {
    for (const [k, bv] of baseKeys) {
      const o = this.over.get(k)
      const v = o === undefined ? bv : o === GONE ? undefined : o
      if (v !== undefined) yield [k, v]
    }
    for (const [k, o] of this.over) {
      if (o === GONE) continue
      if (this.base === null || this.base(k) === undefined) yield [k, o]
    }
  }

  /** From now on, remembers the keys written and their values before (a commit of the overlay as it is now has started). */
  mark(): void { this.since = new Map() }

  /** Before a write while marked: the value the key had at mark(). */
  private touch(key: string): void {
    if (this.since !== null && !this.since.has(key)) this.since.set(key, this.over.get(key))
  }

  /** The value at mark() (values changed in place through forWrite excepted: their change shows). */
  atMark(key: string): V | undefined {
    if (this.since === null || !this.since.has(key)) return this.get(key)
    const v = this.since.get(key)
    if (v === GONE) return undefined
    return v !== undefined ? v : this.base === null ? undefined : this.base(key)
  }

  /** Forgets mark() (the commit failed: the overlay still holds everything). */
  unmark(): void { this.since = null }

  /**
   * A new base that holds everything the overlay said (when marked: what it said at mark()):
   * the overlay is dropped, but for the keys written since mark().
   */
  rebase(base: ((key: string) => V | undefined) | null): void {
    this.base = base
    const since = this.since
    if (since === null) this.over.clear()
    else for (const k of [...this.over.keys()]) if (!since.has(k)) this.over.delete(k)
    this.since = null
    this.built.clear()
  }
}
