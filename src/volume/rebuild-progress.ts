// What a user sees while a volume's index is rebuilt from its logs (a deleted or damaged index,
// an index of an unknown version: spec/tree.md "Checkpoints"): at 1M files that takes minutes,
// so it must never look like a hang. On a terminal, one line redrawn in place; elsewhere (a
// server under systemd, a script's stderr), a plain line once the rebuild has taken a while,
// then one every LINE_EVERY_MS and one at the end: short rebuilds (a new volume) print nothing.

/** Where the lines go: a terminal (isTTY) or not. */
export interface ProgressStream { write(s: string): unknown; isTTY?: boolean }

/** A plain line first after this long, then at most one per LINE_EVERY_MS. */
export const QUIET_MS = 2_000
export const LINE_EVERY_MS = 10_000
/** A terminal line is redrawn at most this often, and only for a rebuild of this many entries or more. */
const REDRAW_MS = 200
const MIN_ENTRIES = 100

/**
 * A replay progress callback for volume `name` (Replay.progress): `(done, total)` as entries
 * apply, `(-1, 0)` once the rebuild ended.
 */
export function rebuildProgress(name: string, stream: ProgressStream, clock: () => number = Date.now): (done: number, total: number) => void {
  const start = clock()
  const what = `rebuilding the index of volume ${name} from its logs`
  let last = -Infinity
  let shown = false
  let done = 0
  if (stream.isTTY) {
    return (n, total) => {
      if (n < 0) {
        if (shown) stream.write('\n')
        return
      }
      const now = clock()
      if (total < MIN_ENTRIES || now - last < REDRAW_MS) return
      last = now
      shown = true
      stream.write(`\r${what}: ${n}/${total} entries`)
    }
  }
  return (n, total) => {
    const now = clock()
    if (n < 0) {
      if (shown) stream.write(`${what}: done, ${done} entries in ${((now - start) / 1000).toFixed(1)} s\n`)
      return
    }
    done = n
    if (now - start < QUIET_MS || now - last < LINE_EVERY_MS) return
    last = now
    shown = true
    stream.write(`${what}: ${n}/${total} entries\n`)
  }
}
