/**
 * A node's owner (issue 13; spec/tree.md "Owners"): keys `uid` and `gid` of its record, ints.
 * A numeric id is that id on every machine; MOUNTER (the value -1, and an absent key: every
 * record written before owners existed) is "the mounting user", shown as whoever mounts the
 * volume on each machine, so that one person's files are theirs on every machine whatever
 * their uid there. The mount maps its own uid/gid to MOUNTER when it writes (src/mount/owners.ts).
 */

/** "The mounting user": the value of an absent `uid`/`gid` key. */
export const MOUNTER = -1
/** Largest numeric owner id (uid_t and gid_t are 32 bits; 2^32-1 is the "no change" value of chown(2)). */
export const MAX_OWNER_ID = 0xfffffffe

/** Whether `v` is a stored owner value: MOUNTER or a numeric id. */
export function isOwner(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= MOUNTER && v <= MAX_OWNER_ID
}

/** A node's owner as set by a caller: undefined (no change), MOUNTER or an id; anything else is refused with `fail`. */
export function checkOwner(v: number | undefined, fail: (msg: string) => Error): number | undefined {
  if (v === undefined) return undefined
  if (!isOwner(v)) throw fail(`bad owner id ${v}`)
  return v
}

/** Sets a node state's owners as a local edit leaves them (undefined: unchanged; MOUNTER: the key's absence in the state). */
export function setOwners(n: { uid?: number; gid?: number }, uid: number | undefined, gid: number | undefined): void {
  if (uid !== undefined) {
    if (uid === MOUNTER) delete n.uid
    else n.uid = uid
  }
  if (gid !== undefined) {
    if (gid === MOUNTER) delete n.gid
    else n.gid = gid
  }
}
