// Packs of peers' stores (spec/cas.md section 6): read from this node's copy of a source's
// `packs` core when held there, fetched over the network otherwise (hypercore verifies each
// block against the core's signed tree and asks whichever peers of the core have it), and
// requested ahead as ranges for reads to come (an export, a file read through the mount).
// Concurrent reads of one pack share one storage read or one fetch; the last packs read stay
// in memory (the objects of a pack are read one after another).
import type { Hypercore } from 'hypercore'
import { Lru } from './lru.js'
import { SharedLoads } from './shared-loads.js'
import type { PackLocation } from './pack-table.js'
import { HASH_BYTES } from '../crypto.js'
import { within } from '../timeout.js'
import type { Log } from '../log.js'
import { clearBlocks } from '../core-clear.js'

/** What pack fetching needs of a source. */
export interface PackSource {
  /** Unique per store (both core keys): the cache key's prefix. */
  id: string
  /** For log lines. */
  name: string
  packs: Hypercore
}

/** Pack blocks kept decoded in memory (~1 MiB each): the objects of one pack are read one after another. */
const PACK_CACHE = 32
/** How long packs requested ahead outside a bulk stay requested. */
const LOOSE_RANGE_MS = 60_000
/** Consecutive packs requested as a range of their own (fewer go in one request by block list). */
const MIN_RUN = 4

export class PackFetcher {
  /** Pack blocks read recently, by source id and pack number. */
  private readonly packCache = new Lru<string, Buffer>(PACK_CACHE)
  /** Local pack reads in flight (concurrent reads of one pack share one storage read). */
  private readonly packReads = new SharedLoads<string, Buffer>(this.packCache)
  /** Pack fetches over the network in flight (concurrent reads of one pack share one). */
  private readonly packFetches = new SharedLoads<string, Buffer>(this.packCache)
  /**
   * Clears in flight (the cache's eviction), by source id and pack: reads of that pack wait for
   * them. hypercore deletes a cleared block's data before its bitfield says so, and a read in
   * between would find neither the block here nor a reason to fetch it (a request resolved
   * "locally" with nothing).
   */
  private readonly clearing = new Map<string, Promise<void>>()

  /**
   * Clears packs [start, end) of this node's copy of the source (cache eviction; cache.ts)
   * through clearBlocks (src/core-clear.ts: no Merkle tree node a peer needs is deleted):
   * 'busy' when a read or fetch of one of them is in flight (nothing cleared: try others),
   * 'kept' when clearBlocks left one of them held (clearing it now would delete tree nodes),
   * 'cleared' otherwise. Reads of them meanwhile wait.
   */
  async clear(s: PackSource, start: number, end = start + 1): Promise<'cleared' | 'busy' | 'kept'> {
    const keys: string[] = []
    for (let seq = start; seq < end; seq++) {
      const key = `${s.id}:${seq}`
      if (this.packReads.loading(key) || this.packFetches.loading(key) || this.clearing.has(key)) return 'busy'
      keys.push(key)
    }
    const p = clearBlocks(s.packs, start, end).then((left) => (left > 0 ? 'kept' as const : 'cleared' as const))
    const settled = p.then(() => {}, () => {})
    for (const key of keys) this.clearing.set(key, settled)
    try {
      return await p
    } finally {
      for (const key of keys) this.clearing.delete(key)
    }
  }

  private bulkDepth = 0
  /** Ranges requested inside bulk(): let go when it ends. */
  private readonly ranges: { destroy(): void }[] = []
  private closed = false

  constructor(private readonly timeoutMs: number, private readonly log: () => Log) {}

  /** Pack `seq` of the source if held locally (no network), or null. Concurrent reads of one pack share one. */
  localPack(s: PackSource, seq: number): Promise<Buffer | null> {
    return this.packReads.load(`${s.id}:${seq}`, async () => {
      await this.clearing.get(`${s.id}:${seq}`)
      if (seq >= s.packs.length || !(await s.packs.has(seq))) return null
      return s.packs.get(seq, { wait: false })
    })
  }

  /**
   * Pack `seq` of the source, fetched if need be (hypercore verifies it); null if it doesn't
   * come within the timeout. A shared fetch that started earlier (before the peer came back,
   * say) and gave up is followed by one of this read's own while its time lasts.
   */
  async fetchPack(s: PackSource, seq: number): Promise<Buffer | null> {
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      const pack = await this.sharedFetch(s, seq).catch(() => null)
      if (pack || this.closed || attempt >= 2 || Date.now() - started >= this.timeoutMs) return pack
    }
  }

  private sharedFetch(s: PackSource, seq: number): Promise<Buffer | null> {
    return this.packFetches.load(`${s.id}:${seq}`, async () => {
      const local = await this.localPack(s, seq) // arrived meanwhile (a range requested ahead)
      if (local) return local
      await this.clearing.get(`${s.id}:${seq}`)
      if (seq >= s.packs.length) await within(s.packs.update({ wait: true }).catch(() => false), this.timeoutMs, false)
      return s.packs.get(seq, { timeout: this.timeoutMs })
    })
  }

  /** The object at `loc` in the pack, if its header address is A; else null (logged: the source's index and packs disagree). */
  slice(s: PackSource, pack: Buffer, loc: PackLocation, address: Buffer): Buffer | null {
    const end = loc.offset + loc.length
    const object = end <= pack.length ? pack.subarray(loc.offset, end) : null
    if (object && object.length > HASH_BYTES && object.subarray(1, 1 + HASH_BYTES).equals(address)) return object
    this.log()('warn', `cas: peer ${s.name}: pack ${loc.pack} does not hold ${address.toString('hex').slice(0, 16)}… where its index says (offset ${loc.offset}, ${loc.length} bytes)`)
    return null
  }

  /** Runs `fn`; the ranges requested meanwhile (request()) are let go when it ends. */
  async bulk<T>(fn: () => Promise<T>): Promise<T> {
    this.bulkDepth++
    try {
      return await fn()
    } finally {
      if (--this.bulkDepth === 0) {
        for (const r of this.ranges.splice(0)) r.destroy()
      }
    }
  }

  /**
   * Requests these packs of the source that its local copy doesn't hold: runs of consecutive
   * packs as ranges, packs standing alone in one request by block list (hypercore walks each
   * request on every update: not thousands of tiny ranges). Returns how many were requested.
   */
  async request(s: PackSource, packs: Iterable<number>): Promise<number> {
    const list: number[] = []
    for (const p of packs) if (!(await s.packs.has(p))) list.push(p)
    list.sort((a, b) => a - b)
    const alone: number[] = []
    for (let i = 0; i < list.length;) {
      let j = i + 1
      while (j < list.length && list[j] === list[j - 1]! + 1) j++
      if (j - i >= MIN_RUN) this.download(s, { start: list[i]!, end: list[j - 1]! + 1, linear: true })
      else alone.push(...list.slice(i, j))
      i = j
    }
    if (alone.length > 0) this.download(s, { blocks: alone })
    return list.length
  }

  private download(s: PackSource, range: { start: number; end: number; linear: boolean } | { blocks: number[] }): void {
    const r = s.packs.download(range)
    if (this.bulkDepth > 0) {
      this.ranges.push(r)
      return
    }
    // Outside a bulk (a file opened through the mount): let go once done, or after a while.
    const timer = setTimeout(() => r.destroy(), LOOSE_RANGE_MS)
    timer.unref()
    r.done().then(() => clearTimeout(timer), () => clearTimeout(timer))
  }

  close(): void {
    this.closed = true
    for (const r of this.ranges.splice(0)) r.destroy()
  }
}
