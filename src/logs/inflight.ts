/**
 * How many block requests of another writer's log this node keeps in flight to one peer.
 *
 * hypercore's replicator scales its window with the link's round trip: below 50 ms (a LAN, the
 * loopback) it keeps `min` requests in flight per peer, 16 by default. A log's blocks are small
 * (one entry each, often one op), so that window makes a merge of thousands of entries a few
 * hundred round trips, each of which waits for both processes' event loops: while the other
 * side applies what it has, it answers 16 requests per turn. Logs get a wider window; the CAS
 * cores (64 KiB blocks, interactive reads queued behind them) keep hypercore's.
 */
import type { Hypercore } from 'hypercore'

/** [min, max] block requests in flight per peer for a writer log (hypercore's default: [16, 512]); BAZIL_LOG_INFLIGHT=min,max sets it (bench A/B in one build). */
export const LOG_INFLIGHT: readonly [number, number] = envRange(process.env.BAZIL_LOG_INFLIGHT) ?? [256, 512]

function envRange(v: string | undefined): [number, number] | null {
  if (!v) return null
  const [a, b] = v.split(',').map(Number)
  return Number.isSafeInteger(a) && Number.isSafeInteger(b) && a! > 0 && b! >= a! ? [a!, b!] : null
}

/** hypercore's replicator, reached through a session (not in the typings). */
interface WithReplicator {
  core?: { replicator?: { inflightRange: [number, number]; setInflightRange(min: number, max: number): void } }
}

/** Gives the core (every session of it) the log's request window. */
export function widenLogRequests(core: Hypercore): void {
  const r = (core as unknown as WithReplicator).core?.replicator
  if (!r || typeof r.setInflightRange !== 'function') return
  if (r.inflightRange[0] === LOG_INFLIGHT[0] && r.inflightRange[1] === LOG_INFLIGHT[1]) return
  r.setInflightRange(LOG_INFLIGHT[0], LOG_INFLIGHT[1])
}
