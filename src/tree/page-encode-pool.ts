/**
 * Worker threads that encode the page buckets of a commit writing a whole index (a joiner's
 * first: every entry of the volume, most of it rows turned into JSON and BLAKE2b over the
 * chunks), so the main thread (the mount) only gathers the entries. The bytes are those
 * encodePage gives on the calling thread: the commit puts them in the same order.
 */
import type { Worker } from 'node:worker_threads'
import { startWorker } from '../cas/worker-file.js'
import type { RawNode } from './model.js'
import type { Page } from './index-page.js'

type EntryData = [id: string, raw: RawNode | null, parent: string | null, name: string | null, live: number, versions: number]
export interface EncodeRequest { id: number; dirs: [string, EntryData[]][] }
export type EncodeReply = { id: number; bytes: ArrayBuffer; digest: string } | { id: number; error: string }

export class PageEncoders {
  private readonly workers: Worker[] = []
  private readonly waiting = new Map<number, { resolve(r: { bytes: Buffer; digest: string }): void; reject(e: Error): void }>()
  private nextId = 1
  private turn = 0
  private failed: Error | null = null

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      const w = startWorker('page-encode-worker', import.meta.url)
      w.unref()
      w.on('message', (m: EncodeReply) => {
        const p = this.waiting.get(m.id)
        if (!p) return
        this.waiting.delete(m.id)
        if ('error' in m) p.reject(new Error(`encoding a page bucket: ${m.error}`))
        else p.resolve({ bytes: Buffer.from(m.bytes), digest: m.digest })
      })
      w.on('error', (err) => this.fail(err))
      w.on('exit', (code) => { if (this.workers.includes(w)) this.fail(new Error(`a page-encode worker exited (code ${code})`)) })
      this.workers.push(w)
    }
  }

  /** encodePage(page, null) on a worker. */
  encode(page: Page): Promise<{ bytes: Buffer; digest: string }> {
    if (this.failed) return Promise.reject(this.failed)
    const dirs: [string, EntryData[]][] = []
    for (const [dir, m] of page) {
      const list: EntryData[] = []
      for (const [id, e] of m) list.push([id, e.raw, e.parent, e.name, e.live, e.versions])
      dirs.push([dir, list])
    }
    const id = this.nextId++
    const w = this.workers[this.turn++ % this.workers.length]!
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      w.postMessage({ id, dirs } satisfies EncodeRequest)
    })
  }

  private fail(err: Error): void {
    this.failed ??= err
    for (const p of this.waiting.values()) p.reject(err)
    this.waiting.clear()
  }

  /** Stops the workers (encodes still waiting fail). */
  async close(): Promise<void> {
    const ws = this.workers.splice(0)
    this.fail(new Error('the page-encode workers were stopped'))
    await Promise.all(ws.map((w) => w.terminate()))
  }
}
