/**
 * A snapshot's view from an index of another state (spec/tree.md "Snapshots", "The index on
 * disk"): the records that differ between that state and the snapshot's heads, read at the
 * snapshot's heads. Laid over the index of the other state (TreeIndex.update runs the same view
 * rules), they give the snapshot's view at a cost that follows the changes between the two
 * states, not the volume's size: how a snapshot taken by another writer is listed without
 * reading every shard at its heads.
 */
import { MAX_SHARD_DIGITS, META_SHARD, onPath, readRecord, shardOf, type RawNode } from './model.js'
import type { Heads, Shards } from './shards.js'

/**
 * The records that differ between the node shards at `from` and at `to`, each as it reads at
 * `to` (null: no record there, or one that does not decode: the full build leaves those out
 * too). Null if some shard lacks heads of `to` or `from` (changes not received).
 */
export function recordsBetween(shards: Shards, from: ReadonlyMap<string, Heads>, to: Readonly<Record<string, Heads>>): Map<string, RawNode | null> | null {
  const names = new Set<string>([...from.keys(), ...Object.keys(to)])
  names.delete(META_SHARD)
  const touched = new Set<string>()
  for (const shard of names) {
    const f = from.get(shard) ?? []
    const t = to[shard] ?? []
    if (same(f, t)) continue
    if (!shards.hasHeads(shard, f) || !shards.hasHeads(shard, t)) return null
    // A record is a key of the shard's root map: every patch between the two states names it first.
    for (const p of shards.node(shard).diff(f, t)) {
      const id = p.path[0]
      if (typeof id === 'string' && onPath(shard, id)) touched.add(id)
    }
  }
  const out = new Map<string, RawNode | null>()
  for (const id of touched) out.set(id, recordAt(shards, id, to))
  return out
}

/** The record of `id` at `to`: from the shallowest shard on its path holding the key there (spec/tree.md "Shard layout"). */
function recordAt(shards: Shards, id: string, to: Readonly<Record<string, Heads>>): RawNode | null {
  for (let len = shardOf(id).length; len <= MAX_SHARD_DIGITS && len <= id.length; len++) {
    const shard = id.slice(0, len)
    const heads = to[shard]
    if (heads === undefined || heads.length === 0 || !shards.has(shard)) continue
    const h = shards.node(shard)
    if (h.getWithType('_root', id, heads) === null) continue
    try {
      const n = readRecord(h, id, heads)
      if (shard !== shardOf(id)) n.shard = shard
      return n
    } catch {
      return null
    }
  }
  return null
}

function same(a: Heads, b: Heads): boolean {
  if (a.length !== b.length) return false
  const s = new Set(a)
  return b.every((x) => s.has(x))
}
