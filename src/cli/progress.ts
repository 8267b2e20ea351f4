// Progress of a long op on the CLI: the `status` events the op streams (src/control/progress.ts)
// drawn as one line rewritten in place on a terminal (bar, percentage, counts, rate, time
// left), or with --json printed one object per line on stdout, restic-style, followed by one
// `{"message_type": "summary", ...}`. Neither a terminal nor --json: nothing (stderr stays clean
// for scripts) until the command's final line.
import { formatBytes } from '../format-bytes.js'
import type { ControlEvent } from '../control/requests.js'

/** An event's fields, read loosely: a client ignores what it does not know. */
type Fields = Record<string, unknown>

type Stream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number }

export interface ViewOptions {
  /** One JSON object per line on stdout instead of a line on stderr. */
  json: boolean
  /** The clock the rate is measured with (tests give a fake one). */
  now?: () => number
}

/** How far back the rate looks: recent enough to follow changes, long enough to be steady. */
const RATE_WINDOW_MS = 10_000
const BAR_WIDTH = 30

export class ProgressView {
  private drawn = false
  private readonly now: () => number
  /** (time, amount done) of recent events, for the rate. */
  private samples: [number, number][] = []

  constructor(private readonly stdout: NodeJS.WritableStream, private readonly stderr: Stream, private readonly opts: ViewOptions) {
    this.now = opts.now ?? Date.now
  }

  private get tty(): boolean {
    return !this.opts.json && this.stderr.isTTY === true
  }

  /** Shows one event the op streamed; true when it was progress (`status`), false for others (the caller's business). */
  event(e: ControlEvent): boolean {
    if (e.message_type !== 'status') return false
    if (this.opts.json) this.stdout.write(JSON.stringify(e) + '\n')
    else if (this.tty) {
      const line = statusLine(e, this.rate(e))
      const cols = this.stderr.columns ?? 0
      // Longer than the terminal, it would wrap and `\r` would no longer rewrite it.
      this.stderr.write(`\r${cols > 1 && line.length >= cols ? line.slice(0, cols - 1) : line}\x1b[K`)
      this.drawn = true
    }
    return true
  }

  /** A line for the user that is not progress (said on stderr, under the bar), or with --json an object on stdout. */
  note(text: string, json: Record<string, unknown>): void {
    if (this.opts.json) return void this.stdout.write(JSON.stringify(json) + '\n')
    this.end()
    this.stderr.write(text + '\n')
  }

  /** Ends the line drawn (the last state stays on screen); with --json writes the summary object. */
  finish(summary: Record<string, unknown>): void {
    this.end()
    if (this.opts.json) this.stdout.write(JSON.stringify({ message_type: 'summary', ...summary }) + '\n')
  }

  /** Ends the line drawn, if any (before an error or a final line). */
  end(): void {
    if (this.drawn) this.stderr.write('\n')
    this.drawn = false
  }

  /** Units (or bytes, when the op counts them) a second over the recent events; null before two. */
  private rate(e: Fields): number | null {
    const t = this.now()
    const v = measure(e).done
    this.samples.push([t, v])
    while (this.samples.length > 2 && t - this.samples[0]![0] > RATE_WINDOW_MS) this.samples.shift()
    const [t0, v0] = this.samples[0]!
    return t - t0 <= 0 ? null : ((v - v0) * 1000) / (t - t0)
  }
}

/** What a status event counts: bytes when it has them, else its unit (`files`, `entries`, ...). */
function measure(e: Fields): { unit: string; done: number; total: number; bytes: boolean } {
  if (typeof e.bytes_total === 'number') return { unit: 'bytes', done: Number(e.bytes_done ?? 0), total: e.bytes_total, bytes: true }
  const unit = units(e)[0]
  return unit ? { unit, done: Number(e[`${unit}_done`]), total: Number(e[`${unit}_total`]), bytes: false } : { unit: '', done: 0, total: 0, bytes: false }
}

/** The units an event counts in pairs `X_done`/`X_total` (not bytes, not the percentage). */
function units(e: Fields): string[] {
  const out: string[] = []
  for (const k of Object.keys(e)) {
    const m = /^(.+)_done$/.exec(k)
    if (m && m[1] !== 'percent' && m[1] !== 'bytes' && typeof e[`${m[1]}_total`] === 'number') out.push(m[1]!)
  }
  return out
}

/** `1:05`, `1:02:03`: a duration as a clock shows it. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60]
  const [h, m, sec] = hms.map((n) => String(n).padStart(2, '0'))
  return hms[0]! > 0 ? `${Number(h)}:${m}:${sec}` : `${Number(m)}:${sec}`
}

/** The line a terminal shows for a status event: `[###...] 42% 120/300 files, 1.2MiB/3MiB, 2.5MiB/s, 0:12 left`. */
export function statusLine(e: Fields, rate: number | null): string {
  const frac = typeof e.percent_done === 'number' ? Math.min(1, Math.max(0, e.percent_done)) : 0
  const bar = '#'.repeat(Math.round(frac * BAR_WIDTH)).padEnd(BAR_WIDTH, '.')
  const parts = units(e).map((u) => `${String(e[`${u}_done`])}/${String(e[`${u}_total`])} ${u}`)
  if (typeof e.bytes_total === 'number') parts.push(`${formatBytes(Number(e.bytes_done ?? 0))}/${formatBytes(e.bytes_total)}`)
  const m = measure(e)
  if (rate !== null && rate > 0) parts.push(m.bytes ? `${formatBytes(Math.round(rate))}/s` : `${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} ${m.unit}/s`)
  const left = e.seconds_remaining
  if (typeof left === 'number' && frac < 1) parts.push(`${clock(left)} left`)
  const phase = typeof e.phase === 'string' ? `${e.phase}: ` : ''
  return `[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${phase}${parts.join(', ')}`
}

/**
 * The summary object of a command's `--json` output (its last line, after the status events
 * ProgressView.finish writes), for scripts that read it (tests, benchmarks). Throws if the last
 * line is not a summary.
 */
export function summaryOf(stdout: string): Record<string, any> {
  const lines = stdout.trim().split('\n')
  const last = JSON.parse(lines[lines.length - 1] ?? '') as Record<string, unknown>
  if (last.message_type !== 'summary') throw new Error(`the last line is not a summary: ${stdout}`)
  const { message_type: _, ...fields } = last
  return fields
}
