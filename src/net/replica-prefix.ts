// What a keeper confirms of its replica of a peer's store (HOLDS, spec/protocol.md "Keeping a
// peer's store"): the first position i at which block i of `packs` is not held and pack i is
// not named by a drop record (spec/gc.md section 4) whose `pack-index` block the keeper holds,
// or at which block i of `pack-index` is not held. A replica that cleared the packs its owner
// dropped (spec/gc.md section 5) so keeps its confirmed prefix; a missing live pack stops it.
import type { Hypercore } from 'hypercore'
import { storeDrops } from '../cas/pack-codec.js'

/** The packs an index block drops, if it is a drop record; null for a pack's index block. */
export type DropsOf = (block: Buffer, position: number) => number[] | null


export class ReplicaPrefix {
  private readonly dropped = new Set<number>()
  /** Index blocks below this were looked at for drop records. */
  private scanned = 0

  constructor(private readonly dropsOf: DropsOf = storeDrops) {}

  /** Walked at every call past the contiguous prefix (a bitfield lookup per pack): a block cleared anywhere counts at once. */
  async length(packs: Hypercore, index: Hypercore): Promise<number> {
    const indexEnd = index.contiguousLength
    for (; this.scanned < indexEnd; this.scanned++) {
      const block = (await index.get(this.scanned, { wait: false })) as Buffer | null
      if (!block) break
      for (const p of this.dropsOf(block, this.scanned) ?? []) this.dropped.add(p)
    }
    let i = Math.min(packs.contiguousLength, indexEnd)
    while (i < indexEnd && (this.dropped.has(i) || (await packs.has(i)))) i++
    return i
  }
}
