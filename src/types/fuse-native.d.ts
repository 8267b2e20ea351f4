// Typed surface of fuse-native 2.2.6 that bazil uses (the package ships no types).
// Callbacks take a negative errno (0 = success); read/write reply with a byte count instead.
declare module 'fuse-native' {
  export interface FuseStat {
    mode: number
    uid?: number
    gid?: number
    size?: number
    dev?: number
    nlink?: number
    ino?: number
    rdev?: number
    blksize?: number
    blocks?: number
    /** Dates or milliseconds since the epoch. */
    atime?: Date | number
    mtime?: Date | number
    ctime?: Date | number
  }

  export interface FuseStatfs {
    bsize?: number; frsize?: number; blocks?: number; bfree?: number; bavail?: number
    files?: number; ffree?: number; favail?: number; fsid?: number; flag?: number; namemax?: number
  }

  type Done = (err: number) => void
  type DoneWith<T> = (err: number, value?: T) => void

  export interface FuseOps {
    init?(cb: Done): void
    access?(path: string, mode: number, cb: Done): void
    statfs?(path: string, cb: DoneWith<FuseStatfs>): void
    getattr?(path: string, cb: DoneWith<FuseStat>): void
    fgetattr?(path: string, fd: number, cb: DoneWith<FuseStat>): void
    flush?(path: string, fd: number, cb: Done): void
    fsync?(path: string, datasync: boolean, fd: number, cb: Done): void
    fsyncdir?(path: string, datasync: boolean, fd: number, cb: Done): void
    readdir?(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void
    truncate?(path: string, size: number, cb: Done): void
    ftruncate?(path: string, fd: number, size: number, cb: Done): void
    /** Only with scripts/build-fuse-native.mjs's `fallocate` fix. */
    fallocate?(path: string, fd: number, mode: number, offset: number, length: number, cb: Done): void
    readlink?(path: string, cb: DoneWith<string>): void
    chown?(path: string, uid: number, gid: number, cb: Done): void
    chmod?(path: string, mode: number, cb: Done): void
    mknod?(path: string, mode: number, dev: number, cb: Done): void
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void
    getxattr?(path: string, name: string, position: number, cb: DoneWith<Buffer>): void
    listxattr?(path: string, cb: DoneWith<string[]>): void
    removexattr?(path: string, name: string, cb: Done): void
    open?(path: string, flags: number, cb: DoneWith<number>): void
    opendir?(path: string, flags: number, cb: DoneWith<number>): void
    /** Replies with the number of bytes read into `buf` (or a negative errno). */
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
    /** Replies with the number of bytes written from `buf` (or a negative errno). */
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
    release?(path: string, fd: number, cb: Done): void
    releasedir?(path: string, fd: number, cb: Done): void
    create?(path: string, mode: number, cb: DoneWith<number>): void
    utimens?(path: string, atime: number, mtime: number, cb: Done): void
    unlink?(path: string, cb: Done): void
    rename?(src: string, dest: string, cb: Done): void
    link?(src: string, dest: string, cb: Done): void
    symlink?(target: string, path: string, cb: Done): void
    mkdir?(path: string, mode: number, cb: Done): void
    rmdir?(path: string, cb: Done): void
  }

  /** Per-op timeouts in ms; `false` turns one off; `default` applies to the rest. */
  export type FuseTimeouts = false | number | ({ default?: number } & { [op: string]: number | false | undefined })

  export interface FuseOptions {
    /** Unmount a dead mount (ENOTCONN) at the path first. */
    force?: boolean
    mkdir?: boolean
    debug?: boolean
    allowOther?: boolean
    allowRoot?: boolean
    autoUnmount?: boolean
    defaultPermissions?: boolean
    fsname?: string
    subtype?: string
    kernelCache?: boolean
    autoCache?: boolean
    /** Seconds; a value of 0 is dropped by fuse-native: pass the string '0'. */
    entryTimeout?: number | string
    attrTimeout?: number | string
    maxRead?: number
    uid?: number | string
    gid?: number | string
    umask?: string
    timeout?: FuseTimeouts
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions)
    readonly mnt: string
    readonly opts: FuseOptions
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    /** The `-o` argument handed to libfuse; subclasses may append options. */
    protected _fuseOptions(): string
    /** [uid, gid, pid] of the op being handled; only with scripts/build-fuse-native.mjs's `caller` fix. */
    caller?(): number[] | null
    static unmount(mnt: string, cb: (err: Error | null) => void): void
    static readonly EPERM: number
    static readonly ENOENT: number
    static readonly EIO: number
    static readonly EBADF: number
    static readonly EACCES: number
    static readonly EEXIST: number
    static readonly EXDEV: number
    static readonly ENOTDIR: number
    static readonly EISDIR: number
    static readonly EINVAL: number
    static readonly EFBIG: number
    static readonly ENOSPC: number
    static readonly EROFS: number
    static readonly ENAMETOOLONG: number
    static readonly ENOSYS: number
    static readonly ENOTEMPTY: number
    static readonly ENODATA: number
    static readonly EOPNOTSUPP: number
    static readonly ETIMEDOUT: number
    static readonly ENOTCONN: number
    static readonly EBUSY: number
    static readonly [code: string]: unknown
  }
}
