// A volume on this node: its directory state (src/tree), replayed from every writer's op log
// (logs/), with content in the node's content store (src/cas).
//
// Every mutation goes through `mutate`: the tree op runs, its audit description is queued,
// and `flush` writes everything queued (the Automerge changes plus the audit ops) in one
// append, split into entries that fit the entry limit, so that an import of thousands of
// files is a handful of entries. A flush is all or nothing: if the append fails, the changes
// and ops stay queued (the next flush retries them) and no checkpoint covers them.
import fs from 'node:fs'
import path from 'node:path'
import { CONTEXT, decodeKey, deriveKey, encodeKey } from '../crypto.js'
import { UserError, indexPaths, type VolumeRecord } from '../datadir.js'
import type { Node } from '../node.js'
import type { Cas, FileRef } from '../cas/index.js'
import { CHANGE_LIMITS, ChangeLimitError, Tree, TreeError, entryGroups, type ContentRef, type IncomingChange, type ReadTree, type Stat } from '../tree/index.js'
import { batchesByShard, windowEntry, type WindowEntry } from '../tree/apply-batches.js'
import { EntryError, HeldRange, LogBindingError, WriterLog, computeWriterSet, scanControl, splitIntoEntries, encodeControl, decodeControl, type AuditOp, type ControlOp, type ControlRecord, type Genesis, type LogEntry, type LogInfo, type ShardChange, type WriterInfo, type WriterSet } from '../logs/index.js'
import { readWritersFile, writeWritersFile } from '../writers-file.js'
import { commitTreeIndex, openTreeIndex } from '../tree/index-store.js'
import type { VolumeState } from '../tree/state-file.js'
import { StateRejectedError, checkState, type CheckedState } from './volume-state.js'

/** Ops queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_OPS = 2000
/** Bytes of paths and targets queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_BYTES = 4 * 1024 * 1024
/** Entries read into one window while replaying (apply-batches.ts): bounds memory, keeps merges batched. */
const APPLY_BATCH = 50_000
/** A window's work: this many entries' allowance of ops and bytes (each applied batch stays within one's). */
const WINDOW_OPS = 64 * CHANGE_LIMITS.entryOps
const WINDOW_BYTES = 16 * CHANGE_LIMITS.entryBytes
/** A shard's Automerge document not used for this long is saved and freed. */
export const IDLE_MS = 30_000
/** How long live application waits for more blocks before applying what arrived. */
const LIVE_DELAY_MS = 25
/** 2: also the control entries read and how far each log was scanned for them (writer set). */
export const CHECKPOINT_FORMAT = 2
/** The writer set before the first replay (nothing read yet). */
const INITIAL_SET: WriterSet = computeWriterSet({ logs: [], control: [] })

/** Where a volume's checkpoint (the manifest of its on-disk index) lives in the data dir (see spec/tree.md). */
export function checkpointPath(dataDir: string, volumeId: string): string {
  return indexPaths(dataDir, volumeId).manifest
}

/** The directory of a volume's on-disk index files, beside its checkpoint (spec/tree.md "The index on disk"). */
export function indexFilesPath(dataDir: string, volumeId: string): string {
  return indexPaths(dataDir, volumeId).segments
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
  /** Per writer log (key hex): the next seq to scan for control entries. */
  scanned: Record<string, number>
  /** Control entries read (every log, valid or not): log key hex, seq, ops as a control block (hex, spec/oplog.md). */
  control: { log: string; seq: number; ops: string }[]
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

export interface SkippedEntry {
  writer: string
  seq: number
  reason: string
}

export class Volume {
  private rec: VolumeRecord
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
  /** What is fetched and kept of each other writer's log (all, or up to a revocation's limit). */
  private readonly ranges = new Map<string, HeldRange>()
  private idleTimer: NodeJS.Timeout | null = null
  private liveTimer: NodeJS.Timeout | null = null
  private closed = false
  /** Something was applied or done since the checkpoint was read or written. */
  private changedSinceCheckpoint = true
  /** While the index is rebuilt from the logs at open: told entries applied of the total (-1: done). */
  private replayProgress: ((done: number, total: number) => void) | null = null
  private readonly host: Node
  /** Control entries read so far from every log (valid or not: the writer set decides), by `hex:seq`. */
  private readonly control = new Map<string, ControlRecord>()
  /** Per writer (log key hex): the next seq to scan for control entries. */
  private readonly scanned = new Map<string, number>()
  /** Checked bindings of the logs whose block 0 is here, by log key hex. */
  private readonly bindings = new Map<string, LogInfo>()
  private readonly badBindings = new Set<string>()
  private genesisSeen: Genesis | null = null
  private currentSet: WriterSet = INITIAL_SET
  /** What the current set was computed from (counts of bindings and control entries, roots). */
  private setInputs = ''
  /** Entries applied and later made invalid by a revocation that arrived late (dropped by a rebuild). */
  readonly dropped: SkippedEntry[] = []
  /** Tree rebuilds caused by such revocations, and the time they took. */
  readonly rebuilds = { count: 0, ms: 0 }
  /** This node's edits that its log could not take (see RefusedEdits), oldest first. */
  readonly refused: RefusedEdits[] = []
  /** The tree holds edits that were refused: the next replay rebuilds it from the logs. */
  private viewStale = false
  /** Writer-set computations and their total time. */
  readonly setStats = { computed: 0, ms: 0 }
  /** While set, replay reads bindings and control entries but applies nothing (a joiner waiting for a state). */
  private applyPaused = false

  private constructor(node: Node, record: VolumeRecord, cas: Cas, volumeKey: Buffer, log: WriterLog, tree: Tree) {
    this.rec = record
    this.host = node
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

  /** The volume record (genesis and legacy roots may be added while the volume is open). */
  get record(): VolumeRecord {
    return this.rec
  }

  /** The directory state. */
  get tree(): Tree {
    return this.currentTree
  }

  static async open(node: Node, record: VolumeRecord, opts: OpenOptions = {}): Promise<Volume> {
    const t0 = performance.now()
    const volumeId = Buffer.from(record.id, 'hex')
    const volumeKey = deriveKey(node.dir.sharingKey(record.sharing), CONTEXT.volume, volumeId)
    const genesis = genesisOf(record)
    // A node joining a volume leaves its log unbound until it knows the genesis (ensureBound).
    const log = await WriterLog.create(node.store, { volumeId, identity: node.dir.identity, volumeKey, genesis, bind: genesis !== null })
    const actor = log.key.toString('hex')
    const vol = new Volume(node, record, node.cas(record.sharing), volumeKey, log, Tree.create(actor))
    try {
      const others = readWritersFile(node.dir.root, record.id)
      for (const key of others) if (!key.equals(log.key)) await vol.openWriter(key)
      // Migration of a volume an older bazil made (own log bound, no genesis, no roots): the
      // logs known now are its roots from now on (spec/oplog.md "Migration of legacy volumes").
      if (genesis === null && record.roots === undefined && log.bound) {
        vol.setRecord(node.dir.updateVolume(record.name, { roots: [log.key, ...others].map((k) => encodeKey(k)).sort() }) as VolumeRecord)
      }
      if (opts.checkpoint !== false) vol.restoreCheckpoint()
      if (!vol.opened.fromCheckpoint) vol.replayProgress = rebuildProgress(record.name, process.stderr)
      vol.opened.replayedEntries = await vol.replay()
      vol.replayProgress?.(-1, 0)
      vol.replayProgress = null
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

  private setRecord(record: VolumeRecord): void {
    this.rec = record
  }

  /** The writer set as last computed (spec/oplog.md "Writer set"). */
  get writerSet(): WriterSet {
    return this.currentSet
  }

  /**
   * Whether this node may write now: its own log is bound, authorised and not revoked
   * (WriterSet.writable). Every edit asks this before it changes the tree, and every flush
   * before it appends, against the set as known then.
   */
  get canWrite(): boolean {
    return this.log.bound && this.currentSet.writable(this.log.key.toString('hex'))
  }

  /** One line saying why this node cannot write (for errors). */
  writeRefusal(): string {
    const own = this.currentSet.writers.get(this.log.key.toString('hex'))
    if (own) return `this node's writer log of volume "${this.name}" was revoked (entries after ${own.limit} are not accepted): it can no longer write to it`
    return `this node is not (yet) an authorised writer of volume "${this.name}": a writer of it must allow this node (\`bazil peer volume allow ${encodeKey(this.host.dir.publicKey)} ${this.name}\` there) and see this node's log`
  }

  /**
   * Logs to serve and relay: the authorised ones held here, this node's own log once bound (a
   * candidate elsewhere until admitted), and logs a valid admit names by key whose binding is
   * not here yet (so that they are taken up from whichever peer relays them).
   */
  servedKeys(): Buffer[] {
    const out: Buffer[] = []
    const byKey = new Set(this.currentSet.admittedUnknown)
    for (const [hex, w] of this.writers) {
      if (this.currentSet.writers.has(hex) || byKey.has(hex) || (w === this.log && w.bound)) out.push(w.key)
    }
    for (const hex of byKey) if (!this.writers.has(hex)) out.push(Buffer.from(hex, 'hex'))
    return out
  }

  /**
   * Writes this node's binding block if it has none: version 2 when the genesis is known.
   * A volume with neither genesis nor roots gets `roots: []` first, so that it is never
   * mistaken for a volume of an older bazil (migration).
   */
  async ensureBound(): Promise<void> {
    if (this.log.bound) return
    const genesis = genesisOf(this.record) ?? this.genesisSeen
    if (genesis === null && this.record.roots === undefined) this.setRecord(this.host.dir.updateVolume(this.name, { roots: [] }) as VolumeRecord)
    await this.log.bind(genesis)
    await this.refresh()
  }

  /** Every log held with the node its binding names (null: block 0 not here yet), key hex. */
  knownLogs(): { log: string; node: string | null }[] {
    return [...this.writers.keys()].sort().map((hex) => ({ log: hex, node: this.bindings.get(hex)?.node ?? null }))
  }

  /** Whether the bindings of these logs are held (and checked) here. */
  bindingsKnown(keys: Buffer[]): boolean {
    return keys.every((k) => this.bindings.has(k.toString('hex')) || this.badBindings.has(k.toString('hex')) || k.equals(this.log.key))
  }

  /** Makes the given logs the legacy roots of a volume without genesis (volume connect, spec/oplog.md "Migration"). */
  async setLegacyRoots(keys: Buffer[]): Promise<void> {
    if (this.record.genesis) return
    this.setRecord(this.host.dir.updateVolume(this.name, { roots: keys.map((k) => encodeKey(k)).sort() }) as VolumeRecord)
    await this.refresh()
  }

  /**
   * Records admit(log, node) in this node's log for every candidate log (bound, not
   * authorised, never revoked) whose node the host allows to write; true if it recorded any.
   */
  async admitCandidates(): Promise<boolean> {
    if (this.closed || !this.canWrite) return false
    const ops: ControlOp[] = []
    for (const hex of this.currentSet.unauthorised) {
      const info = this.bindings.get(hex)
      if (!info || info.node === null) continue
      const revoked = [...this.control.values()].some((c) => c.ops.some((o) => (o.op === 'revoke' && o.log.toString('hex') === hex) || (o.op === 'revoke-node' && o.node.toString('hex') === info.node)))
      if (revoked) continue
      const node = Buffer.from(info.node, 'hex')
      if (!this.host.allowsWriter(this.id, node)) continue
      ops.push({ op: 'admit', log: Buffer.from(hex, 'hex'), node })
    }
    if (ops.length === 0) return false
    await this.log.appendControl(ops)
    return true
  }

  /**
   * Records admit-node(node): every log bound to `node` may write, including logs not seen
   * yet (`peer volume allow` on a writer). False if this node may not write (nothing recorded)
   * or the node was revoked here before (a revocation is final).
   */
  async admitNode(node: Buffer): Promise<boolean> {
    await this.refresh()
    if (!this.canWrite) return false
    const hex = node.toString('hex')
    for (const c of this.control.values()) {
      for (const o of c.ops) {
        if (o.op === 'revoke-node' && o.node.toString('hex') === hex) return false
        if (o.op === 'admit-node' && o.node.toString('hex') === hex && c.log === this.log.key.toString('hex')) return true // recorded already
      }
    }
    await this.log.appendControl([{ op: 'admit-node', node }])
    await this.refresh()
    return true
  }

  /**
   * Revokes `node`: records revoke(log, last applied seq) for every log bound to it that is
   * authorised and not a root (with admit(log) so that those entries stay accepted), and
   * revoke-node(node) so that no log of it is admitted by node from now on. Returns what it
   * revoked and the root logs it could not.
   */
  async revokeNode(node: Buffer): Promise<{ revoked: { log: Buffer; last: number }[]; roots: Buffer[] }> {
    await this.refresh()
    const revoked: { log: Buffer; last: number }[] = []
    const roots: Buffer[] = []
    for (const [hex, info] of this.bindings) {
      if (info.node !== node.toString('hex')) continue
      const w = this.currentSet.writers.get(hex)
      if (!w) continue
      if (w.root) {
        roots.push(Buffer.from(hex, 'hex'))
        continue
      }
      const applied = (this.applied.get(hex) ?? 1) - 1
      const last = w.limit === null ? applied : Math.min(w.limit, applied)
      if (w.limit !== null && w.limit <= last && w.revokedBy.some((r) => r.log === this.log.key.toString('hex'))) continue // revoked by us already
      revoked.push({ log: Buffer.from(hex, 'hex'), last })
    }
    const hexNode = node.toString('hex')
    const nodeRevoked = [...this.control.values()].some((c) => c.log === this.log.key.toString('hex') && c.ops.some((o) => o.op === 'revoke-node' && o.node.toString('hex') === hexNode))
    if (revoked.length > 0 || (!nodeRevoked && roots.length === 0)) {
      if (!this.canWrite) throw new UserError(this.writeRefusal())
      const ops: ControlOp[] = []
      for (const r of revoked) ops.push({ op: 'admit', log: r.log, node }, { op: 'revoke', log: r.log, last: r.last })
      if (!nodeRevoked) ops.push({ op: 'revoke-node', node })
      await this.log.appendControl(ops)
      await this.refresh()
    }
    return { revoked, roots }
  }

  private async openWriter(key: Buffer): Promise<WriterLog> {
    const log = await WriterLog.open(this.store, { key, volumeId: this.id, volumeKey: this.volumeKey })
    // Live: fetch every block of the log (up to a limit, src/logs/held-range.ts), now and as it grows, and apply entries as they land.
    const range = await HeldRange.open(log.core)
    this.writers.set(key.toString('hex'), log)
    this.ranges.set(key.toString('hex'), range)
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
        if (await this.admitCandidates()) this.refreshAgain = true
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

  /**
   * Reads what arrived (bindings, control entries of every log), recomputes the writer set,
   * rebuilds the tree if entries already applied are no longer valid, then applies the valid
   * entries not applied yet. Returns how many entries were applied.
   */
  private async replay(): Promise<number> {
    await this.scan()
    const before = this.currentSet
    const inputs = `${this.bindings.size}/${this.control.size}/${(this.record.roots ?? []).join(',')}`
    let set = before
    if (inputs !== this.setInputs) {
      // Bindings and control entries only ever grow: their counts (and the roots) say whether anything changed.
      const t0 = performance.now()
      set = computeWriterSet({
        logs: [...this.bindings.values()],
        legacyRoots: (this.record.roots ?? []).map((k) => decodeKey(k).toString('hex')),
        control: [...this.control.values()]
      })
      this.setInputs = inputs
      this.setStats.computed++
      this.setStats.ms += performance.now() - t0
    }
    this.currentSet = set
    // A revoked writer's sealed entries past its limit are not kept (so never relayed); its control entries are.
    for (const [hex, range] of this.ranges) await range.setLimit(set.writers.get(hex)?.limit ?? null)
    // Logs admitted by key that are not held yet: held from now on (they replicate when a peer has them).
    for (const hex of set.admittedUnknown) {
      if (this.writers.has(hex) || this.closed) continue
      await this.openWriter(Buffer.from(hex, 'hex'))
      writeWritersFile(this.dataDir, this.record.id, [...this.writers.values()].filter((w) => w !== this.log).map((w) => w.key))
    }
    if (this.invalidated(set)) await this.rebuild(set)
    await this.adoptGenesis()
    const n = this.applyPaused ? 0 : await this.applyValid(set)
    if (set.fingerprint !== before.fingerprint) {
      // The first set after opening is computed from what the checkpoint holds: not a change to write.
      if (before !== INITIAL_SET) this.changedSinceCheckpoint = true
      this.host.writersChanged(this.id)
    }
    return n
  }

  /** Bindings of logs not checked yet, and the control entries of every log up to what is held. */
  private async scan(): Promise<void> {
    for (const [hex, writer] of this.writers) {
      if (this.closed) return
      if (!this.bindings.has(hex)) {
        let b
        try {
          b = await writer.binding()
        } catch (err) {
          if (!(err instanceof LogBindingError)) throw err
          this.skip(writer.key, 0, err.message)
          this.badBindings.add(hex)
          continue
        }
        if (b === null) continue
        this.bindings.set(hex, { log: hex, node: b.node.toString('hex'), genesisNode: b.genesis?.node.toString('hex') ?? null })
        if (b.genesis && !this.genesisSeen) this.genesisSeen = b.genesis
      }
      const from = this.scanned.get(hex) ?? 1
      if (from >= writer.length) continue
      const r = await scanControl(writer.core, from, writer.core.length, this.ranges.get(hex)?.pastLimit() ?? null)
      for (const c of r.found) this.control.set(`${hex}:${c.seq}`, c)
      for (const b of r.bad) this.skip(writer.key, b.seq, b.reason)
      if (r.next !== from) this.changedSinceCheckpoint = true
      this.scanned.set(hex, r.next)
    }
  }

  /** Whether some entry applied already is not valid under `set` (a revocation that arrived late). */
  private invalidated(set: WriterSet): boolean {
    if (this.viewStale) return true
    for (const [hex, next] of this.applied) if (next > 1 && !set.valid(hex, next - 1)) return true
    return false
  }

  /** Rebuilds the tree from the logs without the entries `set` no longer accepts; reports those. */
  private async rebuild(set: WriterSet): Promise<void> {
    const t0 = performance.now()
    const why = (w: WriterInfo | undefined): string => w
      ? `not authorised: past the revocation of log ${encodeKey(Buffer.from(w.log, 'hex'))} (last accepted seq ${w.limit}${w.revokedBy.some((r) => r.undecided) ? ', undecided revocations count' : ''})`
      : 'not authorised: its log is no longer admitted by a valid op'
    if (this.pending.length > 0 || this.tree.dirty) await this.flushInOrder().catch(() => {})
    this.viewStale = false
    const own = this.log.key.toString('hex')
    for (const [hex, next] of this.applied) {
      const w = set.writers.get(hex)
      const first = w ? (w.limit ?? next) + 1 : 1
      if (hex === own && first < next) await this.refuseLogged(first, next, why(w))
      for (let seq = first; seq < next; seq++) {
        const e = { writer: encodeKey(Buffer.from(hex, 'hex')), seq, reason: `dropped by a rebuild: ${why(w)}` }
        this.dropped.push(e)
        this.skip(Buffer.from(hex, 'hex'), seq, e.reason)
      }
    }
    const tree = Tree.create(this.log.key.toString('hex'))
    this.currentTree.free()
    this.currentTree = tree
    this.applied.clear()
    this.changedSinceCheckpoint = true
    this.rebuilds.count++
    this.rebuilds.ms += performance.now() - t0 // plus the replay that follows
  }

  /** Records this node's own entries [from, to) that a rebuild drops (written before the revocation arrived here). */
  private async refuseLogged(from: number, to: number, reason: string): Promise<void> {
    const ops: AuditOp[] = []
    const seqs: number[] = []
    for await (const e of this.log.read({ from, to, wait: false })) {
      if (e instanceof EntryError) continue
      seqs.push(e.seq)
      ops.push(...e.body.ops)
    }
    if (seqs.length > 0) this.refused.push({ at: Date.now(), ops, seqs, reason: `written before the revocation arrived here, not accepted: ${reason}` })
  }

  /** A joiner learns the genesis from any v2 binding: kept in the record, and its own log bound with it. */
  private async adoptGenesis(): Promise<void> {
    const g = this.genesisSeen
    if (!g || this.record.genesis) return
    this.setRecord(this.host.dir.updateVolume(this.name, { genesis: { node: encodeKey(g.node), nonce: g.nonce.toString('hex') } }) as VolumeRecord)
    if (!this.log.bound) {
      await this.log.bind(g)
      this.refreshAgain = true
    }
  }

  /** Applies the valid, not yet applied local entries of every writer, in batches; a log is held at its first entry that is not valid. */
  private async applyValid(set: WriterSet): Promise<number> {
    let entries = 0
    let total = 0
    for (const [hex, writer] of this.writers) total += Math.max(0, writer.length - (this.applied.get(hex) ?? 1))
    for (const [hex, writer] of [...this.writers].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (this.closed) break
      const w = set.writers.get(hex)
      if (!w) continue
      let next = this.applied.get(hex) ?? 1
      const to = Math.min(writer.length, w.limit === null ? Infinity : w.limit + 1)
      if (next >= to) continue
      const entriesBefore = entries
      // Entries are read in windows of many entries' worth of work, then applied in batches
      // by shard (apply-batches.ts), each within one entry's limits (CHANGE_LIMITS) with the
      // event loop running between them: no batch, hostile or not, blocks the server for long.
      // The log counts
      // as applied up to a window's end once all of it is (a checkpoint taken in between
      // covers less than the tree holds: replay applies that again, which changes nothing).
      let window: WindowEntry<IncomingChange>[] = []
      let windowOps = 0
      let windowBytes = 0
      const applyWindow = async (): Promise<void> => {
        const batches = batchesByShard(window, CHANGE_LIMITS.entryOps, CHANGE_LIMITS.entryBytes)
        window = []
        windowOps = 0
        windowBytes = 0
        const rejected: { seq: number; reason: string }[] = []
        for (let i = 0; i < batches.length; i++) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve))
          if (this.closed) return
          const t0 = performance.now()
          for (const r of this.tree.apply(batches[i]!)) rejected.push({ seq: Number(r.tag!.slice(r.tag!.lastIndexOf(':') + 1)), reason: r.reason })
          this.stats.applyCalls++
          this.stats.applyMs += performance.now() - t0
        }
        // Reported in log order, as entries were before they were grouped by shard.
        for (const r of rejected.sort((a, b) => a.seq - b.seq)) this.skip(writer.key, r.seq, `changes do not apply: ${r.reason}`)
        // Applied up to here (progress and checkpoints see it while a long log applies).
        this.applied.set(hex, next)
      }
      let t0 = performance.now()
      for await (const entry of writer.read({ from: next, to, wait: false })) {
        if (this.closed) break
        if (entry instanceof EntryError) {
          this.skip(entry.writer, entry.seq, entry.reason)
          if (entry.seq === 0) break
          next = entry.seq + 1
          continue
        }
        if (entry.control !== null) { // read by scan(); nothing to apply
          next = entry.seq + 1
          continue
        }
        const incoming: IncomingChange[] = []
        for (const c of entry.body.changes) incoming.push({ shard: c.shard, change: c.change, writer: hex, tag: `${hex}:${entry.seq}` })
        const e = windowEntry(incoming)
        if (window.length > 0 && (windowOps + e.ops > WINDOW_OPS || windowBytes + e.bytes > WINDOW_BYTES || window.length >= APPLY_BATCH)) {
          this.stats.readMs += performance.now() - t0
          await applyWindow()
          if (this.closed) break
          await new Promise((resolve) => setImmediate(resolve))
          t0 = performance.now()
        }
        window.push(e)
        windowOps += e.ops
        windowBytes += e.bytes
        next = entry.seq + 1
        entries++
        this.replayProgress?.(entries, total)
      }
      this.stats.readMs += performance.now() - t0
      if (window.length > 0 && !this.closed) await applyWindow()
      if (this.closed) break
      this.stats.entries += entries - entriesBefore
      if (entries > entriesBefore || next !== (this.applied.get(hex) ?? 1)) this.changedSinceCheckpoint = true
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

  // ---- states (spec/tree.md "Starting from a state") -----------------------------------------

  /** The key a state of this volume travels under between peers (sealState; spec/keys.md). */
  get stateKey(): Buffer {
    return deriveKey(this.volumeKey, CONTEXT.volumeState)
  }

  /** Applies nothing from the logs until resumed (a joiner that will start from a state); replay resumes where it stood. */
  pauseApply(on: boolean): void {
    this.applyPaused = on
    if (!on) this.scheduleRefresh()
  }

  /**
   * How far into each log the tree reaches (next seq), with no edit queued: `applied`, and this
   * node's own log up to its length (its entries went into the tree as they were made), or its
   * limit if the writer set has one. Read only: `applied` says what replay read.
   */
  private reach(): Map<string, number> {
    const own = this.log.key.toString('hex')
    const reach = new Map(this.applied)
    const w = this.currentSet.writers.get(own)
    if (w) reach.set(own, Math.max(reach.get(own) ?? 1, w.limit === null ? this.log.length : Math.min(this.log.length, w.limit + 1)))
    return reach
  }

  /** This replica's state for a joiner: every shard save at its heads, and how far into each log it reaches. */
  async saveState(): Promise<VolumeState> {
    await this.flush()
    if (this.pending.length > 0 || this.unlogged.length > 0 || this.tree.dirty) throw new UserError(`volume "${this.name}" has edits not yet in its log: try again`)
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
   * leaves the volume as it was (replay then applies the logs as usual).
   */
  async adoptState(state: VolumeState, onProgress?: (phase: 'entries' | 'shards', done: number, total: number) => void): Promise<Omit<CheckedState, 'tree' | 'applied' | 'skipped'>> {
    const was = this.applyPaused
    this.applyPaused = true
    try {
      await this.refresh()
      for (const next of this.applied.values()) if (next > 1) throw new StateRejectedError(`volume "${this.name}" has applied entries already: a state is only taken by a first sync`)
      const r = await checkState(state, { volumeId: this.record.id, actor: this.log.key.toString('hex'), writers: this.writers, set: this.currentSet, onProgress })
      if (this.closed) {
        r.tree.free()
        throw new Error(`volume "${this.name}" was closed`)
      }
      for (const next of this.applied.values()) if (next > 1) {
        r.tree.free()
        throw new StateRejectedError(`volume "${this.name}" applied entries while the state was checked`)
      }
      this.currentTree.free()
      this.currentTree = r.tree
      for (const [hex, next] of r.applied) this.applied.set(hex, next)
      for (const s of r.skipped) this.skip(s.writer, s.seq, s.reason)
      this.changedSinceCheckpoint = true
      for (const fn of this.listeners) fn(r.entries)
      return { entries: r.entries, changes: r.changes, ms: r.ms }
    } finally {
      this.applyPaused = was
      if (!was) this.scheduleRefresh()
    }
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /**
   * Writes the checkpoint: the tree state and, per writer, the log length it covers. Local
   * edits are logged first; returns false (nothing written) if edits came in meanwhile.
   * A cache: deleting the file only makes the next open replay the logs.
   */
  async checkpoint(): Promise<boolean> {
    await this.flush()
    if (this.closed) return false
    // Never a checkpoint of changes that are not in the log: no replay could rebuild it.
    // Nor of a view that still holds refused edits (the replay that removes them has not run yet).
    if (this.pending.length > 0 || this.unlogged.length > 0 || this.tree.dirty || this.viewStale) return false
    const info: CheckpointInfo = {
      format: CHECKPOINT_FORMAT, volume: this.record.id, actor: this.log.key.toString('hex'),
      logs: Object.fromEntries(this.reach()), skipped: this.skipped,
      scanned: Object.fromEntries(this.scanned),
      control: [...this.control.values()].map((c) => ({ log: c.log, seq: c.seq, ops: encodeControl({ time: 0, ops: c.ops }).toString('hex') })),
    }
    const file = checkpointPath(this.dataDir, this.record.id)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    // Synchronous from here: nothing changes the tree between what is written and what it covers.
    commitTreeIndex(file, indexFilesPath(this.dataDir, this.record.id), this.tree, info)
    this.changedSinceCheckpoint = false
    return true
  }

  /** Uses the checkpoint if it is readable and consistent with the logs; else leaves a full replay to do. */
  private restoreCheckpoint(): void {
    const file = checkpointPath(this.dataDir, this.record.id)
    if (!fs.existsSync(file)) return
    try {
      const { tree, extra, legacy } = openTreeIndex(file, indexFilesPath(this.dataDir, this.record.id), this.log.key.toString('hex'))
      const info = extra as CheckpointInfo
      const actor = this.log.key.toString('hex')
      if (!info || info.format !== CHECKPOINT_FORMAT || info.volume !== this.record.id || info.actor !== actor) throw new Error('checkpoint of another volume or writer')
      for (const [hex, next] of Object.entries(info.logs)) {
        const w = this.writers.get(hex)
        if (!w || !Number.isSafeInteger(next) || next < 1 || next > Math.max(1, w.length)) throw new Error(`checkpoint covers more of log ${hex} than is here`)
      }
      this.currentTree.free()
      this.currentTree = tree
      for (const [hex, next] of Object.entries(info.logs)) this.applied.set(hex, next)
      for (const [hex, next] of Object.entries(info.scanned)) {
        const w = this.writers.get(hex)
        if (w && Number.isSafeInteger(next) && next >= 1 && next <= Math.max(1, w.length)) this.scanned.set(hex, next)
      }
      for (const c of info.control) {
        const ops = decodeControl(Buffer.from(c.ops, 'hex')).ops
        if (this.writers.has(c.log) && c.seq < (this.scanned.get(c.log) ?? 1)) this.control.set(`${c.log}:${c.seq}`, { log: c.log, seq: c.seq, ops })
      }
      for (const s of info.skipped ?? []) {
        this.skippedKeys.add(`${decodeKey(s.writer).toString('hex')}:${s.seq}`)
        this.skipped.push(s)
      }
      this.opened.fromCheckpoint = true
      // A checkpoint of an older version: read whole this once, the next checkpoint writes the index.
      this.changedSinceCheckpoint = legacy
    } catch {
      // A cache that doesn't fit is ignored: the logs are the truth, replay rebuilds everything.
      this.applied.clear()
      this.scanned.clear()
      this.control.clear()
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
    // EROFS: what a write through the mount answers while this node may not write.
    if (!this.canWrite) throw Object.assign(new UserError(this.writeRefusal()), { code: 'EROFS' })
    const result = op(this.tree)
    this.queue(audit(result))
    return result
  }

  private queue(a: AuditOp): void {
    this.pending.push(a)
    this.pendingBytes += 64 + (a.path?.length ?? 0) + (a.to?.length ?? 0) + (a.target?.length ?? 0)
    this.changedSinceCheckpoint = true
    this.scheduleIdle()
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
    return this.flushInOrder().catch(async (err) => {
      // Refused edits are removed from the view now: the replay rebuilds the tree from the logs.
      if (err instanceof EditsRefusedError) await this.refresh().catch(() => {})
      throw err
    })
  }

  /** flush() without the view's rollback after a refusal (what a rebuild, inside replay, uses). */
  private flushInOrder(): Promise<void> {
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
      let groups: ShardChange[][]
      try {
        groups = entryGroups(changes)
      } catch (e) {
        // A change no entry can carry would fail every later flush too (the volume could write
        // nothing more): its edits are refused and rolled back from the view now.
        if (e instanceof ChangeLimitError) throw this.refuseUnlogged(ops, changes.length, bytes, `a change is too big for one op log entry (${e.message})`)
        throw e
      }
      const bodies = groups.length === 0 ? splitIntoEntries([], ops, time) : groups.flatMap((g, i) => splitIntoEntries(g, i === groups.length - 1 ? ops : [], time))
      // The same decision as the edits' (canWrite), against the set as known now: a revocation
      // that arrived since the edits were made refuses them here, before anything is appended.
      if (!this.canWrite) throw this.refuseUnlogged(ops, changes.length, bytes)
      let changeBytes = 0
      for (const b of bodies) for (const c of b.changes) changeBytes += c.change.byteLength
      this.space.take(changeBytes + this.pendingBytes)
      seqs = await this.log.append(bodies)
    } catch (err) {
      if (err instanceof EditsRefusedError) throw err
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
    // Nor the control scan: a flush appends no control entry (appendControl does, and is scanned).
    // Without this, the first open after an import read every block of it back from disk.
    if (seqs.length > 0 && (this.scanned.get(own) ?? 1) === seqs[0]) this.scanned.set(own, seqs[seqs.length - 1] + 1)
  }

  /**
   * Drops the queued edits this node's log may no longer take: kept in `refused` (what they
   * did), removed from the view by the next replay (a rebuild from the logs). Returns the error.
   */
  private refuseUnlogged(ops: AuditOp[], changes: number, bytes: number, reason = this.writeRefusal()): EditsRefusedError {
    this.refused.push({ at: Date.now(), ops, seqs: [], reason })
    this.pending.splice(0, ops.length)
    this.unlogged.splice(0, changes)
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes)
    this.viewStale = true
    this.changedSinceCheckpoint = true
    const what = ops.length === 0 ? `${changes} changes` : `${ops.length} edit${ops.length === 1 ? '' : 's'} (${ops.slice(0, 3).map((o) => `${o.op} ${o.path ?? ''}`.trim()).join(', ')}${ops.length > 3 ? ', ...' : ''})`
    return new EditsRefusedError(`volume "${this.name}": ${what} not written to the op log and removed from this node's view: ${reason} (listed by \`bazil volume writers ${this.name}\`)`)
  }

  /**
   * Flushes, then makes the log and the content written so far durable (survives an OS
   * crash): what fsync through the mount waits for. Concurrent calls share fdatasyncs.
   */
  async sync(): Promise<void> {
    await this.flush()
    await this.storeSync.sync()
  }

  /**
   * Flushes when enough ops are queued; for loops doing bulk work. `scale` multiplies the
   * thresholds (an import: fewer, bigger Automerge changes per shard, see local-copy.ts).
   */
  async maybeFlush(scale = 1): Promise<void> {
    const over = (k: number): boolean => this.pending.length >= k * scale * FLUSH_EVERY_OPS || this.pendingBytes >= k * scale * FLUSH_EVERY_BYTES
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
      this.queue({ op: 'write', path: st.path, size: ref.size, hash: ref.hash.toString('hex'), mode: st.mode, mtime: st.mtime })
    }
    return { stats, error }
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

  setattr(path: string, attrs: { mode?: number; mtime?: number; atime?: number }): Stat {
    return this.mutate(
      (t) => t.setattr(path, attrs),
      (st) => ({ op: 'setattr', path: st.path, mode: attrs.mode, mtime: attrs.mtime })
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
  async verify(): Promise<{ writers: number; entries: number; ops: number; errors: SkippedEntry[]; unauthorised: SkippedEntry[] }> {
    await this.refresh()
    const errors: SkippedEntry[] = []
    const unauthorised: SkippedEntry[] = []
    let entries = 0
    let ops = 0
    const fresh = Tree.create(this.log.key.toString('hex'))
    try {
      for (const log of this.writers.values()) {
        const result = await log.verify()
        for (const e of result.errors) errors.push({ writer: encodeKey(e.writer), seq: e.seq, reason: e.reason })
        const hex = log.key.toString('hex')
        for await (const entry of log.read({ wait: false })) {
          if (entry instanceof EntryError) continue // reported by verify() above
          entries++
          if (!this.currentSet.valid(hex, entry.seq)) {
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
    const w = this.currentSet.writers.get(hex)
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

/** A progress line on a terminal while a volume's index is rebuilt from its logs (none elsewhere, or for a few entries). */
function rebuildProgress(name: string, stream: NodeJS.WriteStream): ((done: number, total: number) => void) | null {
  if (!stream.isTTY) return null
  let last = 0
  let shown = false
  return (done, total) => {
    if (done < 0) {
      if (shown) stream.write('\n')
      return
    }
    const now = Date.now()
    if (total < 100 || now - last < 200) return
    last = now
    shown = true
    stream.write(`\rrebuilding the index of volume ${name} from its logs: ${done}/${total} entries`)
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

/** The genesis a volume record keeps, decoded; null for volumes without one (legacy, or a joiner that has not learnt it). */
export function genesisOf(record: { genesis?: { node: string; nonce: string } }): Genesis | null {
  if (!record.genesis) return null
  return { node: decodeKey(record.genesis.node, 'genesis node key'), nonce: Buffer.from(record.genesis.nonce, 'hex') }
}
