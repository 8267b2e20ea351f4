// Reads of stored content for one open handle.
//
// The kernel reads a file in 128 KiB requests (libfuse 2.9's cap), several in flight at once
// and not always in order. A handle keeps the file open in the CAS (Cas.openFile): the
// manifest resolved once, chunks found by offset in memory, decrypted on the worker pool into
// the cache shared by all handles, and read ahead of a sequential reader (cas-read.ts). The
// first chunks are asked for at open, before the first read arrives.
import type { Cas, FileRef, OpenFile } from '../cas/index.js'

type Timed = <T>(p: Promise<T>, what: string) => Promise<T>

export class FileReader {
  private readonly file: OpenFile

  constructor(cas: Cas, readonly ref: FileRef, private readonly what: string, private readonly timed: Timed) {
    this.file = cas.openFile(ref, what)
    this.file.prefetchStart()
  }

  /** Whether this reader reads the content `hash` (hex) names. */
  reads(hash: string): boolean {
    return this.ref.hash.toString('hex') === hash
  }

  /** Reads [pos, pos + len) into buf; returns the byte count. */
  read(buf: Buffer, len: number, pos: number): Promise<number> {
    return this.timed(this.file.read(buf, len, pos), this.what)
  }

  close(): void {
    this.file.close()
  }
}
