/**
 * One saved shard of a state a joiner starts from (spec/tree.md "Starting from a state"), read
 * as Tree.fromSaved needs it: loaded into an empty document (Automerge checks on load that the
 * saved changes hash to the heads the save records), required to be at exactly the heads the
 * logs give, then every key of its root map read once as a record. Pure: it runs in the
 * state-load workers (state-load-worker.ts) or on the calling thread, and what it returns is
 * plain data (sent between threads as is).
 */
import * as A from '@automerge/automerge'
import { readRecord, type RawNode } from './model.js'
import { recordAttrConflicted } from './attr-conflicts.js'

/** Per key of the shard's root map, in its order: the record, or why it does not decode; and whether it holds concurrent owner or attribute values (attr-conflicts.ts). */
export type ShardRecords = [id: string, node: RawNode | null, reason: string | null, attrConflict: boolean][]

/** A shard read: its records, or the mismatch that rejects the state (the message names the shard). */
export type SavedShardRead = { records: ShardRecords } | { mismatch: string }

export function readSavedShard(actor: string, name: string, bytes: Uint8Array, heads: readonly string[]): SavedShardRead {
  const doc = A.init<unknown>({ actor })
  try {
    const h = A.getBackend(doc)
    // Through the handle: A.load would also build the JS document, which nothing reads.
    try {
      h.loadIncremental(bytes)
    } catch (e) {
      return { mismatch: `shard ${name} does not load: ${(e as Error).message}` }
    }
    const got = [...h.getHeads()].sort()
    const want = [...heads].sort()
    if (got.length !== want.length || got.some((x, i) => x !== want[i])) return { mismatch: `shard ${name} is not at the heads its logs give` }
    // One materialize call for every record's winners; readRecord asks only for concurrent values.
    const whole = h.materialize('_root') as Record<string, unknown>
    const records: ShardRecords = []
    for (const id of Object.keys(whole)) {
      try {
        const node = readRecord(h, id, undefined, whole[id])
        records.push([id, node, null, recordAttrConflicted(h, id, null, whole[id] as Record<string, unknown>)])
      } catch (e) {
        records.push([id, null, (e as Error).message, false])
      }
    }
    return { records }
  } finally {
    A.free(doc)
  }
}
