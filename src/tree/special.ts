/**
 * Special files (issue 13; spec/tree.md "Special files"): fifos, unix sockets, character and
 * block devices are nodes of kinds of their own, replicated as metadata only (a name, owners,
 * mode, times, and a device's number): no content ever. A fifo is a rendezvous on the machine
 * whose processes open it; a socket is meaningful only where a process bound it (elsewhere it
 * is a name nobody listens on: connect gives ECONNREFUSED); a device node names whatever device
 * that number is on the machine looking.
 */

export const SPECIAL_KINDS = ['fifo', 'socket', 'chardev', 'blockdev'] as const
export type SpecialKind = (typeof SPECIAL_KINDS)[number]

/** Largest device number (dev_t as Linux encodes it in 32 bits, as FUSE passes it). */
export const MAX_RDEV = 0xffffffff

export function isSpecialKind(v: unknown): v is SpecialKind {
  return v === 'fifo' || v === 'socket' || v === 'chardev' || v === 'blockdev'
}

/** Whether nodes of `kind` carry a device number (`rdev`). */
export function isDevice(kind: string): boolean {
  return kind === 'chardev' || kind === 'blockdev'
}

export function isRdev(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_RDEV
}
