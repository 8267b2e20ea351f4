// Progress of long work on the CLI: a bar rewritten in place on a terminal, or with --json one
// object per line, restic-style ({"message_type": "status", "percent_done", "seconds_remaining",
// ...counts} while it runs, one {"message_type": "summary", ...} at the end). Neither a
// terminal nor --json: nothing until the command's final line.

export interface ProgressCounts {
  /** Units done and known in all (the total may grow while the work runs). */
  done: number
  total: number
  /** Extra counts for the JSON events (e.g. blocks downloaded). */
  extra?: Record<string, number>
}

export interface ProgressOptions {
  /** One JSON object per line on stdout instead of a bar. */
  json: boolean
  /** What is counted, plural, for the bar ("entries") and the JSON keys (`entries_done`, `entries_total`). */
  unit: string
  /** Least time between two status lines or redraws (default 250 ms; the first and the last always show). */
  everyMs?: number
}

export class ProgressReporter {
  private readonly t0 = Date.now()
  private last = 0
  private drawn = false
  private readonly everyMs: number

  constructor(
    private readonly stdout: NodeJS.WritableStream,
    private readonly stderr: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly opts: ProgressOptions
  ) {
    this.everyMs = opts.everyMs ?? 250
  }

  private get tty(): boolean {
    return !this.opts.json && this.stderr.isTTY === true
  }

  /** Fraction done, 0..1 (0 while nothing is known to do; finish() says 1). */
  static fraction(c: ProgressCounts): number {
    return c.total <= 0 ? 0 : Math.min(1, Math.max(0, c.done / c.total))
  }

  /** Seconds left at the rate so far, null before any progress. */
  private remaining(c: ProgressCounts): number | null {
    const secs = (Date.now() - this.t0) / 1000
    if (c.done <= 0 || secs <= 0) return null
    return Math.max(0, Math.round(((c.total - c.done) / c.done) * secs))
  }

  update(c: ProgressCounts, finished = false): void {
    const now = Date.now()
    if (this.last !== 0 && now - this.last < this.everyMs) return
    this.last = now
    const frac = finished && c.done >= c.total ? 1 : ProgressReporter.fraction(c)
    const left = this.remaining(c)
    if (this.opts.json) {
      this.stdout.write(JSON.stringify({
        message_type: 'status', percent_done: Number(frac.toFixed(4)), seconds_elapsed: Math.round((now - this.t0) / 1000), seconds_remaining: left,
        [`${this.opts.unit}_done`]: c.done, [`${this.opts.unit}_total`]: c.total, ...c.extra,
      }) + '\n')
    } else if (this.tty) {
      const width = 30
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.')
      this.stderr.write(`\r[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${c.done}/${c.total} ${this.opts.unit}${left !== null ? `, ${left} s left` : ''}   `)
      this.drawn = true
    }
  }

  /** Ends the bar (a newline), or writes the JSON summary: `fields` plus the elapsed time. */
  finish(c: ProgressCounts, fields: Record<string, unknown> = {}): void {
    this.last = 0
    this.update(c, true)
    if (this.drawn) this.stderr.write('\n')
    if (this.opts.json) {
      this.stdout.write(JSON.stringify({
        message_type: 'summary', [`${this.opts.unit}_done`]: c.done, [`${this.opts.unit}_total`]: c.total, ...c.extra,
        seconds_elapsed: Number(((Date.now() - this.t0) / 1000).toFixed(3)), ...fields,
      }) + '\n')
    }
  }
}
