// Hard links through the mount (spec/fuse.md "Hard links", spec/tree.md "Hard links"): link(2)
// gives a file or symlink another name; every name of a node shows one inode number and the
// node's link count, so tar, cp -a and rsync -H see the names as one file.
import type { Volume } from '../volume/volume.js'
import { ROOT_ID } from '../tree/index.js'
import { FsError } from './errno.js'
import { checkNames, place } from './snapdir.js'

/** link(2): `to` becomes a new name of the node at `from`. */
export function link(volume: Volume, from: string, to: string): void {
  checkNames(from)
  checkNames(to)
  const src = place(from)
  const dst = place(to)
  if (dst.kind === 'snaproot') throw new FsError('EEXIST', to)
  if (src.kind !== 'live' || dst.kind !== 'live') {
    // A name in a snapshot, or a link across the live tree and a snapshot: snapshots are read-only.
    if (src.kind === 'snaproot') throw new FsError('EPERM', `${from}: cannot link the snapshot directory`)
    throw new FsError(dst.kind === 'snap' ? 'EROFS' : 'EXDEV', `${to}: snapshots are read-only`)
  }
  volume.mutate((t) => t.link(from, to), (st) => ({ op: 'link', path: from, to: st.path }))
}

/** The inode number of the snapshot directory `/.snap` (the root's is 1; inodeOf gives neither). */
export const SNAP_DIR_INO = 2

/**
 * The inode number the mount shows for a node (libfuse's use_ino): 32 random bits of its id,
 * so every name of a node shows the same one, on every peer and across mounts. Conflict
 * copies (`<node>:<ver>`) take their version's bits; a snapshot's files are told apart from
 * the live ones by the snapshot's name (tar and rsync -H pair names by inode and link count).
 */
export function inodeOf(id: string, snapshot?: string): number {
  if (id === ROOT_ID && snapshot === undefined) return 1
  const colon = id.indexOf(':')
  let ino = parseInt((colon < 0 ? id : id.slice(colon + 1)).slice(-8), 16) >>> 0
  if (snapshot !== undefined) ino = (ino ^ fnv1a(snapshot)) >>> 0
  return ino < 3 ? ino + 3 : ino
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
