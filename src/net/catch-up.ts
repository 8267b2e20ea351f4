// Waiting for a core to be held as far as a peer holds it (and the peer as far as we do):
// what `volume sync` and `volume connect` wait on, measured from hypercore's per-peer state.
import type { Hypercore } from 'hypercore'

export const POLL_MS = 50

/** What hypercore 11 keeps per replicating peer of a core (the fields used here). */
export interface CorePeer {
  remotePublicKey: Buffer | Uint8Array | null
  remoteContiguousLength: number
  remoteLength: number
  remoteSynced: boolean
}

/** The replication peer on `core` that is the node `key`, if it is attached. */
export function peerOf(core: Hypercore, key: Buffer): CorePeer | null {
  for (const p of core.peers as CorePeer[]) {
    if (p.remotePublicKey && key.equals(Buffer.from(p.remotePublicKey))) return p
  }
  return null
}

/**
 * Where a core stands between this node and the peer `key`: blocks held here contiguously,
 * the peer's length and what it holds contiguously (as it last announced; null: the peer
 * does not replicate the core with us now), what the peer has that we lack (`behind`) and
 * what we hold that it lacks (`ahead`). `last`: a revoked writer's log is held only up to
 * its last entry (spec/oplog.md), so nothing past it counts as behind.
 */
export function corePosition(core: Hypercore, key: Buffer, last: number | null = null): { held: number; peerLength: number | null; peerHeld: number | null; behind: number; ahead: number } {
  const p = peerOf(core, key)
  const held = core.contiguousLength
  if (!p) return { held, peerLength: null, peerHeld: null, behind: 0, ahead: 0 }
  const cap = last === null ? Infinity : last + 1
  return { held, peerLength: p.remoteLength, peerHeld: p.remoteContiguousLength, behind: Math.max(0, Math.min(p.remoteLength, cap) - held), ahead: Math.max(0, held - p.remoteContiguousLength) }
}

/**
 * Waits until this node holds a core as far as the peer `key` does: its length at least the
 * peer's, and every block up to what the peer holds contiguously. Only that peer's word
 * counts: `update({wait: true})` would also wait for every other peer of the core, and a
 * connection that died without a reset holds it up until it times out (seconds).
 */
export async function catchUp(core: Hypercore, key: Buffer, deadline: number, last: number | null = null): Promise<{ blocks: number; complete: boolean }> {
  const before = core.contiguousLength
  core.update({ wait: true }).catch(() => {}) // asks for the longer length, if a peer has one
  const done = (): boolean => {
    const p = peerOf(core, key)
    // A revoked writer's log is held only up to its limit (spec/oplog.md): nothing past it to wait for.
    const held = last === null ? core.length : Math.min(core.length, last + 1)
    return !!p && p.remoteSynced && core.length >= p.remoteLength && core.contiguousLength >= Math.min(p.remoteContiguousLength, held)
  }
  while (!done() && Date.now() < deadline) await sleep(POLL_MS)
  return { blocks: Math.max(0, core.contiguousLength - before), complete: done() }
}

/** Waits until the peer `key` holds a core we replicate with it as far as we hold it. */
export async function peerCatchUp(core: Hypercore, key: Buffer, deadline: number): Promise<{ blocks: number; complete: boolean }> {
  const peerHas = (): number | null => peerOf(core, key)?.remoteContiguousLength ?? null
  const target = core.contiguousLength
  const before = peerHas() ?? 0
  while ((peerHas() ?? -1) < target && Date.now() < deadline) await sleep(POLL_MS)
  return { blocks: Math.max(0, (peerHas() ?? 0) - before), complete: (peerHas() ?? -1) >= target }
}

/** Polls `cond` until it holds (true) or the deadline passes (false). */
export async function untilTrue(cond: () => boolean | Promise<boolean>, deadline: number | (() => number)): Promise<boolean> {
  for (;;) {
    if (await cond()) return true
    if (Date.now() >= (typeof deadline === 'number' ? deadline : deadline())) return false
    await sleep(POLL_MS)
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
