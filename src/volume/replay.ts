// Replay: what this node knows of a volume's writer logs and how far it has applied them. It
// holds every writer log (this node's own included), reads their bindings and control entries,
// computes the writer set (spec/oplog.md "Writer set"), rebuilds the tree when a revocation that
// arrived late makes applied entries invalid, and applies the valid entries not applied yet, in
// windows by shard, live as blocks arrive.
import { CONTEXT, decodeKey, deriveKey, encodeKey } from '../crypto.js'
import type { VolumeRecord } from '../datadir.js'
import { CHANGE_LIMITS, Tree, type IncomingChange } from '../tree/index.js'
import { windowEntry, type WindowEntry } from '../tree/apply-batches.js'
import { EntryError, HeldRange, LogBindingError, WriterLog, computeWriterSet, scanControl, type AuditOp, type ControlRecord, type Genesis, type LogInfo, type WriterInfo, type WriterSet } from '../logs/index.js'
import { readWritersFile, writeWritersFile } from '../writers-file.js'
import type { VolumeHost } from './host.js'
import type { LiveTree } from './live-tree.js'
import type { Flusher } from './flush.js'
import type { LogPositions, SkippedEntry } from './checkpoint-file.js'

/** Entries read into one window while replaying (apply-batches.ts): bounds memory, keeps merges batched. */
const APPLY_BATCH = 50_000
/** A window's work: this many entries' allowance of ops and bytes (each applied batch stays within one's). */
const WINDOW_OPS = 64 * CHANGE_LIMITS.entryOps
const WINDOW_BYTES = 16 * CHANGE_LIMITS.entryBytes
/** How long after the last replay pass the index buckets it read stay held (applyValid). */
const HOLD_IDLE_MS = 5_000
/** How long live application waits for more blocks before applying what arrived. */
const LIVE_DELAY_MS = 25
/** The writer set before the first replay (nothing read yet). */
const INITIAL_SET: WriterSet = computeWriterSet({ logs: [], control: [] })

/** What replay asks of its volume. */
export interface ReplayContext {
  readonly host: VolumeHost
  readonly live: LiveTree
  readonly flusher: Flusher
  /** Entries from other writers were applied (the volume frees idle shards later). */
  applied(entries: number): void
}

export class Replay {
  private rec: VolumeRecord
  readonly id: Buffer
  readonly volumeKey: Buffer
  /** This node's own writer log of the volume. */
  readonly log: WriterLog
  /** Every known writer log (this node's included), by log key hex. */
  readonly writers = new Map<string, WriterLog>()
  readonly skipped: SkippedEntry[] = []
  private readonly skippedKeys = new Set<string>()
  /** Replay counters: entries applied, time reading+decrypting them, time applying them to the tree, passes and windows that applied some. */
  readonly stats = { entries: 0, readMs: 0, applyMs: 0, applyCalls: 0, passes: 0, windows: 0 }
  /** Per writer (log key hex): the next seq to apply. */
  private readonly appliedTo = new Map<string, number>()
  /** Per writer (log key hex): the next seq to scan for control entries. */
  private readonly scanned = new Map<string, number>()
  /** Control entries read so far from every log (valid or not: the writer set decides), by `hex:seq`. */
  private readonly controlRead = new Map<string, ControlRecord>()
  /** Checked bindings of the logs whose block 0 is here, by log key hex. */
  private readonly bindingsRead = new Map<string, LogInfo>()
  private readonly badBindings = new Set<string>()
  private genesisSeen: Genesis | null = null
  private currentSet: WriterSet = INITIAL_SET
  /** What the current set was computed from (counts of bindings and control entries, roots). */
  private setInputs = ''
  /** Entries applied and later made invalid by a revocation that arrived late (dropped by a rebuild). */
  readonly dropped: SkippedEntry[] = []
  /** Tree rebuilds caused by such revocations, and the time they took. */
  readonly rebuilds = { count: 0, ms: 0 }
  /** Writer-set computations and their total time. */
  readonly setStats = { computed: 0, ms: 0 }
  /** While set, replay reads bindings and control entries but applies nothing (a joiner waiting for a state). */
  private applyPaused = false
  /** What is fetched and kept of each other writer's log (all, or up to a revocation's limit). */
  private readonly ranges = new Map<string, HeldRange>()
  private readonly listeners = new Set<(entries: number) => void>()
  private readonly unsubscribe: (() => void)[] = []
  private refreshing: Promise<number> | null = null
  private refreshAgain = false
  private liveTimer: NodeJS.Timeout | null = null
  /** The tree whose index buckets replay holds now, until its timer releases them. */
  private indexHold: { tree: Tree; release: () => void; timer: NodeJS.Timeout | null } | null = null
  private closed = false
  /** While the index is rebuilt from the logs at open: told entries applied of the total. */
  progress: ((done: number, total: number) => void) | null = null
  /** Called after each replay pass (admission of candidates: true if it recorded any, so replay runs again). */
  afterPass: (() => Promise<boolean>) | null = null

  constructor(private readonly ctx: ReplayContext, record: VolumeRecord, log: WriterLog, volumeKey: Buffer) {
    this.rec = record
    this.id = Buffer.from(record.id, 'hex')
    this.log = log
    this.volumeKey = volumeKey
    this.writers.set(log.key.toString('hex'), log)
  }

  /** The volume record (genesis and legacy roots may be added while the volume is open). */
  get record(): VolumeRecord {
    return this.rec
  }

  /** Changes the volume record in the data dir (genesis, roots) and here. */
  updateRecord(patch: Partial<VolumeRecord>): void {
    this.rec = this.ctx.host.dir.updateVolume(this.rec.name, patch) as VolumeRecord
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Opens the other writer logs this node knows of (DATA/writers/VOLUME.json). */
  async openKnownWriters(): Promise<Buffer[]> {
    const others = readWritersFile(this.ctx.host.dir.root, this.rec.id)
    for (const key of others) if (!key.equals(this.log.key)) await this.openWriter(key)
    return others
  }

  /** Starts from a checkpoint's positions (its tree is in place already). */
  restore(at: LogPositions): void {
    for (const [hex, next] of at.applied) this.appliedTo.set(hex, next)
    for (const [hex, next] of at.scanned) this.scanned.set(hex, next)
    for (const [k, c] of at.control) this.controlRead.set(k, c)
    for (const s of at.skipped) {
      this.skippedKeys.add(`${decodeKey(s.writer).toString('hex')}:${s.seq}`)
      this.skipped.push(s)
    }
  }

  /** What a checkpoint taken now records: how far the tree reaches into each log (reach()). */
  positions(): LogPositions {
    return { applied: this.reach(), scanned: new Map(this.scanned), control: new Map(this.controlRead), skipped: this.skipped }
  }

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
    this.saveWriters()
    await this.refresh()
    return log
  }

  private saveWriters(): void {
    writeWritersFile(this.ctx.host.dir.root, this.rec.id, [...this.writers.values()].filter((w) => w !== this.log).map((w) => w.key))
  }

  /** The writer set as last computed (spec/oplog.md "Writer set"). */
  get writerSet(): WriterSet {
    return this.currentSet
  }

  /** Control entries read so far from every log. */
  get control(): ReadonlyMap<string, ControlRecord> {
    return this.controlRead
  }

  /** Checked bindings of the logs whose block 0 is here, by log key hex. */
  get bindings(): ReadonlyMap<string, LogInfo> {
    return this.bindingsRead
  }

  /** Per writer (log key hex): the next seq to apply. */
  get applied(): ReadonlyMap<string, number> {
    return this.appliedTo
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
    if (own) return `this node's writer log of volume "${this.rec.name}" was revoked (entries after ${own.limit} are not accepted): it can no longer write to it`
    return `this node is not (yet) an authorised writer of volume "${this.rec.name}": a writer of it must allow this node (\`bazil peer volume allow ${encodeKey(this.ctx.host.dir.publicKey)} ${this.rec.name}\` there) and see this node's log`
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
    const genesis = genesisOf(this.rec) ?? this.genesisSeen
    if (genesis === null && this.rec.roots === undefined) this.updateRecord({ roots: [] })
    await this.log.bind(genesis)
    await this.refresh()
  }

  /** Every log held with the node its binding names (null: block 0 not here yet), key hex. */
  knownLogs(): { log: string; node: string | null }[] {
    return [...this.writers.keys()].sort().map((hex) => ({ log: hex, node: this.bindingsRead.get(hex)?.node ?? null }))
  }

  /** Whether the bindings of these logs are held (and checked) here. */
  bindingsKnown(keys: Buffer[]): boolean {
    return keys.every((k) => this.bindingsRead.has(k.toString('hex')) || this.badBindings.has(k.toString('hex')) || k.equals(this.log.key))
  }

  /** Makes the given logs the legacy roots of a volume without genesis (volume connect, spec/oplog.md "Migration"). */
  async setLegacyRoots(keys: Buffer[]): Promise<void> {
    if (this.rec.genesis) return
    this.updateRecord({ roots: keys.map((k) => encodeKey(k)).sort() })
    await this.refresh()
  }

  private async openWriter(key: Buffer): Promise<WriterLog> {
    const log = await WriterLog.open(this.ctx.host.store, { key, volumeId: this.id, volumeKey: this.volumeKey })
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
    return [...this.writers].map(([hex, w]) => ({ writer: hex, length: w.length, contiguous: w.core.contiguousLength, applied: this.appliedTo.get(hex) ?? 1 }))
  }

  /**
   * Blocks arrive one by one while replicating: applying each alone would pay the per-batch
   * cost (diff, re-reading touched records) thousands of times, so arrivals are coalesced.
   */
  scheduleRefresh(): void {
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

  /** Tells the listeners that `entries` entries were applied. */
  notify(entries: number): void {
    for (const fn of this.listeners) fn(entries)
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
        if (this.afterPass && await this.afterPass()) this.refreshAgain = true
      } while (this.refreshAgain && !this.closed)
      return total
    }
    this.refreshing = run().finally(() => { this.refreshing = null })
    return this.refreshing.then((n) => {
      if (n > 0) {
        this.notify(n)
        this.ctx.applied(n)
      }
      return n
    })
  }

  /** The refresh running now, if any (close waits for it). */
  get running(): Promise<number> | null {
    return this.refreshing
  }

  /**
   * Reads what arrived (bindings, control entries of every log), recomputes the writer set,
   * rebuilds the tree if entries already applied are no longer valid, then applies the valid
   * entries not applied yet. Returns how many entries were applied.
   */
  async replay(): Promise<number> {
    await this.scan()
    const before = this.currentSet
    const inputs = `${this.bindingsRead.size}/${this.controlRead.size}/${(this.rec.roots ?? []).join(',')}`
    let set = before
    if (inputs !== this.setInputs) {
      // Bindings and control entries only ever grow: their counts (and the roots) say whether anything changed.
      const t0 = performance.now()
      set = computeWriterSet({
        logs: [...this.bindingsRead.values()],
        legacyRoots: (this.rec.roots ?? []).map((k) => decodeKey(k).toString('hex')),
        control: [...this.controlRead.values()]
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
      this.saveWriters()
    }
    if (this.invalidated(set)) await this.rebuild(set)
    await this.adoptGenesis()
    const n = this.applyPaused ? 0 : await this.applyValid(set)
    if (n > 0) this.stats.passes++
    if (set.fingerprint !== before.fingerprint) {
      // The first set after opening is computed from what the checkpoint holds: not a change to write.
      if (before !== INITIAL_SET) this.ctx.live.changedSinceCheckpoint = true
      this.ctx.host.writersChanged(this.id)
    }
    return n
  }

  /** Bindings of logs not checked yet, and the control entries of every log up to what is held. */
  private async scan(): Promise<void> {
    for (const [hex, writer] of this.writers) {
      if (this.closed) return
      if (!this.bindingsRead.has(hex)) {
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
        this.bindingsRead.set(hex, { log: hex, node: b.node.toString('hex'), genesisNode: b.genesis?.node.toString('hex') ?? null })
        if (b.genesis && !this.genesisSeen) this.genesisSeen = b.genesis
      }
      const from = this.scanned.get(hex) ?? 1
      if (from >= writer.length) continue
      const r = await scanControl(writer.core, from, writer.core.length, this.ranges.get(hex)?.pastLimit() ?? null)
      for (const c of r.found) this.controlRead.set(`${hex}:${c.seq}`, c)
      for (const b of r.bad) this.skip(writer.key, b.seq, b.reason)
      if (r.next !== from) this.ctx.live.changedSinceCheckpoint = true
      this.scanned.set(hex, r.next)
    }
  }

  /**
   * This node's own entries `seqs` were just appended: their changes are in the tree already,
   * so replay need not read them back, nor the control scan (a flush appends no control entry;
   * appendControl does, and is scanned). Without this, the first open after an import read
   * every block of it back from disk.
   */
  ownAppended(seqs: number[]): void {
    const own = this.log.key.toString('hex')
    const last = seqs[seqs.length - 1]! + 1
    if ((this.appliedTo.get(own) ?? 1) === seqs[0]) this.appliedTo.set(own, last)
    if ((this.scanned.get(own) ?? 1) === seqs[0]) this.scanned.set(own, last)
  }

  /** Whether some entry applied already is not valid under `set` (a revocation that arrived late). */
  private invalidated(set: WriterSet): boolean {
    if (this.ctx.live.viewStale) return true
    for (const [hex, next] of this.appliedTo) if (next > 1 && !set.valid(hex, next - 1)) return true
    return false
  }

  /** Rebuilds the tree from the logs without the entries `set` no longer accepts; reports those. */
  private async rebuild(set: WriterSet): Promise<void> {
    const t0 = performance.now()
    const why = (w: WriterInfo | undefined): string => w
      ? `not authorised: past the revocation of log ${encodeKey(Buffer.from(w.log, 'hex'))} (last accepted seq ${w.limit}${w.revokedBy.some((r) => r.undecided) ? ', undecided revocations count' : ''})`
      : 'not authorised: its log is no longer admitted by a valid op'
    const { live, flusher } = this.ctx
    if (flusher.pendingOps > 0 || live.tree.dirty) await flusher.flushInOrder().catch(() => {})
    live.viewStale = false
    const own = this.log.key.toString('hex')
    for (const [hex, next] of this.appliedTo) {
      const w = set.writers.get(hex)
      const first = w ? (w.limit ?? next) + 1 : 1
      if (hex === own && first < next) await this.refuseLogged(first, next, why(w))
      for (let seq = first; seq < next; seq++) {
        const e = { writer: encodeKey(Buffer.from(hex, 'hex')), seq, reason: `dropped by a rebuild: ${why(w)}` }
        this.dropped.push(e)
        this.skip(Buffer.from(hex, 'hex'), seq, e.reason)
      }
    }
    live.replace(Tree.create(own))
    this.appliedTo.clear()
    live.changedSinceCheckpoint = true
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
    if (seqs.length > 0) this.ctx.flusher.refuseWritten({ at: Date.now(), ops, seqs, reason: `written before the revocation arrived here, not accepted: ${reason}` })
  }

  /** A joiner learns the genesis from any v2 binding: kept in the record, and its own log bound with it. */
  private async adoptGenesis(): Promise<void> {
    const g = this.genesisSeen
    if (!g || this.rec.genesis) return
    this.updateRecord({ genesis: { node: encodeKey(g.node), nonce: g.nonce.toString('hex') } })
    if (!this.log.bound) {
      await this.log.bind(g)
      this.refreshAgain = true
    }
  }

  /** Applies the valid, not yet applied local entries of every writer, in batches; a log is held at its first entry that is not valid. */
  private async applyValid(set: WriterSet): Promise<number> {
    this.holdIndex()
    try {
      return await this.applyValidHeld(set)
    } finally {
      this.releaseIndexLater()
    }
  }

  /**
   * The index buckets read while applying stay in memory (Tree.holdIndex) from a pass until
   * HOLD_IDLE_MS after the last one: the windows and passes of one merge (a pass per few blocks
   * while they arrive) touch the same directories' pages again and again.
   */
  private holdIndex(): void {
    if (this.indexHold?.tree !== this.ctx.live.tree) {
      this.indexHold?.release()
      this.indexHold = { tree: this.ctx.live.tree, release: this.ctx.live.tree.holdIndex(), timer: null }
    }
    if (this.indexHold.timer) clearTimeout(this.indexHold.timer)
    this.indexHold.timer = null
  }

  private releaseIndexLater(): void {
    const h = this.indexHold
    if (!h) return
    if (h.timer) clearTimeout(h.timer)
    h.timer = setTimeout(() => this.releaseIndex(), HOLD_IDLE_MS)
    h.timer.unref()
  }

  private releaseIndex(): void {
    const h = this.indexHold
    if (!h) return
    if (h.timer) clearTimeout(h.timer)
    this.indexHold = null
    h.release()
  }

  private async applyValidHeld(set: WriterSet): Promise<number> {
    let entries = 0
    let total = 0
    for (const [hex, writer] of this.writers) total += Math.max(0, writer.length - (this.appliedTo.get(hex) ?? 1))
    for (const [hex, writer] of [...this.writers].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (this.closed) break
      const w = set.writers.get(hex)
      if (!w) continue
      let next = this.appliedTo.get(hex) ?? 1
      const to = Math.min(writer.length, w.limit === null ? Infinity : w.limit + 1)
      if (next >= to) continue
      const entriesBefore = entries
      // Entries are read in windows of many entries' worth of work, then applied by shard in
      // steps (Tree.applySteps: each shard's changes of the window in one Automerge call), each
      // within one entry's ops (CHANGE_LIMITS) with the event loop running between them: no
      // step, hostile or not, blocks the server for long.
      // The log counts as applied up to a window's end once all of it is (a checkpoint taken
      // in between covers less than the tree holds: replay applies that again, which changes
      // nothing).
      let window: WindowEntry<IncomingChange>[] = []
      let windowOps = 0
      let windowBytes = 0
      const applyWindow = async (): Promise<void> => {
        const changes: IncomingChange[] = []
        for (const e of window) for (const c of e.changes) changes.push(c)
        this.stats.windows++
        window = []
        windowOps = 0
        windowBytes = 0
        const rejected: { seq: number; reason: string }[] = []
        let tree = this.ctx.live.tree
        let steps = tree.applySteps(changes, CHANGE_LIMITS.entryOps)
        try {
          for (let i = 0; ; i++) {
            if (i > 0) await new Promise((resolve) => setImmediate(resolve))
            if (this.closed) return
            if (this.ctx.live.tree !== tree) {
              // Replaced between steps (a rebuild): the rest goes to the tree shown now.
              const rest = steps.remaining()
              steps.close()
              tree = this.ctx.live.tree
              steps = tree.applySteps(rest, CHANGE_LIMITS.entryOps)
            }
            const t0 = performance.now()
            const step = steps.next()
            if (step === null) break
            for (const r of step) rejected.push({ seq: Number(r.tag!.slice(r.tag!.lastIndexOf(':') + 1)), reason: r.reason })
            this.stats.applyCalls++
            this.stats.applyMs += performance.now() - t0
          }
        } finally {
          steps.close()
        }
        // Reported in log order, as entries were before they were grouped by shard.
        for (const r of rejected.sort((a, b) => a.seq - b.seq)) this.skip(writer.key, r.seq, `changes do not apply: ${r.reason}`)
        // Applied up to here (progress and checkpoints see it while a long log applies).
        this.appliedTo.set(hex, next)
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
        this.progress?.(entries, total)
      }
      this.stats.readMs += performance.now() - t0
      if (window.length > 0 && !this.closed) await applyWindow()
      if (this.closed) break
      this.stats.entries += entries - entriesBefore
      if (entries > entriesBefore || next !== (this.appliedTo.get(hex) ?? 1)) this.ctx.live.changedSinceCheckpoint = true
      this.appliedTo.set(hex, next)
    }
    return entries
  }

  /** Lists an entry that could not be used (once per entry). */
  skip(writer: Buffer, seq: number, reason: string): void {
    const key = `${writer.toString('hex')}:${seq}`
    if (this.skippedKeys.has(key)) return
    this.skippedKeys.add(key)
    this.skipped.push({ writer: encodeKey(writer), seq, reason })
  }

  /** The key a state of this volume travels under between peers (sealState; spec/keys.md). */
  get stateKey(): Buffer {
    return deriveKey(this.volumeKey, CONTEXT.volumeState)
  }

  /** Applies nothing from the logs until resumed (a joiner that will start from a state); replay resumes where it stood. */
  pauseApply(on: boolean): void {
    this.applyPaused = on
    if (!on) this.scheduleRefresh()
  }

  get paused(): boolean {
    return this.applyPaused
  }

  /** Whether any entry of any log was applied (a state is only taken by a first sync). */
  get appliedAny(): boolean {
    for (const next of this.appliedTo.values()) if (next > 1) return true
    return false
  }

  /** Starts from a checked state: its positions (its tree is put in place by the caller). */
  startFrom(applied: Map<string, number>, skipped: { writer: Buffer; seq: number; reason: string }[]): void {
    for (const [hex, next] of applied) this.appliedTo.set(hex, next)
    for (const s of skipped) this.skip(s.writer, s.seq, s.reason)
    this.ctx.live.changedSinceCheckpoint = true
  }

  /**
   * How far into each log the tree reaches (next seq), with no edit queued: `applied`, and this
   * node's own log up to its length (its entries went into the tree as they were made), or its
   * limit if the writer set has one. Read only: `applied` says what replay read.
   */
  reach(): Map<string, number> {
    const own = this.log.key.toString('hex')
    const reach = new Map(this.appliedTo)
    const w = this.currentSet.writers.get(own)
    if (w) reach.set(own, Math.max(reach.get(own) ?? 1, w.limit === null ? this.log.length : Math.min(this.log.length, w.limit + 1)))
    return reach
  }

  /** Stops replay: no more applying; the logs are closed. */
  async close(): Promise<void> {
    this.closed = true
    if (this.liveTimer) clearTimeout(this.liveTimer)
    this.releaseIndex()
    for (const u of this.unsubscribe) u()
    for (const log of this.writers.values()) await log.close()
  }
}

/** The genesis a volume record keeps, decoded; null for volumes without one (legacy, or a joiner that has not learnt it). */
export function genesisOf(record: { genesis?: { node: string; nonce: string } }): Genesis | null {
  if (!record.genesis) return null
  return { node: decodeKey(record.genesis.node, 'genesis node key'), nonce: Buffer.from(record.genesis.nonce, 'hex') }
}
