// Errors to errnos, and the one wrapper every FUSE handler goes through.
//
// fuse-native crashes the process (leaving a dead mount) when a handler throws, a promise
// rejects, or a callback is called with an Error or nothing; a second call of a callback
// answers some later op. So every handler is an async function returning a value or throwing,
// and `wrap` turns that into exactly one `cb(errno, value)`.
import './native-lib.js' // before fuse-native: makes its libfuse loadable
import Fuse from 'fuse-native'
import { TreeError } from '../tree/index.js'
import { CorruptContentError, MissingContentError } from '../cas/index.js'

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void

/** An error that is already an answer: the errno name says it all. */
export class FsError extends Error {
  readonly code: string
  constructor(code: string, message?: string) {
    super(message ? `${code}: ${message}` : code)
    this.name = 'FsError'
    this.code = code
  }
}

/** Content could not be read in time (not held locally, no peer answered). */
export class ReadTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: content not available within ${ms} ms`)
    this.name = 'ReadTimeoutError'
  }
}

/** Negative errno for a code name, or null if fuse-native knows no such code. */
export function errnoOf(code: string): number | null {
  const v = (Fuse as unknown as Record<string, unknown>)[code]
  return typeof v === 'number' && v < 0 ? v : null
}

/**
 * The errno for an error, and whether it is unexpected (worth an error log line). Tree and
 * FsError codes are answers; system errors keep their code; content errors are EIO.
 */
export function toErrno(err: unknown): { errno: number; unexpected: boolean } {
  if (err instanceof TreeError || err instanceof FsError) {
    return { errno: errnoOf(err.code) ?? Fuse.EIO, unexpected: false }
  }
  if (err instanceof MissingContentError || err instanceof CorruptContentError || err instanceof ReadTimeoutError) {
    return { errno: Fuse.EIO, unexpected: true }
  }
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (typeof code === 'string') {
    const errno = errnoOf(code)
    if (errno !== null) return { errno, unexpected: code === 'EIO' || code === 'ENOSPC' || code === 'EBADF' }
  }
  return { errno: Fuse.EIO, unexpected: true }
}

/** A FIFO counting semaphore: caps how many handlers run at once. */
export class Limiter {
  private active = 0
  private readonly queue: (() => void)[] = []
  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve))
    else this.active++
    try {
      return await fn()
    } finally {
      const next = this.queue.shift()
      if (next) next()
      else this.active--
    }
  }
}

export interface WrapContext {
  log: LogFn
  limiter: Limiter
}

/**
 * Adapts `handler` (async, returns the reply value or throws) to fuse-native's callback style.
 * `reply` shapes the callback arguments: for most ops `cb(0, value)`; read/write reply with
 * the byte count alone.
 */
export function wrap<A extends unknown[], R>(
  ctx: WrapContext,
  name: string,
  handler: (...args: A) => Promise<R>,
  reply: 'value' | 'count' = 'value'
): (...argsAndCb: unknown[]) => void {
  return (...argsAndCb) => {
    const cb = argsAndCb[argsAndCb.length - 1] as (...out: unknown[]) => void
    const args = argsAndCb.slice(0, -1) as A
    let answered = false
    const answer = (...out: unknown[]): void => {
      if (answered) {
        ctx.log('error', `fuse ${name}: handler answered twice (ignored)`)
        return
      }
      answered = true
      try {
        cb(...out)
      } catch (err) {
        ctx.log('error', `fuse ${name}: reply failed: ${(err as Error).message}`)
      }
    }
    ctx.limiter.run(() => handler(...args)).then(
      (value) => {
        if (reply === 'count') answer(typeof value === 'number' ? value : 0)
        else if (value === undefined) answer(0)
        else answer(0, value)
      },
      (err: unknown) => {
        const { errno, unexpected } = toErrno(err)
        if (unexpected) ctx.log('error', `fuse ${name} ${describeArgs(args)}: ${(err as Error)?.stack ?? String(err)}`)
        else ctx.log('debug', `fuse ${name} ${describeArgs(args)}: ${(err as Error).message}`)
        answer(errno)
      }
    )
  }
}

function describeArgs(args: unknown[]): string {
  return args
    .filter((a) => typeof a === 'string' || typeof a === 'number')
    .map((a) => (typeof a === 'string' ? JSON.stringify(a) : String(a)))
    .join(' ')
}
