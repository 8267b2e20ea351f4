/**
 * Worker threads that encode the page buckets of a commit writing a whole index (a joiner's
 * first: every entry of the volume, most of it rows turned into JSON and BLAKE2b over the
 * chunks), so the main thread (the mount) only gathers the entries. The bytes are those
 * encodePage gives on the calling thread: the commit puts them in the same order.
 */
import type { RawNode } from './model.js'
import type { Page } from './index-page.js'
import { WorkerRequests, type WorkerReply } from './worker-requests.js'

type EntryData = [id: string, raw: RawNode | null, parent: string | null, name: string | null, live: number, versions: number]
export interface EncodeRequest { id: number; dirs: [string, EntryData[]][] }
export type EncodeReply = WorkerReply<{ bytes: ArrayBuffer; digest: string }>

export class PageEncoders {
  private readonly pool: WorkerRequests<{ bytes: ArrayBuffer; digest: string }>

  constructor(count: number) {
    this.pool = new WorkerRequests('page-encode-worker', import.meta.url, count, 'encoding a page bucket')
  }

  /** encodePage(page, null) on a worker. */
  async encode(page: Page): Promise<{ bytes: Buffer; digest: string }> {
    const dirs: [string, EntryData[]][] = []
    for (const [dir, m] of page) {
      const list: EntryData[] = []
      for (const [id, e] of m) list.push([id, e.raw, e.parent, e.name, e.live, e.versions])
      dirs.push([dir, list])
    }
    const r = await this.pool.ask({ dirs } satisfies Omit<EncodeRequest, 'id'>)
    return { bytes: Buffer.from(r.bytes), digest: r.digest }
  }

  /** Stops the workers (encodes still waiting fail). */
  async close(): Promise<void> { await this.pool.close() }
}
