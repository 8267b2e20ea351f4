// The spool: dirty data of files open for writing, on disk, never whole in RAM.
//
// One SpoolFile per file (by node id) with at least one writable handle, shared by all of
// them. Its data file is created on the first change and has the file's length; the file's
// old content is copied in LAZILY, per BLOCK, only where needed: before a write that covers a
// block partly, before a truncate that cuts into one, and for the whole file at commit (the
// CAS needs the full plaintext to chunk; content-defined chunking then stores only the chunks
// that changed). Blocks that were never copied are read from the old content. So a `cp` over
// an existing file or an O_TRUNC open never reads the old content at all, and a small random
// write into a big file costs one block read until commit.
//
// Small new files (no old content, at most MEM_FILE_BYTES) are held in memory instead, in a
// buffer that grows with the file, within a per-mount MemBudget, and move to a data file when
// they outgrow it or are fsynced: `tar x` and `cp -r` of many small files then cost no spool
// file each. Appends to a data file are gathered in memory (up to APPEND_BYTES, within the same
// budget) and written in one piece: without a writeback cache in libfuse 2.9 every write(2)
// of the writer arrives on its own (`tar x` writes 5-10 KiB at a time).
//
// Metadata (a JSON file next to the data) is written only by fsync: after a crash,
// recoverSpool commits spooled files that an fsync had promised (spec/fuse.md).
import fsp, { type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { randomBytes } from '../crypto.js'
import type { FileRef } from '../cas/index.js'
import { replaceFile } from '../atomic-file.js'

/** Granularity of the lazy copy of old content; the kernel's big writes are this size. */
export const BLOCK = 128 * 1024
/** Bytes read from old content at once while filling many blocks. */
const FILL_RUN = 4 * 1024 * 1024

export const SPOOL_META_VERSION = 1

/** A file with no old content stays in memory while it is at most this big. */
export const MEM_FILE_BYTES = 1024 * 1024
/** First size of a new file's memory buffer (it doubles as the file grows). */
const MEM_FIRST_BYTES = 16 * 1024
/** Appends to a data file gathered before one write to it. */
export const APPEND_BYTES = 1024 * 1024

/** Bounds the memory all SpoolFiles of a mount may hold (small files, gathered appends). */
export class MemBudget {
  private used = 0
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false
    this.used += n
    return true
  }
  give(n: number): void {
    this.used -= n
  }
}

/** The spool metadata file, `<name>.json` beside `<name>.data`. */
export interface SpoolMeta {
  version: typeof SPOOL_META_VERSION
  /** Volume id (hex) the file belongs to. */
  volume: string
  /** Tree node id of the file: commits follow renames by id. */
  node: string
  /** Path at the time of the fsync (for log lines only). */
  path: string
  size: number
  /** mtime (ms) the file had at the fsync. */
  mtime: number
  /** True: an fsync promised this data; recoverSpool commits it. */
  fsynced: boolean
  time: number
}

/** Reads bytes [offset, offset + length) of old content into a fresh buffer. */
export type ReadBase = (ref: FileRef, offset: number, length: number) => Promise<Buffer>

export class SpoolFile {
  readonly nodeId: string
  readonly dataPath: string
  readonly metaPath: string
  /** Current length of the file as seen through the mount. */
  size: number
  /** mtime (ms) to report and to commit with. */
  mtime: number
  /** A mode set while the file was dirty: reported, and recorded by the commit (undefined: the tree's). */
  mode: number | undefined
  /** Open writable handles (and path truncates in progress). */
  refs = 0
  /** Bumped by every change; a commit records the generation it stored. */
  gen = 0
  committedGen = 0
  /** An fsync promised (some of) this file's data: its spool stays until a durable commit. */
  promised = false
  /** Serializes commits of this file. */
  chain: Promise<void> = Promise.resolve()
  private fh: FileHandle | null = null
  private opening: Promise<FileHandle> | null = null
  private readonly base: FileRef | null
  /** Old content exists below this offset (shrinks on truncate). */
  private baseLimit: number
  private readonly filled: Uint8Array
  private readonly fills = new Map<number, Promise<void>>()
  private readonly readBase: ReadBase
  private readonly budget: MemBudget | null
  /** Refuses spooled writes that would fill the disk the store needs (throws, code ENOSPC). */
  private readonly space: { take(bytes: number): void } | null
  /** Content of a small new file not yet in a data file (zero beyond size; its length is taken from the budget). */
  private mem: Buffer | null = null
  /** Appends not yet written to the data file: bytes [appendAt, appendAt + appendLength), which end at `size`. */
  private append: Buffer | null = null
  private appendAt = 0
  private appendLength = 0
  /** Writes of gathered appends, in order; the first failure sticks (every later op throws it). */
  private appending: Promise<void> = Promise.resolve()
  private failed: Error | null = null

  constructor(opts: { spoolDir: string; volumeId: string; nodeId: string; base: FileRef | null; mtime: number; readBase: ReadBase; budget?: MemBudget; space?: { take(bytes: number): void } }) {
    this.nodeId = opts.nodeId
    const name = `${opts.volumeId.slice(0, 16)}-${randomBytes(12).toString('hex')}`
    this.dataPath = path.join(opts.spoolDir, name + '.data')
    this.metaPath = path.join(opts.spoolDir, name + '.json')
    this.base = opts.base && opts.base.size > 0 ? opts.base : null
    this.size = opts.base?.size ?? 0
    this.baseLimit = this.base?.size ?? 0
    this.filled = new Uint8Array(Math.ceil(this.baseLimit / BLOCK))
    this.mtime = opts.mtime
    this.readBase = opts.readBase
    this.budget = opts.budget ?? null
    this.space = opts.space ?? null
  }

  /** Whether there are changes not yet committed. */
  get dirty(): boolean {
    return this.hasData && this.gen !== this.committedGen
  }

  get hasData(): boolean {
    return this.fh !== null || this.opening !== null || this.mem !== null
  }

  /** Whether the content can live in memory up to `end` (growing the buffer if needed). */
  private inMemory(end: number): boolean {
    if (this.base !== null || this.fh !== null || this.opening !== null || end > MEM_FILE_BYTES) return false
    const have = this.mem?.length ?? 0
    if (end <= have && this.mem) return true
    let want = Math.max(have, MEM_FIRST_BYTES)
    while (want < end) want *= 2
    want = Math.min(want, MEM_FILE_BYTES)
    if (!this.budget?.take(want - have)) return false
    const grown = Buffer.alloc(want)
    if (this.mem) this.mem.copy(grown, 0, 0, this.size)
    this.mem = grown
    return true
  }

  private dropMem(): void {
    if (!this.mem) return
    this.budget?.give(this.mem.length)
    this.mem = null
  }

  /** Whether a write of `len` bytes at `pos` can be gathered (an append past all old content). */
  private gathers(pos: number, len: number): boolean {
    if (this.fh === null || pos !== this.size || len > APPEND_BYTES) return false
    if (this.append) return pos === this.appendAt + this.appendLength && this.appendLength + len <= APPEND_BYTES
    const block = Math.floor(pos / BLOCK)
    if (this.isBaseBlock(block) || this.fills.has(block)) return false
    if (!this.budget?.take(APPEND_BYTES)) return false
    this.append = Buffer.allocUnsafe(APPEND_BYTES)
    this.appendAt = pos
    this.appendLength = 0
    return true
  }

  /** Starts writing the gathered appends; resolves once every append so far is in the data file. */
  private writeAppends(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed)
    const buf = this.append
    if (buf) {
      const at = this.appendAt
      const length = this.appendLength
      const fh = this.fh!
      this.append = null
      this.appendLength = 0
      this.appending = this.appending.then(async () => {
        try {
          for (let done = 0; done < length;) done += (await fh.write(buf, done, length - done, at + done)).bytesWritten
        } catch (err) {
          this.failed ??= err as Error
        } finally {
          this.budget?.give(APPEND_BYTES)
        }
      })
    }
    return this.appending.then(() => { if (this.failed) throw this.failed })
  }

  private file(): Promise<FileHandle> {
    if (this.fh) return Promise.resolve(this.fh)
    this.opening ??= (async () => {
      const fh = await fsp.open(this.dataPath, 'w+', 0o600)
      await fh.truncate(this.size)
      // Writes wait for this open, so the memory copy is final here.
      if (this.mem && this.size > 0) await fh.write(this.mem, 0, this.size, 0)
      this.fh = fh
      this.dropMem()
      return fh
    })()
    return this.opening
  }

  /** What to store at commit: the bytes of an in-memory file, or the (complete) data file. */
  async content(): Promise<Buffer | string> {
    if (this.mem && this.opening === null) {
      // Its own memory, not a view of the pool's: the CAS may hand it to a worker thread.
      const out = Buffer.from(new ArrayBuffer(this.size))
      this.mem.copy(out, 0, 0, this.size)
      return out
    }
    await this.file()
    await this.writeAppends()
    await this.fillAll()
    return this.dataPath
  }

  private isBaseBlock(i: number): boolean {
    return i * BLOCK < this.baseLimit && this.filled[i] === 0
  }

  /** Copies old content of blocks [first, last] into the data file. */
  private fill(first: number, last: number): Promise<void> {
    const waits: Promise<void>[] = []
    let runStart = -1
    const flushRun = (end: number): void => {
      if (runStart < 0) return
      const start = runStart
      runStart = -1
      const p = this.fillRun(start, end)
      for (let i = start; i < end; i++) this.fills.set(i, p)
      waits.push(p)
    }
    for (let i = first; i <= last; i++) {
      const pending = this.fills.get(i)
      if (pending) {
        flushRun(i)
        waits.push(pending)
        continue
      }
      if (!this.isBaseBlock(i)) {
        flushRun(i)
        continue
      }
      if (runStart < 0) runStart = i
      else if ((i - runStart) * BLOCK >= FILL_RUN) {
        flushRun(i)
        runStart = i
      }
    }
    flushRun(last + 1)
    return Promise.all(waits).then(() => {})
  }

  private async fillRun(first: number, end: number): Promise<void> {
    try {
      const fh = await this.file()
      const from = first * BLOCK
      const to = Math.min(end * BLOCK, this.baseLimit)
      if (to > from) {
        const data = await this.readBase(this.base!, from, to - from)
        // A truncate while we read may have lowered baseLimit: never write beyond it.
        const keep = Math.max(0, Math.min(data.length, this.baseLimit - from))
        if (keep > 0) await fh.write(data, 0, keep, from)
      }
      for (let i = first; i < end; i++) this.filled[i] = 1
    } finally {
      for (let i = first; i < end; i++) this.fills.delete(i)
    }
  }

  async read(buf: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(pos + len, this.size)
    if (end <= pos) return 0
    if (this.mem && this.opening === null) return this.mem.copy(buf, 0, pos, end)
    await this.writeAppends()
    let at = pos
    while (at < end) {
      const block = Math.floor(at / BLOCK)
      const fromBase = this.isBaseBlock(block) && !this.fills.has(block)
      // Extend the run over following blocks in the same state.
      let runEnd = Math.min(end, (block + 1) * BLOCK)
      while (runEnd < end) {
        const b = Math.floor(runEnd / BLOCK)
        if ((this.isBaseBlock(b) && !this.fills.has(b)) !== fromBase) break
        runEnd = Math.min(end, (b + 1) * BLOCK)
      }
      if (fromBase) {
        const stop = Math.min(runEnd, this.baseLimit)
        const data = await this.readBase(this.base!, at, stop - at)
        data.copy(buf, at - pos)
        if (runEnd > stop) buf.fill(0, stop - pos, runEnd - pos)
      } else {
        const lastBlock = Math.floor((runEnd - 1) / BLOCK)
        const copying = [...new Set(Array.from({ length: lastBlock - block + 1 }, (_, k) => this.fills.get(block + k)))]
        await Promise.all(copying)
        const fh = await this.file()
        let got = 0
        while (got < runEnd - at) {
          const { bytesRead } = await fh.read(buf, at - pos + got, runEnd - at - got, at + got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        if (got < runEnd - at) buf.fill(0, at - pos + got, runEnd - pos)
      }
      at = runEnd
    }
    return end - pos
  }

  async write(buf: Buffer, len: number, pos: number): Promise<number> {
    if (len === 0) return 0
    const end = pos + len
    if (this.inMemory(end)) {
      buf.copy(this.mem!, pos, 0, len)
      if (end > this.size) this.size = end
      this.mtime = Date.now()
      this.gen++
      return len
    }
    this.space?.take(len)
    if (this.failed) throw this.failed
    if (this.gathers(pos, len)) {
      buf.copy(this.append!, this.appendLength, 0, len)
      this.appendLength += len
      this.size = end
      this.mtime = Date.now()
      this.gen++
      if (this.appendLength === APPEND_BYTES) this.writeAppends().catch(() => {}) // a failure sticks: the next op throws it
      return len
    }
    await this.writeAppends()
    const first = Math.floor(pos / BLOCK)
    const last = Math.floor((end - 1) / BLOCK)
    // Blocks whose old content the write covers entirely need no copy.
    for (const i of [first, last]) {
      if (!this.isBaseBlock(i) || this.fills.has(i)) continue
      const blockEnd = Math.min((i + 1) * BLOCK, this.baseLimit)
      if (pos <= i * BLOCK && end >= blockEnd) this.filled[i] = 1
    }
    for (let i = first + 1; i < last; i++) if (!this.fills.has(i) && i < this.filled.length) this.filled[i] = 1
    await this.fill(first, last)
    const fh = await this.file()
    let done = 0
    while (done < len) {
      const { bytesWritten } = await fh.write(buf, done, len - done, pos + done)
      done += bytesWritten
    }
    if (end > this.size) this.size = end
    this.mtime = Date.now()
    this.gen++
    return len
  }

  async truncate(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw Object.assign(new Error(`bad size ${size}`), { code: 'EINVAL' })
    if (this.inMemory(size)) {
      if (size < this.size) this.mem!.fill(0, size, this.size)
      this.size = size
      this.mtime = Date.now()
      this.gen++
      return
    }
    if (size < this.baseLimit) {
      if (size % BLOCK !== 0) await this.fill(Math.floor(size / BLOCK), Math.floor(size / BLOCK))
      // Copies in flight must not write beyond the new end once they land.
      await Promise.all([...new Set(this.fills.values())])
      this.baseLimit = size
    }
    const fh = await this.file()
    await this.writeAppends()
    await fh.truncate(size)
    this.size = size
    this.mtime = Date.now()
    this.gen++
  }

  /** Copies all remaining old content in: the data file then holds the whole file. */
  async fillAll(): Promise<void> {
    if (this.baseLimit === 0) return
    await this.fill(0, Math.ceil(this.baseLimit / BLOCK) - 1)
  }

  /** Makes the data durable and records that an fsync promised it. */
  async sync(meta: Omit<SpoolMeta, 'version' | 'fsynced' | 'size' | 'mtime' | 'node' | 'time'>): Promise<void> {
    if (!this.dirty) return
    await this.fillAll()
    const fh = await this.file()
    await this.writeAppends()
    await fh.datasync()
    const body: SpoolMeta = { version: SPOOL_META_VERSION, ...meta, node: this.nodeId, size: this.size, mtime: this.mtime, fsynced: true, time: Date.now() }
    await replaceFile(this.metaPath, JSON.stringify(body), { mode: 0o600 })
    this.promised = true
  }

  /** Closes and deletes the spool files. */
  async discard(): Promise<void> {
    const fh = this.fh ?? (this.opening ? await this.opening.catch(() => null) : null)
    this.dropMem()
    await this.appending
    if (this.append) {
      this.append = null
      this.budget?.give(APPEND_BYTES)
    }
    this.fh = null
    this.opening = null
    if (fh) await fh.close().catch(() => {})
    await fsp.rm(this.dataPath, { force: true })
    await fsp.rm(this.metaPath, { force: true })
  }
}

/** Parses a spool metadata file; throws naming what is wrong. */
export function decodeSpoolMeta(text: string, file: string): SpoolMeta {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new Error(`${file}: spool metadata is not JSON: ${(err as Error).message}`)
  }
  const m = v as Partial<SpoolMeta> | null
  if (!m || typeof m !== 'object') throw new Error(`${file}: spool metadata is not an object`)
  if (m.version !== SPOOL_META_VERSION) throw new Error(`${file}: unknown spool metadata version ${JSON.stringify(m.version)}`)
  if (typeof m.volume !== 'string' || !/^[0-9a-f]+$/.test(m.volume)) throw new Error(`${file}: bad volume id`)
  if (typeof m.node !== 'string' || m.node === '') throw new Error(`${file}: bad node id`)
  if (typeof m.path !== 'string') throw new Error(`${file}: bad path`)
  if (!Number.isSafeInteger(m.size) || m.size! < 0) throw new Error(`${file}: bad size`)
  if (typeof m.mtime !== 'number' || !Number.isFinite(m.mtime) || m.mtime < 0) throw new Error(`${file}: bad mtime`)
  if (typeof m.fsynced !== 'boolean') throw new Error(`${file}: bad fsynced flag`)
  if (typeof m.time !== 'number') throw new Error(`${file}: bad time`)
  return m as SpoolMeta
}
