// Which blocks of another writer's log this node fetches and keeps (spec/oplog.md, "Admission
// and revocation"): all of it, live, while the writer has no limit. Once a revocation limits
// it: the blocks up to the limit, and past it only its CONTROL blocks. Those may hold a
// counter-revocation (two writers revoking each other while partitioned: each sees only its
// own revocation as valid until it reads the other's, which lies past the limit it set), so
// they are fetched, kept and served; the sealed entries past the limit are fetched once,
// looked at and cleared, so this node never serves (relays) them: the writer's own node still
// has them, and they come back if the limit is ever lifted.
//
// What has been looked at past the limit (`examined`: runs of seqs whose control blocks are
// held and whose other blocks were cleared) is kept with the core (hypercore user data, format
// below), so a block cleared here is never fetched again, and a scan for control entries
// (`scanControl` with `pastLimit()`) reads over it instead of waiting for it.
import type { Hypercore, Range } from 'hypercore'
import { clearBlocks } from '../core-clear.js'
import { ByteReader, ByteWriter } from './bytes.js'
import { isControlBlock, type PastLimit } from './control.js'
import { LogFormatError } from './errors.js'
import { blocksInOrder } from './local-blocks.js'

/** Hypercore user-data key of the state, and its version (spec/oplog.md "Held past a limit"). */
export const HELD_STATE_KEY = 'bazil/held-range'
const HELD_STATE_VERSION = 1
/** Runs kept; a block that would make one more stays held, not examined (read by scans as any held block). */
const MAX_RUNS = 256

export interface HeldState {
  /** Last accepted seq; null: no limit. */
  limit: number | null
  /** Sorted, disjoint, non-adjacent [start, end) runs past the limit, examined. */
  examined: [number, number][]
}

/** `u8 version || varint limit+1 (0: none) || varint n || n x (varint start || varint length)`, starts delta-coded. */
export function encodeHeldState(s: HeldState): Buffer {
  const w = new ByteWriter()
  w.u8(HELD_STATE_VERSION)
  w.varint(s.limit === null ? 0 : s.limit + 1, 'held state limit')
  w.varint(s.examined.length, 'held state run count')
  let at = 0
  for (const [i, [a, b]] of s.examined.entries()) {
    if (a < at || (i > 0 && a === at) || b <= a) throw new LogFormatError('held state: runs must be sorted, disjoint and non-empty')
    w.varint(a - at, 'held state run start')
    w.varint(b - a, 'held state run length')
    at = b
  }
  return w.finish()
}

export function decodeHeldState(buf: Uint8Array): HeldState {
  const r = new ByteReader(buf, 'held state')
  const version = r.u8('version')
  if (version !== HELD_STATE_VERSION) throw new LogFormatError(`held state: unknown version ${version}`)
  const l = r.varint('limit')
  const n = r.count('run count', MAX_RUNS, 2)
  const examined: [number, number][] = []
  let at = 0
  for (let i = 0; i < n; i++) {
    const a = at + r.varint(`run ${i} start`)
    const len = r.varint(`run ${i} length`)
    if (len === 0) throw new LogFormatError(`held state: run ${i} is empty`)
    if (i > 0 && a === at) throw new LogFormatError(`held state: run ${i} is adjacent to the one before`)
    examined.push([a, a + len])
    at = a + len
  }
  r.end()
  return { limit: l === 0 ? null : l - 1, examined }
}

/** `runs` with [a, b) added (sorted, merged); null if that would make more than MAX_RUNS. */
function addRun(runs: [number, number][], a: number, b: number): [number, number][] | null {
  const out: [number, number][] = []
  for (const r of runs) {
    if (r[1] < a || r[0] > b) out.push(r)
    else { a = Math.min(a, r[0]); b = Math.max(b, r[1]) }
  }
  out.push([a, b])
  out.sort((x, y) => x[0] - y[0])
  return out.length > MAX_RUNS ? null : out
}

/** `runs` without `seq`. */
function removeSeq(runs: [number, number][], seq: number): [number, number][] {
  const out: [number, number][] = []
  for (const [a, b] of runs) {
    if (seq < a || seq >= b) out.push([a, b])
    else {
      if (a < seq) out.push([a, seq])
      if (seq + 1 < b) out.push([seq + 1, b])
    }
  }
  return out
}

export class HeldRange {
  private ranges: Range[] = []
  private limit: number | null = null
  private examined: [number, number][] = []
  /** Sealed blocks past the limit, examined, not cleared yet (the tree did not allow it yet). */
  private readonly toClear = new Set<number>()
  private sweeping: Promise<void> | null = null
  private sweepAgain = false
  private destroyed = false
  /** Examined seqs that arrived again: looked at once more (a sealed one is cleared again). */
  private readonly again = new Set<number>()
  private readonly onDownload = (index: number): void => {
    if (this.limit === null || index <= this.limit) return
    // A block already examined (and cleared) can be written again: hypercore sends a block
    // request to a second peer when the first is slow (its hotswaps), and both answers verify
    // concurrently, so the later one lands after the clear (or a reader here fetched it).
    if (this.examined.some(([a, b]) => index >= a && index < b)) this.again.add(index)
    this.sweep()
  }
  private readonly onPeer = (): void => {
    if (this.toClear.size > 0) this.sweep()
  }

  private constructor(readonly core: Hypercore) {
    core.on('download', this.onDownload)
    core.on('peer-add', this.onPeer)
  }

  /** Follows the core as its stored state says (every block, live, when there is none or it does not decode). */
  static async open(core: Hypercore): Promise<HeldRange> {
    const h = new HeldRange(core)
    let stored: Buffer | null = null
    try {
      stored = await core.getUserData(HELD_STATE_KEY)
    } catch {}
    if (stored !== null) {
      try {
        const s = decodeHeldState(stored)
        h.limit = s.limit
        h.examined = s.limit === null ? [] : s.examined
      } catch (err) {
        if (!(err instanceof LogFormatError)) throw err
      }
    }
    h.follow()
    if (h.limit !== null) h.sweep()
    return h
  }

  /** What a control scan needs to read over the gaps past the limit; null: no limit. */
  pastLimit(): PastLimit | null {
    if (this.limit === null) return null
    return { from: this.limit + 1, examined: (seq) => this.examined.some(([a, b]) => seq >= a && seq < b) }
  }

  /** Keep and fetch blocks 0..last, and past it the control blocks; null: every block, live. */
  async setLimit(last: number | null): Promise<void> {
    if (last === this.limit || this.core.closed || this.destroyed) return
    this.limit = last
    // Runs at or below a new limit are fetched again (cleared blocks come back from the writer's node).
    this.examined = last === null ? [] : this.examined.filter(([, b]) => b > last + 1).map(([a, b]) => [Math.max(a, last + 1), b])
    for (const seq of this.toClear) if (last === null || seq <= last) this.toClear.delete(seq)
    await this.save()
    this.follow()
    if (last !== null) {
      this.sweep()
      await this.sweeping
    }
  }

  /** Fetch and keep blocks from `start` on, live (the blocks below are held or dropped: a mirror following drop records, src/net/mirror-drops.ts). */
  fetchFrom(start: number): void {
    if (this.core.closed || this.destroyed) return
    this.destroyRanges()
    this.ranges.push(this.core.download({ start, end: -1 }))
  }

  destroy(): void {
    this.destroyed = true
    this.core.off('download', this.onDownload)
    this.core.off('peer-add', this.onPeer)
    this.destroyRanges()
  }

  private destroyRanges(): void {
    for (const r of this.ranges) r.destroy()
    this.ranges = []
  }

  /** Download ranges: 0..limit, then every gap between examined runs, then live from the last run's end. */
  private follow(): void {
    if (this.core.closed || this.destroyed) return
    const old = this.ranges
    this.ranges = []
    if (this.limit === null) {
      this.ranges.push(this.core.download({ start: 0, end: -1 }))
    } else {
      this.ranges.push(this.core.download({ start: 0, end: this.limit + 1 }))
      let at = this.limit + 1
      for (const [a, b] of this.examined) {
        if (at < a) this.ranges.push(this.core.download({ start: at, end: a }))
        at = Math.max(at, b)
      }
      this.ranges.push(this.core.download({ start: at, end: -1 }))
    }
    for (const r of old) r.destroy() // after the new ones: a block wanted by both stays requested
  }

  private sweep(): void {
    if (this.sweeping) {
      this.sweepAgain = true
      return
    }
    const run = async (): Promise<void> => {
      do {
        this.sweepAgain = false
        await this.sweepOnce()
      } while (this.sweepAgain && !this.destroyed && !this.core.closed)
    }
    this.sweeping = run().catch(() => {}).finally(() => { this.sweeping = null })
  }

  /**
   * Looks at the held blocks past the limit not examined yet: control blocks stay, the others
   * are cleared. The runs are recorded (and saved) before the clear, so a block is never both
   * gone and unaccounted for.
   */
  private async sweepOnce(): Promise<void> {
    const limit = this.limit
    if (limit === null || this.destroyed || this.core.closed) return
    const length = this.core.length
    const gaps: [number, number][] = []
    let at = limit + 1
    for (const [a, b] of this.examined) {
      if (at < a) gaps.push([at, Math.min(a, length)])
      at = Math.max(at, b)
    }
    if (at < length) gaps.push([at, length])
    let runs = this.examined
    for (const [a, b] of gaps) {
      for await (const blk of blocksInOrder(this.core, a, b)) {
        if (blk.block === undefined || blk.block === null) continue // unreadable or not here: not examined
        const more = addRun(runs, blk.seq, blk.seq + 1)
        if (more === null) continue
        runs = more
        if (!isControlBlock(blk.block)) this.toClear.add(blk.seq)
      }
    }
    for (const seq of [...this.again]) {
      this.again.delete(seq)
      if (seq <= limit || !runs.some(([a, b]) => seq >= a && seq < b)) continue
      const block = await this.core.get(seq, { wait: false }).catch(() => null)
      if (block !== null && !isControlBlock(block)) this.toClear.add(seq)
    }
    if (this.limit !== limit || this.destroyed) return
    if (runs !== this.examined) {
      this.examined = runs
      await this.save()
      this.follow()
    }
    if (this.toClear.size === 0) return
    // Runs of sealed blocks, cleared where the tree allows it now (src/core-clear.ts: a block
    // whose neighbour is not held yet may have to wait for it); the rest is tried again later.
    const seqs = [...this.toClear].sort((x, y) => x - y)
    let i = 0
    while (i < seqs.length) {
      let j = i + 1
      while (j < seqs.length && seqs[j] === seqs[j - 1] + 1) j++
      if (this.limit !== limit || this.destroyed || this.core.closed) return
      await clearBlocks(this.core, seqs[i], seqs[j - 1] + 1)
      i = j
    }
    for (const seq of seqs) if (this.core.closed || !(await this.core.has(seq))) this.toClear.delete(seq)
    // An odd block whose left neighbour is held cannot be cleared alone without breaking that
    // neighbour's proof (src/core-clear.ts): clear the pair (an even start whose right
    // neighbour is held: no tree node goes) and fetch the neighbour again, from a peer that
    // says it holds it (none connected: tried again when one comes).
    for (const seq of [...this.toClear]) {
      if (this.limit !== limit || this.destroyed || this.core.closed) return
      if (seq % 2 === 0 || !(await this.core.has(seq - 1)) || this.toClear.has(seq - 1)) continue
      if (!this.core.peers.some((p) => p.remoteContiguousLength > seq - 1)) continue
      if (seq - 1 > limit) { // a control block past the limit: no longer examined, so it is fetched (and kept) again
        this.examined = removeSeq(this.examined, seq - 1)
        await this.save()
      }
      await clearBlocks(this.core, seq - 1, seq + 1)
      if (!(await this.core.has(seq))) this.toClear.delete(seq)
      this.follow()
    }
    await this.refetchRightNeighbours(limit)
  }

  /**
   * A lone even sealed block (its right neighbour examined and cleared, not held) cannot be
   * cleared without deleting tree nodes (src/core-clear.ts): that happens when it is written
   * again after the pair was cleared (a second peer's answer to the same request, `again`).
   * Its neighbour is fetched again (no longer examined), so the pair is cleared together once
   * it arrives, as for the odd block above.
   */
  private async refetchRightNeighbours(limit: number): Promise<void> {
    for (const seq of [...this.toClear]) {
      if (this.limit !== limit || this.destroyed || this.core.closed) return
      const right = seq + 1
      if (seq % 2 === 1 || right >= this.core.length || (await this.core.has(seq)) === false || (await this.core.has(right))) continue
      if (!this.examined.some(([a, b]) => right >= a && right < b)) continue // not examined: being fetched already
      if (!this.core.peers.some((p) => p.remoteContiguousLength > right)) continue
      this.examined = removeSeq(this.examined, right)
      await this.save()
      this.follow()
    }
  }

  private async save(): Promise<void> {
    if (this.core.closed) return
    await this.core.setUserData(HELD_STATE_KEY, encodeHeldState({ limit: this.limit, examined: this.examined }))
  }
}
