// Extended attributes through the mount (spec/fuse.md "Extended attributes"): the handlers
// mount.ts dispatches to, and the replies of getxattr/listxattr that fuse-native gets wrong.
//
// fuse-native 2.2.6 hands a getxattr handler no buffer size: it copies whatever value the handler
// returns into libfuse's buffer (cut short when too small, yet answering the whole length, which
// libfuse then sends past its buffer); and it answers a listxattr size query with 128 bytes more
// than the list (macOS room). BazilFuse replaces both replies with these: the exact size for a
// size query, ERANGE for a buffer too small, as Linux file systems answer.
import './native-lib.js' // before fuse-native: makes its libfuse loadable
import Fuse from 'fuse-native'
import type { Volume } from '../volume/volume.js'
import { removeXattr, setXattr, xattrsOf } from '../volume/xattr-ops.js'
import { checkXattrName } from '../tree/xattrs.js'
import { FsError } from './errno.js'
import { place } from './snapdir.js'

type Signal = (res: number, buf: ArrayBuffer) => void
type GetCb = (err: number, value?: Buffer) => void
type ListCb = (err: number, names?: string[]) => void
interface XattrOps {
  getxattr?(path: string, name: string, position: number, cb: GetCb): void
  listxattr?(path: string, cb: ListCb): void
}

/** fuse-native's `_op_getxattr` with Linux's replies (see above). */
export function replyGetxattr(ops: XattrOps, signal: Signal, path: string, name: string, buf: Buffer, position: number): void {
  if (!ops.getxattr) return signal(Fuse.ENOSYS, buf.buffer as ArrayBuffer)
  ops.getxattr(path, name, position, (err, value) => {
    if (err) return signal(err, buf.buffer as ArrayBuffer)
    if (!value) return signal(Fuse.ENODATA, buf.buffer as ArrayBuffer)
    if (buf.length === 0) return signal(value.length, buf.buffer as ArrayBuffer)
    if (value.length > buf.length) return signal(Fuse.ERANGE as number, buf.buffer as ArrayBuffer)
    value.copy(buf)
    signal(value.length, buf.buffer as ArrayBuffer)
  })
}

/** fuse-native's `_op_listxattr` with Linux's replies: NUL-terminated names, the exact size. */
export function replyListxattr(ops: XattrOps, signal: Signal, path: string, buf: Buffer): void {
  if (!ops.listxattr) return signal(Fuse.ENOSYS, buf.buffer as ArrayBuffer)
  ops.listxattr(path, (err, names) => {
    if (err) return signal(err, buf.buffer as ArrayBuffer)
    const list = Buffer.from((names ?? []).map((n) => n + '\0').join(''))
    if (buf.length === 0) return signal(list.length, buf.buffer as ArrayBuffer)
    if (list.length > buf.length) return signal(Fuse.ERANGE as number, buf.buffer as ArrayBuffer)
    list.copy(buf)
    signal(list.length, buf.buffer as ArrayBuffer)
  })
}

/**
 * The four xattr handlers. Snapshots are read-only (EROFS); the snapshot directory and files
 * unlinked while open (libfuse's hidden names) have none. `changed`: schedules the op log write.
 */
export class XattrHandlers {
  constructor(
    private readonly volume: Volume,
    private readonly isHidden: (p: string) => boolean,
    private readonly changed: () => void
  ) {}

  private read(p: string): ReadonlyMap<string, Buffer> {
    if (this.isHidden(p)) return new Map()
    const at = place(p)
    if (at.kind === 'snaproot') return new Map()
    return at.kind === 'snap' ? xattrsOf(this.volume, at.rest, at.name) : xattrsOf(this.volume, p)
  }

  private writable(p: string): void {
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EPERM', `${p}: the snapshot directory has no attributes`)
    if (at.kind === 'snap') throw new FsError('EROFS', `${p}: snapshots are read-only`)
    if (this.isHidden(p)) throw new FsError('ENOENT', `${p} was unlinked`)
  }

  async getxattr(p: string, name: string, _position: number): Promise<Buffer | undefined> {
    // A namespace not stored (system.posix_acl_*: no ACLs) is EOPNOTSUPP, as on ext4 without acl.
    checkXattrName(name, p)
    return this.read(p).get(name)
  }

  async listxattr(p: string): Promise<string[]> {
    return [...this.read(p).keys()]
  }

  async setxattr(p: string, name: string, value: Buffer, _position: number, flags: number): Promise<void> {
    this.writable(p)
    setXattr(this.volume, p, name, value, flags)
    this.changed()
  }

  async removexattr(p: string, name: string): Promise<void> {
    this.writable(p)
    removeXattr(this.volume, p, name)
    this.changed()
  }
}
