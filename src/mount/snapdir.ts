// Where a mount path points: the live tree, `/.snap` (the snapshot list), or inside a snapshot.
import { MAX_NAME_BYTES } from '../tree/index.js'
import { FsError } from './errno.js'

export const SNAP_DIR = '.snap'

export type Place =
  | { kind: 'live'; path: string }
  | { kind: 'snaproot' }
  | { kind: 'snap'; name: string; rest: string }

export function place(p: string): Place {
  if (p === '/' + SNAP_DIR) return { kind: 'snaproot' }
  if (p.startsWith('/' + SNAP_DIR + '/')) {
    const tail = p.slice(SNAP_DIR.length + 2)
    const slash = tail.indexOf('/')
    if (slash < 0) return { kind: 'snap', name: tail, rest: '/' }
    return { kind: 'snap', name: tail.slice(0, slash), rest: tail.slice(slash) }
  }
  return { kind: 'live', path: p }
}

/** Rejects names the kernel would pass through but no file system here can hold. */
export function checkNames(p: string): void {
  for (const name of p.split('/')) {
    if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw new FsError('ENAMETOOLONG', p)
  }
}

/** libfuse renames a file unlinked while open to `.fuse_hidden…` instead of unlinking it. */
export function isHiddenName(p: string): boolean {
  return p.slice(p.lastIndexOf('/') + 1).startsWith('.fuse_hidden')
}
