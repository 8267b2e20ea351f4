// Clearing blocks of a hypercore (freeing their storage: the cache's and the own store's
// eviction, dropped packs after a compaction, a mirror following drop records, a writer's log
// past its limit) without breaking what this node still serves. Every clear of a core this
// node serves goes through clearBlocks() (store-migration.ts clears an abandoned store whole).
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
// clearBlocks chooses the ranges it clears so that the walk deletes no node a peer needs (see
// there); a block that can't be cleared so stays (held, servable), reported to the caller.
import type { Hypercore } from 'hypercore'

/** The parts of a hypercore 11 session clearBlocks reads: its in-memory bitfield (what `has()` reads). */
interface Internals {
  core?: { bitfield?: { hasSet(start: number, length: number): boolean } }
}

/** Whether any block of [start, end) is held (the core's bitfield; per-block `has` if it isn't reachable). */
async function anyHeld(core: Hypercore, start: number, end: number): Promise<boolean> {
  const bitfield = (core as unknown as Internals).core?.bitfield
  if (bitfield && typeof bitfield.hasSet === 'function') return bitfield.hasSet(start, end - start)
  for (let i = start; i < end; i++) if (await core.has(i)) return true
  return false
}

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
 * Whether hypercore's clear(start, end) on this core, now, deletes no tree node that a block
 * held outside [start, end) needs: replays its walk from leaf `start` up to its root (see above).
 */
export async function clearKeepsProofs(core: Hypercore, start: number, end: number): Promise<boolean> {
  const length = core.length
  if (start >= length) return true
  const top = rootDepth(length, start)
  let offset = start // of the node at depth d on the path from leaf `start`
  for (let d = 0; d < top; d++) {
    const size = 2 ** d
    const right = offset % 2 === 0
    const sib = right ? offset + 1 : offset - 1
    const s = sib * size
    const e = s + size
    if (right) {
      // hypercore looks at the bitfield as it was before the clear: held there (the cleared range counts) -> it stops.
      if (await anyHeld(core, s, Math.min(e, length))) return true
    } else if (await anyHeld(core, s, e)) {
      return false // hypercore deletes this held subtree's node without looking
    }
    offset = Math.floor(offset / 2)
  }
  return true
}

/**
 * Clears blocks [start, end) of the core (hypercore `clear`) and returns how many held blocks
 * of the range were left (0: all of it cleared).
 *
 * keepTree (the default; a store this node serves as its owner or keeper): no tree node is
 * deleted at all. Beyond held blocks' proofs, a peer whose copy stopped at an older length L
 * upgrades with a proof made of the nodes around L, which hypercore's walk deletes too when the
 * blocks there are cleared: that peer then never gets past L from this node. The walk deletes
 * nothing when it starts at an even block whose right neighbour is held (it stops at once), so
 * each run of held blocks is cleared from an even start (an odd run start takes the unheld
 * block before it along); a block that can't be (an even one alone, an odd one whose left
 * neighbour outside the range is held) stays. Tree nodes are ~40 bytes each.
 *
 * keepTree false (a cache's copy of a peer's store, which peers don't upgrade from): only the
 * nodes held blocks need are kept (clearKeepsProofs).
 */
export async function clearBlocks(core: Hypercore, start: number, end = start + 1, keepTree = true): Promise<number> {
  end = Math.min(end, core.length)
  return keepTree ? clearKeepingTree(core, start, end) : clearKeepingProofs(core, start, end)
}

async function clearKeepingTree(core: Hypercore, start: number, end: number): Promise<number> {
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

async function clearKeepingProofs(core: Hypercore, start: number, end: number): Promise<number> {
  let hi = end
  while (hi > start) {
    let s = start
    while (s < hi && !(await clearKeepsProofs(core, s, hi))) s++
    if (s >= hi) break
    await core.clear(s, hi)
    hi = s
  }
  let left = 0
  for (let i = start; i < hi; i++) if (await core.has(i)) left++
  return left
}
