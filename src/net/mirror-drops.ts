// A mirror of a peer's store follows the owner's drop records (spec/gc.md section 5): once its
// copy of `pack-index` holds a drop record at position i and its copy of `packs` holds every
// block below i that no drop record names (so the live objects the owner moved are here in
// their new packs), the packs the record names are cleared from the copy. Until then they stay:
// a mirror never holds less than the owner's live content. The mirror has no sharing key: it
// reads only the records' pack numbers, never an object.
import type { Hypercore } from 'hypercore'
import { DROP_INDEX_VERSION, decodeIndexRecord } from '../cas/pack-codec.js'
import { clearBlocks } from '../core-clear.js'

/** Events are gathered for this long before a pass (blocks arrive in bursts). */
const SETTLE_MS = 100
/** The download range is started again from the first block not held once it is this far behind. */
const RESTART_AFTER = 64

export interface DropFollowerHost {
  /** Fetch (and keep) blocks of `packs` from `start` on, live; the blocks below are held or dropped. */
  fetchFrom(start: number): void
  /** Packs were cleared (e.g. to compact the database later). */
  cleared?(packs: number): void
  log?(line: string): void
}

export class DropFollower {
  /** Index blocks looked at (0..scanned-1). */
  private scanned = 0
  /** Packs named by a drop record held here. */
  private readonly dead = new Set<number>()
  /** Records waiting for the packs below them. */
  private pending: { position: number; packs: number[] }[] = []
  /** Dropped packs held whose clear clearBlocks left (tried again each step). */
  private readonly left = new Set<number>()
  /** Every block of `packs` below this is held or dead. */
  private floor = 0
  private rangeStart = 0
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private again = false
  private closed = false
  /** Packs cleared so far (tests, logs). */
  clearedPacks = 0
  private readonly onEvent = (): void => this.schedule()

  constructor(private readonly packs: Hypercore, private readonly index: Hypercore, private readonly host: DropFollowerHost) {
    for (const core of [packs, index]) {
      core.on('append', this.onEvent)
      core.on('download', this.onEvent)
    }
    this.schedule()
  }

  private schedule(): void {
    if (this.closed || this.timer) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.pass()
    }, SETTLE_MS)
  }

  /** One pass now (also what events trigger); resolves when it is done. */
  pass(): Promise<void> {
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      do {
        this.again = false
        try {
          await this.step()
        } catch (err) {
          if (!this.closed) this.host.log?.(`mirror: following drop records: ${(err as Error).message}`)
        }
      } while (this.again && !this.closed)
    })().finally(() => { this.running = null })
    return this.running
  }

  private async step(): Promise<void> {
    // New drop records among the index blocks held (in order: stop at the first not held).
    while (!this.closed && this.scanned < this.index.length) {
      const block = await this.index.get(this.scanned, { wait: false })
      if (!block) break
      if (block[0] === DROP_INDEX_VERSION) {
        const rec = decodeIndexRecord(block)
        if (rec.kind === 'drop' && rec.position === this.scanned) {
          for (const p of rec.packs) this.dead.add(p)
          this.pending.push({ position: rec.position, packs: rec.packs })
        }
      }
      this.scanned++
    }
    while (!this.closed && this.floor < this.packs.length && (this.dead.has(this.floor) || (await this.packs.has(this.floor)))) this.floor++
    const ready = this.pending.filter((r) => r.position <= this.floor)
    this.pending = this.pending.filter((r) => r.position > this.floor)
    let cleared = 0
    // Dropped packs clearBlocks left earlier (their clear would have deleted tree nodes peers
    // need): a neighbour's clear since may allow it.
    for (const p of [...this.left]) {
      if (this.closed) return
      if (!(await this.packs.has(p))) this.left.delete(p)
      else if ((await clearBlocks(this.packs, p)) === 0) {
        this.left.delete(p)
        cleared++
      }
    }
    for (const r of ready) {
      for (const p of r.packs) {
        if (this.closed) return
        if (!(await this.packs.has(p))) continue
        if ((await clearBlocks(this.packs, p)) === 0) cleared++
        else this.left.add(p)
      }
    }
    if (cleared > 0) {
      this.clearedPacks += cleared
      this.host.log?.(`mirror: cleared ${cleared} packs the owner dropped`)
      this.host.cleared?.(cleared)
    }
    // Blocks below the floor are held or dead: fetching from the floor on never asks for a dead one again.
    if (this.floor - this.rangeStart >= RESTART_AFTER || (cleared > 0 && this.floor > this.rangeStart)) {
      this.rangeStart = this.floor
      this.host.fetchFrom(this.floor)
    }
  }

  close(): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    for (const core of [this.packs, this.index]) {
      core.off('append', this.onEvent)
      core.off('download', this.onEvent)
    }
  }
}
