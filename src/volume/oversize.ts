/**
 * What a flush keeps when some of its changes fit no op log entry (spec/oplog.md limits):
 * only the operations whose edits went into those changes are refused, not the whole flush.
 *
 * Edits of one shard made between two flushes become one change (or a chain of changes, each
 * built on the last), so a shard's changes of the flush go or stay together; an operation
 * that edited a dropped shard is dropped, and so are the changes of every other shard it
 * edited (its edits there are inseparable from it): repeated until nothing more is dropped.
 */
import { ChangeLimitError, entryGroups, type ShardChange } from '../tree/index.js'

export interface OversizeCut<O> {
  keptOps: O[]
  droppedOps: O[]
  keptChanges: ShardChange[]
  /** Shards whose changes of this flush are dropped. */
  droppedShards: Set<string>
}

/** Whether one change alone fits an entry. */
function fitsAlone(c: ShardChange): boolean {
  try {
    entryGroups([c])
    return true
  } catch (e) {
    if (e instanceof ChangeLimitError) return false
    throw e
  }
}

/**
 * Splits a flush's ops (with the shards each one's edits went into, Tree.takeTouched) and
 * changes into what is written and what is refused. Nothing is dropped when every change fits.
 */
export function cutOversized<O>(ops: readonly O[], opShards: readonly ReadonlySet<string>[], changes: readonly ShardChange[]): OversizeCut<O> {
  const dropped = new Set<string>()
  for (const c of changes) if (!dropped.has(c.shard) && !fitsAlone(c)) dropped.add(c.shard)
  const droppedOp = new Array<boolean>(ops.length).fill(false)
  for (let grew = dropped.size > 0; grew;) {
    grew = false
    for (let i = 0; i < ops.length; i++) {
      if (droppedOp[i]) continue
      const shards = opShards[i] ?? new Set<string>()
      if (![...shards].some((s) => dropped.has(s))) continue
      droppedOp[i] = true
      for (const s of shards) {
        if (dropped.has(s)) continue
        dropped.add(s)
        grew = true
      }
    }
  }
  return {
    keptOps: ops.filter((_, i) => !droppedOp[i]),
    droppedOps: ops.filter((_, i) => droppedOp[i]),
    keptChanges: changes.filter((c) => !dropped.has(c.shard)),
    droppedShards: dropped,
  }
}
