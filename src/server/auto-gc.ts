// Automatic garbage collection in the server (spec/gc.md section 7): every interval (default
// 6 h, the first run 10 minutes after start), one bounded collection: at most MAX_PACKS packs
// rewritten per run (the rest waits for the next), the grace period of spec/gc.md, one log
// line per run. BAZIL_GC_INTERVAL (a duration, `off` or `0` to disable) and BAZIL_GC_GRACE
// override the defaults.
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import { collectGarbage, DEFAULT_GRACE_MS, type GcReport } from '../gc.js'
import { parseDuration } from '../duration.js'
import { applyRetention } from '../retention.js'

export const DEFAULT_GC_INTERVAL_MS = 6 * 60 * 60 * 1000
const FIRST_RUN_MS = 10 * 60 * 1000
/** Packs rewritten per automatic run at most (~1 MiB each: bounded I/O and memory per run). */
export const AUTO_MAX_PACKS = 512

export interface AutoGcOptions {
  intervalMs?: number
  firstMs?: number
  graceMs?: number
  maxPacks?: number
}

export function autoGcOptions(env: NodeJS.ProcessEnv): AutoGcOptions | null {
  const interval = env.BAZIL_GC_INTERVAL
  if (interval === 'off' || interval === '0') return null
  return {
    intervalMs: interval ? parseDuration(interval, 'BAZIL_GC_INTERVAL') : DEFAULT_GC_INTERVAL_MS,
    graceMs: env.BAZIL_GC_GRACE ? parseDuration(env.BAZIL_GC_GRACE, 'BAZIL_GC_GRACE') : DEFAULT_GRACE_MS
  }
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`
}

export class AutoGc {
  private timer: NodeJS.Timeout | null = null
  private running: Promise<unknown> = Promise.resolve()
  private stopped = false

  constructor(private readonly node: Node, private readonly log: Log, private readonly opts: AutoGcOptions = {}) {}

  start(): void {
    this.schedule(this.opts.firstMs ?? Math.min(FIRST_RUN_MS, this.opts.intervalMs ?? DEFAULT_GC_INTERVAL_MS))
  }

  private schedule(ms: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.running = this.runOnce().finally(() => this.schedule(this.opts.intervalMs ?? DEFAULT_GC_INTERVAL_MS))
    }, ms)
    this.timer.unref()
  }

  /** One automatic run: snapshot retention rules, then a bounded collection; logs and never throws. */
  async runOnce(): Promise<GcReport | null> {
    try {
      const removed = await applyRetention(this.node)
      for (const r of removed) this.log('info', `gc: volume ${r.volume}: snapshot "${r.name}" removed by the retention rule (${r.rule})`)
      const report = await collectGarbage(this.node, { graceMs: this.opts.graceMs ?? DEFAULT_GRACE_MS, maxPacks: this.opts.maxPacks ?? AUTO_MAX_PACKS })
      this.log('info', `gc: removed ${report.removed.objects} objects (${mib(report.removed.bytes)}) from ${report.packs.rewritten} packs, moved ${report.moved.objects} live objects (${mib(report.moved.bytes)}); ${report.unreferenced.objects - report.collectable.objects} unreferenced objects wait for the grace period; data dir ${mib(report.disk.before)} -> ${mib(report.disk.after ?? report.disk.before)} in ${report.ms} ms`)
      return report
    } catch (err) {
      this.log('info', `gc: no collection this time: ${(err as Error).message}`)
      return null
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    await this.running.catch(() => {})
  }
}
