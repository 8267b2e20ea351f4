/**
 * The Automerge documents of one volume: one per node shard plus the meta shard.
 * Node shards are driven through Automerge's low-level handle: the JS API materializes every
 * document as JS objects and turns every op into patches, which cost most of the time at 10k+
 * records; the derived index makes that copy useless.
 *
 * A shard is "hot" (a loaded Automerge document) or "cold" (its saved bytes and heads only).
 * Shards restored from a checkpoint start cold and are loaded on first write or merge;
 * `evict` saves and frees hot ones, so memory follows what is in use, not the volume's size.
 */
import * as A from '@automerge/automerge'
import type { MetaDoc } from './model.js'
import { META_SHARD } from './model.js'

import type { Handle, Heads } from './automerge-handle.js'
export type { Handle, Heads } from './automerge-handle.js'

/** `size`: the saved bytes' length when known without reading them (a cold shard of the index on disk is read when loaded). */
interface Cold { bytes: Uint8Array; heads: Heads; size?: number }
interface Hot { doc: A.Doc<unknown>; used: number; savedHeads: Heads | null; saved: Uint8Array | null }

export class Shards {
  private readonly hot = new Map<string, Hot>()
  private readonly cold = new Map<string, Cold>()
  private metaDoc: A.Doc<MetaDoc> | null = null
  /** The meta shard as saved, while no one has read it (loaded by its first read: a `volume ls` never reads it). */
  private metaCold: Cold | null = null
  /** Shard loads from saved bytes since creation (for tests and benchmarks). */
  loads = 0
  /** Loads of the meta shard from saved bytes (for tests and benchmarks). */
  metaLoads = 0

  constructor(readonly actor: string) {}

  // Every shard starts empty, with no change, so copies created independently by two writers
  // merge: records live directly in the root map, never under a key two writers could both create.
  node(shard: string): Handle {
    let d = this.hot.get(shard)
    if (!d) {
      const c = this.cold.get(shard)
      if (c) {
        this.cold.delete(shard)
        this.loads++
        // Into an empty document through the handle: A.load would also materialize the whole
        // shard as JS objects (which nothing here reads), 30x the cost (a 400-record shard:
        // 337 ms against 11 ms) and garbage for the GC.
        const doc = A.init<unknown>({ actor: this.actor })
        // Once: a cold shard of the index on disk reads (and checks) its bytes at each `bytes`.
        const bytes = c.bytes
        A.getBackend(doc).loadIncremental(bytes)
        d = { doc, used: 0, savedHeads: c.heads, saved: bytes }
      } else d = { doc: A.init<unknown>({ actor: this.actor }), used: 0, savedHeads: null, saved: null }
      this.hot.set(shard, d)
    }
    d.used = Date.now()
    return A.getBackend(d.doc)
  }

  /** Saved bytes of those of `shards` that are cold (would be loaded to be written or merged). */
  coldBytes(shards: Iterable<string>): number {
    let n = 0
    for (const s of shards) {
      const c = this.cold.get(s)
      if (c) n += c.size ?? c.bytes.length
    }
    return n
  }

  has(shard: string): boolean { return this.hot.has(shard) || this.cold.has(shard) }

  /** Names of every shard with a document (hot or cold), sorted. */
  names(): string[] { return [...new Set([...this.hot.keys(), ...this.cold.keys()])].sort() }

  get hotCount(): number { return this.hot.size }

  meta(): A.Doc<MetaDoc> {
    if (!this.metaDoc) {
      if (this.metaCold) {
        this.metaDoc = A.load<MetaDoc>(this.metaCold.bytes, { actor: this.actor })
        this.metaCold = null
        this.metaLoads++
      } else this.metaDoc = A.init<MetaDoc>({ actor: this.actor })
    }
    return this.metaDoc
  }

  setMeta(doc: A.Doc<MetaDoc>): void {
    this.metaDoc = doc
    this.metaCold = null
  }

  /** Whether the meta shard is as restored and not read since (its snapshots, keys and heads are those saved). */
  get metaUnread(): boolean { return this.metaCold !== null }

  /** Heads of the meta shard (empty: no change), without loading it. */
  metaHeads(): Heads {
    if (this.metaCold) return this.metaCold.heads
    return this.metaDoc ? A.getHeads(this.metaDoc) : []
  }

  private shardHeads(shard: string): Heads {
    const c = this.cold.get(shard)
    return c ? c.heads : A.getBackend(this.hot.get(shard)!.doc).getHeads()
  }

  /** Heads of every shard that has any change, keyed by shard name. */
  heads(): Record<string, Heads> {
    const out: Record<string, Heads> = {}
    for (const shard of this.names()) {
      const h = this.shardHeads(shard)
      if (h.length > 0) out[shard] = h
    }
    const h = this.metaHeads()
    if (h.length > 0) out[META_SHARD] = h
    return out
  }

  hasHeads(shard: string, heads: Heads): boolean {
    if (shard === META_SHARD) {
      if (this.metaCold && heads.every((x) => this.metaCold!.heads.includes(x))) return true
      return A.hasHeads(this.meta(), heads)
    }
    if (!this.has(shard)) return heads.length === 0
    const c = this.cold.get(shard)
    if (c && heads.every((x) => c.heads.includes(x))) return true
    const h = this.node(shard)
    return heads.every((x) => h.getChangeMetaByHash(x) !== null)
  }

  /** Saved bytes of one shard (saves a hot one; reuses the bytes it was loaded from when unchanged). */
  save(shard: string): Cold {
    const c = this.cold.get(shard)
    if (c) return c
    const d = this.hot.get(shard)!
    const h = A.getBackend(d.doc)
    const heads = h.getHeads()
    if (d.saved && d.savedHeads && sameHeads(heads, d.savedHeads)) return { bytes: d.saved, heads }
    const bytes = h.save()
    d.saved = bytes
    d.savedHeads = heads
    return { bytes, heads }
  }

  /**
   * The changes of `meta` that `heads` do not cover, as Automerge change chunks: appended to a
   * save of `meta` at `heads`, they load as `meta` is now. Null if `meta` lacks some of `heads`.
   */
  metaSince(heads: Heads): Uint8Array | null {
    if (this.metaCold && sameHeads([...this.metaCold.heads].sort(), [...heads].sort())) return new Uint8Array(0)
    const doc = this.meta()
    if (!A.hasHeads(doc, heads)) return null
    return A.saveSince(doc, heads)
  }

  /**
   * The changes of node shard `shard` that `heads` do not cover, as Automerge change chunks:
   * appended to a save of it at `heads`, they load as it is now. Null if it lacks some of
   * `heads`, if they come to more than `max` bytes, or if it is cold at other heads (its saved
   * bytes are at hand: written whole, they cost no save). When it was loaded from a save at
   * `heads`, that save plus these chunks become its saved bytes (an eviction saves nothing).
   */
  since(shard: string, heads: Heads, max: number): Uint8Array | null {
    const c = this.cold.get(shard)
    if (c) return sameSet(c.heads, heads) ? new Uint8Array(0) : null
    const d = this.hot.get(shard)
    if (!d) return null
    const h = A.getBackend(d.doc)
    const loadedThere = d.saved !== null && d.savedHeads !== null && sameSet(d.savedHeads, heads)
    // Not getChangeByHash (hasHeads): it rebuilds each change's bytes (0.85 s for the ~760 shards of a 1M merge).
    if (!loadedThere && h.getMissingDeps(heads).length > 0) return null
    const more = h.saveSince(heads)
    if (more.length > max) return null
    if (loadedThere) {
      const saved = new Uint8Array(d.saved!.length + more.length)
      saved.set(d.saved!)
      saved.set(more, d.saved!.length)
      d.saved = saved
      d.savedHeads = h.getHeads()
    }
    return more
  }

  saveMeta(): Uint8Array | null { return this.metaCold ? this.metaCold.bytes : this.metaDoc ? A.save(this.metaDoc) : null }

  /**
   * Puts saved shards in place without loading them. Only on a fresh instance. `metaHeads`:
   * the heads of `meta` as saved with it: it stays unloaded until first read; without them it
   * is loaded now.
   */
  restore(shards: Map<string, Cold>, meta: Uint8Array | null, metaHeads?: Heads): void {
    for (const [name, c] of shards) this.cold.set(name, c)
    if (meta && metaHeads) this.metaCold = { bytes: meta, heads: metaHeads }
    else if (meta) {
      this.metaDoc = A.load<MetaDoc>(meta, { actor: this.actor })
      this.metaLoads++
    }
  }

  /** Saves and frees all but the `keep` most recently used hot shards, and any unused for `idleMs`. */
  evict(keep = 0, idleMs = 0): number {
    const now = Date.now()
    const order = [...this.hot.entries()].sort((a, b) => a[1].used - b[1].used)
    let n = 0
    for (const [i, [shard, d]] of order.entries()) {
      // Oldest use first: once one must stay, every later one must too.
      if (i >= order.length - keep || now - d.used < idleMs) break
      const c = this.save(shard)
      A.free(d.doc)
      this.hot.delete(shard)
      this.cold.set(shard, c)
      n++
    }
    return n
  }

  free(): void {
    for (const d of this.hot.values()) A.free(d.doc)
    this.hot.clear()
    this.cold.clear()
    if (this.metaDoc) A.free(this.metaDoc)
    this.metaDoc = null
    this.metaCold = null
  }
}

function sameHeads(a: Heads, b: Heads): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function sameSet(a: Heads, b: Heads): boolean {
  return a.length === b.length && sameHeads([...a].sort(), [...b].sort())
}
