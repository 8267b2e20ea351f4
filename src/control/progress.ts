// Progress of a long op, as the `status` events it streams (spec/control.md "Events"):
// restic-style, `percent_done` (never going back), `seconds_elapsed`, `seconds_remaining`
// (null until something is done) and counts (`UNIT_done`, `UNIT_total`, `bytes_done`,
// `bytes_total`, op-specific extras). At most one event per `everyMs` (default 100 ms: ≤ 10
// a second), so a client may render every event it gets; the first and a forced one always go.
// The client renders them (src/cli/progress.ts); the op never knows whether anyone draws.
import type { ControlEvent } from './requests.js'

export interface ProgressCounts {
  /** Units done and known in all (the total may grow while the op runs). */
  done: number
  total: number
  /** Bytes, when the op knows them: the percentage then follows bytes, not units. */
  bytesDone?: number
  bytesTotal?: number
  /** What the op is doing now, when it goes through phases ("scan", "rewrite", ...). */
  phase?: string
  /** What `done` and `total` count, when a phase counts something else than the op's unit. */
  unit?: string
  /** The fraction done, when the op weighs its phases itself (else from bytes or units). */
  fraction?: number
  /** Further counts for scripts (e.g. `blocks_held`). */
  extra?: Record<string, number>
}

export interface ProgressOptions {
  /** What is counted, plural: the keys are `${unit}_done` and `${unit}_total`. */
  unit: string
  everyMs?: number
  /** The clock (tests give a fake one). */
  now?: () => number
}

/** Least time between two events with the same counts. */
const QUIET_MS = 1000

export type StatusEvent = Extract<ControlEvent, { message_type: 'status' }>

export class OpProgress {
  private readonly t0: number
  private last = -Infinity
  private percent = 0
  private readonly everyMs: number
  private readonly now: () => number
  /** The counts of the last update held back by the throttle (null: the last one was sent). */
  private pending: ProgressCounts | null = null
  /** The counts of the last update, sent or not. */
  private latest: ProgressCounts | null = null
  /** The counts of the last event sent, as JSON. */
  private sent = ''

  constructor(private readonly emit: (e: ControlEvent) => void, private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now
    this.t0 = this.now()
    this.everyMs = opts.everyMs ?? 100
  }

  /** The fraction done: by bytes when their total is known, else by units; 0 while nothing is known to do. */
  static fraction(c: ProgressCounts): number {
    if (c.fraction !== undefined) return Math.min(1, Math.max(0, c.fraction))
    const [d, t] = c.bytesTotal !== undefined && c.bytesTotal > 0 ? [c.bytesDone ?? 0, c.bytesTotal] : [c.done, c.total]
    return t <= 0 ? 0 : Math.min(1, Math.max(0, d / t))
  }

  /** Nothing left of the total (bytes when known, else units; a total of 0 too). */
  private static done(c: ProgressCounts): boolean {
    if (c.fraction !== undefined) return c.fraction >= 1
    return c.bytesTotal !== undefined && c.bytesTotal > 0 ? (c.bytesDone ?? 0) >= c.bytesTotal : c.done >= c.total
  }

  /** Sends a status event unless one went less than `everyMs` ago (`force`: send anyway). */
  update(c: ProgressCounts, force = false): void {
    const now = this.now()
    this.pending = c
    this.latest = c
    if (!force && now - this.last < this.everyMs) return
    // Nothing moved: a line a second at most (the elapsed time and the time left still move).
    const same = JSON.stringify(c)
    if (!force && same === this.sent && now - this.last < QUIET_MS) {
      this.pending = null // the client has these counts
      return
    }
    this.last = now
    this.sent = same
    this.pending = null
    this.emit(this.event(c, now))
  }

  /**
   * Sends where the op ended (`c`, else the last counts given): all done (nothing left of
   * the total, even a total of 0) is 100%. Nothing is sent when the last event already said it.
   */
  end(c?: ProgressCounts): void {
    const last = c ?? this.latest
    if (!last) return
    const was = this.percent
    if (OpProgress.done(last)) this.percent = 1
    if (c === undefined && this.pending === null && this.percent === was) return
    this.update(last, true)
  }

  /** Seconds since the op started. */
  elapsed(): number {
    return (this.now() - this.t0) / 1000
  }

  private event(c: ProgressCounts, now: number): StatusEvent {
    // A total that grows (files found while importing) must not move the bar back.
    this.percent = Math.max(this.percent, OpProgress.fraction(c))
    const secs = (now - this.t0) / 1000
    const f = this.percent
    const left = f <= 0 || secs <= 0 ? null : f >= 1 ? 0 : Math.round((secs * (1 - f)) / f)
    const u = c.unit ?? this.opts.unit
    return {
      message_type: 'status',
      ...(c.phase !== undefined ? { phase: c.phase } : {}),
      percent_done: Number(f.toFixed(4)),
      seconds_elapsed: Number(secs.toFixed(1)),
      seconds_remaining: left,
      [`${u}_done`]: c.done,
      [`${u}_total`]: c.total,
      ...(c.bytesTotal !== undefined ? { bytes_done: c.bytesDone ?? 0, bytes_total: c.bytesTotal } : {}),
      ...c.extra
    }
  }
}
