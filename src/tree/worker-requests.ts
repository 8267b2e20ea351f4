/**
 * Requests to a few worker threads of one kind (the tree's: state-load-pool.ts,
 * page-encode-pool.ts): round-robin, each answered once by the reply of its id, every one
 * still waiting failed when a worker dies or the pool is closed.
 */
import type { Transferable, Worker } from 'node:worker_threads'
import { startWorker } from '../cas/worker-file.js'

/** A reply carries the id of its request and either what was asked or why not. */
export type WorkerReply<T> = ({ id: number } & T) | { id: number; error: string }

export class WorkerRequests<T> {
  private readonly workers: Worker[] = []
  private readonly waiting = new Map<number, { resolve(r: T): void; reject(e: Error): void }>()
  private nextId = 1
  private turn = 0
  private failed: Error | null = null

  /** `count` workers running `<name>.js` next to the module `base`; `what` names a request in errors. */
  constructor(name: string, base: string, count: number, private readonly what: string) {
    for (let i = 0; i < count; i++) {
      const w = startWorker(name, base)
      w.unref()
      w.on('message', (m: WorkerReply<T>) => {
        const p = this.waiting.get(m.id)
        if (!p) return
        this.waiting.delete(m.id)
        if ('error' in m) p.reject(new Error(`${this.what}: ${m.error}`))
        else p.resolve(m as T)
      })
      w.on('error', (err) => this.fail(err))
      w.on('exit', (code) => { if (this.workers.includes(w)) this.fail(new Error(`a ${name} exited (code ${code})`)) })
      this.workers.push(w)
    }
  }

  get size(): number { return this.workers.length }

  /** Sends `req` (with an id added) to the next worker; `transfer`: buffers moved, not copied. */
  ask(req: object, transfer: Transferable[] = []): Promise<T> {
    if (this.failed) return Promise.reject(this.failed)
    const id = this.nextId++
    const w = this.workers[this.turn++ % this.workers.length]!
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      w.postMessage({ ...req, id }, transfer)
    })
  }

  private fail(err: Error): void {
    this.failed ??= err
    for (const p of this.waiting.values()) p.reject(err)
    this.waiting.clear()
  }

  /** Stops the workers (requests still waiting fail). */
  async close(): Promise<void> {
    const ws = this.workers.splice(0)
    this.fail(new Error(`the workers were stopped (${this.what})`))
    await Promise.all(ws.map((w) => w.terminate()))
  }
}
