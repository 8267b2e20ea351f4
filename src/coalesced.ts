// Background work that must not run twice at once and must not miss a request: a call while a
// run is going on asks for one more run after it (all such calls share that one), so whatever
// changed meanwhile is seen. Used by sweeps triggered by events and timers (pins, eviction,
// mirrors following drop records, ...).

export class Coalesced {
  private running: Promise<void> | null = null
  private again = false

  /**
   * `step`: one run. `onError`: where a failed run is reported (a run never rejects: the next
   * request tries again). `stopped`: once true, no further run starts.
   */
  constructor(
    private readonly step: () => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly stopped: () => boolean = () => false
  ) {}

  /** Starts a run, or asks the current one for one more; resolves when no run is pending. */
  run(): Promise<void> {
    if (this.stopped()) return this.running ?? Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.step().catch((err: unknown) => this.onError(err instanceof Error ? err : new Error(String(err))))
        } while (this.again && !this.stopped())
      } finally {
        this.running = null
      }
    })()
    return this.running
  }

  /** The run going on, if any (to wait for it at close). */
  get current(): Promise<void> {
    return this.running ?? Promise.resolve()
  }
}
