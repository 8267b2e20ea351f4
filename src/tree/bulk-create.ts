/**
 * New records into an empty shard document in one call (Tree.flush). Automerge inserts the ops
 * of one hydrated object as a batch, but each `putObjectFromHydrate` of a record on the root
 * map is its own insertion (~55-110 µs a record here, most of an import's Automerge work);
 * `initRootFromHydrate` of many records into an empty document makes the same ops (a makeMap
 * on the root per record, then its keys) in one batch, ~20 µs a record. It is only correct
 * on a document with no ops at all (on a non-empty one Automerge emits the ops but its state
 * does not show them), so a shard that already has changes takes records one by one.
 */
import type { Handle } from './shards.js'

/** A buffered creation: its node id and its record's map (model.ts recordValue). */
export interface Creation { id: string; value: () => Record<string, unknown> }
/** A buffered local edit of a shard document; a creation carries what bulk creation needs, `bytes` the size of a big value it writes (Tree.flush cuts changes by it). */
export type Put = ((h: Handle) => void) & { creation?: Creation; bytes?: number }

/** Records per bulk change: 512 v2 records are ~4,600 ops of an entry's 8,192 (CHANGE_LIMITS). */
const MAX_RECORDS = 512
/** Bytes of record values per bulk change: well inside an entry's 1 MiB with the ids and columns. */
const MAX_BYTES = 256 * 1024

/**
 * Writes the leading creations of `edits` into `h` as one change when `h` is an empty
 * document, and returns how many edits it took (0: none, the caller writes them one by one).
 * The caller commits and takes the change.
 */
export function createInto(h: Handle, edits: readonly Put[]): number {
  if (edits.length < 2 || h.getHeads().length > 0 || h.pendingOps() > 0) return 0
  const root: Record<string, Record<string, unknown>> = {}
  let n = 0
  let bytes = 0
  for (; n < edits.length && n < MAX_RECORDS; n++) {
    const c = edits[n]!.creation
    if (!c || Object.prototype.hasOwnProperty.call(root, c.id)) break
    const value = c.value()
    for (const v of Object.values(value)) bytes += typeof v === 'string' ? v.length : typeof (v as { val?: unknown })?.val === 'string' ? (v as { val: string }).val.length : 8
    bytes += c.id.length
    if (bytes > MAX_BYTES && n > 0) break
    root[c.id] = value
  }
  if (n < 2) return 0
  h.initRootFromHydrate(root)
  return n
}
