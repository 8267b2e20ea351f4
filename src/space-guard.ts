// Never letting the disk fill under RocksDB (spec/datadir.md, "A full disk").
//
// RocksDB keeps recent writes in its write-ahead log and writes them out again (into SST and
// blob files) when a memtable is flushed, and when the store is opened after a crash. If the
// disk is too full for that, the store cannot be opened at all: every command, reads
// included, fails until the user frees as much as the log holds. So bazil refuses, with a
// clear ENOSPC error, any write (content, log entries, spooled file data) that would leave
// less free space than the log needs to be written out, plus a margin; the store stays
// healthy, reads keep working, and writing works again as soon as space is freed.
//
// A small reserve file (`DATA/reserve`) covers the disk being filled by someone else: opening
// deletes it when the store cannot be opened for lack of space, and re-creates it once there
// is room.
import fs from 'node:fs'
import path from 'node:path'
import { UserError } from './datadir.js'
import { DataPaths } from './data-paths.js'

/**
 * What the store writes per byte of content, as measured: hypercore rewrites tree nodes and
 * 4 KiB bitfield pages with each append, the content index adds its own; 1.5 covers it.
 */
const AMPLIFICATION = 1.5
/** At most this much is written between two measurements. */
const MAX_BUDGET = 4 * 1024 * 1024
/** Free space kept beyond what the write-ahead log needs. */
export const MARGIN_BYTES = 4 * 1024 * 1024
/** The reserve file's size (smaller on a small file system: 1/16 of it). */
export const RESERVE_BYTES = 8 * 1024 * 1024

export class DiskFullError extends UserError {
  readonly code = 'ENOSPC'
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1)
}

/** Bytes free for us on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir)
  return st.bavail * st.bsize
}

/** Bytes in RocksDB's write-ahead logs in `dbDir`: what a flush or an open writes out again. */
export function walBytes(dbDir: string): number {
  let total = 0
  let names: string[]
  try {
    names = fs.readdirSync(dbDir)
  } catch {
    return 0
  }
  for (const name of names) {
    if (name.endsWith('.log')) total += fs.statSync(path.join(dbDir, name), { throwIfNoEntry: false })?.size ?? 0
  }
  return total
}

export class SpaceGuard {
  /** Bytes that may still be written before free space is measured again. */
  private budget = 0

  constructor(readonly root: string, readonly dbDir: string, readonly marginBytes = MARGIN_BYTES) {}

  /**
   * Call before writing `bytes` to the data dir's disk: throws DiskFullError (code ENOSPC)
   * if that could leave too little room to write out the store's log. Measures (statfs and
   * the log's size) only when the budget left by the last measurement is used up.
   */
  take(bytes: number): void {
    bytes = Math.ceil(bytes * AMPLIFICATION)
    if (bytes <= this.budget) {
      this.budget -= bytes
      return
    }
    const free = freeBytes(this.root)
    const wal = walBytes(this.dbDir)
    // What we write now lands twice before a flush frees the log: in the log, then in a table.
    const slack = free - AMPLIFICATION * (wal + 2 * bytes) - this.marginBytes
    if (slack < 0) {
      this.budget = 0
      throw new DiskFullError(`the disk holding ${this.root} is full: ${mib(free)} MiB free, and bazil keeps ${mib(AMPLIFICATION * wal + this.marginBytes)} MiB free so that its store can always be opened; free some space and try again`)
    }
    this.budget = Math.min(MAX_BUDGET, Math.floor(slack / (4 * AMPLIFICATION)))
  }
}

/** Keeps the reserve file: created (or grown back) when there is room for it, else left out. */
export function ensureReserve(root: string): void {
  const file = new DataPaths(root).reserve
  try {
    const st = fs.statfsSync(root)
    const size = Math.min(RESERVE_BYTES, Math.floor((st.blocks * st.bsize) / 16))
    const have = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
    if (have >= size) return
    if (st.bavail * st.bsize < (size - have) + RESERVE_BYTES + MARGIN_BYTES) return // no room: try at the next open
    const fd = fs.openSync(file, 'w', 0o600)
    try {
      // Written, not sparse: the point is blocks that deleting the file gives back.
      const block = Buffer.alloc(1024 * 1024)
      for (let at = 0; at < size; at += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, size - at), at)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    fs.rmSync(file, { force: true })
  }
}

/** Deletes the reserve file; true if there was one. */
export function releaseReserve(root: string): boolean {
  const file = new DataPaths(root).reserve
  if (!fs.existsSync(file)) return false
  fs.rmSync(file, { force: true })
  return true
}
