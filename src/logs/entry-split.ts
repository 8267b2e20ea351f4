// Splitting one flush (the tree's changes and the queued audit ops) into entries that each fit
// the entry limit (spec/oplog.md, "Flushes and batch splitting"). Changes keep their order
// (a change of a shard depends on the ones before it); ops keep theirs. Greedy: each entry
// takes changes, then ops, until the next one would not fit ENTRY_TARGET_BYTES.
import { MAX_BODY_BYTES, encodeEntryBody, type AuditOp, type EntryBody, type ShardChange } from './entry-codec.js'
import { LogFormatError } from './errors.js'

/** What a flush aims an entry at: well below MAX_BODY_BYTES, so one entry replicates in a few messages. */
export const ENTRY_TARGET_BYTES = 4 * 1024 * 1024

/** Upper bound of what a change adds to an encoded body: shard id and lengths (varints) plus its bytes. */
function changeBytes(c: ShardChange): number {
  return Buffer.byteLength(c.shard) + c.change.byteLength + 20
}

/**
 * At least what one op adds to an encoded body (spec/oplog.md: flags, name, present fields),
 * without encoding it: varints count 10 bytes, strings their UTF-8 length plus a 10-byte
 * length prefix, a hash half its hex length. An import queues thousands of ops per flush.
 */
function opBytes(op: AuditOp): number {
  let n = 20 + Buffer.byteLength(op.op)
  for (const v of [op.path, op.to, op.kind, op.target]) if (v !== undefined) n += 10 + Buffer.byteLength(v)
  if (op.hash !== undefined) n += 10 + Math.ceil(op.hash.length / 2)
  for (const v of [op.size, op.mode, op.mtime]) if (v !== undefined) n += 10
  return n
}

/**
 * The entries one flush writes: every change and op, in order, none over `target` bytes
 * unless a single change or op is bigger on its own (it then goes alone, and fails the
 * append if it is over MAX_BODY_BYTES). No entries if there is nothing to write.
 */
export function splitIntoEntries(changes: ShardChange[], ops: AuditOp[], time: number, target = ENTRY_TARGET_BYTES): EntryBody[] {
  const out: EntryBody[] = []
  const empty = encodeEntryBody({ time, changes: [], ops: [] }).length + 10 // + room for the counts' varints
  let cur: EntryBody = { time, changes: [], ops: [] }
  let size = empty
  const close = (): void => {
    if (cur.changes.length === 0 && cur.ops.length === 0) return
    out.push(cur)
    cur = { time, changes: [], ops: [] }
    size = empty
  }
  for (const c of changes) {
    const n = changeBytes(c)
    if (n + empty > MAX_BODY_BYTES) throw new LogFormatError(`a change of shard ${c.shard} is ${c.change.byteLength} bytes, over the entry limit of ${MAX_BODY_BYTES}`)
    if (size + n > target) close()
    cur.changes.push(c)
    size += n
  }
  for (const op of ops) {
    const n = opBytes(op)
    if (size + n > target) close()
    cur.ops.push(op)
    size += n
  }
  close()
  return out
}
