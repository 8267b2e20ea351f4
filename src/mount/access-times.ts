// Atime on read for mounts with `--atime` (off by default: reads never write; spec/fuse.md
// "What the mount shows"). Relatime, as Linux mounts by default: a read records its time only when the
// recorded atime is not after the last modification or change, or is a day old, so reading a
// file over and over adds at most one logged op a day, and "read since last written" (mail
// readers, tmpwatch) still works.
import type { Stat } from '../tree/view.js'
import type { Volume } from '../volume/volume.js'

const DAY_MS = 24 * 60 * 60 * 1000

/** Whether a read at `now` records a new atime (relatime). */
export function relatimeDue(st: Pick<Stat, 'atime' | 'mtime' | 'ctime'>, now: number): boolean {
  return st.atime <= st.mtime || st.atime <= st.ctime || now - st.atime >= DAY_MS
}

export class AccessTimes {
  constructor(
    private readonly enabled: boolean,
    private readonly volume: Volume,
    private readonly changed: () => void,
    private readonly log: (level: 'warn', msg: string) => void
  ) {}

  /**
   * A read of the live node at `path` (a file's first read through a handle, a directory's
   * listing). `writtenAt`: the time of writes not committed yet (the spool's mtime), which
   * count as the file's mtime.
   */
  read(path: string, writtenAt?: number): void {
    if (!this.enabled || !this.volume.canWrite) return
    try {
      const st = this.volume.tree.lookup(path)
      const now = Date.now()
      if (!st || !relatimeDue({ ...st, mtime: Math.max(st.mtime, writtenAt ?? 0) }, now)) return
      this.volume.touchAtime(path, now)
      this.changed()
    } catch (err) {
      // The read itself succeeded; an access time that cannot be recorded must not fail it.
      this.log('warn', `atime of ${path} not recorded: ${(err as Error).message}`)
    }
  }
}
