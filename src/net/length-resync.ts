// Repairing a hypercore 11.37.1 replication race that leaves a live connection unable to
// carry a core's new length (spec/protocol.md, "Length announcements").
//
// Peers tell each other their length with `sync` messages, and each echoes the length it
// last heard from the other (`remoteLength` in the message; `lengthAcked` on the receiving
// peer). A replica asks a peer for an upgrade (the longer length, lib/replicator.js
// `_shouldUpgrade`) only when that peer's echo is the replica's own length. When C and B both
// get the same upgrade (say 3 -> 4) from a third peer at once, C's `signalUpgrade` awaits
// `_canUpgrade` (a storage read) before sending its sync, and B's sync ("I have 4") arriving
// during that await makes it return without sending (the remote length changed under it);
// C's `onsync` sends none either (C is not longer than B). B goes on believing C has 3, and
// every later sync of B echoes 3: once B is longer (5), C never asks it for the upgrade, and
// nothing on that connection moves until it is replaced (a new connection starts with a
// fresh exchange). Reproduced with raw hypercore + corestore in 9 of 10 runs:
// scripts/hypercore-sync-race.mjs (run it after a hypercore upgrade).
//
// The repair: a replica whose peer is longer but echoes a length that is not the replica's
// sends that peer one more sync (the message it failed to send); the peer answers with its
// own, echoing the right length, and the upgrade follows.
import type { Hypercore, ReplicatorPeer } from 'hypercore'

/** How often each connection looks for such peers. */
export const RESYNC_MS = 1_000

/**
 * Whether peer `p` of `core` holds a longer core (same fork) but echoes a length of ours that
 * is not ours, with no sync of its in processing: it will not be asked for the upgrade until
 * it hears our length again. Also true for a round trip after any length change; a sync sent
 * then is one message more, answered like any other.
 */
function stalled(core: Hypercore, p: ReplicatorPeer): boolean {
  return p.remoteSynced && p.syncsProcessing === 0 && p.remoteFork === core.fork && p.remoteLength > core.length && p.lengthAcked !== core.length
}

/** Sends one more sync to each peer of `core` on `mux` that is stalled (above); returns how many. */
export function resyncStalled(core: Hypercore, mux: unknown): number {
  if (core.closed || !core.opened) return 0
  let n = 0
  for (const p of core.peers) {
    if (p.protomux !== mux || !stalled(core, p) || typeof p.sendSync !== 'function') continue
    p.sendSync()
    n++
  }
  return n
}
