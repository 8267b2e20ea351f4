// When live replay applies what replication brought (spec/oplog.md "Live application").
//
// Blocks of the other writers' logs arrive one at a time, in seq order (held-range.ts
// downloads linearly), and replay can apply an entry only once every entry before it in its
// log is held. Applying after every short pause (25 ms) would make a merge of thousands of
// entries hundreds of small applies: each pays the per-call costs (a shard's Automerge call,
// the heap check, re-reading touched index rows), which doubled a 10k + 10k merge's CPU when
// tried. Waiting for the whole download serializes the work instead: nothing is applied while
// blocks arrive, and while one server applies its turn it answers the other's requests slowly.
//
// So arrivals are applied in windows: soon (SHORT_MS) once nothing more is coming (every
// followed log is held up to its known length) or once WINDOW_ENTRIES entries wait; else at
// most WINDOW_MS after the first arrival still waiting. A single edit from a peer is applied
// within SHORT_MS, as before; a long download is applied in windows of thousands of entries
// while it goes on.

/** How long live application waits for more blocks before applying what arrived. */
export const SHORT_MS = 25
/** The longest an arrived entry waits while more of the download is still coming. */
export const WINDOW_MS = 1000
/** Entries held and not applied that make a window worth applying at once. */
export const WINDOW_ENTRIES = 4096

/** What the pacer asks of the volume it paces. */
export interface PaceSource {
  /** Entries held contiguously (applicable) beyond what was applied, over every followed log. */
  waiting(): number
  /** Whether every followed log is held up to the length known for it (nothing more is coming now). */
  complete(): boolean
  /** Applies what is held (the volume's refresh); called at most once per timer. */
  apply(): void
}

export class LivePace {
  private timer: NodeJS.Timeout | null = null
  private due = 0
  private closed = false

  constructor(
    private readonly source: PaceSource,
    private readonly limits: { shortMs: number; windowMs: number; windowEntries: number } = { shortMs: SHORT_MS, windowMs: WINDOW_MS, windowEntries: WINDOW_ENTRIES }
  ) {}

  /** A block arrived (or was appended): applies it soon, or with the window it belongs to. */
  arrived(): void {
    if (this.closed) return
    const soon = this.source.complete() || this.source.waiting() >= this.limits.windowEntries
    const at = Date.now() + (soon ? this.limits.shortMs : this.limits.windowMs)
    if (this.timer !== null) {
      if (this.due <= at) return
      clearTimeout(this.timer) // a window's wait cut short: the download ended or the window filled
    }
    this.due = at
    this.timer = setTimeout(() => {
      this.timer = null
      if (!this.closed) this.source.apply()
    }, at - Date.now())
  }

  /** Applies soon whatever arrived (a resume, a writer added). */
  now(): void {
    if (this.closed) return
    if (this.timer !== null) {
      if (this.due <= Date.now() + this.limits.shortMs) return
      clearTimeout(this.timer)
    }
    this.due = Date.now() + this.limits.shortMs
    this.timer = setTimeout(() => {
      this.timer = null
      if (!this.closed) this.source.apply()
    }, this.limits.shortMs)
  }

  get pending(): boolean {
    return this.timer !== null
  }

  close(): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }
}
