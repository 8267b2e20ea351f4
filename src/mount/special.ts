// Special files through the mount (issue 13; spec/fuse.md "Special files"): mknod of fifos,
// unix sockets (bind(2) makes one) and devices becomes a node of that kind. The kernel
// serves them itself once they exist (a fifo's pipe, a bound socket, a device's driver): the
// mount only stores and reports them. Creating a device needs CAP_MKNOD, which the kernel
// checks before asking us.
import type { Stat, SpecialKind } from '../tree/index.js'
import { FsError } from './errno.js'

const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000

/** A stat's file type bits for each kind. */
export const TYPE_BITS: Record<Stat['kind'], number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, fifo: S_IFIFO, socket: S_IFSOCK, chardev: S_IFCHR, blockdev: S_IFBLK,
}

/** The special kind mknod's mode asks for; null for a regular file (created as an empty file); anything else EINVAL. */
export function mknodKind(p: string, mode: number): SpecialKind | null {
  switch (mode & S_IFMT) {
    case S_IFIFO: return 'fifo'
    case S_IFSOCK: return 'socket'
    case S_IFCHR: return 'chardev'
    case S_IFBLK: return 'blockdev'
    case S_IFREG: case 0: return null
    default: throw new FsError('EINVAL', `${p}: mknod of file type 0${(mode & S_IFMT).toString(8)}`)
  }
}
