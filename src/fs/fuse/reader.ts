// Sequential reads of stored content for one open handle.
//
// The kernel reads a file in 128 KiB requests, a few in flight at once and not always in
// order. Cas.read per request would look up and decrypt the chunks under each request again
// (a chunk straddling two requests twice) with no read-ahead; instead a handle reading from
// the start streams the file with Cas.readFile (which keeps chunks in flight ahead) and keeps
// a window of recent plaintext, so requests arriving slightly out of order are still served
// from it. Anything else (seeks) falls back to Cas.read.
import type { Cas, FileRef } from '../cas/index.js'

/** Plaintext kept behind the stream position for requests that arrive late. */
const WINDOW_BYTES = 4 * 1024 * 1024
/** A request this far ahead of the stream is still served by reading on (not a seek). */
const SKIP_AHEAD_BYTES = 2 * 1024 * 1024

type Timed = <T>(p: Promise<T>, what: string) => Promise<T>

export class StreamReader {
  private stream: AsyncGenerator<Buffer> | null = null
  /** Buffers covering [windowStart, streamPos). */
  private window: Buffer[] = []
  private windowStart = 0
  private streamPos = 0
  private lock: Promise<void> = Promise.resolve()

  constructor(private readonly cas: Cas, readonly ref: FileRef, private readonly what: string, private readonly timed: Timed) {}

  /** Reads [pos, pos + len) into buf; returns the byte count. */
  read(buf: Buffer, len: number, pos: number): Promise<number> {
    const run = this.lock.then(() => this.readLocked(buf, len, pos))
    this.lock = run.then(() => {}, () => {})
    return run
  }

  private async readLocked(buf: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(pos + len, this.ref.size)
    if (end <= pos) return 0
    const inWindow = pos >= this.windowStart && pos <= this.streamPos + SKIP_AHEAD_BYTES
    if (!inWindow && pos !== 0) {
      const data = await this.timed(this.cas.read(this.ref, pos, end - pos, this.what), this.what)
      data.copy(buf)
      return data.length
    }
    if (!inWindow || this.stream === null) this.restart()
    try {
      while (this.streamPos < end) {
        const next = await this.timed(this.stream!.next(), this.what)
        if (next.done) break
        this.window.push(next.value)
        this.streamPos += next.value.length
      }
    } catch (err) {
      // The stream may be stuck or broken: the next read starts over.
      this.stream = null
      this.window = []
      this.windowStart = 0
      this.streamPos = 0
      throw err
    }
    this.trim(pos)
    return this.copyOut(buf, pos, Math.min(end, this.streamPos))
  }

  private restart(): void {
    void this.stream?.return(undefined)
    this.stream = this.cas.readFile(this.ref, this.what)
    this.window = []
    this.windowStart = 0
    this.streamPos = 0
  }

  /** Drops buffers wholly before `pos` once the window is over its size. */
  private trim(pos: number): void {
    let size = this.streamPos - this.windowStart
    while (this.window.length > 1 && size > WINDOW_BYTES) {
      const first = this.window[0]!
      if (this.windowStart + first.length > pos) break
      this.window.shift()
      this.windowStart += first.length
      size -= first.length
    }
  }

  private copyOut(buf: Buffer, from: number, to: number): number {
    let at = this.windowStart
    let copied = 0
    for (const b of this.window) {
      const bEnd = at + b.length
      if (bEnd > from && at < to) {
        const s = Math.max(from, at)
        const e = Math.min(to, bEnd)
        b.copy(buf, s - from, s - at, e - at)
        copied += e - s
      }
      at = bEnd
      if (at >= to) break
    }
    return copied
  }

  close(): void {
    void this.stream?.return(undefined)
    this.stream = null
    this.window = []
  }
}
