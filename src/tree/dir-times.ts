/**
 * A directory's mtime (and so its ctime, times.ts ctimeOf) moves when an entry is created,
 * removed or renamed in it (POSIX; spec/tree.md "Times"). The view shows the new time at
 * once; the record gets one `mtime` put per directory per flush, whatever the number of
 * entries that changed in it (an import of 10k files into one directory costs one put, not
 * 10k), and a directory created in the same flush takes the time into its creation (Tree.edit's
 * folding). The root's is the `meta` key `root.mtime`, written once per flush.
 */
import { putTime, recordObj } from './model.js'
import type { Put } from './bulk-create.js'

export class DirTimes {
  /** Per directory: the time its pending put writes, while that put is the last buffered edit of its record. */
  private readonly slots = new Map<string, { time: number }>()
  /** The root's new mtime, written to `meta` at the flush (null: none). */
  root: number | null = null

  /** Record `id` got another buffered edit: a later touch writes a put after it, not into the earlier one. */
  edited(id: string): void {
    if (this.slots.size > 0) this.slots.delete(id)
  }

  /**
   * Directory `id`'s mtime is now `time`: the put to buffer for its record, or null when its
   * pending put (still the record's last edit) now writes that time.
   */
  touch(id: string, time: number): Put | null {
    const pending = this.slots.get(id)
    if (pending) {
      pending.time = time
      return null
    }
    const slot = { time }
    this.slots.set(id, slot)
    return (h) => putTime(h, recordObj(h, id), 'mtime', slot.time)
  }

  /** The flush wrote every buffered edit. */
  clear(): void {
    this.slots.clear()
    this.root = null
  }
}
