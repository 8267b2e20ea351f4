/**
 * A node's times beyond mtime (issue 13; spec/tree.md "Times"): atime is kept (key `atime`,
 * absent: the mtime) and ctime is derived, so that creating, writing and moving a node add no
 * Automerge op for it: the latest of its loc's time (creation, moves), its mtime (writes set
 * it) and its `ctime` key (metadata-only edits: chmod, utimens). Not the content version's
 * time: a mount shows a file being written with its last write's time as mtime and ctime, and
 * the commit that follows must not change ctime (tar and git compare it between stats).
 */
import { ROOT_ATIME_KEY, ROOT_CTIME_KEY, ROOT_GID_KEY, ROOT_MODE_KEY, ROOT_MTIME_KEY, ROOT_UID_KEY, type RawNode } from './model.js'
import { isOwner, MOUNTER } from './owners.js'

export function atimeOf(n: RawNode): number {
  return n.atime ?? n.mtime
}

export function ctimeOf(n: RawNode): number {
  return Math.max(n.loc.time, n.mtime, n.ctime ?? 0)
}

/** The root directory's times (meta keys `root.mtime`, `root.atime`, `root.ctime`); 0: never set. */
export interface RootTimes { mtime: number; atime: number; ctime: number }

/** The root directory's owner (meta keys `root.uid`, `root.gid`; absent or not an owner value: MOUNTER). */
export interface RootOwner { uid: number; gid: number }

/** Reads the root's mode, times and owner from the `meta` shard's root map into an index (keys that are not numbers: unset). */
export function readRootAttrs(m: Record<string, unknown>, index: { rootMode: number; rootTimes: RootTimes; rootOwner: RootOwner }): void {
  const num = (k: string): number | undefined => (typeof m[k] === 'number' && Number.isFinite(m[k]) ? m[k] : undefined)
  const mode = num(ROOT_MODE_KEY)
  if (mode !== undefined) index.rootMode = mode
  index.rootTimes = { mtime: num(ROOT_MTIME_KEY) ?? 0, atime: num(ROOT_ATIME_KEY) ?? 0, ctime: num(ROOT_CTIME_KEY) ?? 0 }
  const owner = (k: string): number => (isOwner(m[k]) ? m[k] : MOUNTER)
  index.rootOwner = { uid: owner(ROOT_UID_KEY), gid: owner(ROOT_GID_KEY) }
}

const ROOT_ATTR_KEYS = new Set([ROOT_MODE_KEY, ROOT_MTIME_KEY, ROOT_ATIME_KEY, ROOT_CTIME_KEY, ROOT_UID_KEY, ROOT_GID_KEY])

/** Whether a `meta` key is one of the root's attributes. */
export function isRootAttrKey(k: string): boolean {
  return ROOT_ATTR_KEYS.has(k)
}
