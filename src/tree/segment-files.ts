/**
 * The open segment files of one on-disk index (spec/tree.md "The index on disk"): a bucket
 * read is one pread on a file kept open, not open + pread + close (a stat of a path not read
 * before reads 2-7 buckets). Shared by a manifest's IndexFiles and those of the commits after
 * it (their segments are the same files); a commit that deletes a segment closes it first.
 * Segments are never changed once written, so a kept descriptor always reads what was written.
 * The descriptors of an index no longer referenced are closed when it is collected.
 */
import fs from 'node:fs'
import path from 'node:path'

/** Segments kept open at once per index (a 1M-file index has a few): the least recently used is closed first. */
const MAX_OPEN = 16

const closer = new FinalizationRegistry<Map<string, number>>((fds) => {
  for (const fd of fds.values()) fs.close(fd, () => {})
})

export class SegmentFiles {
  private readonly fds = new Map<string, number>()

  constructor(readonly dir: string) {
    closer.register(this, this.fds)
  }

  /** Reads `length` bytes at `position` of segment `name` into `into` (from its start); throws when the segment is missing or too short. */
  read(name: string, into: Buffer, length: number, position: number): void {
    if (fs.readSync(this.fd(name), into, 0, length, position) !== length) throw new Error('segment too short')
  }

  /** Closes segment `name` (a commit is about to delete it). */
  forget(name: string): void {
    const fd = this.fds.get(name)
    if (fd === undefined) return
    this.fds.delete(name)
    fs.closeSync(fd)
  }

  private fd(name: string): number {
    let fd = this.fds.get(name)
    if (fd !== undefined) {
      this.fds.delete(name)
      this.fds.set(name, fd)
      return fd
    }
    fd = fs.openSync(path.join(this.dir, name), 'r')
    this.fds.set(name, fd)
    if (this.fds.size > MAX_OPEN) this.forget(this.fds.keys().next().value!)
    return fd
  }
}
