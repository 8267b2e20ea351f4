/**
 * How a replay cuts a window of logged entries into Tree.apply calls.
 *
 * Automerge's cost of one applyChanges call into a shard has a part that grows with the shard
 * (it splices the incoming ops into the document's columns) besides the part per change: 100
 * one-op changes into a 500-record shard cost ~6x as much applied one call each as applied in
 * one call. A log written one entry per op touches its shards in the order the ops were made:
 * batches cut in log order (a few hundred entries each) carried 2-3 changes per shard per
 * call. So a window of entries is sorted by the first shard each entry touches, then cut into
 * batches within one entry's limits: each shard's changes of the window land in one or a few
 * calls. Every entry stays whole inside one batch (its changes share one allowance, checked by
 * Tree.apply), and the order of application does not change the outcome (Tree.apply holds a
 * change until its dependencies are in).
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

/** The window's entries as batches of at most `maxOps` ops and `maxBytes` bytes (an entry over them alone), by first shard. */
export function batchesByShard<C>(entries: readonly WindowEntry<C>[], maxOps: number, maxBytes: number): C[][] {
  const order: { e: WindowEntry<C>; i: number; shard: string }[] = []
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    let shard = e.shards.length > 0 ? e.shards[0]! : ''
    for (const s of e.shards) if (s < shard) shard = s
    order.push({ e, i, shard })
  }
  order.sort((a, b) => (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : a.i - b.i))
  const out: C[][] = []
  let batch: C[] = []
  let ops = 0
  let bytes = 0
  for (const { e } of order) {
    if (batch.length > 0 && (ops + e.ops > maxOps || bytes + e.bytes > maxBytes)) {
      out.push(batch)
      batch = []
      ops = 0
      bytes = 0
    }
    for (const c of e.changes) batch.push(c)
    ops += e.ops
    bytes += e.bytes
  }
  if (batch.length > 0) out.push(batch)
  return out
}
