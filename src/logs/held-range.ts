// Which blocks of another writer's log this node fetches and keeps (spec/oplog.md, "Applying
// entries under the writer set"): all of it, live, while the writer has no limit; only the
// blocks up to its last accepted entry once a revocation limits it. Blocks past the limit that
// arrived before the revocation are cleared, so this node never serves (relays) them: the
// writer's own node still has them, and they come back if the limit is ever lifted.
import type { Hypercore, Range } from 'hypercore'
import { clearBlocks } from '../core-clear.js'

export class HeldRange {
  private range: Range
  private limit: number | null = null

  constructor(readonly core: Hypercore) {
    this.range = core.download({ start: 0, end: -1 })
  }

  /** Keep and fetch blocks 0..last (block 0 is the binding); null: every block, live. */
  async setLimit(last: number | null): Promise<void> {
    if (last === this.limit || this.core.closed) return
    this.limit = last
    this.range.destroy()
    this.range = this.core.download(last === null ? { start: 0, end: -1 } : { start: 0, end: last + 1 })
    if (last !== null && this.core.length > last + 1) await clearBlocks(this.core, last + 1, this.core.length)
  }

  /** Fetch and keep blocks from `start` on, live (the blocks below are held or dropped: a mirror following drop records, src/net/mirror-drops.ts). */
  fetchFrom(start: number): void {
    if (this.core.closed) return
    this.range.destroy()
    this.range = this.core.download({ start, end: -1 })
  }

  destroy(): void {
    this.range.destroy()
  }
}
