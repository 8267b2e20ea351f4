// A source's index (spec/cas.md section 6): a PackTable from address to (pack, offset, length)
// built from the source's `pack-index` core, blocks 0..k-1 in order, each decoded strictly
// (pack-codec.ts) and required to describe pack i at block i. Blocks held locally are decoded
// without the network; a lookup that misses downloads the rest of the index up to the newest
// length a peer has, as one pipelined range, and lookups that miss together share that
// catch-up. A block that doesn't decode makes the source unusable for this run (one log line).
import type { Hypercore } from 'hypercore'
import { PackTable, applyIndexRecord, type PackLocation } from './pack-table.js'
import { decodeIndexRecord } from './pack-codec.js'
import { within } from '../timeout.js'
import type { Log } from '../log.js'

/** Index blocks read from local storage per step when catching the table up. */
const INDEX_READ_BATCH = 64

/** Block 0 of an old store's `cas-index` is a hyperbee header (protobuf field 1: "hyperbee"). */
function isHyperbeeHeader(block: Buffer): boolean {
  return block.length >= 10 && block[0] === 0x0a && block.subarray(2, 10).toString('latin1') === 'hyperbee'
}

export interface SourceIndexOptions {
  /** The source's name in log lines (the peer, as it is called now). */
  name: () => string
  log: () => Log
  timeoutMs: number
  /** True once the owner (RemoteStores) is closing: catch-ups stop. */
  closed: () => boolean
}

export class SourceIndex {
  /** Address -> (pack, offset, length) for index blocks 0..indexed-1. */
  readonly table = new PackTable()
  /**
   * Where drop records found objects when they forgot them (their dropped packs), for the
   * dropped packs this node's copy may still hold: reads use them until the copy holds the
   * objects where they moved, then the pack is cleared (cache-drops.ts) and its entries go.
   */
  readonly retired = new PackTable()
  private indexed = 0
  /** Decoding of local index blocks in flight (serialized: `indexed` only grows). */
  private decoding: Promise<void> | null = null
  /** Why this store is not read (its index is not a pack index we know), once found; logged once. */
  unusable: string | null = null
  /** The network catch-up in flight (shared by every lookup that missed while it runs). */
  private updating: Promise<void> | null = null
  /** The one queued behind it: a lookup that missed after `updating` started waits for this. */
  private nextUpdate: Promise<void> | null = null

  constructor(readonly core: Hypercore, private readonly opts: SourceIndexOptions) {}

  /** Where the object is, per the blocks decoded so far (no I/O). */
  get(address: Buffer): PackLocation | null {
    return this.table.get(address)
  }

  has(address: Buffer): boolean {
    return this.table.has(address)
  }

  /** Adds index block `seq` to the table; a block that doesn't decode makes the source unusable (logged once). */
  private add(seq: number, block: Buffer): boolean {
    if (seq !== this.indexed) return seq < this.indexed // decoded already (the local and the network catch-up overlap)
    let why: string | null = null
    try {
      const rec = decodeIndexRecord(block)
      try {
        applyIndexRecord(this.table, seq, rec, this.retired) // later entries win; drop records forget (spec/gc.md)
      } catch (err) {
        why = `index block ${seq} ${(err as Error).message}`
      }
    } catch (err) {
      why = seq === 0 && isHyperbeeHeader(block)
        ? 'it is a store in the old format (a cas-index hyperbee: that node runs a bazil from before packs)'
        : `index block ${seq}: ${(err as Error).message}`
    }
    if (why === null) {
      this.indexed = seq + 1
      return true
    }
    if (!this.unusable) {
      this.unusable = why
      this.opts.log()('warn', `cas: not reading the store of ${this.opts.name()}: ${why}`)
    }
    return false
  }

  /**
   * Whether the source's index is known to be longer than the table covers (after catchUpLocal:
   * blocks not downloaded yet, or a connected peer's copy is longer). Such blocks may move an object or drop its pack (spec/gc.md
   * section 4), so a location found now may be stale.
   */
  get behind(): boolean {
    if (this.unusable) return false
    // The copy's length, or a longer one a connected peer announced (after a reconnect the
    // copy's length moves only once something updates it).
    let known = this.core.length
    for (const p of this.core.peers) known = Math.max(known, p.remoteLength)
    return this.indexed < known
  }

  /** Decodes the index blocks held locally beyond what the table covers (no network). */
  catchUpLocal(): Promise<void> {
    if (this.decoding) return this.decoding
    const core = this.core
    if (this.unusable || this.indexed >= core.length) return Promise.resolve()
    this.decoding = (async () => {
      // (contiguousLength is a hint hypercore saves lazily: after a restart it may say 0; has() reads the bitfield)
      while (!this.unusable && !this.opts.closed() && this.indexed < core.length) {
        const from = this.indexed
        const to = Math.min(core.length, from + INDEX_READ_BATCH)
        let held = from
        while (held < to && (await core.has(held))) held++
        if (held === from) return
        const blocks = await Promise.all(Array.from({ length: held - from }, (_, i) => core.get(from + i, { wait: false })))
        for (let i = 0; i < blocks.length; i++) {
          const block = blocks[i]
          if (!block || !this.add(from + i, block)) return
        }
      }
    })()
      .catch(() => {}) // a closed core: nothing more to read
      .finally(() => {
        this.decoding = null
      })
    return this.decoding
  }

  /**
   * Downloads the index from where the table stops to the newest length a peer has (one
   * pipelined range), decoding it as it arrives. Bounded by the timeout; never throws.
   */
  private async catchUpNetwork(): Promise<void> {
    if (this.unusable) return
    const core = this.core
    const { timeoutMs } = this.opts
    await within(core.update({ wait: true }).catch(() => false), timeoutMs, false)
    await this.catchUpLocal()
    const end = core.length
    if (this.unusable || this.indexed >= end) return
    const range = core.download({ start: this.indexed, end })
    const deadline = Date.now() + timeoutMs
    try {
      for (let seq = this.indexed; seq < end && !this.unusable && !this.opts.closed(); seq = this.indexed) {
        const block = await core.get(seq, { timeout: Math.max(1, deadline - Date.now()) })
        if (!block) return
        if (!this.add(seq, block)) return
        await this.catchUpLocal() // the blocks behind it that arrived meanwhile: decoded without waiting one by one
      }
    } catch (err) {
      if (!this.opts.closed()) this.opts.log()('debug', `cas: peer ${this.opts.name()}: index: ${(err as Error).message}`)
    } finally {
      range.destroy()
    }
  }

  /**
   * Resolves after a network catch-up that started after this call. Lookups that miss together
   * share one: a burst of misses costs one round trip.
   */
  updated(): Promise<void> {
    if (this.nextUpdate) return this.nextUpdate
    if (!this.updating) {
      this.updating = this.catchUpNetwork().finally(() => {
        this.updating = null
      })
      return this.updating
    }
    const current = this.updating
    this.nextUpdate = current.then(() => {
      this.nextUpdate = null
      return this.updated()
    })
    return this.nextUpdate
  }
}
