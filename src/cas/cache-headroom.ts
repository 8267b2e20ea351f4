// The cache budget against a filling disk (issue 11; spec/datadir.md "The cache"): content read
// from peers arrives through replication, not through the space guard's writes
// (src/space-guard.ts), so a budget set when the disk was empty could fill it once other
// programs use the space. The budget eviction keeps to is therefore the configured one or
// less: what still leaves a free-space reserve on the disk holding the data dir,
//
//   effective = min(configured, cached + free - reserve)
//
// (cached: the bytes the budget bounds, which eviction can give back; free: what statfs says is
// available now). With the disk filling, cached shrinks until the reserve is free again; with
// the space back, the configured budget holds again. Own content made safe by the copy rule
// (own-eviction.ts) follows the same budget. Pinned content and open files are never evicted,
// so they are not part of it.
import fs from 'node:fs'
import { MARGIN_BYTES } from '../space-guard.js'

/** The reserve: this share of the disk's size... */
export const RESERVE_SHARE = 0.05
/** ...at most this much... */
export const MAX_RESERVE_BYTES = 2 * 1024 ** 3
/** ...and at least this much (twice the space guard's margin: room for writes on a small disk). */
export const MIN_RESERVE_BYTES = 2 * MARGIN_BYTES

/** Free space the cache leaves on the disk holding `dataDir`: 5% of it, between 8 MiB and 2 GiB. */
export function reserveBytes(dataDir: string): number {
  return reserveOf(fs.statfsSync(dataDir))
}

function reserveOf(st: fs.StatsFs): number {
  return Math.min(MAX_RESERVE_BYTES, Math.max(MIN_RESERVE_BYTES, Math.floor(st.blocks * st.bsize * RESERVE_SHARE)))
}

/**
 * The budget eviction keeps to: `configured`, or less while the disk has less than the reserve
 * free beyond what the cache could give back (`cachedBytes`). The configured one if the disk
 * can't be asked.
 */
export function effectiveBudget(configured: number, cachedBytes: number, dataDir: string): number {
  try {
    const st = fs.statfsSync(dataDir) // one call: this runs on every pack downloaded
    return Math.max(0, Math.min(configured, cachedBytes + st.bavail * st.bsize - reserveOf(st)))
  } catch {
    return configured
  }
}
