/**
 * A window of logged entries as a replay gathers them before applying it (Tree.applySteps):
 * what each entry costs against its limits, so a window stays within many entries' worth.
 *
 * Automerge's cost of one applyChanges call into a shard has a part that grows with the shard
 * (it splices the incoming ops into the document's columns) besides the part per change: 100
 * one-op changes into a 500-record shard cost ~6x as much applied one call each as applied in
 * one call. So a window goes to the tree whole, which applies each shard's changes of the
 * window in one call (until session 12 windows were cut into calls by entries, sorted by first
 * shard: a spread merge at 1M still made ~8 calls per touched shard; bench/tree-merge.ts keeps
 * that batching as the baseline of its floor part).
 */
import { entryCost } from './change-header.js'

export interface WindowEntry<C> {
  /** The entry's changes, in its order. */
  changes: C[]
  /** The shards its changes go to (the first one places the entry). */
  shards: string[]
  ops: number
  bytes: number
}

/** One logged entry's changes as a window holds them, with what they cost against the entry's limits. */
export function windowEntry<C extends { shard: string; change: Uint8Array }>(changes: C[]): WindowEntry<C> {
  const bytes: Uint8Array[] = []
  const shards: string[] = []
  for (const c of changes) {
    bytes.push(c.change)
    shards.push(c.shard)
  }
  const cost = entryCost(bytes)
  return { changes, shards, ops: cost.ops, bytes: cost.bytes }
}
