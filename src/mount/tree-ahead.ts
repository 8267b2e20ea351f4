// Reading a directory's files one after another through the mount (`cp -r`, `tar c`, rsync
// out of it): once a reader opens files of one directory in its listing order, the files after
// them are requested ahead from peers' stores, so a tree of small files arrives as ranges of
// packs instead of one round trip per file. What is requested is each file's root object: a
// small file's pack holds its content too (objects written together stay together, spec/cas.md
// section 4); a large file's content is requested ahead by its own reads (cas-read.ts).
// Requests only: every read still verifies what it reads.
import path from 'node:path'
import type { FileRef } from '../cas/index.js'

/** A directory's entries in listing order (readdir's), with the content of each file. */
export interface ListedEntry {
  name: string
  /** null: not a file, or an empty one. */
  ref: FileRef | null
}

/** Files past the one opened that are requested ahead; more once half of them are opened. */
export const TREE_AHEAD_FILES = 256
/** Opens in listing order (each after the previous) before the directory counts as read in order. */
const MIN_RUN = 2

export class TreeAhead {
  private dir: string | null = null
  private index = new Map<string, number>()
  private listing: ListedEntry[] = []
  private last = -1
  private run = 0
  /** Entries before this index were requested. */
  private requestedTo = 0

  /**
   * `list`: a directory's entries (may throw: nothing is requested); `request`: asks peers'
   * stores for the files' root objects; `enabled`: whether there is anyone to ask.
   */
  constructor(
    private readonly list: (dir: string) => ListedEntry[],
    private readonly request: (refs: FileRef[]) => void,
    private readonly enabled: () => boolean
  ) {}

  /** A file at `p` (a mount path) was opened for reading. */
  opened(p: string): void {
    if (!this.enabled()) return
    const dir = path.posix.dirname(p)
    const name = path.posix.basename(p)
    if (dir !== this.dir && !this.load(dir)) return
    const i = this.index.get(name)
    if (i === undefined) return
    this.run = i > this.last ? this.run + 1 : 0
    this.last = i
    if (this.run < MIN_RUN || this.requestedTo > i + TREE_AHEAD_FILES / 2) return
    const from = Math.max(this.requestedTo, i + 1)
    const to = Math.min(this.listing.length, i + 1 + TREE_AHEAD_FILES)
    this.requestedTo = Math.max(this.requestedTo, to)
    const refs: FileRef[] = []
    for (let j = from; j < to; j++) {
      const ref = this.listing[j]!.ref
      if (ref) refs.push(ref)
    }
    if (refs.length > 0) this.request(refs)
  }

  private load(dir: string): boolean {
    this.dir = dir
    this.last = -1
    this.run = 0
    this.requestedTo = 0
    try {
      this.listing = this.list(dir)
    } catch {
      this.listing = []
    }
    this.index = new Map(this.listing.map((e, i) => [e.name, i]))
    return this.listing.length > 0
  }
}
