// Minimal binary reader/writer for the log formats: unsigned LEB128 varints (canonical, at
// most 2^53-1), length-prefixed byte strings and UTF-8 strings. Every read checks bounds and
// throws LogFormatError naming the field, so hostile input can't cause anything else.
import { LogFormatError } from './errors.js'

const MAX_VARINT_BYTES = 8 // 8 * 7 = 56 bits, enough for Number.MAX_SAFE_INTEGER
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export class ByteWriter {
  private chunks: Buffer[] = []
  private scratch = Buffer.alloc(MAX_VARINT_BYTES)
  length = 0

  u8(n: number): void {
    this.push(Buffer.from([n]))
  }

  varint(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new LogFormatError(`${what} must be an integer in 0..2^53-1, got ${n}`)
    let i = 0
    while (n >= 0x80) {
      this.scratch[i++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.scratch[i++] = n
    this.push(Buffer.from(this.scratch.subarray(0, i)))
  }

  raw(b: Uint8Array): void {
    this.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
  }

  bytes(b: Uint8Array, max: number, what: string): void {
    if (b.byteLength > max) throw new LogFormatError(`${what} is ${b.byteLength} bytes, over the limit of ${max}`)
    this.varint(b.byteLength, `${what} length`)
    this.raw(b)
  }

  string(s: string, max: number, what: string): void {
    if (typeof s !== 'string') throw new LogFormatError(`${what} must be a string`)
    if (LONE_SURROGATE.test(s)) throw new LogFormatError(`${what} is not well-formed Unicode (lone surrogate)`)
    this.bytes(Buffer.from(s, 'utf8'), max, what)
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks, this.length)
  }

  private push(b: Buffer): void {
    this.chunks.push(b)
    this.length += b.length
  }
}

export class ByteReader {
  private pos = 0
  constructor(private readonly buf: Uint8Array, private readonly what: string) {}

  get remaining(): number {
    return this.buf.byteLength - this.pos
  }

  u8(field: string): number {
    if (this.remaining < 1) throw this.truncated(field)
    return this.buf[this.pos++]
  }

  varint(field: string): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.remaining < 1) throw this.truncated(field)
      const b = this.buf[this.pos++]
      n += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        // A zero final byte after the first means a longer encoding than needed: reject so
        // that each value has exactly one encoding.
        if (b === 0 && i > 0) throw new LogFormatError(`${this.what}: ${field} is a non-canonical varint`)
        if (!Number.isSafeInteger(n)) throw new LogFormatError(`${this.what}: ${field} is over 2^53-1`)
        return n
      }
      scale *= 0x80
    }
    throw new LogFormatError(`${this.what}: ${field} varint is longer than ${MAX_VARINT_BYTES} bytes`)
  }

  /** A count of items that each take at least `minItemBytes`: bounded by `max` and by what is left. */
  count(field: string, max: number, minItemBytes: number): number {
    const n = this.varint(field)
    if (n > max) throw new LogFormatError(`${this.what}: ${field} ${n} is over the limit of ${max}`)
    if (n * minItemBytes > this.remaining) throw this.truncated(field)
    return n
  }

  raw(n: number, field: string): Uint8Array {
    if (this.remaining < n) throw this.truncated(field)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  bytes(max: number, field: string): Uint8Array {
    const n = this.varint(`${field} length`)
    if (n > max) throw new LogFormatError(`${this.what}: ${field} length ${n} is over the limit of ${max}`)
    return this.raw(n, field)
  }

  string(max: number, field: string): string {
    const b = this.bytes(max, field)
    try {
      return utf8.decode(b)
    } catch {
      throw new LogFormatError(`${this.what}: ${field} is not valid UTF-8`)
    }
  }

  end(): void {
    if (this.remaining !== 0) throw new LogFormatError(`${this.what}: ${this.remaining} trailing bytes`)
  }

  private truncated(field: string): LogFormatError {
    return new LogFormatError(`${this.what}: truncated at ${field}`)
  }
}
