/**
 * A tree's snapshots (spec/tree.md "Snapshots"): taking and removing them (records in `meta`),
 * listing them, and their read-only views, read from a saved view when the index on disk has
 * one, else derived from the index on disk (snapshot-views.ts), else built from the shards at
 * the snapshot's heads.
 */
import * as A from '@automerge/automerge'
import { checkTime } from './arg-checks.js'
import { TreeError } from './errors.js'
import { META_SHARD, SNAP_PREFIX, decodeSnapshot, encodeSnapshot, imm, onPath, readRecord, shardOf, strOf, type RawNode, type SnapshotRecord } from './model.js'
import { badName } from './paths.js'
import { HEADS_PREFIX, headsParts, partsToWrite, readParts } from './snapshot-heads.js'
import { rootAttrsAt, snapshotKey, type NamedSnapshot, type SavedSnapshots } from './snapshot-names.js'
import { recordsBetween } from './snapshot-views.js'
import { readRootAttrs } from './times.js'
import type { TreeCore } from './tree-core.js'
import type { IndexBase } from './index-layers.js'
import { TreeIndex, type IndexMemo, type ReadTree, type Stat } from './view.js'

export interface SnapshotInfo { name: string; time: number }

/** The state of the index on disk: what a snapshot without a saved view is derived from. */
export type IndexState = () => { base: IndexBase; memo: IndexMemo; heads: ReadonlyMap<string, string[]> } | null

/** A snapshot's read-only tree; its index is built on first use. */
export class SnapshotTree implements ReadTree {
  private built: TreeIndex | null = null
  private builtGen = -1
  constructor(private readonly build: () => TreeIndex, private readonly gen: () => number) {}
  /** Its index, built (again, if the index on disk moved) when needed. */
  index(): TreeIndex { return this.ix }
  private get ix(): TreeIndex {
    const g = this.gen()
    if (this.built === null || this.builtGen !== g) {
      this.built = this.build()
      this.builtGen = g
    }
    return this.built
  }
  lookup(path: string): Stat | null { return this.ix.lookup(path) }
  stat(path: string): Stat { return this.ix.stat(path) }
  readdir(path: string): Stat[] { return this.ix.readdir(path) }
  walk(path?: string): Iterable<Stat> { return this.ix.walk(path) }
}

export class TreeSnapshots {
  /** Heads of format 2 snapshot records read from their parts, by record text (the most recent few). */
  private readonly partHeads = new Map<string, Record<string, string[]>>()
  /** Saved views of snapshots, by record key, and the snapshots the index on disk names (index-store.ts keeps them on disk). */
  private saved: SavedSnapshots | null = null
  /** The index on disk the tree's live index reads from, with the shard heads of its state (index-store.ts): what a snapshot without a saved view is derived from. */
  private indexState: IndexState | null = null
  /** Bumped when the index on disk moves (a commit): snapshot views built over the old one are built again. */
  private indexGen = 0

  /**
   * `trees`: the views made, by record text (or `#key` of a saved view); the tree's to drop
   * when it is freed. `inline`: records longer than this store their heads in parts.
   */
  constructor(private readonly core: Pick<TreeCore, 'actor' | 'shards' | 'clock' | 'flush' | 'changeMeta'>,
    private readonly trees: Map<string, SnapshotTree>, private readonly inline: number) {}

  snapshot(name: string, time: number = this.core.clock()): void {
    const bad = badName(name)
    if (bad !== null) throw new TreeError('EINVAL', name, `bad snapshot name: ${bad}`)
    if (checkTime(time, name) === undefined) throw new TreeError('EINVAL', name, 'bad snapshot time')
    const { shards, actor } = this.core
    if (shards.meta()[SNAP_PREFIX + name] !== undefined && !this.removed(name)) throw new TreeError('EEXIST', name, 'snapshot exists')
    this.core.flush()
    const heads = shards.heads()
    let text = encodeSnapshot({ time, writer: actor, heads })
    if (text.length > this.inline) {
      // Too big for one change (1M files: ~21k shards): the heads go in parts, written once each (snapshot-heads.ts).
      const parts = headsParts(heads)
      for (const batch of partsToWrite(shards.meta(), parts)) this.core.changeMeta((m) => { for (const p of batch) m[HEADS_PREFIX + p.digest] = imm(p.text) })
      text = encodeSnapshot({ time, writer: actor, heads: null, parts: parts.map((p) => p.digest) })
      // The heads its parts hold: the commit that saves its view need not read them back.
      this.rememberPartHeads(text, heads)
    }
    this.core.changeMeta((m) => { m[SNAP_PREFIX + name] = imm(text) })
  }

  /** Removes a snapshot: its value becomes a removal record (heads null); what only it referenced becomes garbage (spec/gc.md). */
  remove(name: string, time: number = this.core.clock()): void {
    const value = strOf(this.core.shards.meta()[SNAP_PREFIX + name])
    if (value === null || this.removed(name)) throw new TreeError('ENOENT', name, 'no such snapshot')
    if (checkTime(time, name) === undefined) throw new TreeError('EINVAL', name, 'bad snapshot time')
    this.core.flush()
    const text = encodeSnapshot({ time, writer: this.core.actor, heads: null })
    this.core.changeMeta((m) => { m[SNAP_PREFIX + name] = imm(text) })
  }

  /** The heads snapshot `name` names (at() found it: its record is in `meta`); Invalid if it does not decode. */
  headsOf(name: string): Record<string, string[]> | null {
    return this.recordOf(strOf(this.core.shards.meta()[SNAP_PREFIX + name])!).heads
  }

  /** A snapshot record with its heads (format 2: read from their parts in `meta`); Invalid if it does not decode. */
  private recordOf(text: string): SnapshotRecord {
    const rec = decodeSnapshot(text)
    if (!rec.parts) return rec
    let heads = this.partHeads.get(text)
    if (!heads) this.rememberPartHeads(text, (heads = readParts(this.core.shards.meta(), rec.parts)))
    return { ...rec, heads }
  }

  private rememberPartHeads(text: string, heads: Record<string, string[]>): void {
    this.partHeads.set(text, heads)
    if (this.partHeads.size > 8) this.partHeads.delete(this.partHeads.keys().next().value!)
  }

  private removed(name: string): boolean {
    const value = strOf(this.core.shards.meta()[SNAP_PREFIX + name])
    if (value === null) return false
    try {
      return this.recordOf(value).heads === null
    } catch {
      return false
    }
  }

  /** Every snapshot not removed, with its record text (a malformed one is not listed; at() reports why). */
  private *live(): Iterable<{ name: string; text: string; time: number; heads: Record<string, string[]> }> {
    for (const { name, text } of this.all()) {
      let rec
      try {
        rec = this.recordOf(text)
      } catch {
        continue
      }
      if (rec.heads !== null) yield { name, text, time: rec.time, heads: rec.heads }
    }
  }

  /** Every snapshot record in `meta` (removed ones too) with its name. */
  private *all(): Iterable<{ name: string; text: string }> {
    for (const [key, value] of Object.entries(this.core.shards.meta())) {
      if (!key.startsWith(SNAP_PREFIX)) continue
      const text = strOf(value)
      if (text !== null) yield { name: key.slice(SNAP_PREFIX.length), text }
    }
  }

  list(): SnapshotInfo[] {
    // As the index on disk names them while `meta` is unread, when each has a saved view (so it decoded).
    const named = this.named()
    const out: SnapshotInfo[] = named && named.every((n) => n.root !== null && this.saved!.view(n.key) !== null) ? named.map(({ name, time }) => ({ name, time })) : [...this.live()].map(({ name, time }) => ({ name, time }))
    return out.sort((a, b) => a.time - b.time || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /** A read-only view of the tree as it was when the snapshot was taken. */
  at(name: string): ReadTree {
    this.core.flush()
    const fast = this.atSaved(name)
    if (fast) return fast
    const value = strOf(this.core.shards.meta()[SNAP_PREFIX + name])
    if (value === null) throw new TreeError('ENOENT', name, 'no such snapshot')
    const cached = this.trees.get(value)
    if (cached) return cached
    let rec
    try {
      rec = this.recordOf(value)
    } catch (e) {
      throw new TreeError('EINVAL', name, `snapshot does not decode: ${(e as Error).message}`)
    }
    const snapHeads = rec.heads
    if (snapHeads === null) throw new TreeError('ENOENT', name, 'no such snapshot (removed)')
    // A saved view was written from a state at these heads: the changes are here (no shard to load to check).
    const saved = this.savedView(value)
    if (!saved) {
      for (const [shard, heads] of Object.entries(snapHeads)) {
        if (!this.core.shards.hasHeads(shard, heads)) throw new TreeError('EINVAL', name, `snapshot needs changes of shard ${shard} not received yet`)
      }
    }
    // Made again when the index on disk moves (a commit): then its saved view is read, or it is derived again.
    const t = new SnapshotTree(() => this.buildIndex(snapHeads, this.savedView(value)), () => this.indexGen)
    this.trees.set(value, t)
    return t
  }

  /** The snapshots the index on disk names, while they are `meta`'s (it is unread since the open); else null. */
  private named(): NamedSnapshot[] | null {
    return this.core.shards.metaUnread ? this.saved?.named ?? null : null
  }

  /** A saved view of the snapshot `name` that needs no `meta`: named by the index on disk while `meta` is unread. */
  private atSaved(name: string): ReadTree | null {
    const n = this.named()?.find((x) => x.name === name)
    if (!n || n.root === null || !this.saved!.view(n.key)) return null
    const cacheKey = `#${n.key}`
    const cached = this.trees.get(cacheKey)
    if (cached) return cached
    const root = n.root
    // After a commit: its view as the new index on disk names it, else as `meta` says (the slow way).
    const build = (): TreeIndex => {
      const saved = this.saved?.view(n.key)
      if (!saved) return (this.at(name) as SnapshotTree).index()
      const index = new TreeIndex(saved)
      readRootAttrs(root, index)
      return index
    }
    const t = new SnapshotTree(build, () => this.indexGen)
    this.trees.set(cacheKey, t)
    return t
  }

  private savedView(text: string): { base: IndexBase; memo: IndexMemo } | undefined {
    return this.saved?.view(snapshotKey(text)) ?? undefined
  }

  /** The root's attributes in `meta` at `heads` (a snapshot's: what its saved view shows for the root). */
  rootAttrsAt(heads: string[]): Record<string, unknown> {
    return rootAttrsAt(A.getBackend(this.core.shards.meta()), heads)
  }

  /**
   * Where at() finds the saved view of a snapshot (the on-disk index's, read on demand) instead
   * of building it, and the state of the index on disk (to derive a view from). Called by every
   * commit: views made over the previous index on disk are made again on their next read.
   */
  setSaved(saved: SavedSnapshots, state?: IndexState): void {
    this.saved = saved
    this.indexState = state ?? null
    this.indexGen++
    this.trees.clear()
  }

  /** Every snapshot not removed: its record text and the heads it names. */
  records(): { text: string; heads: Record<string, string[]> }[] {
    return [...this.live()].map(({ text, heads }) => ({ text, heads }))
  }

  /**
   * Every snapshot not removed, its heads read only when asked for (a record in parts: ~1.6 MB
   * of heads at 1M files, which a commit that already saved its view does not need); heads()
   * gives null when they do not decode.
   */
  texts(): { name: string; time: number; text: string; heads: () => Record<string, string[]> | null }[] {
    const out: { name: string; time: number; text: string; heads: () => Record<string, string[]> | null }[] = []
    for (const { name, text } of this.all()) {
      let time
      try {
        const rec = decodeSnapshot(text)
        if (rec.heads === null) continue
        time = rec.time
      } catch {
        continue
      }
      out.push({
        name, time, text,
        heads: () => {
          try {
            return this.recordOf(text).heads
          } catch {
            return null
          }
        },
      })
    }
    return out
  }

  /**
   * A snapshot's view: read from its saved index when there is one; else derived from the
   * index on disk and the records that differ between its state and the snapshot's heads
   * (snapshot-views.ts: cost follows those changes); else built from the shards at its heads.
   */
  private buildIndex(heads: Record<string, string[]>, saved?: { base: IndexBase; memo: IndexMemo }): TreeIndex {
    const shards = this.core.shards
    const withRoot = (index: TreeIndex): TreeIndex => {
      const hs = heads[META_SHARD]
      if (hs) readRootAttrs(this.rootAttrsAt(hs), index)
      return index
    }
    if (saved) return withRoot(new TreeIndex(saved))
    const state = this.indexState?.() ?? null
    const changed = state ? recordsBetween(shards, state.heads, heads) : null
    if (state && changed) {
      const index = new TreeIndex(state)
      index.update(changed)
      return withRoot(index)
    }
    const index = new TreeIndex()
    const nodes = new Map<string, RawNode | null>()
    const claimed = new Map<string, string>()
    for (const [shard, hs] of Object.entries(heads)) {
      if (shard === META_SHARD) {
        readRootAttrs(this.rootAttrsAt(hs), index)
        continue
      }
      const h = shards.node(shard)
      const all = h.materialize('_root', hs) as Record<string, unknown>
      for (const id of Object.keys(all)) {
        if (!onPath(shard, id)) continue
        // The shallowest shard holding the key counts, whether its record decodes or not.
        const prev = claimed.get(id)
        if (prev !== undefined && prev.length <= shard.length) continue
        claimed.set(id, shard)
        try {
          const n = readRecord(h, id, hs, all[id])
          if (shard !== shardOf(id)) n.shard = shard
          nodes.set(id, n)
        } catch {
          nodes.delete(id) // reported by problems() on the live tree
        }
      }
    }
    index.update(nodes)
    return index
  }
}
