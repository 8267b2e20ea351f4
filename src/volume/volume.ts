// A volume on this node: its directory state (src/tree), replayed from every writer's op log
// (src/logs) by replay.ts, with content in the node's content store (src/cas). This module is
// the facade the mount, import/export, the CLI and the network use: the operations on the tree
// (each a logged edit through `mutate`), the views, conflicts, states and checkpoints. Writing
// edits to the log is flush.ts; who may write is admission.ts; the checkpoint file is
// checkpoint-file.ts; what the volume needs of its node is host.ts.
import fs from 'node:fs'
import { CONTEXT, deriveKey, encodeKey } from '../crypto.js'
import { UserError, type VolumeRecord } from '../datadir.js'
import type { Cas, FileRef } from '../cas/index.js'
import { Tree, TreeError, type Attrs, type ContentRef, type ReadTree, type SpecialKind, type Stat } from '../tree/index.js'
import { EntryError, WriterLog, type AuditOp, type LogEntry, type WriterSet } from '../logs/index.js'
import type { VolumeState } from '../tree/state-file.js'
import { StateRejectedError, checkState, type AdoptPhase, type AdoptedState } from './volume-state.js'
import type { VolumeHost } from './host.js'
import { LiveTree } from './live-tree.js'
import { rebuildProgress } from './rebuild-progress.js'
import { Flusher, type RefusedEdits } from './flush.js'
import { Replay, genesisOf } from './replay.js'
import { admitCandidates, admitNode, revokeNode } from './admission.js'
import { checkpointPath, readCheckpoint, writeCheckpoint, type SkippedEntry } from './checkpoint-file.js'

/** A shard's Automerge document not used for this long is saved and freed. */
export const IDLE_MS = 30_000

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

export class Volume {
  readonly id: Buffer
  readonly cas: Cas
  /** This node's own writer log of the volume. */
  readonly log: WriterLog
  /** Where replay came from when the volume opened: a checkpoint (and how many entries were replayed after it) or the logs alone. */
  readonly opened = { fromCheckpoint: false, replayedEntries: 0, ms: 0 }
  /** Refuses writes that would leave too little disk for the store (a full disk: ENOSPC). */
  readonly space: VolumeHost['space']
  private readonly host: VolumeHost
  private readonly live: LiveTree
  private readonly flusher: Flusher
  private readonly replayer: Replay
  private idleTimer: NodeJS.Timeout | null = null
  private closed = false
  /** close() has begun: a join in progress stops at its next slice. */
  private closing = false
  /** While a state is adopted (adoptState): shards checked so far; edits are refused. */
  private joining: { done: number; total: number } | null = null
  private joinRun: Promise<void> | null = null
  /** The checkpoint being written, or the last one (settled). */
  private checkpointRun: Promise<unknown> = Promise.resolve()

  private constructor(host: VolumeHost, record: VolumeRecord, volumeKey: Buffer, log: WriterLog) {
    this.host = host
    this.id = Buffer.from(record.id, 'hex')
    this.cas = host.cas(record.sharing)
    this.log = log
    this.space = host.space
    this.live = new LiveTree(Tree.create(log.key.toString('hex')))
    this.flusher = new Flusher({
      live: this.live, log, space: host.space,
      name: () => this.name,
      canWrite: () => this.canWrite,
      writeRefusal: () => this.writeRefusal(),
      appended: (seqs) => this.replayer.ownAppended(seqs),
      refresh: () => this.refresh(),
      queued: () => this.scheduleIdle(),
    })
    this.replayer = new Replay({ host, live: this.live, flusher: this.flusher, applied: () => this.scheduleIdle() }, record, log, volumeKey)
    this.replayer.afterPass = () => admitCandidates(this.replayer, host)
  }

  get name(): string {
    return this.record.name
  }

  /** The volume record (genesis and legacy roots may be added while the volume is open). */
  get record(): VolumeRecord {
    return this.replayer.record
  }

  /** The directory state. */
  get tree(): Tree {
    return this.live.tree
  }

  static async open(host: VolumeHost, record: VolumeRecord, opts: OpenOptions = {}): Promise<Volume> {
    const t0 = performance.now()
    const volumeId = Buffer.from(record.id, 'hex')
    const volumeKey = deriveKey(host.dir.sharingKey(record.sharing), CONTEXT.volume, volumeId)
    const genesis = genesisOf(record)
    // A node joining a volume leaves its log unbound until it knows the genesis (ensureBound).
    const log = await WriterLog.create(host.store, { volumeId, identity: host.dir.identity, volumeKey, genesis, bind: genesis !== null })
    const vol = new Volume(host, record, volumeKey, log)
    const r = vol.replayer
    try {
      const others = await r.openKnownWriters()
      // Migration of a volume an older bazil made (own log bound, no genesis, no roots): the
      // logs known now are its roots from now on (spec/oplog.md "Migration of legacy volumes").
      if (genesis === null && record.roots === undefined && log.bound) {
        r.updateRecord({ roots: [log.key, ...others].map((k) => encodeKey(k)).sort() })
      }
      if (opts.checkpoint !== false) vol.restoreCheckpoint()
      if (!vol.opened.fromCheckpoint) r.progress = rebuildProgress(record.name, process.stderr)
      vol.opened.replayedEntries = await r.replay()
      r.progress?.(-1, 0)
      r.progress = null
    } catch (err) {
      for (const w of r.writers.values()) await w.close().catch(() => {})
      vol.tree.free()
      throw err
    }
    vol.opened.ms = performance.now() - t0
    return vol
  }

  // ---- writers and replay (replay.ts, admission.ts) -----------------------------------------

  /** Every known writer log (this node's included), by log key hex. */
  get writers(): ReadonlyMap<string, WriterLog> {
    return this.replayer.writers
  }

  /** Entries that could not be used while replaying, with why. */
  get skipped(): readonly SkippedEntry[] {
    return this.replayer.skipped
  }

  /** Entries applied and later made invalid by a revocation that arrived late (dropped by a rebuild). */
  get dropped(): readonly SkippedEntry[] {
    return this.replayer.dropped
  }

  /** Tree rebuilds caused by such revocations, and the time they took. */
  get rebuilds(): { readonly count: number; readonly ms: number } {
    return this.replayer.rebuilds
  }

  /** Writer-set computations and their total time. */
  get setStats(): { readonly computed: number; readonly ms: number } {
    return this.replayer.setStats
  }

  /** Replay counters: entries applied, time reading+decrypting them, time applying them to the tree. */
  get stats(): { readonly entries: number; readonly readMs: number; readonly applyMs: number; readonly applyCalls: number; readonly passes: number; readonly windows: number } {
    return this.replayer.stats
  }

  /** This node's edits that its log could not take (see RefusedEdits), oldest first. */
  get refused(): readonly RefusedEdits[] {
    return this.flusher.refused
  }

  /**
   * Makes another node's writer log (by its key) part of this volume: remembered in the data
   * dir, downloaded live when replication connects, and its entries applied as they arrive.
   * Returns the log; adding a known writer again is a no-op.
   */
  addWriter(key: Buffer): Promise<WriterLog> {
    return this.replayer.addWriter(key)
  }

  /** The writer set as last computed (spec/oplog.md "Writer set"). */
  get writerSet(): WriterSet {
    return this.replayer.writerSet
  }

  /** Whether this node may write now (Replay.canWrite). */
  get canWrite(): boolean {
    return this.joining === null && this.replayer.canWrite
  }

  /** One line saying why this node cannot write (for errors). */
  writeRefusal(): string {
    if (this.joining) return `volume "${this.name}" is being started from a peer's state (${this.joining.done} of ${this.joining.total} shards checked): edits wait until it is adopted`
    return this.replayer.writeRefusal()
  }

  /** Logs to serve and relay (Replay.servedKeys). */
  servedKeys(): Buffer[] {
    return this.replayer.servedKeys()
  }

  /** Writes this node's binding block if it has none (Replay.ensureBound). */
  ensureBound(): Promise<void> {
    return this.replayer.ensureBound()
  }

  /** Every log held with the node its binding names (null: block 0 not here yet), key hex. */
  knownLogs(): { log: string; node: string | null }[] {
    return this.replayer.knownLogs()
  }

  /** Whether the bindings of these logs are held (and checked) here. */
  bindingsKnown(keys: Buffer[]): boolean {
    return this.replayer.bindingsKnown(keys)
  }

  /** Makes the given logs the legacy roots of a volume without genesis (volume connect, spec/oplog.md "Migration"). */
  setLegacyRoots(keys: Buffer[]): Promise<void> {
    return this.replayer.setLegacyRoots(keys)
  }

  /** Records admit(log, node) for every candidate log whose node the host allows (admission.ts). */
  admitCandidates(): Promise<boolean> {
    return admitCandidates(this.replayer, this.host)
  }

  /** Records admit-node(node) (admission.ts). */
  admitNode(node: Buffer): Promise<boolean> {
    return admitNode(this.replayer, node)
  }

  /** Revokes `node` (admission.ts). */
  revokeNode(node: Buffer): Promise<{ revoked: { log: Buffer; last: number }[]; roots: Buffer[] }> {
    return revokeNode(this.replayer, node)
  }

  /** Per writer log: its local length and how far it has been applied (next seq). */
  replayState(): { writer: string; length: number; contiguous: number; applied: number }[] {
    return this.replayer.replayState()
  }

  /** Called after entries from other writers were applied (with how many). */
  onChange(fn: (entries: number) => void): () => void {
    return this.replayer.onChange(fn)
  }

  /** Applies every entry held locally and not applied yet; returns how many. Concurrent calls coalesce. */
  refresh(): Promise<number> {
    return this.replayer.refresh()
  }

  // ---- states (spec/tree.md "Starting from a state") -----------------------------------------

  /** The key a state of this volume travels under between peers (sealState; spec/keys.md). */
  get stateKey(): Buffer {
    return this.replayer.stateKey
  }

  /** Applies nothing from the logs until resumed (a joiner that will start from a state); replay resumes where it stood. */
  pauseApply(on: boolean): void {
    this.replayer.pauseApply(on)
  }

  /** How far into each log the tree reaches (next seq), with no edit queued (Replay.reach). */
  reach(): Map<string, number> {
    return this.replayer.reach()
  }

  /** This replica's state for a joiner: every shard save at its heads, and how far into each log it reaches. */
  async saveState(): Promise<VolumeState> {
    await this.flush()
    if (this.flusher.holdsEdits) throw new UserError(`volume "${this.name}" has edits not yet in its log: try again`)
    const logs: Record<string, number> = {}
    for (const [hex, next] of this.reach()) if (next > 1) logs[hex] = next
    const heads = this.tree.heads()
    const shards = [...this.tree.shardHeads()].filter(([, h]) => h.length > 0).map(([name, h]) => ({ name, heads: h, bytes: this.tree.shardBytes(name) }))
    const metaBytes = heads.meta ? this.tree.parts().meta : null
    return { volume: this.record.id, logs, shards, meta: metaBytes && heads.meta ? { heads: heads.meta, bytes: metaBytes } : null }
  }

  /**
   * Starts this volume from `state` instead of replaying the history: only on a volume that has
   * applied nothing yet, with the logs the state covers held here. Everything is checked against
   * the signed logs (volume-state.ts); a state that does not match throws StateRejectedError and
   * leaves the volume as it was (replay then applies the logs as usual). Once the entries are
   * checked the volume shows the tree filling with checked shards (the mount answers meanwhile),
   * refuses edits until it is adopted and checkpointed, and writes that checkpoint in slices
   * before it returns (spec/tree.md "Starting from a state"). `sliceMs`: tests only.
   */
  async adoptState(state: VolumeState, onProgress?: (phase: AdoptPhase, done: number, total: number) => void | Promise<void>, opts: { sliceMs?: number } = {}): Promise<AdoptedState> {
    const r = this.replayer
    const was = r.paused
    r.pauseApply(true)
    const before = this.live.tree
    let shown = false
    let adopted = false
    let done: () => void = () => {}
    this.joinRun = new Promise<void>((resolve) => { done = resolve })
    try {
      // A checkpoint of the tree shown before is not left writing while that tree is freed.
      await this.checkpointRun
      await this.refresh()
      if (r.appliedAny) throw new StateRejectedError(`volume "${this.name}" has applied entries already: a state is only taken by a first sync`)
      this.joining = { done: 0, total: state.shards.length }
      const checked = await checkState(state, {
        volumeId: this.record.id, actor: this.log.key.toString('hex'), writers: r.writers, set: r.writerSet, sliceMs: opts.sliceMs,
        onTree: (t) => {
          this.live.show(t)
          shown = true
        },
        onProgress: async (phase, n, total) => {
          if (phase === 'shards') this.joining = { done: n, total }
          // Stops the loads at their next slice (the entries' check runs to its end).
          if (this.closing && phase === 'shards') throw new Error(`volume "${this.name}" was closed`)
          await onProgress?.(phase, n, total)
        },
      })
      if (this.closing || r.appliedAny) {
        this.live.show(before)
        checked.tree.free()
        shown = false
        if (this.closing) throw new Error(`volume "${this.name}" was closed`)
        throw new StateRejectedError(`volume "${this.name}" applied entries while the state was checked`)
      }
      // The checked tree is the one shown (handed out before its first shard); the one it replaced goes.
      if (this.live.show(checked.tree) !== checked.tree) throw new Error('the joining tree was replaced while it filled')
      before.free()
      adopted = true
      r.startFrom(checked.applied, checked.skipped)
      this.live.changedSinceCheckpoint = true
      await onProgress?.('checkpoint', 0, 1)
      const t0 = performance.now()
      const checkpointed = await this.writeCheckpointNow()
      const checkpointMs = performance.now() - t0
      r.notify(checked.entries)
      return { entries: checked.entries, changes: checked.changes, ms: { ...checked.ms, checkpoint: checkpointMs }, checkpointed }
    } catch (e) {
      // A state not believed (or a close) while it filled: the tree it filled was freed; the one before is shown again.
      if (shown && !adopted) this.live.show(before)
      throw e
    } finally {
      this.joining = null
      done()
      this.joinRun = null
      r.pauseApply(was)
    }
  }

  // ---- checkpoints (checkpoint-file.ts) -----------------------------------------------------

  /**
   * Writes the checkpoint: the tree state and, per writer, the log length it covers. Local
   * edits are logged first; returns false (nothing written) if edits came in meanwhile.
   * A cache: deleting the file only makes the next open replay the logs.
   */
  async checkpoint(): Promise<boolean> {
    // Not of a tree a state is filling (adoptState writes its own checkpoint once it is whole).
    if (this.joining) return false
    return this.writeCheckpointNow()
  }

  /** One checkpoint at a time: each starts once the one before has ended. */
  private writeCheckpointNow(): Promise<boolean> {
    const run = this.checkpointRun.then(() => this.commitCheckpoint())
    this.checkpointRun = run.catch(() => {})
    return run
  }

  /**
   * The tree and the log positions are taken at once (synchronously, at the call below); the
   * index buckets are then written in slices while the mount and replay go on (what they change
   * goes into the next checkpoint): a commit after a big merge never stops the mount.
   */
  private async commitCheckpoint(): Promise<boolean> {
    await this.flush()
    if (this.closed) return false
    // Never a checkpoint of changes that are not in the log: no replay could rebuild it.
    // Nor of a view that still holds refused edits (the replay that removes them has not run yet).
    if (this.flusher.holdsEdits || this.live.viewStale) return false
    const written = writeCheckpoint(this.host.dir.root, this.record.id, this.log.key.toString('hex'), this.tree, this.replayer.positions())
    this.live.changedSinceCheckpoint = false
    try {
      await written
    } catch (e) {
      this.live.changedSinceCheckpoint = true
      throw e
    }
    return true
  }

  /** Uses the checkpoint if it is readable and consistent with the logs; else leaves a full replay to do. */
  private restoreCheckpoint(): void {
    const lengths = new Map([...this.replayer.writers].map(([hex, w]) => [hex, w.length]))
    const found = readCheckpoint(this.host.dir.root, this.record.id, this.log.key.toString('hex'), lengths)
    if (found === null) return
    this.live.replace(found.tree)
    this.replayer.restore(found.at)
    this.opened.fromCheckpoint = true
    // A checkpoint of an older version: read whole this once, the next checkpoint writes the index.
    this.live.changedSinceCheckpoint = found.legacy
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

  // ---- local edits (flush.ts) ---------------------------------------------------------------

  /**
   * Runs one tree operation and queues its audit description for the next entry. A tree
   * error leaves nothing queued (tree operations validate before they change anything).
   */
  mutate<T>(op: (tree: Tree) => T, audit: (result: T) => AuditOp): T {
    // EROFS: what a write through the mount answers while this node may not write.
    if (!this.canWrite) throw Object.assign(new UserError(this.writeRefusal()), { code: 'EROFS' })
    const result = op(this.tree)
    this.flusher.queue(audit(result))
    return result
  }

  get isClosed(): boolean {
    return this.closed
  }

  get pendingOps(): number {
    return this.flusher.pendingOps
  }

  /** Ops and changes written by no flush yet (a failed flush leaves them here). */
  get unloggedCount(): { ops: number; changes: number; error: string | null } {
    return this.flusher.unloggedCount
  }

  /** Writes everything queued to the op log, in one append (Flusher.flush). */
  flush(): Promise<void> {
    return this.flusher.flush()
  }

  /**
   * Flushes, then makes the log and the content written so far durable (survives an OS
   * crash): what fsync through the mount waits for. Concurrent calls share fdatasyncs.
   */
  async sync(): Promise<void> {
    await this.flush()
    await this.host.storeSync.sync()
  }

  /** Flushes when enough ops are queued; for loops doing bulk work (Flusher.maybeFlush). */
  maybeFlush(scale = 1): Promise<void> {
    return this.flusher.maybeFlush(scale)
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
  writeRef(path: string, ref: FileRef, attrs: Attrs = {}): Stat {
    return this.mutate(
      (t) => t.writeFile(path, toContentRef(ref), attrs),
      (st) => ({ op: 'write', path: st.path, size: ref.size, hash: ref.hash.toString('hex'), mode: st.mode, mtime: st.mtime })
    )
  }

  /**
   * Stores content in the CAS (a file on disk, of `size` bytes if known, or a buffer handed
   * over) and records it as the new version of node `nodeId` at its path now: a rename while
   * the content was stored is followed. Null if the node is no longer a file (removed
   * meanwhile: nothing recorded). With `unlessSame`, a file that already has this content
   * gets no new version (`written` false). `attrs` is asked once the content is stored: a
   * chmod or utimens while it was stored counts.
   */
  async commitFile(nodeId: string, content: string | Buffer, attrs: () => { mode?: number; mtime?: number }, opts: { size?: number; unlessSame?: boolean } = {}): Promise<{ stat: Stat; ref: FileRef; written: boolean } | null> {
    // Small files are sealed on a seal worker, batched with the other commits of the moment
    // into one store put; a buffer is handed over, not copied.
    const ref = typeof content === 'string' ? await this.cas.writeFile(content, opts.size) : await this.cas.writeBuffer(content, true)
    const st = this.tree.statId(nodeId)
    if (!st || st.kind !== 'file') return null
    if (opts.unlessSame && st.content?.hash === ref.hash.toString('hex')) return { stat: st, ref, written: false }
    return { stat: this.writeRef(st.path, ref, attrs()), ref, written: true }
  }

  /**
   * writeRef of many files (an import's batch; Tree.writeFiles). Stops at the first file that
   * fails: the files before it are recorded and queued, and returned with that error.
   */
  writeRefs(files: readonly { path: string; ref: FileRef; attrs?: { mode?: number; mtime?: number } }[]): { stats: Stat[]; error: Error | null } {
    if (!this.canWrite) throw Object.assign(new UserError(this.writeRefusal()), { code: 'EROFS' })
    const { stats, error } = this.tree.writeFiles(files.map((f) => ({ path: f.path, content: toContentRef(f.ref), attrs: f.attrs })))
    for (let i = 0; i < stats.length; i++) {
      const st = stats[i]!
      const ref = files[i]!.ref
      this.flusher.queue({ op: 'write', path: st.path, size: ref.size, hash: ref.hash.toString('hex'), mode: st.mode, mtime: st.mtime })
    }
    return { stats, error }
  }

  mkdir(path: string, attrs: Attrs = {}): Stat {
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

  symlink(path: string, target: string, attrs: Attrs = {}): Stat {
    return this.mutate(
      (t) => t.symlink(path, target, attrs),
      (st) => ({ op: 'symlink', path: st.path, target, mtime: st.mtime })
    )
  }

  /** A fifo, socket or device (Tree.mknod; spec/tree.md "Special files"). */
  mknod(path: string, kind: SpecialKind, rdev: number, attrs: Attrs = {}): Stat {
    return this.mutate(
      (t) => t.mknod(path, kind, rdev, attrs),
      (st) => ({ op: 'mknod', path: st.path, kind, mode: st.mode })
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

  setattr(path: string, attrs: Attrs): Stat {
    return this.mutate(
      (t) => t.setattr(path, attrs),
      (st) => ({ op: 'setattr', path: st.path, mode: attrs.mode, mtime: attrs.mtime })
    )
  }

  /** A read through a mount with `--atime` (Tree.touchAtime): logged like a setattr. */
  touchAtime(path: string, atime: number): Stat {
    return this.mutate(
      (t) => t.touchAtime(path, atime),
      (st) => ({ op: 'setattr', path: st.path })
    )
  }

  /** The copy rule replicated with the volume (spec/tree.md `placement.copies`); null: never set (the default applies). */
  get copies(): number | null {
    return this.tree.copies()
  }

  setCopies(n: number): void {
    this.mutate(
      (t) => t.setCopies(n),
      () => ({ op: 'copies', size: n })
    )
  }

  /** The snapshot retention rule replicated with the volume (src/retention.ts decodes it), or null. */
  get retentionText(): string | null {
    return this.tree.retentionText()
  }

  setRetentionText(text: string): void {
    this.mutate(
      (t) => t.setRetentionText(text),
      () => ({ op: 'snapshot-keep', path: text })
    )
  }

  /**
   * Takes a snapshot now. The returned promise (callers may leave it) settles once the index is
   * checkpointed at this state: then the snapshot's view is read from disk on demand like the
   * live one (spec/tree.md "The index on disk"), not rebuilt from the shards.
   */
  snapshot(name: string): Promise<void> {
    this.mutate(
      (t) => t.snapshot(name),
      () => ({ op: 'snapshot', path: name })
    )
    return this.flush().then(() => (this.closed ? false : this.checkpoint())).then(() => {}, () => {})
  }

  /** Removes a snapshot (what only it referenced becomes garbage: spec/gc.md). */
  removeSnapshot(name: string): void {
    this.mutate(
      (t) => t.removeSnapshot(name),
      () => ({ op: 'snapshot-rm', path: name })
    )
  }

  /** Every entry of every writer, oldest first per writer. */
  async *entries(writer?: Buffer): AsyncIterable<LogEntry | EntryError> {
    for (const log of this.writers.values()) {
      if (writer && !log.key.equals(writer)) continue
      yield* log.read({ wait: false })
    }
  }

  /**
   * Verifies every writer log and that every authorised entry's changes apply to a fresh
   * tree; entries the writer set does not accept are listed in `unauthorised` (not errors:
   * they are never applied).
   */
  async verify(onProgress?: (entries: number, total: number) => void): Promise<{ writers: number; entries: number; ops: number; errors: SkippedEntry[]; unauthorised: SkippedEntry[] }> {
    await this.refresh()
    const errors: SkippedEntry[] = []
    const unauthorised: SkippedEntry[] = []
    let entries = 0
    let ops = 0
    // Entries to go through (block 0 of each log is its header), for progress.
    const total = [...this.writers.values()].reduce((n, l) => n + Math.max(0, l.core.length - 1), 0)
    let seen = 0
    const fresh = Tree.create(this.log.key.toString('hex'))
    try {
      for (const log of this.writers.values()) {
        const result = await log.verify()
        for (const e of result.errors) errors.push({ writer: encodeKey(e.writer), seq: e.seq, reason: e.reason })
        const hex = log.key.toString('hex')
        for await (const entry of log.read({ wait: false })) {
          onProgress?.(++seen, total)
          if (entry instanceof EntryError) continue // reported by verify() above
          entries++
          if (!this.writerSet.valid(hex, entry.seq)) {
            unauthorised.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: this.unauthorisedReason(hex) })
            continue
          }
          ops += entry.body.ops.length + (entry.control?.length ?? 0)
          const tag = `${hex}:${entry.seq}` // one entry: its changes share the entry's limits
          const rejected = fresh.apply(entry.body.changes.map((c) => ({ shard: c.shard, change: c.change, writer: hex, tag })))
          if (rejected.length > 0) errors.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: `changes do not apply: ${rejected[0].reason}` })
        }
      }
    } finally {
      fresh.free()
    }
    const order = (a: SkippedEntry, b: SkippedEntry): number => (a.writer === b.writer ? a.seq - b.seq : a.writer < b.writer ? -1 : 1)
    errors.sort(order)
    unauthorised.sort(order)
    return { writers: this.writers.size, entries, ops, errors, unauthorised }
  }

  /** Why entries of a log are not accepted (for log show / log verify). */
  unauthorisedReason(hex: string): string {
    const w = this.writerSet.writers.get(hex)
    if (w) return `not authorised: past the last accepted seq ${w.limit} (revoked)`
    return 'not authorised: no authorised writer admitted this log'
  }

  /**
   * Writes what is queued, checkpoints and closes. If the op log cannot be written, the
   * volume still closes (without a checkpoint: the next open replays the logs, which hold
   * everything but the unwritten edits) and the error says what was lost.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closing = true
    if (this.joinRun) await this.joinRun
    let lost: Error | null = null
    try {
      await this.flush()
    } catch (err) {
      lost = new Error(`volume ${this.name}: ${this.pendingOps} ops were never written to the op log and are lost: ${(err as Error).message}`)
    }
    if (this.replayer.running) await this.replayer.running.catch(() => {})
    try {
      if (lost === null && (this.live.changedSinceCheckpoint || !fs.existsSync(checkpointPath(this.host.dir.root, this.record.id)))) await this.checkpoint()
    } catch {
      // Only a cache: the next open replays instead.
    }
    this.closed = true
    if (this.idleTimer) clearTimeout(this.idleTimer)
    await this.replayer.close()
    this.tree.free()
    if (lost) throw lost
  }
}

/** A volume path in its canonical form, for audit records: leading '/', no trailing '/'. */
export function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0)
  return '/' + parts.join('/')
}
