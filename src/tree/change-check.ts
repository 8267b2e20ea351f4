/**
 * The checks a change from a log passes before Automerge sees it (spec/tree.md "Applying
 * changes", rules 2 and 3): its shard name, its header within its entry's allowance, and its
 * actor bound to the log it came in. One home for Tree.apply (replay) and StateExpectation (a
 * joiner checking a state against the logs), so both reject the same changes for the same reason.
 */
import { isShard, MAX_SHARD_DIGITS } from './model.js'
import { ChangeLimitError, ForgedWriterError, readChangeHeader, type ChangeBudget, type CheckedChange } from './change-header.js'

/** Why change `i` of an entry names no shard, or null when `shard` is one. */
export function shardProblem(i: number, shard: string): string | null {
  return isShard(shard) ? null : `change ${i} names no shard: ${JSON.stringify(shard.slice(0, 40))} (not meta nor 2..${MAX_SHARD_DIGITS} lowercase hex digits)`
}

/** A change's header, or why it is rejected (`overLimit`: its entry is over its allowance, and so rejected whole). */
export type ChangeVerdict = { header: CheckedChange } | { reason: string; overLimit: boolean }

/**
 * Reads change `i` of an entry (in shard `shard`) against the entry's `budget`, and checks its
 * actor is `writer` (the log's key hex; undefined: not from a log).
 */
export function checkChange(i: number, shard: string, change: Uint8Array, writer: string | undefined, budget: ChangeBudget): ChangeVerdict {
  let header: CheckedChange
  try {
    header = readChangeHeader(change, budget)
  } catch (e) {
    if (e instanceof ChangeLimitError) return { reason: `entry over its limits: ${e.message}`, overLimit: true }
    const what = e instanceof ForgedWriterError ? 'claims another writer' : 'is not an Automerge change'
    return { reason: `change ${i} (shard ${shard}) ${what}: ${(e as Error).message}`, overLimit: false }
  }
  if (writer !== undefined && header.actor !== writer) return { reason: `change by actor ${header.actor} in the log of writer ${writer}`, overLimit: false }
  return { header }
}
