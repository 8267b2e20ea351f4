// The cache: content this node read from peers' stores stays in its local copies of their
// `packs` cores (remote-store.ts). This module accounts for it (which packs are held, their
// bytes, their last use: cache-ledger.ts) and keeps it within the budget (`bazil cache size`,
// cache-size.ts) by clearing the least recently used packs (through src/core-clear.ts, which
// keeps the Merkle tree nodes peers need: a pack it can't clear yet stays, counted; then a
// RocksDB compaction of the core's range so that the disk space comes back). Never cleared: packs
// holding content a pin references (cache-pins.ts) or a mount has open (cache-holds.ts).
// Pinned packs do not count against the budget. The own store (content written here) is not
// touched: it leaves only through the copy rule (issue 11), not through this module.
import fs from 'node:fs'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { replaceFile } from '../atomic-file.js'
import type { Log } from '../log.js'
import { CacheLedger, type LedgerEntry } from './cache-ledger.js'
import { DEFAULT_BUDGET, budgetBytes, formatBytes, readBudget, writeBudget, type BudgetSpec } from './cache-size.js'
import type { Holder, PinSet } from './cache-holds.js'
import type { RemoteStores } from './remote-store.js'
import { clearBlocks } from '../core-clear.js'
import { Coalesced } from '../coalesced.js'
import { effectiveBudget } from './cache-headroom.js'
import { followDrops } from './cache-drops.js'

/** How often the ledger is written when it changed (and at close). */
const SAVE_MS = 30_000
/** How often the stores are looked at for copies opened since (new sources) and the budget re-resolved. */
const POLL_MS = 5_000
/** How often the connected sources' new index blocks (drop records) are fetched when nothing read them. */
const INDEX_CATCH_UP_MS = 15_000

export interface CacheStatus {
  /** The budget as set (`20GiB`, `10%`) and whether it is the default. */
  budget: string
  default: boolean
  budgetBytes: number
  /** What eviction keeps to now: budgetBytes, or less while the disk has too little free (cache-headroom.ts). */
  effectiveBudgetBytes: number
  /** Packs of peers' stores held here, and their bytes (pinned ones included). */
  packs: number
  heldBytes: number
  /** Of those, the bytes of packs pinned content references (outside the budget). */
  pinnedBytes: number
  /** heldBytes - pinnedBytes: what the budget bounds. */
  cachedBytes: number
  /** The last eviction: packs and bytes cleared, and how long it took (clear + compaction). */
  lastEviction: { packs: number; bytes: number; ms: number; at: number } | null
  evictedBytes: number
  /**
   * Of cachedBytes, bytes the last eviction could not clear: clearing those packs now would
   * delete Merkle tree nodes peers need to verify blocks this node serves (src/core-clear.ts).
   * They are cleared by a later eviction once a neighbour's clear allows it.
   */
  keptBytes: number
}

export interface CacheOptions {
  configFile: string
  ledgerFile: string
  /** Where the budget's percentage is taken of (the data dir). */
  dataDir: string
  /** Stores (`packs` core key) this node keeps whole for others (a closet's replicas): never cache, never evicted. */
  kept?: (packsKey: Buffer) => boolean
  /** What pins reference (never evicted, outside the budget). */
  pins?: PinSet
  /** What must stay while held (files mounts have open). */
  holders?: Holder[]
}

export class ContentCache {
  log: Log = () => {}
  /** What pins reference and what mounts have open: never evicted. */
  readonly pins: PinSet | null
  private readonly holders: Holder[]

  private readonly cores = new Map<string, Hypercore>()
  private readonly attaching = new Map<string, Promise<void>>()
  private spec: BudgetSpec
  private isDefault: boolean
  private budget: number
  private saveTimer: NodeJS.Timeout | null = null
  private pollTimer: NodeJS.Timeout | null = null
  private saving: Promise<void> = Promise.resolve()
  private closed = false
  private pinnedBytes = 0
  private lastEviction: CacheStatus['lastEviction'] = null
  private evictedTotal = 0
  /** Bytes the last eviction had to leave held (clearBlocks refused: tree nodes peers need). */
  private keptBytes = 0

  private constructor(
    private readonly store: Corestore,
    private readonly remote: RemoteStores,
    private readonly opts: CacheOptions,
    readonly ledger: CacheLedger
  ) {
    this.pins = opts.pins ?? null
    this.holders = opts.holders ?? []
    this.spec = DEFAULT_BUDGET
    this.isDefault = true
    this.budget = budgetBytes(this.spec, opts.dataDir)
  }

  /**
   * Loads the ledger (a missing or damaged one: every held pack is found again by a scan,
   * logged) and the budget, and starts accounting: packs read (RemoteStores.onPackRead) and
   * packs arriving (hypercore 'download') on every copy of a peer's store.
   */
  static async open(store: Corestore, remote: RemoteStores, opts: CacheOptions, log: Log = () => {}): Promise<ContentCache> {
    let ledger = new CacheLedger()
    let rescan = false
    try {
      ledger = CacheLedger.decode(await fs.promises.readFile(opts.ledgerFile))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        log('warn', `cache: ${opts.ledgerFile}: ${(err as Error).message} (ignored: the held packs are scanned again, their order of use is lost)`)
      }
      rescan = true
    }
    const cache = new ContentCache(store, remote, opts, ledger)
    cache.log = log
    cache.refreshBudget()
    remote.onPackRead = (key, pack) => cache.used(key, pack)
    await cache.attachAll(rescan)
    cache.saveTimer = setInterval(() => void cache.save(), SAVE_MS)
    cache.saveTimer.unref()
    cache.pollTimer = setInterval(() => {
      void cache.attachAll(false)
      cache.refreshBudget()
      void cache.followDrops()
    }, POLL_MS)
    cache.pollTimer.unref()
    return cache
  }

  // ---- the budget ----------------------------------------------------------------------------

  /** Sets and keeps the budget (DATA/cache.json), then evicts down to it. */
  async setBudget(spec: BudgetSpec): Promise<void> {
    writeBudget(this.opts.configFile, spec)
    this.spec = spec
    this.isDefault = false
    this.budget = budgetBytes(spec, this.opts.dataDir)
    await this.evict()
  }

  /** A percentage follows the disk (and a file edited by hand is picked up). */
  private refreshBudget(): void {
    try {
      const spec = readBudget(this.opts.configFile)
      this.spec = spec ?? DEFAULT_BUDGET
      this.isDefault = spec === null
      this.budget = budgetBytes(this.spec, this.opts.dataDir)
    } catch (err) {
      this.log('warn', `cache: ${(err as Error).message}`)
    }
  }

  /** The budget as set (`bazil cache size`). */
  get configuredBudgetBytes(): number {
    return this.budget
  }

  /** The budget eviction keeps to: the configured one, less while the disk fills (cache-headroom.ts). */
  get budgetBytes(): number {
    return effectiveBudget(this.budget, this.ledger.bytes - this.pinnedBytes, this.opts.dataDir)
  }

  /** Where the cache stands (after an eviction, if over the budget: a file closed since may free its packs). */
  async status(): Promise<CacheStatus> {
    await this.evict()
    const pinned = await this.protectedPacks(true)
    this.pinnedBytes = this.bytesOf(pinned)
    return {
      budget: this.isDefault ? `${formatBudgetSpec(this.spec)} (default)` : formatBudgetSpec(this.spec),
      default: this.isDefault,
      budgetBytes: this.budget,
      effectiveBudgetBytes: this.budgetBytes,
      packs: this.ledger.size,
      heldBytes: this.ledger.bytes,
      pinnedBytes: this.pinnedBytes,
      cachedBytes: this.ledger.bytes - this.pinnedBytes,
      lastEviction: this.lastEviction,
      evictedBytes: this.evictedTotal,
      keptBytes: this.keptBytes
    }
  }

  // ---- accounting ----------------------------------------------------------------------------

  /** Opens a session on every source's `packs` core not watched yet (and reconciles the ledger with it). */
  private async attachAll(rescan: boolean): Promise<void> {
    for (const s of this.remote.stores()) await this.attach(s.cas, rescan)
  }

  private attach(key: Buffer, rescan: boolean): Promise<void> {
    const hex = key.toString('hex')
    if (this.cores.has(hex) || this.closed || this.opts.kept?.(key)) return Promise.resolve()
    let p = this.attaching.get(hex)
    if (!p) {
      p = this.openCore(key, hex, rescan).catch((err: Error) => {
        if (!this.closed) this.log('warn', `cache: cannot watch the copy of store ${hex.slice(0, 16)}…: ${err.message}`)
      }).finally(() => this.attaching.delete(hex))
      this.attaching.set(hex, p)
    }
    return p
  }

  private async openCore(key: Buffer, hex: string, rescan: boolean): Promise<void> {
    const core = this.store.get({ key })
    await core.ready()
    if (this.closed) {
      await core.close()
      return
    }
    core.on('download', (index: number, bytes: number) => {
      this.ledger.add(hex, index, bytes)
      if (this.ledger.bytes > this.budgetBytes) void this.evict()
    })
    this.cores.set(hex, core)
    // The ledger against what the copy holds: packs cleared meanwhile go; packs held but not
    // in it (a lost ledger, or a bazil from before the cache) are added as the oldest.
    for (const pack of this.ledger.packsOf(hex)) {
      if (pack >= core.length || !(await core.has(pack))) this.ledger.remove(hex, pack)
    }
    const known = new Set(this.ledger.packsOf(hex))
    const found: { pack: number; bytes: number }[] = []
    if (rescan || known.size === 0) {
      for (let i = 0; i < core.length; i++) {
        if (known.has(i) || !(await core.has(i))) continue
        const block = await core.get(i, { wait: false }).catch(() => null)
        if (block) found.push({ pack: i, bytes: block.length })
      }
    }
    if (found.length > 0) {
      const rest = this.ledger.oldestFirst()
      for (const e of rest) this.ledger.remove(e.core, e.pack)
      for (const f of found) this.ledger.add(hex, f.pack, f.bytes, 0)
      for (const e of rest) this.ledger.add(e.core, e.pack, e.bytes, e.at)
      this.log('info', `cache: found ${found.length} packs (${formatBytes(found.reduce((n, f) => n + f.bytes, 0))}) held of store ${hex.slice(0, 16)}… not in the ledger: counted as least recently used`)
    }
    if (this.ledger.bytes > this.budgetBytes) void this.evict()
  }

  /** A held pack was read (RemoteStores.onPackRead). */
  private used(key: Buffer, pack: number): void {
    const hex = key.toString('hex')
    if (this.ledger.touch(hex, pack)) return
    if (!this.cores.has(hex)) void this.attach(key, false)
  }

  // ---- eviction ------------------------------------------------------------------------------

  /** Addresses (hex) of pinned content, and (unless `pinsOnly`) of files mounts have open. */
  private async protectedAddresses(pinsOnly: boolean): Promise<Set<string>> {
    const addresses = new Set<string>()
    const sets: Promise<Set<string>>[] = []
    if (this.pins) sets.push(this.pins.pinnedAddresses())
    if (!pinsOnly) for (const h of this.holders) sets.push(h.heldAddresses())
    for (const s of await Promise.all(sets)) for (const a of s) addresses.add(a)
    return addresses
  }

  /** Packs never cleared: those of pinned content, and (unless `pinsOnly`) of files mounts have open. */
  private async protectedPacks(pinsOnly: boolean): Promise<Map<string, Set<number>>> {
    const addresses = await this.protectedAddresses(pinsOnly)
    if (addresses.size === 0) return new Map()
    return this.remote.packsOf([...addresses].map((a) => Buffer.from(a, 'hex')))
  }

  private bytesOf(packs: Map<string, Set<number>>): number {
    let n = 0
    for (const e of this.ledger.oldestFirst()) if (packs.get(e.core)?.has(e.pack)) n += e.bytes
    return n
  }

  /**
   * Clears least recently used packs until the packs not pinned fit the budget (packs of
   * pinned or open content are skipped), then compacts the cleared ranges. Concurrent calls
   * share one run (and one more after it if asked meanwhile). Never throws.
   */
  evict(): Promise<void> {
    return this.evictions.run()
  }

  private readonly evictions = new Coalesced(() => this.evictOnce(), (err) => {
    if (!this.closed) this.log('warn', `cache: eviction failed: ${err.message}`)
  }, () => this.closed)

  private async evictOnce(): Promise<void> {
    if (this.ledger.bytes <= this.budgetBytes) return
    const started = Date.now()
    const pinned = await this.protectedPacks(true)
    const held = await this.protectedPacks(false)
    this.pinnedBytes = this.bytesOf(pinned)
    const budget = this.budgetBytes
    if (this.ledger.bytes - this.pinnedBytes <= budget) return
    // Down to a little below the budget (1/16 of it, at most 256 MiB): the next packs read
    // don't each cost an eviction and a compaction of their own.
    let over = this.ledger.bytes - this.pinnedBytes - (budget - Math.min(Math.floor(budget / 16), 256 * 1024 * 1024))
    const cleared = new Map<string, Hypercore>()
    let packs = 0
    let bytes = 0
    let kept = 0
    const mayGo = (core: string, e: LedgerEntry | null): e is LedgerEntry => e !== null && !held.get(core)?.has(e.pack) && e.at < started
    for (const e of this.ledger.oldestFirst()) {
      if (over <= 0 || this.closed) break
      // Used since this run began (touch() updates the entry in place): a read needs it now.
      // (Gone from the ledger: cleared with its neighbour already.)
      if (!this.ledger.has(e.core, e.pack) || !mayGo(e.core, e)) continue
      const core = this.cores.get(e.core)
      if (!core || this.opts.kept?.(core.key)) continue
      // Cleared through clearBlocks (src/core-clear.ts), which keeps every Merkle tree node
      // peers need: an odd pack whose left neighbour is held goes with that neighbour (alone,
      // its clear would delete the neighbour's nodes) when the neighbour may go too.
      let start = e.pack
      if (e.pack % 2 === 1 && mayGo(e.core, this.ledger.get(e.core, e.pack - 1))) start = e.pack - 1
      // Through the sources (reads of the packs wait for the clear; packs being read are skipped).
      const done = (await this.remote.clearPack(core.key, start, e.pack + 1)) ?? (await clearBlocks(core, start, e.pack + 1) > 0 ? 'kept' : 'cleared')
      if (done === 'busy') continue
      for (let p = start; p <= e.pack; p++) {
        if (await core.has(p)) continue
        const gone = this.ledger.remove(e.core, p)
        if (!gone) continue
        cleared.set(e.core, core)
        over -= gone.bytes
        packs++
        bytes += gone.bytes
      }
      if (await core.has(e.pack)) {
        // Left held (clearing it now would delete tree nodes peers need, e.g. its neighbour is
        // pinned; a later neighbour's clear may allow it): still on disk and counted, so the
        // next least recently used pack goes in its place (never one used since this run
        // began, open in a mount or being read: those are skipped above).
        kept += e.bytes
        const near = [e.pack - 2, e.pack - 1, e.pack + 1, e.pack + 2, e.pack + 3].filter((p) => p >= 0 && p < core.length)
        const heldNear: number[] = []
        for (const p of near) if (await core.has(p)) heldNear.push(p)
        this.log('debug', `cache: pack ${e.pack} of store ${e.core.slice(0, 16)}… stays (clearing it now would delete Merkle tree nodes peers need; neighbours held: ${heldNear.join(',') || 'none'}; length ${core.length})`)
      }
    }
    this.keptBytes = kept
    // RocksDB frees a cleared range's space when it compacts it: ask for it now.
    for (const core of cleared.values()) await core.compact().catch(() => {})
    if (packs === 0) {
      this.log('debug', `cache: ${formatBytes(this.ledger.bytes - this.pinnedBytes)} cached is over the budget of ${formatBytes(budget)}, but every pack held is pinned or open`)
      return
    }
    const ms = Date.now() - started
    this.lastEviction = { packs, bytes, ms, at: Date.now() }
    this.evictedTotal += bytes
    this.log('info', `cache: evicted ${packs} packs (${formatBytes(bytes)}) of peers' stores in ${ms} ms to stay within the budget of ${formatBytes(budget)}${budget < this.budget ? ` (${formatBytes(this.budget)} set; less while the disk is nearly full)` : ''}; held now ${formatBytes(this.ledger.bytes)} (${formatBytes(this.pinnedBytes)} pinned)`)
    void this.save()
  }

  /**
   * Clears the packs owners dropped that the copies still hold (cache-drops.ts), once what pins
   * and open files need of them is held where it moved. Every poll; concurrent calls share one
   * run. Never throws.
   */
  followDrops(): Promise<void> {
    return this.dropPasses.run()
  }

  private lastIndexCatchUp = 0

  private readonly dropPasses = new Coalesced(async () => {
    if (Date.now() - this.lastIndexCatchUp >= INDEX_CATCH_UP_MS) {
      this.lastIndexCatchUp = Date.now()
      await this.remote.catchUpIndexes() // the owners' drop records (a read that misses would fetch them too)
    }
    const touched = new Map<string, Hypercore>()
    let bytes = 0
    const r = await followDrops(this.remote, await this.protectedAddresses(false), (key, pack) => {
      const hex = key.toString('hex')
      const gone = this.ledger.remove(hex, pack)
      if (gone) bytes += gone.bytes
      const core = this.cores.get(hex)
      if (core) touched.set(hex, core)
    }, (key) => this.opts.kept?.(key) === true)
    for (const core of touched.values()) await core.compact().catch(() => {})
    if (r.cleared > 0) {
      this.log('info', `cache: cleared ${r.cleared} packs (${formatBytes(bytes)}) of peers' stores their owners dropped${r.waiting ? `; ${r.waiting} wait until what pins or open files need of them is held where it moved` : ''}`)
      void this.save()
    }
  }, (err) => {
    if (!this.closed) this.log('warn', `cache: following drop records failed: ${err.message}`)
  }, () => this.closed)

  /** Writes the ledger if it changed (serialized; a failure is logged). */
  save(): Promise<void> {
    if (!this.ledger.dirty) return this.saving
    const data = this.ledger.encode()
    this.saving = this.saving.then(() => replaceFile(this.opts.ledgerFile, data, { mode: 0o600 })).catch((err: Error) => {
      this.ledger.dirty = true
      this.log('warn', `cache: cannot write ${this.opts.ledgerFile}: ${err.message}`)
    })
    return this.saving
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.evictions.current
    await this.dropPasses.current
    this.closed = true
    if (this.saveTimer) clearInterval(this.saveTimer)
    if (this.pollTimer) clearInterval(this.pollTimer)
    await Promise.all(this.attaching.values())
    await this.save()
    this.remote.onPackRead = null
    for (const core of this.cores.values()) await core.close().catch(() => {})
    this.cores.clear()
  }
}

function formatBudgetSpec(spec: BudgetSpec): string {
  return 'percent' in spec ? `${spec.percent}% of the disk` : formatBytes(spec.bytes)
}
