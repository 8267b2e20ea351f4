// Content written here leaves this node's disk only once the copy rule is met (issue 11): the
// packs of the own store below SafetyOracle.safePacks (held by >= copies peers that confirmed
// keeping this store, src/placement/placement.ts) count against the cache budget like content read
// from peers, and are cleared, oldest first, when the cached content plus them is over the
// budget. Never cleared: packs holding content pins reference or mounts have open, packs not
// yet safe (the buffer), packs past the index. An evicted pack is read back from the peers
// that keep this store (their replicas replicate with this node's own `packs` core: hypercore
// fetches a cleared block from a peer that has it and verifies it against this node's signed
// tree), through ChunkStore.fetchMissing.
import type { Hypercore } from 'hypercore'
import type { Log } from '../log.js'
import type { ChunkStore } from './chunk-store.js'
import type { ContentCache } from './cache.js'
import type { Holder, PinSet } from './cache-holds.js'
import type { SafetyOracle } from '../placement/placement.js'
import { decodeIndexRecord, packLength, storeDrops } from './pack-codec.js'
import { peerAdded } from './remote-store.js'
import { Coalesced } from '../coalesced.js'
import { clearBlocks } from '../core-clear.js'

/** What own eviction reads of its node: what must stay, the own store, the copy rule's verdict, the cache. */
export interface OwnEvictionHost {
  readonly pins: PinSet
  readonly openFiles: Holder
  readonly chunks: ChunkStore
  readonly safety: SafetyOracle
  readonly cache: ContentCache
}

/** How long the first read of an evicted own pack waits for a peer to attach. */
const PEER_WAIT_MS = 1000

export interface OwnEvictionResult {
  packs: number
  bytes: number
}

export class OwnEviction {
  private readonly sizes = new Map<number, number>()
  private closed = false
  private timer: NodeJS.Timeout | null = null
  /** Packs and bytes evicted since open. */
  private readonly evicted: OwnEvictionResult = { packs: 0, bytes: 0 }
  private readonly passes: Coalesced

  constructor(
    private readonly node: OwnEvictionHost,
    private readonly packs: Hypercore,
    private readonly index: Hypercore,
    private readonly timeoutMs: number,
    public log: Log = () => {}
  ) {
    this.passes = new Coalesced(
      async () => {
        const r = await this.once()
        this.evicted.packs += r.packs
        this.evicted.bytes += r.bytes
      },
      (err) => this.log('warn', `cache: evicting content written here failed: ${err.message}`),
      () => this.closed
    )
  }

  /** Looks again every `ms` (a budget set meanwhile, cached content evicted). */
  start(ms = 30_000): void {
    this.timer = setInterval(() => void this.run(), ms)
    this.timer.unref()
  }

  /** Stops the timer and waits for a pass in flight; nothing runs after. */
  async stop(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.passes.current
  }

  /** One eviction pass (shared with one in flight, plus one more after it); what was evicted meanwhile. Never throws. */
  async run(): Promise<OwnEvictionResult> {
    const before = { ...this.evicted }
    await this.passes.run()
    return { packs: this.evicted.packs - before.packs, bytes: this.evicted.bytes - before.bytes }
  }

  /** A pack's bytes, from its index block (0 for a drop record or a block not here). */
  private async packBytes(i: number): Promise<number> {
    const known = this.sizes.get(i)
    if (known !== undefined) return known
    const block = (await this.index.get(i, { wait: false })) as Buffer | null
    let n = 0
    if (block) {
      const r = decodeIndexRecord(block)
      n = r.kind === 'pack' ? packLength(r.entries) : 0
    }
    this.sizes.set(i, n)
    return n
  }

  /** Own packs that must stay: those of pinned content and of files mounts have open. */
  private async protectedPacks(): Promise<Set<number>> {
    const out = new Set<number>()
    const sets = await Promise.all([this.node.pins.pinnedAddresses(), this.node.openFiles.heldAddresses()])
    for (const set of sets) {
      for (const hex of set) {
        const loc = await this.node.chunks.locate(Buffer.from(hex, 'hex'))
        if (loc) out.add(loc.pack)
      }
    }
    return out
  }

  private async once(): Promise<OwnEvictionResult> {
    const safe = Math.min(this.node.safety.safePacks(this.node.chunks.casKey), this.index.length)
    if (safe === 0) return { packs: 0, bytes: 0 }
    const cache = this.node.cache
    const held: { pack: number; bytes: number }[] = []
    let heldBytes = 0
    for (let i = 0; i < safe; i++) {
      if (!(await this.packs.has(i))) continue
      const bytes = await this.packBytes(i)
      held.push({ pack: i, bytes })
      heldBytes += bytes
    }
    // The budget, less while the disk fills (cache-headroom.ts): the own packs held count as
    // room too (min(set, cached + own + free - reserve) = min(set, the cache's + own)).
    const budget = Math.min(cache.configuredBudgetBytes, cache.budgetBytes + heldBytes)
    let over = cache.ledger.bytes + heldBytes - budget
    if (over <= 0) return { packs: 0, bytes: 0 }
    const keep = await this.protectedPacks()
    let packs = 0
    let bytes = 0
    for (const h of held) {
      if (over <= 0 || this.closed) break
      if (keep.has(h.pack)) continue
      if ((await clearBlocks(this.packs, h.pack)) > 0) continue // clearing it now would delete tree nodes peers need (src/core-clear.ts): later
      over -= h.bytes
      packs++
      bytes += h.bytes
    }
    if (packs > 0) {
      await this.packs.compact().catch(() => {})
      this.log('info', `cache: evicted ${packs} packs (${bytes} bytes) written here, held by enough confirmed peers (copy rule), to stay within the budget of ${budget} bytes`)
    }
    return { packs, bytes }
  }

  /**
   * Makes every live own pack that is not safe (SafetyOracle) held here again, fetching back
   * what was evicted while it was: before this node tells a keeper to stop keeping its store
   * (RELEASE, src/net/holdings.ts), whose confirmation no longer counts once it is out of the
   * storage lists, so what only it held comes back first. Packs dropped by a compaction (named
   * by a drop record) are not live. Waits for an eviction pass in flight. Returns how many are
   * still not held (0: releasing loses nothing).
   */
  async holdUnsafe(): Promise<number> {
    await this.passes.current
    const end = this.index.length
    const safe = Math.min(this.node.safety.safePacks(this.node.chunks.casKey), end)
    const dropped = new Set<number>()
    for (let i = 0; i < end; i++) {
      const block = (await this.index.get(i, { wait: false })) as Buffer | null
      for (const p of block ? storeDrops(block, i) ?? [] : []) dropped.add(p)
    }
    let missing = 0
    for (let i = safe; i < end && !this.closed; i++) {
      if (dropped.has(i) || (await this.packs.has(i))) continue
      if (!(await this.fetchPack(i))) missing++
    }
    return missing
  }

  /** An own pack this node no longer holds, fetched from the peers keeping this store (null: none has it in time). */
  async fetchPack(pack: number): Promise<Buffer | null> {
    if (this.packs.peers.length === 0) await peerAdded(this.packs, PEER_WAIT_MS)
    if (this.packs.peers.length === 0) return null
    try {
      return ((await this.packs.get(pack, { timeout: this.timeoutMs })) as Buffer | null) ?? null
    } catch {
      return null
    }
  }
}
