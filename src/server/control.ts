// The control socket: how the CLI hands a command to the running server (spec/control.md).
//
// One request per connection. The client sends its argv and working directory; the server
// runs the same command with its already-open node and streams back stdout and stderr,
// then the exit code. Frames: 1 byte type, 4 bytes big-endian length, payload.
import net from 'node:net'
import path from 'node:path'
import { Writable } from 'node:stream'
import { DataPaths } from '../data-paths.js'

export const CONTROL_VERSION = 1
/** Requests are small (argv); anything larger is a broken or hostile client. */
export const MAX_REQUEST_BYTES = 1 << 20
const MAX_FRAME_BYTES = 16 << 20

export const FRAME = { request: 0x52 /* R */, stdout: 0x4f /* O */, stderr: 0x45 /* E */, exit: 0x58 /* X */ } as const

export interface ControlRequest {
  version: number
  argv: string[]
  cwd: string
  /** The client's stderr is a terminal (optional, absent = false): the command may draw progress on it. */
  stderrTTY?: boolean
}

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

export function decodeRequest(payload: Buffer): ControlRequest {
  let req: unknown
  try {
    req = JSON.parse(payload.toString('utf8'))
  } catch {
    throw new Error('control request is not JSON')
  }
  const r = req as Partial<ControlRequest>
  if (r.version !== CONTROL_VERSION) throw new Error(`control request version ${String(r.version)} is not supported (server speaks ${CONTROL_VERSION})`)
  if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === 'string') || typeof r.cwd !== 'string') {
    throw new Error('control request must have argv (strings) and cwd')
  }
  if (r.stderrTTY !== undefined && typeof r.stderrTTY !== 'boolean') throw new Error('control request stderrTTY must be a boolean')
  return { version: r.version, argv: r.argv, cwd: r.cwd, ...(r.stderrTTY ? { stderrTTY: true } : {}) }
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

/**
 * Runs argv on the server behind `sock`, copying its output to ours; resolves to the exit
 * code. A server that goes away mid-command is an error, not a silent success.
 */
export function forward(sock: net.Socket, argv: string[], cwd: string, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader()
    let done = false
    sock.on('data', (data: Buffer) => {
      let frames
      try {
        frames = reader.push(data)
      } catch (err) {
        sock.destroy()
        return reject(err)
      }
      for (const f of frames) {
        if (f.type === FRAME.stdout) stdout.write(f.payload)
        else if (f.type === FRAME.stderr) stderr.write(f.payload)
        else if (f.type === FRAME.exit) {
          done = true
          sock.end()
          resolve(Number(JSON.parse(f.payload.toString()).code) || 0)
        }
      }
    })
    sock.on('error', (err) => {
      if (!done) reject(new Error(`lost the connection to the server: ${err.message}`))
    })
    sock.on('close', () => {
      if (!done) reject(new Error('the server closed the connection before the command finished (see its log)'))
    })
    const req: ControlRequest = { version: CONTROL_VERSION, argv, cwd, ...((stderr as NodeJS.WriteStream).isTTY ? { stderrTTY: true } : {}) }
    sock.write(encodeFrame(FRAME.request, Buffer.from(JSON.stringify(req))))
  })
}
