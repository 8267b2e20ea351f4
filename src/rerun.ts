// A background job that runs one at a time (an eviction, a pin sync): a call while it runs asks
// for one more run after it, and resolves once that run is done, so every caller sees a run
// that started after its call. Never throws: failures go to `onError`.
export class Rerun {
  private running: Promise<void> | null = null
  private again = false

  constructor(
    private readonly job: () => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly stopped: () => boolean = () => false
  ) {}

  run(): Promise<void> {
    if (this.stopped()) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      do {
        this.again = false
        await this.job().catch(this.onError)
      } while (this.again && !this.stopped())
    })().finally(() => {
      this.running = null
    })
    return this.running
  }

  /** Resolves when no run is in progress. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve()
  }
}
