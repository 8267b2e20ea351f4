// A volume mounted with FUSE (fuse-native, libfuse 2.9).
//
// No tree state is cached here: every op reads the live tree (or a snapshot view), so
// changes made by other paths (CLI, peers) show up after the kernel's ~1 s attr/entry
// timeouts. What the mount holds is per-open-file: handles, and a SpoolFile per file open
// for writing (see spool.ts), committed to the CAS and the op log on fsync and on the last
// close. Metadata ops go to the tree at once and reach the op log within FLUSH_DELAY_MS.
import './native-lib.js' // before fuse-native: makes its libfuse loadable
import { execFile } from 'node:child_process'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import Fuse, { type FuseOps, type FuseStat, type FuseStatfs } from 'fuse-native'
import { toFileRef, type Volume } from '../volume/volume.js'
import type { FileRef } from '../cas/index.js'
import { ROOT_ID, TreeError, type ContentRef, type ReadTree, type Stat } from '../tree/index.js'
import { FsError, Limiter, ReadTimeoutError, wrap, type LogFn, type WrapContext } from './errno.js'
import { checkNames, isHiddenName, place, SNAP_DIR } from './snapdir.js'
import { decodeSpoolMeta, MemBudget, SpoolFile } from './spool.js'
import { withTimeout } from '../timeout.js'
import { FileReader } from './reader.js'
import { TreeAhead } from './tree-ahead.js'
import { utimensTimes } from './times.js'
import { fallocateSize } from './fallocate.js'
import { inodeOf, link, SNAP_DIR_INO } from './links.js'
import { AccessTimes } from './access-times.js'
import { replyGetxattr, replyListxattr, XattrHandlers } from './xattrs.js'
import { callerOf, Owners, type Caller } from './owners.js'
import { mknodKind, S_IFDIR, TYPE_BITS } from './special.js'

const run = promisify(execFile)

export interface MountOptions {
  spoolDir: string
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void
  /** Reads of content not available within this time fail with EIO (default 30 s). */
  readTimeoutMs?: number
  /**
   * Lets every user of the machine in (FUSE allow_other; a mount by a user other than root
   * needs `user_allow_other` in /etc/fuse.conf). The kernel then checks each access against
   * the nodes' modes and owners (default_permissions): spec/fuse.md "Owners and permissions".
   */
  allowOther?: boolean
  /** Reads record their time (relatime; access-times.ts). Off: reads never write (noatime). */
  atime?: boolean
}

/** Handlers running at once; the rest wait in FIFO order. */
const MAX_CONCURRENT_OPS = 64
/** Memory all small new files being written may hold together. */
const MEM_BUDGET_BYTES = 32 * 1024 * 1024
/** Commits running after their file's last close, at most. */
const MAX_BACKGROUND_COMMITS = 32
/**
 * Ops are written to the op log at most this long after the first unlogged one: a burst
 * (tar x, cp -r, rm -r) becomes ~10 entries a second, not one per op. Every entry is a
 * hypercore block each peer must fetch and verify (~0.3 ms a block): 10k single-op entries
 * take seconds to replicate, 100 grouped ones milliseconds. fsync still waits for its entry.
 */
const FLUSH_DELAY_MS = 100
/** After a failed op-log write (a full disk), the queued ops are written again this much later. */
const FLUSH_RETRY_MS = 2000
/** Largest write the kernel hands over at once (libfuse 2 caps requests at 128 KiB). */
const MAX_WRITE = 128 * 1024
/** Kernel attr/entry cache lifetime, seconds: the staleness window for remote changes. */
const CACHE_SECONDS = 1
/**
 * libfuse keeps a path's inode number this long after the kernel forgot it: `tar x` compares a
 * directory's inode number at its end with the one at its creation ("Directory renamed before
 * its status could be extracted" when the kernel forgot it in between, under memory pressure).
 */
const REMEMBER_SECONDS = 600

const O_ACCMODE = 3
const O_RDONLY = 0
const O_TRUNC = 0o1000

interface Handle {
  /** Node id (live files), or null for snapshot files. */
  nodeId: string | null
  /** The content at open (snapshot files), refreshed from the tree for live files. */
  ref: ContentRef | null
  file: SpoolFile | null
  path: string
  reader?: FileReader
  /** Its first read was seen (--atime: one access time per open at most). */
  accessed?: true
}

/** A file unlinked (or replaced) while open: libfuse keeps it under a hidden name. */
interface Hidden {
  nodeId: string
  stat: Stat
}

/**
 * fuse-native without its options whitelist: big writes and our cache timeouts. Exported for
 * the benchmark, whose trivial in-memory file system must run with the same kernel options.
 */
export class BazilFuse extends Fuse {
  protected override _fuseOptions(): string {
    const base = super._fuseOptions()
    const extra = [
      'big_writes',
      `max_write=${MAX_WRITE}`,
      `entry_timeout=${CACHE_SECONDS}`,
      `attr_timeout=${CACHE_SECONDS}`,
      'negative_timeout=0',
      `remember=${REMEMBER_SECONDS}`,
      'default_permissions',
      // Inode numbers from node ids (links.ts inodeOf): every name of a hard-linked file shows one.
      'use_ino',
      'subtype=bazil',
    ].join(',')
    return base ? `${base},${extra}` : `-o${extra}`
  }

  // fuse-native's replies to these get sizes wrong on Linux (xattrs.ts).
  protected _op_getxattr(signal: (res: number, buf: ArrayBuffer) => void, p: string, name: string, buf: Buffer, position: number): void {
    replyGetxattr((this as unknown as { ops: FuseOps }).ops, signal, p, name, buf, position)
  }

  protected _op_listxattr(signal: (res: number, buf: ArrayBuffer) => void, p: string, buf: Buffer): void {
    replyListxattr((this as unknown as { ops: FuseOps }).ops, signal, p, buf)
  }
}

export class VolumeMount {
  readonly mountpoint: string
  private readonly volume: Volume
  private readonly spoolDir: string
  private readonly log: LogFn
  private readonly readTimeoutMs: number
  private readonly ctx: WrapContext
  private fuse: BazilFuse | null = null
  private readonly handles = new Map<number, Handle>()
  private nextFd = 1
  /** Files open for writing (or committing), by node id. */
  private readonly spooled = new Map<string, SpoolFile>()
  private readonly hidden = new Map<string, Hidden>()
  private readonly flusher: Flusher
  private readonly background = new Slots(MAX_BACKGROUND_COMMITS)
  private readonly memBudget = new MemBudget(MEM_BUDGET_BYTES)
  /** A directory's files read one after another: the next ones requested from peers' stores ahead of the opens. */
  private readonly treeAhead = new TreeAhead(
    (dir) => this.volume.tree.readdir(dir).map((st) => ({ name: st.name, ref: st.kind === 'file' && st.content && st.content.size > 0 ? toFileRef(st.content) : null })),
    (refs) => void this.volume.cas.requestAhead(refs),
    () => this.volume.cas.requestsAhead()
  )
  private emptyRef: FileRef | null = null
  private readonly xattrs: XattrHandlers
  private readonly owners = new Owners(process.getuid?.() ?? 0, process.getgid?.() ?? 0)
  private readonly allowOther: boolean
  private readonly accessTimes: AccessTimes
  /** The fuse-native instance from its construction on: ops may arrive before mount() returns. */
  private native: BazilFuse | null = null

  constructor(volume: Volume, mountpoint: string, opts: MountOptions) {
    this.volume = volume
    this.mountpoint = path.resolve(mountpoint)
    this.spoolDir = path.resolve(opts.spoolDir)
    this.log = opts.log ?? (() => {})
    this.readTimeoutMs = opts.readTimeoutMs ?? 30_000
    this.allowOther = opts.allowOther ?? false
    this.ctx = { log: this.log, limiter: new Limiter(MAX_CONCURRENT_OPS) }
    this.flusher = new Flusher(volume, this.log)
    this.xattrs = new XattrHandlers(volume, (p) => this.hidden.has(p), () => this.flusher.schedule())
    this.accessTimes = new AccessTimes(opts.atime ?? false, volume, () => this.flusher.schedule(), this.log)
  }

  async mount(): Promise<void> {
    if (this.fuse) throw new Error(`${this.mountpoint} is already mounted by this VolumeMount`)
    await cleanupStaleMount(this.mountpoint)
    const st = await fsp.stat(this.mountpoint).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot mount on ${this.mountpoint}: ${err.code === 'ENOENT' ? 'no such directory' : err.message}`)
    })
    if (!st.isDirectory()) throw new Error(`cannot mount on ${this.mountpoint}: not a directory`)
    await fsp.mkdir(this.spoolDir, { recursive: true, mode: 0o700 })
    this.emptyRef ??= await this.volume.cas.writeBuffer(Buffer.alloc(0))
    const fuse = new BazilFuse(this.mountpoint, this.ops(), {
      fsname: `bazil:${this.volume.name}`,
      allowOther: this.allowOther,
      // Ops that move data or commit may take long; only metadata ops get a timeout.
      timeout: {
        default: 30_000,
        read: false, write: false, fsync: false, release: false, flush: false,
        truncate: false, ftruncate: false, open: false, create: false, mkdir: false,
      },
    })
    this.native = fuse
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())))
    this.fuse = fuse
    this.log('info', `mounted volume ${this.volume.name} on ${this.mountpoint}`)
  }

  async unmount(): Promise<void> {
    const fuse = this.fuse
    if (!fuse) return
    // A commit that fails (a full disk) must not keep the mount: its data stays in the spool
    // for recoverSpool at the next start (below).
    await this.flushAll().catch((err: Error) => this.log('error', `unmounting with uncommitted data: ${err.message}`))
    await new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve())))
    this.fuse = null
    // Processes may still hold files open (the unmount is lazy): what they wrote until now is
    // committed here; later writes fail (EBADF).
    await this.flushAll().catch(() => {})
    for (const sf of this.spooled.values()) {
      if (!sf.dirty) {
        await sf.discard()
        continue
      }
      // Marked as promised so that recoverSpool commits it at the next start.
      const where = this.describe(sf)
      await sf.sync({ volume: this.volume.id.toString('hex'), path: where }).catch(() => {})
      this.log('error', `unmounted with uncommitted data of ${where} kept in ${sf.dataPath} for recoverSpool`)
    }
    this.spooled.clear()
    this.handles.clear()
    this.hidden.clear()
    // Ops the log refused stay queued in the volume (written by its next flush or close).
    await this.flusher.flush().catch(() => {})
    this.log('info', `unmounted ${this.mountpoint}`)
  }

  /** Commits every file with uncommitted changes (open or not) and writes the op log. */
  async flushAll(): Promise<void> {
    await Promise.all([...this.spooled.values()].map((sf) => this.commit(sf).catch((err: Error) => {
      this.log('error', `commit of ${this.describe(sf)} failed: ${err.message}`)
      throw err
    })))
    await this.flusher.flush()
  }

  /** Waits until no commit is running and the op log holds everything (for tests and benchmarks). */
  async idle(): Promise<void> {
    for (;;) {
      const chains = [...this.spooled.values()].map((sf) => sf.chain)
      await Promise.all(chains)
      await this.flusher.flush()
      if ([...this.spooled.values()].every((sf) => chains.includes(sf.chain))) return
    }
  }

  // ---- op table --------------------------------------------------------------------------

  private ops(): FuseOps {
    const w = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>, reply: 'value' | 'count' = 'value') =>
      wrap(this.ctx, name, fn.bind(this) as (...a: A) => Promise<R>, reply)
    // Ops that create a node take its caller first, read as the op arrives (owners.ts).
    const c = <A extends unknown[], R>(name: string, fn: (caller: Caller | null, ...a: A) => Promise<R>) => {
      const f = wrap(this.ctx, name, fn.bind(this) as (...a: unknown[]) => Promise<R>)
      return (...a: unknown[]) => f(callerOf(this.native), ...a)
    }
    return {
      getattr: w('getattr', this.getattr),
      readdir: w('readdir', this.readdir),
      readlink: w('readlink', this.readlink),
      open: w('open', this.open),
      create: c('create', this.create),
      read: w('read', this.read, 'count'),
      write: w('write', this.write, 'count'),
      flush: w('flush', async () => {}),
      fsync: w('fsync', this.fsync),
      release: w('release', this.release),
      truncate: w('truncate', this.truncate),
      ftruncate: w('ftruncate', this.ftruncate),
      // Only with our fuse-native build (scripts/build-fuse-native.mjs); else libfuse answers EOPNOTSUPP.
      fallocate: w('fallocate', this.fallocate),
      unlink: w('unlink', this.unlink),
      rename: w('rename', this.rename),
      mkdir: c('mkdir', this.mkdir),
      rmdir: w('rmdir', this.rmdir),
      symlink: c('symlink', this.symlink),
      chmod: w('chmod', this.chmod),
      utimens: w('utimens', this.utimens),
      chown: w('chown', this.chown),
      statfs: w('statfs', this.statfs),
      link: w('link', async (from: string, to: string) => {
        link(this.volume, from, to)
        this.flusher.schedule()
      }),
      mknod: c('mknod', this.mknod),
      // Extended attributes (xattrs.ts).
      getxattr: wrap(this.ctx, 'getxattr', this.xattrs.getxattr.bind(this.xattrs)),
      listxattr: wrap(this.ctx, 'listxattr', this.xattrs.listxattr.bind(this.xattrs)),
      setxattr: wrap(this.ctx, 'setxattr', this.xattrs.setxattr.bind(this.xattrs)),
      removexattr: wrap(this.ctx, 'removexattr', this.xattrs.removexattr.bind(this.xattrs)),
    }
  }

  // ---- attributes ------------------------------------------------------------------------

  private toFuseStat(st: Stat, sf?: SpoolFile | null, snapshot?: string): FuseStat {
    const size = sf ? sf.size : st.size
    const mtime = sf ? sf.mtime : st.mtime
    const mode = sf?.mode ?? st.mode
    const type = TYPE_BITS[st.kind]
    // ctime is derived from the record (spec/tree.md "Times"): stable between stats, as git
    // needs. Uncommitted writes are changes too. A root whose times were never set shows the
    // time this node created or joined the volume.
    const never = st.id === ROOT_ID && st.mtime === 0 ? this.volume.record.created : 0
    const ctime = Math.max(st.ctime, sf?.dirty ? sf.mtime : 0, never)
    return {
      mode: type | (mode & 0o7777), ...this.owners.shown(st), size, nlink: st.nlink ?? 1, ino: inodeOf(st.id, snapshot), rdev: st.rdev ?? 0,
      blksize: MAX_WRITE, blocks: Math.ceil(size / 512), atime: st.atime || never, mtime: mtime || never, ctime,
    }
  }

  private snapView(name: string): ReadTree {
    return this.volume.view(name)
  }

  private async getattr(p: string): Promise<FuseStat> {
    checkNames(p)
    const h = this.hidden.get(p)
    if (h) return this.toFuseStat(h.stat, this.spooled.get(h.nodeId))
    const at = place(p)
    if (at.kind === 'snaproot') {
      const snaps = this.volume.tree.snapshots()
      const time = snaps.length ? snaps[snaps.length - 1]!.time : 0
      return { mode: S_IFDIR | 0o555, uid: this.owners.uid, gid: this.owners.gid, size: 0, nlink: 1, ino: SNAP_DIR_INO, atime: time, mtime: time, ctime: time }
    }
    if (at.kind === 'snap') {
      const st = this.snapView(at.name).lookup(at.rest)
      if (!st) throw new FsError('ENOENT', p)
      return this.toFuseStat(st, null, at.name)
    }
    const st = this.volume.tree.lookup(p)
    if (!st) throw new FsError('ENOENT', p)
    return this.toFuseStat(st, this.spooled.get(st.id))
  }

  private async readdir(p: string): Promise<string[]> {
    const at = place(p)
    if (at.kind === 'snaproot') return ['.', '..', ...this.volume.tree.snapshots().map((s) => s.name)]
    const tree = at.kind === 'snap' ? this.snapView(at.name) : this.volume.tree
    const names = tree.readdir(at.kind === 'snap' ? at.rest : p).map((s) => s.name)
    if (at.kind === 'live' && p === '/') names.push(SNAP_DIR)
    if (at.kind === 'live') this.accessTimes.read(p)
    return ['.', '..', ...names]
  }

  private async readlink(p: string): Promise<string> {
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EINVAL', p)
    const st = at.kind === 'snap' ? this.snapView(at.name).stat(at.rest) : this.volume.tree.stat(p)
    if (st.kind !== 'symlink' || st.target === undefined) throw new FsError('EINVAL', `${p} is not a symlink`)
    return st.target
  }

  private async statfs(): Promise<FuseStatfs> {
    // Capacity is that of the disk holding the data; files are whatever the tree can hold.
    const s = await fsp.statfs(this.spoolDir)
    return {
      bsize: MAX_WRITE, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: 1 << 30, ffree: 1 << 30, favail: 1 << 30, namemax: 255,
    }
  }

  // ---- files ------------------------------------------------------------------------------

  private newHandle(h: Handle): number {
    const fd = this.nextFd++
    this.handles.set(fd, h)
    return fd
  }

  private handle(fd: number): Handle {
    const h = this.handles.get(fd)
    if (!h) throw new FsError('EBADF', `no open file ${fd}`)
    return h
  }

  private timed = <T>(p: Promise<T>, what: string): Promise<T> =>
    withTimeout(p, this.readTimeoutMs, () => {
      throw new ReadTimeoutError(what, this.readTimeoutMs)
    })

  /** The SpoolFile of a live file, created on first use; the caller owns one reference. */
  private acquire(st: Stat): SpoolFile {
    if (st.kind !== 'file') throw new FsError(st.kind === 'dir' ? 'EISDIR' : 'EINVAL', st.path)
    if (st.id.includes(':')) throw new FsError('EPERM', `${st.path} is a conflict copy (read-only; unlink settles the conflict)`)
    let sf = this.spooled.get(st.id)
    if (!sf) {
      sf = new SpoolFile({
        spoolDir: this.spoolDir, volumeId: this.volume.id.toString('hex'), nodeId: st.id,
        base: st.content ? toFileRef(st.content) : null, mtime: st.mtime, budget: this.memBudget, space: this.volume.space,
        readBase: (ref, offset, length) => this.timed(this.volume.cas.read(ref, offset, length, st.path), st.path),
      })
      this.spooled.set(st.id, sf)
    }
    sf.refs++
    return sf
  }

  /**
   * Drops one reference; the last one commits and retires the SpoolFile. The commit runs in
   * the background so that no close() ever waits for it (close never promised
   * durability; fsync does): only a slot among MAX_BACKGROUND_COMMITS is awaited, which keeps
   * spool files and their descriptors bounded under a `tar x` of a million files.
   */
  private async releaseFile(sf: SpoolFile): Promise<void> {
    sf.refs--
    if (sf.refs > 0) return
    if (!sf.dirty) {
      await sf.chain
      this.retire(sf)
      return
    }
    await this.background.acquire()
    this.commit(sf)
      // Data an fsync promised is in the spool until a commit of it is durable.
      .then(async () => { if (sf.promised) await this.flusher.flush().then(() => this.volume.sync()) })
      .catch((err: Error) => this.log('error', `commit of ${this.describe(sf)} failed: ${err.message}`))
      .finally(() => {
        this.background.release()
        this.retire(sf)
      })
  }

  private retire(sf: SpoolFile): void {
    if (sf.refs > 0 || sf.dirty || this.spooled.get(sf.nodeId) !== sf) return
    this.spooled.delete(sf.nodeId)
    sf.discard().catch((err: Error) => this.log('warn', `could not remove spool file ${sf.dataPath}: ${err.message}`))
  }

  private liveStat(p: string): Stat {
    const h = this.hidden.get(p)
    if (h) return h.stat
    return this.volume.tree.stat(p)
  }

  private async open(p: string, flags: number): Promise<number> {
    const writing = (flags & O_ACCMODE) !== O_RDONLY
    const at = this.hidden.has(p) ? { kind: 'live' as const, path: p } : place(p)
    if (at.kind === 'snaproot') {
      if (writing) throw new FsError('EISDIR', p)
      return this.newHandle({ nodeId: null, ref: null, file: null, path: p })
    }
    if (at.kind === 'snap') {
      if (writing || flags & O_TRUNC) throw new FsError('EROFS', `${p}: snapshots are read-only`)
      const st = this.snapView(at.name).stat(at.rest)
      const h: Handle = { nodeId: null, ref: st.content ?? null, file: null, path: p }
      if (h.ref && h.ref.size > 0) h.reader = this.newReader(h.ref, p)
      return this.newHandle(h)
    }
    const st = this.liveStat(p)
    if (!writing) {
      const h: Handle = { nodeId: st.id, ref: st.content ?? null, file: null, path: p }
      // Read-ahead starts at open: the manifest and the first chunks load before the first read.
      if (h.ref && h.ref.size > 0 && !this.spooled.get(st.id)?.hasData) h.reader = this.newReader(h.ref, p)
      if (at.kind === 'live') this.treeAhead.opened(p)
      return this.newHandle(h)
    }
    const sf = this.acquire(st)
    try {
      if (flags & O_TRUNC) await sf.truncate(0)
    } catch (err) {
      await this.releaseFile(sf)
      throw err
    }
    return this.newHandle({ nodeId: st.id, ref: st.content ?? null, file: sf, path: p })
  }

  private async create(caller: Caller | null, p: string, mode: number): Promise<number> {
    checkNames(p)
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EEXIST', p)
    if (at.kind === 'snap') throw new FsError('EROFS', `${p}: snapshots are read-only`)
    if (this.volume.tree.lookup(p)) throw new FsError('EEXIST', p)
    const st = this.volume.writeRef(p, this.emptyRef!, this.newAttrs(caller, p, mode, false))
    this.flusher.schedule()
    const sf = this.acquire(st)
    return this.newHandle({ nodeId: st.id, ref: st.content ?? null, file: sf, path: p })
  }

  private async read(p: string, fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handle(fd)
    const sf = h.file ?? (h.nodeId ? this.spooled.get(h.nodeId) : undefined)
    if (h.nodeId && !h.accessed && !this.hidden.has(h.path)) {
      h.accessed = true
      this.accessTimes.read(h.path, sf?.dirty ? sf.mtime : undefined)
    }
    if (sf && sf.hasData) {
      try {
        return await sf.read(buf, len, pos)
      } catch (err) {
        // A reader borrowing another handle's spool can lose it to a commit that just ended.
        if (h.file || this.spooled.get(sf.nodeId) === sf) throw err
      }
    }
    if (h.nodeId) {
      // Another writer may have committed since open: read what the tree holds now.
      const now = this.volume.tree.statId(h.nodeId)
      if (now?.content) h.ref = now.content
    }
    const ref = h.ref
    if (!ref || pos >= ref.size) return 0
    if (!h.reader?.reads(ref.hash)) {
      h.reader?.close()
      h.reader = this.newReader(ref, h.path)
    }
    return h.reader.read(buf, len, pos)
  }

  private newReader(ref: ContentRef, p: string): FileReader {
    return new FileReader(this.volume.cas, toFileRef(ref), p, this.timed)
  }

  private async write(_p: string, fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handle(fd)
    if (!h.file) throw new FsError('EBADF', `file ${fd} is not open for writing`)
    return h.file.write(buf, len, pos)
  }

  private async fsync(_p: string, _datasync: boolean, fd: number): Promise<void> {
    const h = this.handle(fd)
    // fsync is about the file, not the descriptor: `echo x > f; sync f` fsyncs through a
    // read-only descriptor while the writer's close is still committing in the background.
    const sf = h.file ?? (h.nodeId ? this.spooled.get(h.nodeId) : undefined)
    if (sf) await this.commit(sf, true)
    await this.flusher.flush()
    // The data and its log entry are in the corestore: make them survive an OS crash.
    await this.volume.sync()
  }

  private async release(_p: string, fd: number): Promise<void> {
    const h = this.handles.get(fd)
    if (!h) return
    this.handles.delete(fd)
    h.reader?.close()
    if (h.file) await this.releaseFile(h.file)
  }

  private async truncate(p: string, size: number): Promise<void> {
    const at = this.hidden.has(p) ? { kind: 'live' as const } : place(p)
    if (at.kind !== 'live') throw new FsError('EROFS', `${p}: snapshots are read-only`)
    const sf = this.acquire(this.liveStat(p))
    try {
      await sf.truncate(size)
    } finally {
      await this.releaseFile(sf)
    }
  }

  private async ftruncate(_p: string, fd: number, size: number): Promise<void> {
    const h = this.handle(fd)
    if (!h.file) throw new FsError(h.nodeId ? 'EBADF' : 'EROFS', `file ${fd} is not open for writing`)
    await h.file.truncate(size)
  }

  private async fallocate(p: string, fd: number, mode: number, offset: number, length: number): Promise<void> {
    const h = this.handle(fd)
    if (!h.file) throw new FsError(h.nodeId ? 'EBADF' : 'EROFS', `file ${fd} is not open for writing`)
    const end = fallocateSize(p, mode, offset, length, h.file.size)
    if (end === null) return
    const s = await fsp.statfs(this.spoolDir)
    if ((end - h.file.size) > s.bavail * s.bsize) throw new FsError('ENOSPC', `${p}: no room for ${end - h.file.size} more bytes`)
    await h.file.truncate(end)
  }

  /**
   * Stores the spooled file in the CAS and records it at the node's current path (renames
   * while open are followed; a file unlinked meanwhile is dropped). With `sync`, first makes
   * the spool durable so recoverSpool can finish the job after a crash.
   */
  private commit(sf: SpoolFile, sync = false): Promise<void> {
    const done = sf.chain.then(() => this.commitNow(sf, sync))
    sf.chain = done.catch(() => {})
    return done
  }

  private async commitNow(sf: SpoolFile, sync: boolean): Promise<void> {
    if (!sf.dirty) return
    const gen = sf.gen
    if (sync) {
      const now = this.volume.tree.statId(sf.nodeId)
      await sf.sync({ volume: this.volume.id.toString('hex'), path: now?.path ?? '' })
    }
    const done = await this.volume.commitFile(sf.nodeId, await sf.content(), () => ({ mtime: sf.mtime, mode: sf.mode }), { size: sf.size })
    sf.committedGen = gen
    if (done === null) {
      this.log('debug', `dropped spooled data of a file removed while open (node ${sf.nodeId})`)
      return
    }
    sf.mode = undefined
    // fsync promises durability now; a close only needs the entry soon (batched with others).
    if (sync) await this.flusher.flush()
    else this.flusher.schedule()
    this.log('debug', `committed ${done.stat.path} (${done.ref.size} bytes)`)
  }

  private describe(sf: SpoolFile): string {
    return this.volume.tree.statId(sf.nodeId)?.path ?? `node ${sf.nodeId}`
  }

  // ---- namespace --------------------------------------------------------------------------

  private liveOnly(p: string, what: string): string {
    checkNames(p)
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EPERM', `${p}: ${what} of the snapshot directory`)
    if (at.kind === 'snap') throw new FsError('EROFS', `${p}: snapshots are read-only`)
    return p
  }

  private async unlink(p: string): Promise<void> {
    if (this.hidden.delete(p)) return
    this.volume.unlink(this.liveOnly(p, 'unlink'))
    this.flusher.schedule()
  }

  private async rename(from: string, to: string): Promise<void> {
    this.liveOnly(from, 'rename')
    this.liveOnly(to, 'rename')
    if (this.hidden.has(from)) throw new FsError('EPERM', `${from} was unlinked while open`)
    if (isHiddenName(to)) {
      // libfuse hides a file unlinked or replaced while open: for the volume it is gone.
      const st = this.volume.tree.stat(from)
      if (st.kind !== 'file') throw new FsError('EPERM', `${from}: only files can be hidden`)
      this.volume.unlink(from)
      this.hidden.set(to, { nodeId: st.id, stat: st })
    } else {
      this.volume.rename(from, to)
    }
    this.flusher.schedule()
  }

  /** The attributes of a node `caller` creates at `p` (owners.ts). */
  private newAttrs(caller: Caller | null, p: string, mode: number, isDir: boolean): { mode: number; uid: number; gid: number } {
    return this.owners.ofNew(caller, this.volume.tree.lookup(path.posix.dirname(p)), mode & 0o7777, isDir)
  }

  private async mkdir(caller: Caller | null, p: string, mode: number): Promise<void> {
    checkNames(p)
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EEXIST', p)
    if (at.kind === 'snap') {
      if (at.rest !== '/') throw new FsError('EROFS', `${p}: snapshots are read-only`)
      // Files closed a moment ago may still be committing (and open ones may be dirty):
      // a snapshot taken after a close must hold what was written.
      await this.flushAll()
      this.volume.snapshot(at.name)
      await this.flusher.flush()
      this.log('info', `snapshot ${at.name} of volume ${this.volume.name} taken`)
      return
    }
    this.volume.mkdir(p, this.newAttrs(caller, p, mode, true))
    this.flusher.schedule()
  }

  private async rmdir(p: string): Promise<void> {
    this.volume.rmdir(this.liveOnly(p, 'rmdir'))
    this.flusher.schedule()
  }

  private async symlink(caller: Caller | null, target: string, p: string): Promise<void> {
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EEXIST', p)
    const { uid, gid } = this.newAttrs(caller, p, 0, false)
    this.volume.symlink(this.liveOnly(p, 'symlink'), target, { uid, gid })
    this.flusher.schedule()
  }

  private async chmod(p: string, mode: number): Promise<void> {
    const h = this.hidden.get(p)
    if (h) {
      h.stat = { ...h.stat, mode: mode & 0o7777 }
      return
    }
    const st = this.volume.tree.stat(this.liveOnly(p, 'chmod'))
    const sf = this.spooled.get(st.id)
    // A commit still to come records it (one tree edit per file, not one per attribute).
    if (sf?.dirty && this.volume.canWrite) {
      sf.mode = mode & 0o7777
      return
    }
    this.volume.setattr(p, { mode: mode & 0o7777 })
    this.flusher.schedule()
  }

  private async mknod(caller: Caller | null, p: string, mode: number, dev: number): Promise<void> {
    const at = place(p)
    if (at.kind === 'snaproot') throw new FsError('EEXIST', p)
    this.liveOnly(p, 'mknod')
    const kind = mknodKind(p, mode)
    const attrs = this.newAttrs(caller, p, mode, false)
    if (kind === null) this.volume.writeRef(p, this.emptyRef!, attrs)
    else this.volume.mknod(p, kind, kind === 'chardev' || kind === 'blockdev' ? dev : 0, attrs)
    this.flusher.schedule()
  }

  private async chown(p: string, uid: number, gid: number): Promise<void> {
    // Who may chown and chgrp was checked by the kernel (default_permissions; owners.ts).
    const owners = this.owners.chown(uid, gid)
    if (owners.uid === undefined && owners.gid === undefined) return
    const h = this.hidden.get(p)
    if (h) {
      h.stat = { ...h.stat, ...owners, ctime: Date.now() }
      return
    }
    this.volume.setattr(this.liveOnly(p, 'chown'), owners)
    this.flusher.schedule()
  }

  private async utimens(p: string, atime: number, mtime: number): Promise<void> {
    // libfuse passes UTIME_NOW and UTIME_OMIT through (flag_utime_omit_ok); times.ts decodes them.
    const t = utimensTimes(atime, mtime, Date.now())
    if (t.atime === undefined && t.mtime === undefined) return
    const h = this.hidden.get(p)
    const st = h ? h.stat : this.volume.tree.stat(this.liveOnly(p, 'utimens'))
    const sf = this.spooled.get(st.id)
    // A commit still to come must carry this time, not the time of the last write.
    if (sf && t.mtime !== undefined) sf.mtime = t.mtime
    if (h) {
      h.stat = { ...h.stat, ...t, ctime: Date.now() }
      return
    }
    if (sf?.dirty && this.volume.canWrite && t.atime === undefined) return // recorded by that commit
    this.volume.setattr(p, t)
    this.flusher.schedule()
  }
}

/** Records content already in the CAS as the file at `path` (creating it if needed). */
/** A counting semaphore with explicit acquire/release. */
class Slots {
  private free: number
  private readonly waiting: (() => void)[] = []
  constructor(n: number) { this.free = n }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve))
  }
  release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.free++
  }
}

/** Serialized volume.flush calls; callers that arrive while one waits share it. */
class Flusher {
  private tail: Promise<void> = Promise.resolve()
  private queued: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly volume: Volume, private readonly log: LogFn) {}

  /** Resolves once everything mutated before the call is in the op log. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (this.queued) return this.queued
    const p = this.tail.then(() => {
      this.queued = null
      return this.volume.flush()
    })
    this.queued = p
    this.tail = p.catch((err: Error) => {
      // The ops stay queued in the volume (a flush is all or nothing): try again later.
      this.log('error', err.message)
      this.retry()
    })
    return p
  }

  private retry(): void {
    if (this.timer || this.volume.isClosed) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.flush().catch(() => {})
    }, FLUSH_RETRY_MS)
    this.timer.unref()
  }

  /**
   * Flushes soon: ops that arrive while a flush runs share the next one. (Small entries are
   * cheaper than big ones: a tree flush costs more than linearly in the ops it carries.)
   */
  schedule(): void {
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.flush().catch(() => {})
    }, FLUSH_DELAY_MS)
  }
}

/**
 * After a crash: commits spooled files whose data an fsync had promised (and that still
 * exist in the tree), then removes every spool file of this volume.
 */
export async function recoverSpool(volume: Volume, spoolDir: string): Promise<{ recovered: string[] }> {
  const recovered: string[] = []
  const prefix = volume.id.toString('hex').slice(0, 16) + '-'
  let names: string[]
  try {
    names = await fsp.readdir(spoolDir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { recovered }
    throw err
  }
  for (const name of names.filter((n) => n.startsWith(prefix) && n.endsWith('.json')).sort()) {
    const metaPath = path.join(spoolDir, name)
    const dataPath = metaPath.slice(0, -'.json'.length) + '.data'
    const meta = decodeSpoolMeta(await fsp.readFile(metaPath, 'utf8'), metaPath)
    if (meta.volume !== volume.id.toString('hex') || !meta.fsynced) continue
    const st = volume.tree.statId(meta.node)
    const data = await fsp.stat(dataPath).catch(() => null)
    if (st && st.kind === 'file' && data) {
      const done = await volume.commitFile(meta.node, dataPath, () => ({ mtime: meta.mtime }), { unlessSame: true })
      if (done?.written) recovered.push(done.stat.path)
    }
  }
  if (recovered.length > 0) await volume.sync()
  for (const name of names.filter((n) => n.startsWith(prefix))) await fsp.rm(path.join(spoolDir, name), { force: true })
  return { recovered }
}

/** Detaches a dead FUSE mount (ENOTCONN: its process died) at `mountpoint`; no-op otherwise. */
export async function cleanupStaleMount(mountpoint: string): Promise<void> {
  try {
    await fsp.stat(mountpoint)
    return
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOTCONN' && code !== 'ENXIO') return
  }
  try {
    await run('fusermount', ['-uz', mountpoint])
  } catch (err) {
    throw new Error(`cannot clean up the dead mount at ${mountpoint}: ${(err as Error).message}`)
  }
}
