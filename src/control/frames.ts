// The control socket's framing (spec/control.md "Framing"): 1 byte type, 4 bytes big-endian
// length, payload. Both ends, and finding the socket.
import net from 'node:net'
import { Writable } from 'node:stream'
import { DataPaths } from '../data-paths.js'

/** Requests are small; anything larger is a broken or hostile client. */
export const MAX_REQUEST_BYTES = 1 << 20
const MAX_FRAME_BYTES = 16 << 20

export const FRAME = {
  /** client → server: the request (JSON). */
  request: 0x52 /* R */,
  /** server → client: bytes for the client's stdout (a file's content). */
  stdout: 0x4f /* O */,
  /** server → client: bytes for the client's stderr (only to a version 1 client, telling it to upgrade). */
  stderr: 0x45 /* E */,
  /** server → client: one event (JSON object with `message_type`): progress, warnings, watch events. */
  event: 0x56 /* V */,
  /** server → client: the last frame (JSON `{ok, result}` or `{ok: false, error}`). */
  exit: 0x58 /* X */
} as const

export function socketPath(dataDir: string): string {
  return new DataPaths(dataDir).controlSocket
}

export function encodeFrame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head[0] = type
  head.writeUInt32BE(payload.length, 1)
  return Buffer.concat([head, payload])
}

/** Splits a byte stream into frames; throws on an oversized frame. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0)
  constructor(private readonly limit = MAX_FRAME_BYTES) {}

  push(data: Buffer): { type: number; payload: Buffer }[] {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data])
    const frames: { type: number; payload: Buffer }[] = []
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1)
      if (len > this.limit) throw new Error(`control frame of ${len} bytes exceeds the limit of ${this.limit}`)
      if (this.buf.length < 5 + len) break
      frames.push({ type: this.buf[0], payload: this.buf.subarray(5, 5 + len) })
      this.buf = this.buf.subarray(5 + len)
    }
    return frames
  }
}

/**
 * A Writable that sends what is written as frames of one type, in order. It waits for the
 * socket only when the socket's buffer is full (backpressure for a large `cat`). Writes made
 * while one waits queue in the Writable, not yet on the socket: whoever sends the exit frame
 * must first wait for `drained` (else the client stops reading at the exit frame and the
 * queued output is lost).
 */
export function frameWriter(socket: net.Socket, type: number): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
      if (socket.destroyed) return cb()
      if (socket.write(encodeFrame(type, data))) return cb()
      const go = (): void => {
        socket.off('drain', go)
        socket.off('close', go)
        cb()
      }
      socket.on('drain', go)
      socket.on('close', go)
    }
  })
}

/** Resolves once everything written to `w` so far has been handed to its socket (then ends `w`). */
export function drained(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    w.end(() => resolve())
    w.once('error', () => resolve())
  })
}

/** Connects to the server's socket; null when no server answers there. */
export function connect(dataDir: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath(dataDir))
    sock.once('connect', () => {
      sock.removeAllListeners('error')
      resolve(sock)
    })
    sock.once('error', () => resolve(null))
  })
}
