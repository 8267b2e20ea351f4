// Writing a volume's local edits to its op log. Every edit's audit description is queued here;
// a flush writes everything queued (the tree's Automerge changes plus the audit ops) in one
// append, split into entries that fit the entry limit, so that an import of thousands of files
// is a handful of entries. A flush is all or nothing: if the append fails, the changes and ops
// stay queued (the next flush retries them) and no checkpoint covers them. Edits the log may no
// longer take (a revocation, a change too big for any entry) are refused: listed in `refused`
// and removed from the view by the next replay.
import { UserError } from '../datadir.js'
import { ChangeLimitError, entryGroups } from '../tree/index.js'
import { splitIntoEntries, type AuditOp, type ShardChange, type WriterLog } from '../logs/index.js'
import type { SpaceGuard } from '../space-guard.js'
import type { LiveTree } from './live-tree.js'
import { cutOversized } from './oversize.js'

/** Ops queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_OPS = 2000
/** Bytes of paths and targets queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_BYTES = 4 * 1024 * 1024

/**
 * Edits this node made that its log could not take: a revocation of its log arrived between
 * an edit and its flush (refused before the append, removed from the view), or entries it
 * wrote before the revocation arrived here that the revocation does not accept (dropped by a
 * rebuild). spec/oplog.md "Edits a revocation overtakes".
 */
export interface RefusedEdits {
  /** When they were refused (ms since the epoch). */
  at: number
  /** What was done (the audit ops: op and path), oldest first. */
  ops: AuditOp[]
  /** Seqs of this node's log that hold them (dropped entries); empty if they were never written. */
  seqs: number[]
  reason: string
}

/** A flush refused because this node's log may no longer take entries (its edits are removed from the view). */
export class EditsRefusedError extends UserError {
  readonly code = 'EROFS'
}

/** What the flusher asks of its volume. */
export interface FlushContext {
  readonly live: LiveTree
  readonly log: WriterLog
  readonly space: SpaceGuard
  name(): string
  /** Whether this node's log may take entries now, and one line saying why not. */
  canWrite(): boolean
  writeRefusal(): string
  /** These seqs of this node's log were just appended (their changes are in the tree already). */
  appended(seqs: number[]): void
  /** Brings the view up to the logs (after a refusal: removes the refused edits). */
  refresh(): Promise<unknown>
  /** Something was queued (the volume frees idle shards later). */
  queued(): void
}

export class Flusher {
  private pending: AuditOp[] = []
  /** Per queued op, the shards its edits went into (Tree.takeTouched): what a refused change takes with it. */
  private pendingShards: ReadonlySet<string>[] = []
  /** Rough size of the queued ops (their paths and targets), for maybeFlush. */
  private pendingBytes = 0
  /** Changes taken from the tree whose append has not succeeded yet (oldest first). */
  private unlogged: ShardChange[] = []
  /** Flushes run one after another. */
  private tail: Promise<void> = Promise.resolve()
  private running = 0
  /** Why the last flush failed, while its changes are still unlogged (null once one succeeds). */
  private lastError: Error | null = null
  /** This node's edits that its log could not take (see RefusedEdits), oldest first. */
  readonly refused: RefusedEdits[] = []

  constructor(private readonly ctx: FlushContext) {}

  queue(a: AuditOp): void {
    // An op with no edits of its own (or one of a batch recorded in one call) counts with the op before it.
    const touched = this.ctx.live.tree.takeTouched()
    this.pendingShards.push(touched.size > 0 || this.pendingShards.length === 0 ? touched : this.pendingShards[this.pendingShards.length - 1]!)
    this.pending.push(a)
    this.pendingBytes += 64 + (a.path?.length ?? 0) + (a.to?.length ?? 0) + (a.target?.length ?? 0)
    this.ctx.live.changedSinceCheckpoint = true
    this.ctx.queued()
  }

  get pendingOps(): number {
    return this.pending.length
  }

  /** Edits queued or taken from the tree and not in the log yet. */
  get holdsEdits(): boolean {
    return this.pending.length > 0 || this.unlogged.length > 0 || this.ctx.live.tree.dirty
  }

  /** Ops and changes written by no flush yet (a failed flush leaves them here). */
  get unloggedCount(): { ops: number; changes: number; error: string | null } {
    return { ops: this.pending.length, changes: this.unlogged.length, error: this.lastError?.message ?? null }
  }

  /**
   * Writes everything queued to the op log, in one append (split into entries that fit the
   * entry limit). All or nothing: if the append fails, everything stays queued for the next
   * flush and the error is thrown (naming how much is waiting).
   */
  flush(): Promise<void> {
    return this.flushInOrder().catch(async (err) => {
      // Refused edits are removed from the view now: the replay rebuilds the tree from the logs.
      if (err instanceof EditsRefusedError) await this.ctx.refresh().catch(() => {})
      throw err
    })
  }

  /** flush() without the view's rollback after a refusal (what a rebuild, inside replay, uses). */
  flushInOrder(): Promise<void> {
    this.running++
    const run = this.tail.then(() => this.flushNow()).finally(() => { this.running-- })
    this.tail = run.catch(() => {})
    return run
  }

  /**
   * Flushes when enough ops are queued; for loops doing bulk work. `scale` multiplies the
   * thresholds (an import: fewer, bigger Automerge changes per shard, see local-copy.ts).
   */
  async maybeFlush(scale = 1): Promise<void> {
    const over = (k: number): boolean => this.pending.length >= k * scale * FLUSH_EVERY_OPS || this.pendingBytes >= k * scale * FLUSH_EVERY_BYTES
    if (!over(1)) return
    // Workers of one import call this together: one flush at a time, unless the queue keeps growing.
    if (this.running > 0 && !over(2)) return
    await this.flush()
  }

  /** Records this node's own entries that a rebuild drops (written before a revocation arrived here). */
  refuseWritten(edits: RefusedEdits): void {
    this.refused.push(edits)
  }

  private async flushNow(): Promise<void> {
    const { live, log } = this.ctx
    const taken = live.tree.takeChanges()
    for (const c of taken) this.unlogged.push(c)
    if (this.pending.length === 0 && this.unlogged.length === 0) return
    // New ops may be queued while the append runs: only what is written here leaves the queues.
    const ops = this.pending.slice()
    const changes = this.unlogged.slice()
    const bytes = this.pendingBytes
    let seqs: number[]
    /** Ops refused because a change they made fits no entry (the rest is written), and why. */
    let oversized: { ops: AuditOp[]; changes: number; reason: string } | null = null
    try {
      // Groups of changes that fit one entry's change limits (CHANGE_LIMITS), each cut to the
      // entry size target; the audit ops go with the last group.
      const time = Date.now()
      let groups: ShardChange[][]
      let written = ops
      try {
        groups = entryGroups(changes)
      } catch (e) {
        if (!(e instanceof ChangeLimitError)) throw e
        // A change no entry can carry would fail every later flush too (the volume could write
        // nothing more): the ops whose edits went into it are refused and rolled back from the
        // view; the others are written (oversize.ts).
        const reason = `a change is too big for one op log entry (${e.message})`
        const cut = cutOversized(ops, this.pendingShards.slice(0, ops.length), changes)
        if (cut.keptOps.length === 0 && cut.keptChanges.length === 0) throw this.refuseUnlogged(ops, changes.length, bytes, reason)
        groups = entryGroups(cut.keptChanges)
        written = cut.keptOps
        oversized = { ops: cut.droppedOps, changes: changes.length - cut.keptChanges.length, reason }
      }
      const bodies = groups.length === 0 ? splitIntoEntries([], written, time) : groups.flatMap((g, i) => splitIntoEntries(g, i === groups.length - 1 ? written : [], time))
      // The same decision as the edits' (canWrite), against the set as known now: a revocation
      // that arrived since the edits were made refuses them here, before anything is appended.
      if (!this.ctx.canWrite()) throw this.refuseUnlogged(ops, changes.length, bytes)
      let changeBytes = 0
      for (const b of bodies) for (const c of b.changes) changeBytes += c.change.byteLength
      this.ctx.space.take(changeBytes + this.pendingBytes)
      seqs = await log.append(bodies)
    } catch (err) {
      if (err instanceof EditsRefusedError) throw err
      const reason = describeError(err)
      this.lastError = new Error(`writing the op log of volume ${this.ctx.name()} failed: ${reason} (${this.pending.length} ops and ${this.unlogged.length} changes are kept and written by the next flush)`)
      Object.assign(this.lastError, { code: (err as NodeJS.ErrnoException).code ?? errnoOf(reason) })
      throw this.lastError
    }
    this.lastError = null
    this.pending.splice(0, ops.length)
    this.pendingShards.splice(0, ops.length)
    this.unlogged.splice(0, changes.length)
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes)
    if (seqs.length > 0) this.ctx.appended(seqs)
    if (oversized) throw this.refusal(oversized.ops, oversized.changes, oversized.reason)
  }

  /**
   * Drops the queued edits this node's log may no longer take: kept in `refused` (what they
   * did), removed from the view by the next replay (a rebuild from the logs). Returns the error.
   */
  private refuseUnlogged(ops: AuditOp[], changes: number, bytes: number, reason = this.ctx.writeRefusal()): EditsRefusedError {
    this.pending.splice(0, ops.length)
    this.pendingShards.splice(0, ops.length)
    this.unlogged.splice(0, changes)
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes)
    return this.refusal(ops, changes, reason)
  }

  /** Records refused edits (no longer queued) and returns the error saying so; the next replay removes them from the view. */
  private refusal(ops: AuditOp[], changes: number, reason: string): EditsRefusedError {
    this.refused.push({ at: Date.now(), ops, seqs: [], reason })
    this.ctx.live.viewStale = true
    this.ctx.live.changedSinceCheckpoint = true
    const name = this.ctx.name()
    const what = ops.length === 0 ? `${changes} changes` : `${ops.length} edit${ops.length === 1 ? '' : 's'} (${ops.slice(0, 3).map((o) => `${o.op} ${o.path ?? ''}`.trim()).join(', ')}${ops.length > 3 ? ', ...' : ''})`
    return new EditsRefusedError(`volume "${name}": ${what} not written to the op log and removed from this node's view: ${reason} (listed by \`bazil volume writers ${name}\`)`)
  }
}

/** An error's message with its causes (RocksDB's "Batch was not applied" hides the reason in `cause`). */
export function describeError(err: unknown): string {
  const parts: string[] = []
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    parts.push(e instanceof Error ? e.message : String(e))
  }
  return parts.join(': ')
}

/** The errno code an error message names (RocksDB reports ENOSPC as text), if any. */
function errnoOf(message: string): string | undefined {
  if (/no space left on device|ENOSPC/i.test(message)) return 'ENOSPC'
  return undefined
}
