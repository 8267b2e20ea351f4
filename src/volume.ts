// A volume on this node: its directory state (fs/tree), replayed from every writer's op log
// (logs/), with content in the node's content store (fs/cas).
//
// Every mutation goes through `mutate`: the tree op runs, its audit description is queued,
// and `flush` writes everything queued (the Automerge changes plus the audit ops) in one
// append, split into entries that fit the entry limit, so that an import of thousands of
// files is a handful of entries. A flush is all or nothing: if the append fails, the changes
// and ops stay queued (the next flush retries them) and no checkpoint covers them.
import fs from 'node:fs'
import path from 'node:path'
import { CONTEXT, decodeKey, deriveKey, encodeKey } from './crypto.js'
import type { VolumeRecord } from './datadir.js'
import type { Node } from './node.js'
import type { Cas, FileRef } from './fs/cas/index.js'
import { CHANGE_LIMITS, Tree, TreeError, entryCost, entryGroups, decodeTreeState, encodeTreeState, type ContentRef, type IncomingChange, type ReadTree, type Stat } from './fs/tree/index.js'
import { EntryError, WriterLog, splitIntoEntries, type AuditOp, type LogEntry, type ShardChange } from './logs/index.js'
import { readWritersFile, writeWritersFile } from './writers-file.js'
import { replaceFile } from './atomic-file.js'

/** Ops queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_OPS = 2000
/** Bytes of paths and targets queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_BYTES = 4 * 1024 * 1024
/** Changes applied in one Tree call while replaying: bounds memory, keeps merges batched. */
const APPLY_BATCH = 50_000
/** A shard's Automerge document not used for this long is saved and freed. */
export const IDLE_MS = 30_000
/** How long live application waits for more blocks before applying what arrived. */
const LIVE_DELAY_MS = 25
export const CHECKPOINT_FORMAT = 1

/** Where a volume's checkpoint and writer set live in the data dir (see spec/tree.md). */
export function checkpointPath(dataDir: string, volumeId: string): string {
  return path.join(dataDir, 'index', `${volumeId}.ckpt`)
}

export interface ConflictVersionInfo {
  /** Path of this version: the file's own path for the winner, its conflict copy's otherwise. */
  path: string
  writer: string
  log: string
  node: string | null
  mine: boolean
  time: number
  size: number
  hash: string
}
export interface VolumeConflict { path: string; versions: ConflictVersionInfo[] }

/** What a checkpoint says it covers, next to the tree state. */
interface CheckpointInfo {
  format: number
  volume: string
  actor: string
  /** Per writer log (key hex): the next seq to apply; everything before it is in the checkpoint. */
  logs: Record<string, number>
  skipped: SkippedEntry[]
}

export interface OpenOptions {
  /** Read the checkpoint when there is a usable one (default true). */
  checkpoint?: boolean
}

export function toContentRef(ref: FileRef): ContentRef {
  return { hash: ref.hash.toString('hex'), size: ref.size }
}

export function toFileRef(ref: ContentRef): FileRef {
  return { hash: Buffer.from(ref.hash, 'hex'), size: ref.size }
}

/** An entry that could not be used while replaying, with why. */
export interface SkippedEntry {
  writer: string
  seq: number
  reason: string
}

export class Volume {
  readonly record: VolumeRecord
  readonly id: Buffer
  readonly cas: Cas
  /** Replaced only while opening (by the checkpoint's tree), before the volume is handed out. */
  private currentTree: Tree
  /** This node's own writer log of the volume. */
  readonly log: WriterLog
  /** Every known writer log (this node's included), by log key hex. */
  readonly writers = new Map<string, WriterLog>()
  readonly skipped: SkippedEntry[] = []
  /** Where replay came from when the volume opened: a checkpoint (and how many entries were replayed after it) or the logs alone. */
  readonly opened = { fromCheckpoint: false, replayedEntries: 0, ms: 0 }
  /** Replay counters: entries applied, time reading+decrypting them, time applying them to the tree. */
  readonly stats = { entries: 0, readMs: 0, applyMs: 0, applyCalls: 0 }
  private readonly volumeKey: Buffer
  private readonly store: Node['store']
  private readonly storeSync: Node['storeSync']
  /** Refuses writes that would leave too little disk for the store (a full disk: ENOSPC). */
  readonly space: Node['space']
  private readonly dataDir: string
  private pending: AuditOp[] = []
  /** Rough size of the queued ops (their paths and targets), for maybeFlush. */
  private pendingBytes = 0
  /** Changes taken from the tree whose append has not succeeded yet (oldest first). */
  private unlogged: ShardChange[] = []
  /** Flushes run one after another. */
  private flushTail: Promise<void> = Promise.resolve()
  private flushesQueued = 0
  /** Why the last flush failed, while its changes are still unlogged (null once one succeeds). */
  private flushError: Error | null = null
  /** Per writer (log key hex): the next seq to apply. */
  private readonly applied = new Map<string, number>()
  private readonly skippedKeys = new Set<string>()
  private refreshing: Promise<number> | null = null
  private refreshAgain = false
  private readonly listeners = new Set<(entries: number) => void>()
  private readonly unsubscribe: (() => void)[] = []
  private idleTimer: NodeJS.Timeout | null = null
  private liveTimer: NodeJS.Timeout | null = null
  private closed = false
  /** Something was applied or done since the checkpoint was read or written. */
  private changedSinceCheckpoint = true

  private constructor(node: Node, record: VolumeRecord, cas: Cas, volumeKey: Buffer, log: WriterLog, tree: Tree) {
    this.record = record
    this.id = Buffer.from(record.id, 'hex')
    this.cas = cas
    this.volumeKey = volumeKey
    this.log = log
    this.store = node.store
    this.storeSync = node.storeSync
    this.space = node.space
    this.dataDir = node.dir.root
    this.currentTree = tree
    this.writers.set(log.key.toString('hex'), log)
  }

  get name(): string {
    return this.record.name
  }

  /** The directory state. */
  get tree(): Tree {
    return this.currentTree
  }

  static async open(node: Node, record: VolumeRecord, opts: OpenOptions = {}): Promise<Volume> {
    const t0 = performance.now()
    const volumeId = Buffer.from(record.id, 'hex')
    const volumeKey = deriveKey(node.dir.sharingKey(record.sharing), CONTEXT.volume, volumeId)
    const log = await WriterLog.create(node.store, { volumeId, identity: node.dir.identity, volumeKey })
    const actor = log.key.toString('hex')
    const vol = new Volume(node, record, node.cas(record.sharing), volumeKey, log, Tree.create(actor))
    try {
      for (const key of readWritersFile(node.dir.root, record.id)) if (!key.equals(log.key)) await vol.openWriter(key)
      if (opts.checkpoint !== false) vol.restoreCheckpoint()
      vol.opened.replayedEntries = await vol.replay()
    } catch (err) {
      for (const w of vol.writers.values()) await w.close().catch(() => {})
      vol.tree.free()
      throw err
    }
    vol.opened.ms = performance.now() - t0
    return vol
  }

  // ---- writers and replay ----------------------------------------------------------------

  /**
   * Makes another node's writer log (by its key) part of this volume: remembered in the data
   * dir, downloaded live when replication connects, and its entries applied as they arrive.
   * Returns the log; adding a known writer again is a no-op.
   */
  async addWriter(key: Buffer): Promise<WriterLog> {
    const hex = key.toString('hex')
    const known = this.writers.get(hex)
    if (known) return known
    const log = await this.openWriter(key)
    writeWritersFile(this.dataDir, this.record.id, [...this.writers.values()].filter((w) => w !== this.log).map((w) => w.key))
    await this.refresh()
    return log
  }

  private async openWriter(key: Buffer): Promise<WriterLog> {
    const log = await WriterLog.open(this.store, { key, volumeId: this.id, volumeKey: this.volumeKey })
    this.writers.set(key.toString('hex'), log)
    // Live: fetch every block of the log, now and as it grows, and apply entries as they land.
    const range = log.core.download({ start: 0, end: -1 })
    const onData = (): void => this.scheduleRefresh()
    log.core.on('append', onData)
    log.core.on('download', onData)
    this.unsubscribe.push(() => {
      range.destroy()
      log.core.off('append', onData)
      log.core.off('download', onData)
    })
    return log
  }

  /** Per writer log: its local length and how far it has been applied (next seq). */
  replayState(): { writer: string; length: number; contiguous: number; applied: number }[] {
    return [...this.writers].map(([hex, w]) => ({ writer: hex, length: w.length, contiguous: w.core.contiguousLength, applied: this.applied.get(hex) ?? 1 }))
  }

  /**
   * Blocks arrive one by one while replicating: applying each alone would pay the per-batch
   * cost (diff, re-reading touched records) thousands of times, so arrivals are coalesced.
   */
  private scheduleRefresh(): void {
    if (this.liveTimer || this.closed) return
    this.liveTimer = setTimeout(() => {
      this.liveTimer = null
      void this.refresh().catch(() => {})
    }, LIVE_DELAY_MS)
  }

  /** Called after entries from other writers were applied (with how many). */
  onChange(fn: (entries: number) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /**
   * Applies every entry that is held locally and not applied yet, from every writer; returns
   * how many entries were applied. Concurrent calls coalesce.
   */
  refresh(): Promise<number> {
    if (this.closed) return Promise.resolve(0)
    if (this.refreshing) {
      this.refreshAgain = true
      return this.refreshing
    }
    const run = async (): Promise<number> => {
      let total = 0
      do {
        this.refreshAgain = false
        total += await this.replay()
      } while (this.refreshAgain && !this.closed)
      return total
    }
    this.refreshing = run().finally(() => { this.refreshing = null })
    return this.refreshing.then((n) => {
      if (n > 0) {
        for (const fn of this.listeners) fn(n)
        this.scheduleIdle()
      }
      return n
    })
  }

  /** Applies the not yet applied local entries of every writer, in batches. */
  private async replay(): Promise<number> {
    let entries = 0
    for (const [hex, writer] of [...this.writers].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (this.closed) break
      let next = this.applied.get(hex) ?? 1
      const entriesBefore = entries
      let batch: IncomingChange[] = []
      let batchOps = 0
      let batchBytes = 0
      const apply = (): void => {
        const t0 = performance.now()
        const rejected = this.tree.apply(batch)
        this.stats.applyCalls++
        this.stats.applyMs += performance.now() - t0
        for (const r of rejected) {
          const seq = Number(r.tag!.slice(r.tag!.lastIndexOf(':') + 1))
          this.skip(writer.key, seq, `changes do not apply: ${r.reason}`)
        }
        batch = []
        batchOps = 0
        batchBytes = 0
      }
      let t0 = performance.now()
      for await (const entry of writer.read({ from: next, wait: false })) {
        if (this.closed) break
        if (entry instanceof EntryError) {
          this.skip(entry.writer, entry.seq, entry.reason)
          if (entry.seq === 0) break
          next = entry.seq + 1
          continue
        }
        // Batches stay within one entry's worth of work (CHANGE_LIMITS), and the event loop
        // runs between them: no batch, hostile or not, blocks the server for long.
        const cost = entryCost(entry.body.changes.map((c) => c.change))
        if (batch.length > 0 && (batchOps + cost.ops > CHANGE_LIMITS.entryOps || batchBytes + cost.bytes > CHANGE_LIMITS.entryBytes || batch.length >= APPLY_BATCH)) {
          this.stats.readMs += performance.now() - t0
          apply()
          await new Promise((resolve) => setImmediate(resolve))
          t0 = performance.now()
        }
        for (const c of entry.body.changes) batch.push({ shard: c.shard, change: c.change, writer: hex, tag: `${hex}:${entry.seq}` })
        batchOps += cost.ops
        batchBytes += cost.bytes
        next = entry.seq + 1
        entries++
      }
      this.stats.readMs += performance.now() - t0
      if (batch.length > 0) apply()
      this.stats.entries += entries - entriesBefore
      if (entries > entriesBefore) this.changedSinceCheckpoint = true
      this.applied.set(hex, next)
    }
    return entries
  }

  private skip(writer: Buffer, seq: number, reason: string): void {
    const key = `${writer.toString('hex')}:${seq}`
    if (this.skippedKeys.has(key)) return
    this.skippedKeys.add(key)
    this.skipped.push({ writer: encodeKey(writer), seq, reason })
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /**
   * Writes the checkpoint: the tree state and, per writer, the log length it covers. Local
   * edits are logged first; returns false (nothing written) if edits came in meanwhile.
   * A cache: deleting the file only makes the next open replay the logs.
   */
  async checkpoint(): Promise<boolean> {
    await this.flush()
    // Never a checkpoint of changes that are not in the log: no replay could rebuild it.
    if (this.pending.length > 0 || this.unlogged.length > 0 || this.tree.dirty) return false
    this.applied.set(this.log.key.toString('hex'), this.log.length)
    const info: CheckpointInfo = {
      format: CHECKPOINT_FORMAT, volume: this.record.id, actor: this.log.key.toString('hex'),
      logs: Object.fromEntries(this.applied), skipped: this.skipped,
    }
    const bytes = encodeTreeState(this.tree.exportState(), info)
    this.changedSinceCheckpoint = false
    const file = checkpointPath(this.dataDir, this.record.id)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    await replaceFile(file, bytes, { mode: 0o600 })
    return true
  }

  /** Uses the checkpoint if it is readable and consistent with the logs; else leaves a full replay to do. */
  private restoreCheckpoint(): void {
    const file = checkpointPath(this.dataDir, this.record.id)
    let bytes: Buffer
    try {
      bytes = fs.readFileSync(file)
    } catch {
      return
    }
    try {
      const { state, extra } = decodeTreeState(bytes)
      const info = extra as CheckpointInfo
      const actor = this.log.key.toString('hex')
      if (!info || info.format !== CHECKPOINT_FORMAT || info.volume !== this.record.id || info.actor !== actor) throw new Error('checkpoint of another volume or writer')
      for (const [hex, next] of Object.entries(info.logs)) {
        const w = this.writers.get(hex)
        if (!w || !Number.isSafeInteger(next) || next < 1 || next > Math.max(1, w.length)) throw new Error(`checkpoint covers more of log ${hex} than is here`)
      }
      const tree = Tree.restore(actor, state)
      this.currentTree.free()
      this.currentTree = tree
      for (const [hex, next] of Object.entries(info.logs)) this.applied.set(hex, next)
      for (const s of info.skipped ?? []) {
        this.skippedKeys.add(`${decodeKey(s.writer).toString('hex')}:${s.seq}`)
        this.skipped.push(s)
      }
      this.opened.fromCheckpoint = true
      this.changedSinceCheckpoint = false
    } catch {
      // A cache that doesn't fit is ignored: the logs are the truth, replay rebuilds everything.
      this.applied.clear()
    }
  }

  /** Frees the Automerge documents of shards not used for IDLE_MS (checked while any is loaded). */
  private scheduleIdle(): void {
    if (this.idleTimer || this.closed) return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null
      if (this.closed) return
      this.tree.evict(0, IDLE_MS)
      if (this.tree.shardStats.hot > 0) this.scheduleIdle()
    }, IDLE_MS)
    this.idleTimer.unref()
  }

  /**
   * Runs one tree operation and queues its audit description for the next entry. A tree
   * error leaves nothing queued (tree operations validate before they change anything).
   */
  mutate<T>(op: (tree: Tree) => T, audit: (result: T) => AuditOp): T {
    const result = op(this.tree)
    const a = audit(result)
    this.pending.push(a)
    this.pendingBytes += 64 + (a.path?.length ?? 0) + (a.to?.length ?? 0) + (a.target?.length ?? 0)
    this.changedSinceCheckpoint = true
    this.scheduleIdle()
    return result
  }

  get isClosed(): boolean {
    return this.closed
  }

  get pendingOps(): number {
    return this.pending.length
  }

  /** Ops and changes written by no flush yet (a failed flush leaves them here). */
  get unloggedCount(): { ops: number; changes: number; error: string | null } {
    return { ops: this.pending.length, changes: this.unlogged.length, error: this.flushError?.message ?? null }
  }

  /**
   * Writes everything queued to the op log, in one append (split into entries that fit the
   * entry limit). All or nothing: if the append fails, everything stays queued for the next
   * flush and the error is thrown (naming how much is waiting).
   */
  flush(): Promise<void> {
    this.flushesQueued++
    const run = this.flushTail.then(() => this.flushNow()).finally(() => { this.flushesQueued-- })
    this.flushTail = run.catch(() => {})
    return run
  }

  private async flushNow(): Promise<void> {
    const taken = this.tree.takeChanges()
    for (const c of taken) this.unlogged.push(c)
    if (this.pending.length === 0 && this.unlogged.length === 0) return
    // New ops may be queued while the append runs: only what is written here leaves the queues.
    const ops = this.pending.slice()
    const changes = this.unlogged.slice()
    const bytes = this.pendingBytes
    const own = this.log.key.toString('hex')
    let seqs: number[]
    try {
      // Groups of changes that fit one entry's change limits (CHANGE_LIMITS), each cut to the
      // entry size target; the audit ops go with the last group.
      const time = Date.now()
      const groups = entryGroups(changes)
      const bodies = groups.length === 0 ? splitIntoEntries([], ops, time) : groups.flatMap((g, i) => splitIntoEntries(g, i === groups.length - 1 ? ops : [], time))
      let changeBytes = 0
      for (const b of bodies) for (const c of b.changes) changeBytes += c.change.byteLength
      this.space.take(changeBytes + this.pendingBytes)
      seqs = await this.log.append(bodies)
    } catch (err) {
      const reason = describeError(err)
      this.flushError = new Error(`writing the op log of volume ${this.name} failed: ${reason} (${this.pending.length} ops and ${this.unlogged.length} changes are kept and written by the next flush)`)
      Object.assign(this.flushError, { code: (err as NodeJS.ErrnoException).code ?? errnoOf(reason) })
      throw this.flushError
    }
    this.flushError = null
    this.pending.splice(0, ops.length)
    this.unlogged.splice(0, changes.length)
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes)
    // Our own entries are already in the tree: replay need not read them back.
    if (seqs.length > 0 && (this.applied.get(own) ?? 1) === seqs[0]) this.applied.set(own, seqs[seqs.length - 1] + 1)
  }

  /**
   * Flushes, then makes the log and the content written so far durable (survives an OS
   * crash): what fsync through the mount waits for. Concurrent calls share fdatasyncs.
   */
  async sync(): Promise<void> {
    await this.flush()
    await this.storeSync.sync()
  }

  /** Flushes when enough ops are queued; for loops doing bulk work. */
  async maybeFlush(): Promise<void> {
    const over = (k: number): boolean => this.pending.length >= k * FLUSH_EVERY_OPS || this.pendingBytes >= k * FLUSH_EVERY_BYTES
    if (!over(1)) return
    // Workers of one import call this together: one flush at a time, unless the queue keeps growing.
    if (this.flushesQueued > 0 && !over(2)) return
    await this.flush()
  }

  /** The live tree, or a snapshot of it. */
  view(snapshot?: string): ReadTree {
    if (snapshot === undefined) return this.tree
    try {
      return this.tree.at(snapshot)
    } catch (err) {
      if (err instanceof TreeError && err.code === 'ENOENT') {
        throw new TreeError('ENOENT', snapshot, `volume "${this.name}" has no snapshot "${snapshot}"`)
      }
      throw err
    }
  }

  // --- conflicts ---

  /**
   * Files with concurrent versions, each version with who wrote it: `log` is the writer log
   * key, `node` the node that log is bound to (null while its binding block is not local).
   */
  async conflicts(): Promise<VolumeConflict[]> {
    const out: VolumeConflict[] = []
    const own = this.log.key.toString('hex')
    for (const c of this.tree.conflicts()) {
      const versions: ConflictVersionInfo[] = []
      for (const v of c.versions) {
        const log = this.writers.get(v.writer)
        const node = log ? await log.node().catch(() => null) : null
        versions.push({ ...v, log: encodeKey(Buffer.from(v.writer, 'hex')), node: node ? encodeKey(node) : null, mine: v.writer === own })
      }
      out.push({ path: c.path, versions })
    }
    return out
  }

  /** Settles the conflict of the file at `path` as a logged op (see Tree.resolve). */
  resolve(path: string, keep: string): { kept: Stat; created: Stat[] } {
    return this.mutate(
      (t) => t.resolve(path, keep),
      (r) => ({ op: 'resolve', path: r.kept.path, kind: keep === 'mine' || keep === 'theirs' || keep === 'both' ? keep : 'hash', size: r.kept.size, hash: r.kept.content?.hash })
    )
  }

  // --- operations shared by the CLI and the mount ---

  async writeFile(path: string, source: string | AsyncIterable<Buffer> | Buffer, attrs: { mode?: number; mtime?: number } = {}): Promise<Stat> {
    const ref = Buffer.isBuffer(source) ? await this.cas.writeBuffer(source) : await this.cas.writeFile(source)
    return this.writeRef(path, ref, attrs)
  }

  /** Records content already in the CAS as the file's new version (queued for the next entry). */
  writeRef(path: string, ref: FileRef, attrs: { mode?: number; mtime?: number } = {}): Stat {
    return this.mutate(
      (t) => t.writeFile(path, toContentRef(ref), attrs),
      (st) => ({ op: 'write', path: st.path, size: ref.size, hash: ref.hash.toString('hex'), mode: st.mode, mtime: st.mtime })
    )
  }

  mkdir(path: string, attrs: { mode?: number; mtime?: number } = {}): Stat {
    return this.mutate(
      (t) => t.mkdir(path, attrs),
      (st) => ({ op: 'mkdir', path: st.path, mode: st.mode, mtime: st.mtime })
    )
  }

  /** mkdir -p: creates the missing directories of `path`; fails if a component is not a directory. */
  mkdirp(path: string): Stat {
    const parts = path.split('/').filter((p) => p.length > 0)
    let st = this.tree.stat('/')
    let cur = ''
    for (const part of parts) {
      cur += '/' + part
      const found = this.tree.lookup(cur)
      if (found && found.kind !== 'dir') throw new TreeError('ENOTDIR', cur, `${cur} exists and is not a directory`)
      st = found ?? this.mkdir(cur)
    }
    return st
  }

  symlink(path: string, target: string, attrs: { mtime?: number } = {}): Stat {
    return this.mutate(
      (t) => t.symlink(path, target, attrs),
      (st) => ({ op: 'symlink', path: st.path, target, mtime: st.mtime })
    )
  }

  rename(from: string, to: string): void {
    this.mutate(
      (t) => t.rename(from, to),
      () => ({ op: 'rename', path: normalize(from), to: normalize(to) })
    )
  }

  unlink(path: string): void {
    this.mutate(
      (t) => t.unlink(path),
      () => ({ op: 'unlink', path: normalize(path) })
    )
  }

  rmdir(path: string): void {
    this.mutate(
      (t) => t.rmdir(path),
      () => ({ op: 'rmdir', path: normalize(path) })
    )
  }

  setattr(path: string, attrs: { mode?: number; mtime?: number }): Stat {
    return this.mutate(
      (t) => t.setattr(path, attrs),
      (st) => ({ op: 'setattr', path: st.path, mode: attrs.mode, mtime: attrs.mtime })
    )
  }

  snapshot(name: string): void {
    this.mutate(
      (t) => t.snapshot(name),
      () => ({ op: 'snapshot', path: name })
    )
  }

  /** Every entry of every writer, oldest first per writer. */
  async *entries(writer?: Buffer): AsyncIterable<LogEntry | EntryError> {
    for (const log of this.writers.values()) {
      if (writer && !log.key.equals(writer)) continue
      yield* log.read({ wait: false })
    }
  }

  /** Verifies every writer log and that every entry's changes apply to a fresh tree. */
  async verify(): Promise<{ writers: number; entries: number; ops: number; errors: SkippedEntry[] }> {
    const errors: SkippedEntry[] = []
    let entries = 0
    let ops = 0
    const fresh = Tree.create(this.log.key.toString('hex'))
    try {
      for (const log of this.writers.values()) {
        const result = await log.verify()
        for (const e of result.errors) errors.push({ writer: encodeKey(e.writer), seq: e.seq, reason: e.reason })
        for await (const entry of log.read({ wait: false })) {
          if (entry instanceof EntryError) continue // reported by verify() above
          entries++
          ops += entry.body.ops.length
          const hex = entry.writer.toString('hex')
          const tag = `${hex}:${entry.seq}` // one entry: its changes share the entry's limits
          const rejected = fresh.apply(entry.body.changes.map((c) => ({ shard: c.shard, change: c.change, writer: hex, tag })))
          if (rejected.length > 0) errors.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: `changes do not apply: ${rejected[0].reason}` })
        }
      }
    } finally {
      fresh.free()
    }
    errors.sort((a, b) => (a.writer === b.writer ? a.seq - b.seq : a.writer < b.writer ? -1 : 1))
    return { writers: this.writers.size, entries, ops, errors }
  }

  /**
   * Writes what is queued, checkpoints and closes. If the op log cannot be written, the
   * volume still closes (without a checkpoint: the next open replays the logs, which hold
   * everything but the unwritten edits) and the error says what was lost.
   */
  async close(): Promise<void> {
    if (this.closed) return
    let lost: Error | null = null
    try {
      await this.flush()
    } catch (err) {
      lost = new Error(`volume ${this.name}: ${this.pending.length} ops were never written to the op log and are lost: ${(err as Error).message}`)
    }
    if (this.refreshing) await this.refreshing.catch(() => {})
    try {
      if (lost === null && (this.changedSinceCheckpoint || !fs.existsSync(checkpointPath(this.dataDir, this.record.id)))) await this.checkpoint()
    } catch {
      // Only a cache: the next open replays instead.
    }
    this.closed = true
    if (this.idleTimer) clearTimeout(this.idleTimer)
    if (this.liveTimer) clearTimeout(this.liveTimer)
    for (const u of this.unsubscribe) u()
    for (const log of this.writers.values()) await log.close()
    this.tree.free()
    if (lost) throw lost
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

/** A volume path in its canonical form, for audit records: leading '/', no trailing '/'. */
export function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0)
  return '/' + parts.join('/')
}
