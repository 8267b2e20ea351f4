// Where this node's own content is safe: the copy rule (`bazil volume copies`) and the
// confirmations storage peers sent (spec/protocol.md, HOLDS). Content written here may leave
// this node's disk only through SafetyOracle: the packs it says are held elsewhere often enough.

/** Which packs of a store are held by at least `copies` peers that confirmed holding them. */
export interface SafetyOracle {
  /**
   * Packs [0, n) of the store whose `packs` core has this key are held by >= copies confirmed
   * peers (a confirmation covers a prefix of the packs, so safety is a prefix too). 0 for a
   * store this node knows no confirmations of.
   */
  safePacks(storeKey: Buffer): number
}

/** Nothing is safe elsewhere (before confirmations are known). */
export const NOTHING_SAFE: SafetyOracle = { safePacks: () => 0 }
