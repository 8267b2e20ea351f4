// Clearing blocks of a hypercore (freeing their storage: the own store's eviction and
// compaction, a mirror following drop records, a writer's log past its limit, the cache's
// eviction) without breaking what this node still serves. Not through it: store-migration.ts
// (an abandoned store of the old format, cleared whole: nothing of it is served).
//
// Why not core.clear() directly: hypercore 11.37.1's clear(start, end) (lib/session-state.js)
// also deletes the Merkle tree nodes it thinks no held block needs, walking up from leaf
// `start`: at each level it keeps going while the sibling subtree holds no block, but a LEFT
// sibling is never looked at (its condition `s <= start && e <= end` is always true for it),
// so it deletes the left sibling's node and its own even when the left subtree holds blocks.
// Those blocks then can't be proven: a peer that asks for one gets the connection destroyed
// ("INVALID_OPERATION: Expected tree node N from storage, got (nil)"), on every reconnect, so
// everything else that connection carried (other stores, writer logs) stops too. E.g. clear(11)
// on a core holding 0..15 makes block 10 unservable.
//
// clearBlocks chooses the ranges it clears so that the walk deletes no tree node at all (see
// there); a block that can't be cleared so stays (held, servable), reported to the caller.
import type { Hypercore } from 'hypercore'

/** Depth of the root (of the core's Merkle forest at `length` blocks) whose subtree holds block `block`. */
function rootDepth(length: number, block: number): number {
  let offset = 0
  for (let d = Math.floor(Math.log2(length)) + 1; d >= 0; d--) {
    const size = 2 ** d
    if (offset + size > length) continue
    if (block < offset + size) return d
    offset += size
  }
  return 0
}

/**
 * Clears blocks [start, end) of the core (hypercore `clear`) and returns how many held blocks
 * of the range were left (0: all of it cleared). No tree node is deleted: beyond held blocks'
 * proofs, a peer whose copy stopped at an older length L upgrades with a proof made of the
 * nodes around L, which hypercore's walk deletes too when the blocks there are cleared (that
 * peer then never gets past L from this node). The walk deletes nothing when it starts at an
 * even block whose right neighbour is held (it stops at once), so each run of held blocks is
 * cleared from an even start (an odd run start takes the unheld block before it along); a
 * block that can't be (an even one alone, an odd one whose left neighbour outside the range is
 * held) stays, and a later clear of its neighbours may take it. Tree nodes are ~40 bytes each.
 * Not even a cache's copy (sparse) may lose the leaf nodes of a lone even block: a peer's
 * request in flight for its unheld neighbour was sized by the nodes this copy held (hypercore
 * asks only for the proof nodes it lacks), and its answer would no longer verify.
 */
export async function clearBlocks(core: Hypercore, start: number, end = start + 1): Promise<number> {
  end = Math.min(end, core.length)
  let left = 0
  for (let i = start; i < end;) {
    if (!(await core.has(i))) {
      i++
      continue
    }
    let j = i + 1
    while (j < end && (await core.has(j))) j++
    // Held run [i, j): start it at an even block whose right neighbour is held.
    let a = i
    if (a % 2 === 1) {
      if (await core.has(a - 1)) {
        left++ // its left neighbour (outside the range) is held: it stays
        a++
      } else a-- // not held: clearing it too changes nothing but where the walk starts
    }
    if (a < j) {
      if (rootDepth(core.length, a) === 0 || (a + 1 < core.length && (await core.has(a + 1)))) await core.clear(a, j)
      else left += j - a // a lone even block: its clear would delete its own and its neighbour's node
    }
    i = j
  }
  return left
}
