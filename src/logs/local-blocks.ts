/**
 * Blocks of a hypercore that are held locally, read many per storage read. `core.get` makes a
 * RocksDB read batch per block (about 4x the CPU of one batch for 64 blocks, measured on 10k
 * small blocks); a replay reads every block of a merge twice (the control scan, then the
 * entries), so a merge of 10k one-op entries paid that per block. Same answers as
 * `core.get(i, { wait: false })`: the block, null when it is not held, a rejection when the
 * store cannot give it back.
 */
import type { Hypercore } from 'hypercore'

/** Promises of blocks [from, to): one storage read batch when the session allows it, else a `get` each. */
export function localBlocks(core: Hypercore, from: number, to: number): Promise<Buffer | null>[] {
  const out: Promise<Buffer | null>[] = []
  const storage = core.state?.storage
  // A session with block encryption, a snapshot, or being closed: hypercore's get knows what to do.
  if (core.opened !== true || core.encryption || core._snapshot || core.closing || typeof storage?.read !== 'function') {
    for (let i = from; i < to; i++) out.push(core.get(i, { wait: false }))
    return out
  }
  const rx = storage.read()
  for (let i = from; i < to; i++) out.push(rx.getBlock(i))
  rx.tryFlush()
  return out
}

/** Blocks requested ahead of the one being read: one awaited get per block costs ~10x more. */
const AHEAD = 64

/** One block of `blocksInOrder`: the block (null: not held), or the error getting it gave. */
export type OrderedBlock = { seq: number; block: Buffer | null } | { seq: number; block: undefined; error: unknown }

/**
 * Blocks [from, to) in seq order, AHEAD of them requested at a time: with `get` undefined only
 * blocks held here (`localBlocks`, refilled when half the window is used), else `core.get(i,
 * get)` (waits for remote blocks as `get` says). A block the store cannot give back comes out
 * as its error, and reading goes on; the caller stops when it wants (the rest is discarded).
 */
export async function* blocksInOrder(core: Hypercore, from: number, to: number, get?: { wait?: boolean; timeout?: number }): AsyncGenerator<OrderedBlock> {
  const window: Promise<Buffer | null>[] = []
  let next = from
  const fill = (): void => {
    if (get === undefined) {
      if (window.length > AHEAD / 2 || next >= to) return
      const end = Math.min(to, next + AHEAD - window.length)
      for (const p of localBlocks(core, next, end)) {
        p.catch(() => {}) // awaited in order below; one left behind must not go unhandled
        window.push(p)
      }
      next = end
      return
    }
    while (next < to && window.length < AHEAD) {
      const p = core.get(next++, get)
      p.catch(() => {})
      window.push(p)
    }
  }
  for (let seq = from; seq < to; seq++) {
    fill()
    let block: Buffer | null
    try {
      block = await window.shift()!
    } catch (error) {
      yield { seq, block: undefined, error }
      continue
    }
    yield { seq, block }
  }
}
