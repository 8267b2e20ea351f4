// Owners through the mount (issue 13; spec/fuse.md "Owners and permissions", spec/tree.md
// "Owners"). The tree stores numeric ids, with MOUNTER for "the mounting user": this mount
// shows MOUNTER as its own uid/gid and stores its own uid/gid as MOUNTER, so the mounting
// user's files are the mounting user's on every machine. The kernel checks every access
// against the modes and owners we report (default_permissions), including who may chown and
// chgrp (setattr_prepare: chown needs CAP_CHOWN; chgrp the owner and a group it is in) and the
// clearing of setuid/setgid that goes with them.
import { MOUNTER, type Stat } from '../tree/index.js'

/** chown(2)'s "leave it alone" (-1 as uid_t / gid_t, as fuse-native passes it: an unsigned 32-bit int). */
const NO_CHANGE = 0xffffffff
const S_ISGID = 0o2000

/** Who asked for an op: uid and gid of the calling process (fuse_get_context). */
export interface Caller { uid: number; gid: number }

/** What our fuse-native build offers (scripts/build-fuse-native.mjs "caller"); absent in a build without the fix. */
interface CallerSource { caller?: () => number[] | null }

export class Owners {
  constructor(readonly uid: number, readonly gid: number) {}

  /** The uid and gid a stat shows for a node's stored owners. */
  shown(st: Pick<Stat, 'uid' | 'gid'>): { uid: number; gid: number } {
    return { uid: st.uid === MOUNTER ? this.uid : st.uid, gid: st.gid === MOUNTER ? this.gid : st.gid }
  }

  /** The stored value of a uid this machine names. */
  storedUid(uid: number): number { return uid === this.uid ? MOUNTER : uid }
  storedGid(gid: number): number { return gid === this.gid ? MOUNTER : gid }

  /**
   * The owners of a node `caller` creates in directory `parent`: the caller's uid; the caller's
   * gid, or the directory's when it has setgid (as Linux file systems do). A new directory in a
   * setgid directory is setgid too: the mode to create it with is returned.
   */
  ofNew(caller: Caller | null, parent: Stat | null, mode: number, isDir: boolean): { uid: number; gid: number; mode: number } {
    const uid = caller ? this.storedUid(caller.uid) : MOUNTER
    if (parent && parent.mode & S_ISGID) return { uid, gid: parent.gid, mode: isDir ? mode | S_ISGID : mode }
    return { uid, gid: caller ? this.storedGid(caller.gid) : MOUNTER, mode }
  }

  /** chown(uid, gid) as the attributes to set: ids left alone (-1) are undefined. */
  chown(uid: number, gid: number): { uid?: number; gid?: number } {
    const out: { uid?: number; gid?: number } = {}
    if (uid !== NO_CHANGE && uid !== -1) out.uid = this.storedUid(uid)
    if (gid !== NO_CHANGE && gid !== -1) out.gid = this.storedGid(gid)
    return out
  }
}

/**
 * The caller of the op being handled, read synchronously at the op's entry (the addon keeps
 * only the latest op's caller): null with a fuse-native build that predates the fix, in which
 * case new nodes belong to the mounting user as before owners existed.
 */
export function callerOf(fuse: CallerSource | null): Caller | null {
  const c = fuse?.caller?.()
  if (!c || c.length < 2) return null
  return { uid: c[0]!, gid: c[1]! }
}
