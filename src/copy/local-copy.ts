// Copying between a local directory and a volume: `volume import` and `volume export`.
import fsp from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Stats } from 'node:fs'
import path from 'node:path'
import { UserError } from '../datadir.js'
import { MOUNTER, badName, type Attrs, type ReadTree, type SpecialKind, type Stat } from '../tree/index.js'
import { MAX_RDEV } from '../tree/special.js'
import { normalize, toFileRef, type Volume } from '../volume/volume.js'
import { FLUSH_EVERY_OPS } from '../volume/flush.js'
import { BATCH_BYTES, BATCH_FILES, WHOLE_BYTES, type Cas } from '../cas/index.js'
import { fetchAhead, type Prefetch } from '../cas/fetch-plan.js'

export interface CopyProgress {
  files: number
  bytes: number
  totalFiles: number
  totalBytes: number
}

export interface CopySummary {
  files: number
  dirs: number
  symlinks: number
  bytes: number
  /** Further names of files (hard links) made as links. */
  links?: number
  /** Fifos and devices. */
  special?: number
  /** Export: entries not written because their name cannot be (not well-formed, taken on disk), with why; their contents too. */
  skipped?: { path: string; reason: string }[]
}

/** Errors that say a name cannot be created here: the entry is skipped, the export goes on. */
const NAME_ERRORS = new Set(['EEXIST', 'ENAMETOOLONG', 'EILSEQ', 'EINVAL'])

interface SourceEntry {
  rel: string // relative to the source root, '' for the root itself
  kind: 'file' | 'dir' | 'symlink' | SpecialKind
  mode: number
  mtime: number
  size: number
  /** Owners as stored (owners.ts): set only when importing as root; this process's ids are MOUNTER. */
  uid?: number
  gid?: number
  /** Devices: the device number (32-bit Linux encoding). */
  rdev?: number
  /** A further name of a file already scanned (same device and inode): that name's rel. */
  linkOf?: string
}

/** The owner of a scanned entry as stored: only as root (others cannot chown), and the importing user's own ids as MOUNTER. */
function ownersOf(st: Stats): { uid?: number; gid?: number } {
  const me = process.getuid?.()
  if (me !== 0) return {}
  return { uid: st.uid === me ? MOUNTER : st.uid, gid: st.gid === process.getgid?.() ? MOUNTER : st.gid }
}

/** Big files stored at once during an import: overlaps reading one file with storing another. */
const IMPORT_CONCURRENCY = 16
/** Batches of small files in flight during an import (each one seal request, one store put). */
const BATCHES_IN_FLIGHT = 4

/** lstat calls in flight while scanning: a cold directory of 10k files is read by many at once, not one after another. */
const SCAN_CONCURRENCY = 64
/**
 * An import flushes 8x less often than other bulk work (Volume.maybeFlush: 16,000 ops): each
 * flush makes one Automerge change per shard it touched, and new records scatter over every
 * shard (hundreds to thousands), so at 2,000 ops a change carried ~1-8 records and the fixed
 * cost per change (commit, change bytes, entry accounting) outweighed the records.
 */
const IMPORT_FLUSH_SCALE = 8

async function scanSource(root: string): Promise<SourceEntry[]> {
  const out: SourceEntry[] = []
  /** Adds the entry; true when it is a directory (to be walked next). */
  /** The first name of every file with several links, by device and inode. */
  const inodes = new Map<string, string>()
  const add = (rel: string, st: Stats): boolean => {
    // Whole milliseconds: the precision the tree and the log keep.
    const base = { rel, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs), size: 0, ...ownersOf(st) }
    if (st.isDirectory()) out.push({ ...base, kind: 'dir' })
    else if (st.isFile()) {
      const ino = st.nlink > 1 ? `${st.dev}:${st.ino}` : null
      const first = ino === null ? undefined : inodes.get(ino)
      if (ino !== null && first === undefined) inodes.set(ino, rel)
      out.push(first === undefined ? { ...base, kind: 'file', size: st.size } : { ...base, kind: 'file', linkOf: first })
    } else if (st.isSymbolicLink()) out.push({ ...base, kind: 'symlink' })
    else if (st.isFIFO()) out.push({ ...base, kind: 'fifo' })
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      // Device numbers past the 32-bit encoding (major > 4095 or minor > 2^20-1) cannot be stored.
      if (st.rdev <= MAX_RDEV) out.push({ ...base, kind: st.isCharacterDevice() ? 'chardev' : 'blockdev', rdev: st.rdev })
    }
    // Sockets are meaningful only while a process listens on them (spec/tree.md "Special files"): skipped, as tar does.
    return st.isDirectory()
  }
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(root, rel)
    const names = (await fsp.readdir(abs)).sort()
    const stats = new Array<Stats>(names.length)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const i = next++
        stats[i] = await fsp.lstat(path.join(abs, names[i]!))
      }
    }
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, names.length) }, worker))
    for (let i = 0; i < names.length; i++) {
      const child = rel ? `${rel}/${names[i]}` : names[i]!
      if (add(child, stats[i]!)) await walk(child)
    }
  }
  if (add('', await fsp.lstat(root))) await walk('')
  return out
}

/**
 * Directories with at least this many small files start a run of batches of their own, and the
 * import may flush just before one (flushBefore). A flush makes one Automerge change per shard
 * it touched, and a shard that already holds a change takes each further record with its own
 * insertion (~100-150 µs a record at 1M files), against ~20-40 µs in the bulk change of a shard
 * filled within one flush (bulk-create.ts). A directory's files fill the shards of its id's
 * prefix (placement.ts) one after another, so a flush in the middle of a big directory left
 * its partly filled shards to take the rest of it one record at a time (at 100k files: 18k
 * of 100k records, against 0.6k when flushes wait for the next big directory).
 */
const FLUSH_AT_DIRS = 64

/** Where the run of each big directory starts in `small` (files in scan order: each directory's together) -> its file count. */
function dirRuns(small: SourceEntry[]): Map<number, number> {
  const dirOf = (e: SourceEntry): string => e.rel.slice(0, Math.max(0, e.rel.lastIndexOf('/')))
  const runs = new Map<number, number>()
  for (let i = 0; i < small.length;) {
    const dir = dirOf(small[i]!)
    let j = i + 1
    while (j < small.length && dirOf(small[j]!) === dir) j++
    if (j - i >= FLUSH_AT_DIRS) runs.set(i, j - i)
    i = j
  }
  return runs
}

/** Whether to flush before a big directory of `files` small files, with `queued` ops queued or in flight: the queue is full, or would overflow with it. */
function flushBefore(queued: number, files: number, scale: number): boolean {
  const limit = scale * FLUSH_EVERY_OPS
  return queued > 0 && (queued >= limit || queued + files > 2 * limit)
}

function joinVolumePath(base: string, rel: string): string {
  return normalize(rel ? `${base}/${rel}` : base)
}

/** Refuses, before anything is stored, an import that would put one kind where another is. */
function checkKinds(tree: ReadTree, base: string, entries: SourceEntry[]): void {
  // Entries come parents first: under a directory the volume lacks, nothing is looked up.
  const absent = new Set<string>()
  for (const e of entries) {
    const slash = e.rel.lastIndexOf('/')
    if (e.rel !== '' && absent.has(slash < 0 ? '' : e.rel.slice(0, slash))) {
      if (e.kind === 'dir') absent.add(e.rel)
      continue
    }
    const target = joinVolumePath(base, e.rel)
    const existing = tree.lookup(target)
    if (!existing) {
      if (e.kind === 'dir') absent.add(e.rel)
      continue
    }
    if (e.kind === 'dir' && existing.kind !== 'dir') throw new UserError(`cannot import: ${target} exists in the volume and is not a directory`)
    if (e.kind !== 'dir' && existing.kind === 'dir') throw new UserError(`cannot import: ${target} is a directory in the volume`)
  }
}

export interface ImportOptions {
  /** Queued ops at which the import flushes (default IMPORT_FLUSH_SCALE x FLUSH_EVERY_OPS; tests set a small one). */
  flushOps?: number
}

/**
 * Imports SRCDIR into the volume under `to` (created if missing), recursively, keeping
 * modes, mtimes, symlinks, hard links (one node, several names), fifos and devices, and as
 * root owners (not atimes, not extended attributes: Node has no call for them; sockets are
 * skipped). Existing files at the same paths get a new version. Every loop
 * flushes in bounded batches (Volume.maybeFlush): an import that fails part way leaves what
 * was flushed before in the log, and no batch outgrows the entry limit.
 */
export async function importDir(
  vol: Volume,
  src: string,
  to = '/',
  onProgress?: (p: CopyProgress) => void,
  opts: ImportOptions = {}
): Promise<CopySummary> {
  const scale = (opts.flushOps ?? IMPORT_FLUSH_SCALE * FLUSH_EVERY_OPS) / FLUSH_EVERY_OPS
  const rootStat = await fsp.stat(src).catch(() => null)
  if (!rootStat) throw new UserError(`cannot import: ${src} does not exist`)
  if (!rootStat.isDirectory()) throw new UserError(`cannot import: ${src} is not a directory`)
  const entries = await scanSource(src)
  checkKinds(vol.tree, to, entries)

  const progress: CopyProgress = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0 }
  const summary: CopySummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, links: 0, special: 0 }
  for (const e of entries) if (e.kind === 'file' && e.linkOf === undefined) { progress.totalFiles++; progress.totalBytes += e.size }
  const attrsOf = (e: SourceEntry): Attrs => {
    // No atime: like tar and rsync (without --atimes), an import leaves it at the mtime; at
    // 1M files a setattr per file would double the import's ops.
    const a: Attrs = { mode: e.mode, mtime: e.mtime }
    if (e.uid !== undefined) a.uid = e.uid
    if (e.gid !== undefined) a.gid = e.gid
    return a
  }

  // Directories first (parents before children, as scanned), so files can land in any order.
  vol.mkdirp(to)
  for (const e of entries) {
    if (e.kind !== 'dir' || e.rel === '') continue
    const target = joinVolumePath(to, e.rel)
    if (!vol.tree.lookup(target)) vol.mkdir(target, attrsOf(e))
    summary.dirs++
    await vol.maybeFlush(scale)
  }
  for (const e of entries) {
    if (e.kind !== 'symlink') continue
    const target = joinVolumePath(to, e.rel)
    if (vol.tree.lookup(target)) vol.unlink(target)
    vol.symlink(target, await fsp.readlink(path.join(src, e.rel)), { mtime: e.mtime, uid: e.uid, gid: e.gid })
    summary.symlinks++
    await vol.maybeFlush(scale)
  }
  for (const e of entries) {
    if (e.kind !== 'fifo' && e.kind !== 'chardev' && e.kind !== 'blockdev') continue
    const target = joinVolumePath(to, e.rel)
    if (vol.tree.lookup(target)) vol.unlink(target)
    vol.mknod(target, e.kind, e.rdev ?? 0, attrsOf(e))
    summary.special!++
    await vol.maybeFlush(scale)
  }

  const done = (stat: Stat): void => {
    summary.files++
    summary.bytes += stat.size
    progress.files++
    progress.bytes += stat.size
    onProgress?.(progress)
  }
  // Small files in batches: each batch is read and sealed on a seal worker, stored with one
  // put, then recorded in the tree; its files enter the tree only once all its objects are
  // stored. Big files are streamed, several at once, beside them.
  const files = entries.filter((e) => e.kind === 'file' && e.linkOf === undefined)
  const small = files.filter((e) => e.size <= WHOLE_BYTES)
  const smallRuns = dirRuns(small)
  const big = files.filter((e) => e.size > WHOLE_BYTES)
  // After a failure no worker starts anything new, and the import fails only once the work
  // in flight has settled: nothing enters the tree after the error is reported.
  let failed = false
  const stopOnFailure = (worker: () => Promise<void>) => () => worker().catch((err) => {
    failed = true
    throw err
  })
  let nextSmall = 0
  /** Resolves when a batch in flight has settled; the first error is kept and the import stops. */
  const inFlight = new Set<Promise<void>>()
  let smallError: unknown = null
  let filesInFlight = 0
  const runBatch = async (batch: SourceEntry[]): Promise<void> => {
    filesInFlight += batch.length
    let refs
    try {
      refs = await vol.cas.writeFiles(batch.map((e) => path.join(src, e.rel)))
    } finally {
      filesInFlight -= batch.length
    }
    if (failed) return
    const { stats, error } = vol.writeRefs(batch.map((e, i) => ({ path: joinVolumePath(to, e.rel), ref: refs[i]!, attrs: attrsOf(e) })))
    for (const st of stats) done(st)
    if (error) throw error
    // A directory bigger than one flush flushes inside it, at twice the usual size.
    await vol.maybeFlush(2 * scale)
  }
  const smallFiles = async (): Promise<void> => {
    while (nextSmall < small.length && !failed) {
      const run = smallRuns.get(nextSmall)
      if (run !== undefined && flushBefore(vol.pendingOps + filesInFlight, run, scale)) {
        // A new directory starts: what is queued is written first, so that this directory's
        // records fill shards that take them in one bulk change (see FLUSH_AT_DIRS).
        await Promise.all(inFlight)
        if (failed) break
        await vol.flush()
      }
      const batch: SourceEntry[] = []
      let bytes = 0
      while (nextSmall < small.length && batch.length < BATCH_FILES && bytes < BATCH_BYTES) {
        if (batch.length > 0 && smallRuns.has(nextSmall)) break
        const e = small[nextSmall++]!
        batch.push(e)
        bytes += e.size
      }
      while (inFlight.size >= BATCHES_IN_FLIGHT) await Promise.race(inFlight)
      const p: Promise<void> = runBatch(batch).catch((err) => {
        failed = true
        smallError ??= err
      }).finally(() => inFlight.delete(p))
      inFlight.add(p)
    }
    await Promise.all(inFlight)
    if (smallError !== null) throw smallError
  }
  let nextBig = 0
  const bigWorker = async (): Promise<void> => {
    while (nextBig < big.length && !failed) {
      const e = big[nextBig++]!
      const ref = await vol.cas.writeFile(path.join(src, e.rel), e.size)
      if (failed) return
      done(vol.writeRef(joinVolumePath(to, e.rel), ref, attrsOf(e)))
      await vol.maybeFlush(2 * scale)
    }
  }
  const results = await Promise.allSettled([
    stopOnFailure(smallFiles)(),
    ...Array.from({ length: IMPORT_CONCURRENCY }, stopOnFailure(bigWorker)),
  ])
  const failure = results.find((r) => r.status === 'rejected')
  if (failure) throw (failure as PromiseRejectedResult).reason

  // Further names of hard-linked files, once their first name holds the content.
  for (const e of entries) {
    if (e.linkOf === undefined) continue
    const target = joinVolumePath(to, e.rel)
    const first = joinVolumePath(to, e.linkOf)
    const existing = vol.tree.lookup(target)
    if (existing && existing.id === vol.tree.lookup(first)?.id) continue
    if (existing) vol.unlink(target)
    vol.mutate((t) => t.link(first, target), (st) => ({ op: 'link', path: first, to: st.path }))
    summary.links!++
    await vol.maybeFlush(scale)
  }
  // Directory attributes last: adding children must not leave them with the import's time.
  for (const e of entries) {
    if (e.kind !== 'dir') continue
    vol.setattr(joinVolumePath(to, e.rel), attrsOf(e))
    await vol.maybeFlush(scale)
  }
  await vol.flush()
  return summary
}

/**
 * Sets what a node keeps beside its content on the entry at `abs` (not following a symlink):
 * as root its owners (MOUNTER: the exporting user's ids), then its times. The mode is set by
 * the caller (a symlink has none).
 */
async function setMeta(abs: string, st: Stat, symlink = false): Promise<void> {
  if (process.getuid?.() === 0) {
    const uid = st.uid === MOUNTER ? process.getuid() : st.uid
    const gid = st.gid === MOUNTER ? process.getgid!() : st.gid
    await fsp.lchown(abs, uid, gid)
  }
  if (symlink) await fsp.lutimes(abs, st.atime / 1000, st.mtime / 1000)
  else await fsp.utimes(abs, st.atime / 1000, st.mtime / 1000)
}

/** mknod(1) of a fifo or device (Node has no mknod): major and minor from the 32-bit Linux encoding. */
async function makeSpecial(abs: string, st: Stat): Promise<void> {
  const rdev = st.rdev ?? 0
  const major = (rdev >>> 8) & 0xfff
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00)
  const type = st.kind === 'fifo' ? ['p'] : [st.kind === 'chardev' ? 'c' : 'b', String(major), String(minor)]
  try {
    await promisify(execFile)('mknod', ['-m', (st.mode & 0o7777).toString(8), '--', abs, ...type])
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim()
    throw Object.assign(new Error(msg), { code: /exists/i.test(msg) ? 'EEXIST' : 'EMKNOD' })
  }
}

/** Writes a file's content, then its mode and mtime, through one file handle. */
async function writeFile(cas: Cas, st: Stat, dest: string): Promise<void> {
  if (!st.content) throw new Error(`${st.path}: file has no content reference`)
  const ref = toFileRef(st.content)
  const file = await fsp.open(dest, 'wx', 0o600)
  try {
    for await (const chunk of cas.readFile(ref, st.path)) {
      for (let at = 0; at < chunk.length;) at += (await file.write(chunk, at, chunk.length - at)).bytesWritten
    }
    if (process.getuid?.() === 0) await file.chown(st.uid === MOUNTER ? process.getuid() : st.uid, st.gid === MOUNTER ? process.getgid!() : st.gid)
    await file.chmod(st.mode & 0o7777)
    await file.utimes(st.atime / 1000, st.mtime / 1000)
  } finally {
    await file.close()
  }
}

/** Files written at once during an export: their fetches from peers overlap (one round trip per burst, not per file). */
const EXPORT_CONCURRENCY = 32

export interface ExportOptions {
  /**
   * Requests objects ahead (RemoteStores.prefetch): the files' trees are walked beside the
   * writers and everything they are made of is requested as whole packs (fetch-plan.ts).
   */
  prefetch?: Prefetch
  /** Called after each file written (files and bytes written of all the export writes). */
  onProgress?: (p: CopyProgress) => void
}

/**
 * Writes the volume (or one snapshot of it) into DESTDIR, which must not exist or be empty:
 * contents, modes, mtimes and atimes, symlinks, hard links (the further names of a node as
 * links), fifos, and as root devices and owners (MOUNTER as the exporting user). Sockets are
 * skipped, named; extended attributes are not written (Node has no call for them).
 */
export async function exportTree(cas: Cas, tree: ReadTree, dest: string, opts: ExportOptions = {}): Promise<CopySummary> {
  const existing = await fsp.readdir(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null
    throw new UserError(`cannot export to ${dest}: ${err.code === 'ENOTDIR' ? 'not a directory' : err.message}`)
  })
  if (existing && existing.length > 0) throw new UserError(`cannot export: ${dest} is not empty`)
  await fsp.mkdir(dest, { recursive: true })

  const summary: CopySummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, links: 0, special: 0, skipped: [] }
  const dirs: { abs: string; st: Stat }[] = []
  /** Further names of linked files (same node id as a name walked before), made as links once the files are written. */
  const links: { abs: string; st: Stat; first: string }[] = []
  const firstName = new Map<string, string>()
  const asRoot = process.getuid?.() === 0
  const files: { abs: string; st: Stat }[] = []
  // One entry whose name cannot be written (a name a peer's tree holds that this file system
  // refuses or maps onto another) is skipped and reported, with what is under it; never the export.
  const skippedDirs: string[] = []
  const skip = (st: Stat, reason: string): void => {
    summary.skipped!.push({ path: st.path, reason })
    if (st.kind === 'dir') skippedDirs.push(st.path + '/')
  }
  const nameError = (err: unknown): string | null => {
    const code = (err as NodeJS.ErrnoException).code
    return code && NAME_ERRORS.has(code) ? `${code}: ${(err as Error).message}` : null
  }
  // Directories and symlinks first (parents before children, as walked), so files can be
  // written in any order.
  for (const st of tree.walk('/')) {
    if (skippedDirs.some((d) => st.path.startsWith(d))) continue
    const abs = path.join(dest, st.path)
    const bad = st.path === '/' ? null : badName(st.name)
    if (bad !== null) {
      skip(st, bad)
      continue
    }
    try {
      if (st.kind === 'dir') {
        if (st.path !== '/') await fsp.mkdir(abs, { mode: 0o700 })
        dirs.push({ abs, st })
        if (st.path !== '/') summary.dirs++
      } else if (st.kind === 'symlink') {
        await fsp.symlink(st.target ?? '', abs)
        await setMeta(abs, st, true)
        summary.symlinks++
      } else if (st.kind === 'file') {
        const first = (st.nlink ?? 1) > 1 ? firstName.get(st.id) : undefined
        if (first !== undefined) links.push({ abs, st, first })
        else {
          if ((st.nlink ?? 1) > 1) firstName.set(st.id, abs)
          files.push({ abs, st })
        }
      } else if (st.kind === 'fifo' || (asRoot && (st.kind === 'chardev' || st.kind === 'blockdev'))) {
        await makeSpecial(abs, st)
        await setMeta(abs, st)
        summary.special!++
      } else {
        // A socket is meaningful only where it was bound (spec/tree.md "Special files"); a
        // device node only root can make.
        skip(st, st.kind === 'socket' ? 'a socket: meaningful only where a process listens on it' : `a ${st.kind}: only root makes device nodes`)
      }
    } catch (err) {
      const reason = nameError(err)
      if (reason === null) throw err
      skip(st, reason)
    }
  }
  // Largest first: a big file (read chunk after chunk, a few ahead) overlaps with the many
  // small ones instead of running alone at the end.
  files.sort((a, b) => b.st.size - a.st.size)
  let next = 0
  let failed = false
  const progress: CopyProgress = { files: 0, bytes: 0, totalFiles: files.length, totalBytes: files.reduce((n, f) => n + f.st.size, 0) }
  // Content not held here is requested ahead in the writers' order, as whole packs.
  const ahead = opts.prefetch
    ? fetchAhead(cas, files.filter((f) => f.st.content).map((f) => toFileRef(f.st.content!)), opts.prefetch, () => failed)
    : Promise.resolve()
  const worker = async (): Promise<void> => {
    while (next < files.length && !failed) {
      const { abs, st } = files[next++]!
      try {
        await writeFile(cas, st, abs)
      } catch (err) {
        const reason = nameError(err)
        if (reason !== null) {
          skip(st, reason)
          continue
        }
        failed = true // the other workers stop at their next file
        throw err
      }
      summary.files++
      summary.bytes += st.size
      progress.files++
      progress.bytes += st.size
      opts.onProgress?.(progress)
    }
  }
  const results = await Promise.allSettled(Array.from({ length: Math.min(EXPORT_CONCURRENCY, files.length) }, worker))
  failed = true // the walk ahead stops (what it requested is let go when the bulk ends)
  await ahead
  const failure = results.find((r) => r.status === 'rejected')
  if (failure) throw (failure as PromiseRejectedResult).reason
  const written = new Set(files.map((f) => f.abs))
  for (const { abs, st, first } of links) {
    if (!written.has(first) || summary.skipped!.some((x) => path.join(dest, x.path) === first)) {
      skip(st, 'a further name of a file that was not written')
      continue
    }
    try {
      await fsp.link(first, abs)
    } catch (err) {
      const reason = nameError(err)
      if (reason === null) throw err
      skip(st, reason)
      continue
    }
    summary.links!++
  }
  // Deepest first, so setting a parent's mtime comes after its children were written.
  for (const { abs, st } of dirs.reverse()) {
    await fsp.chmod(abs, st.mode & 0o7777)
    await setMeta(abs, st)
  }
  return summary
}
