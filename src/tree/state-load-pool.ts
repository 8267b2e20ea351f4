/**
 * Worker threads that read a joiner's saved shards (saved-shard.ts) beside the main thread:
 * Automerge's load (with its hash check) and materialize of every shard were most of a 1M-file
 * join on one core, and garbage for the heap that holds the index. `count` 0 reads on the
 * calling thread (at the call). Requests go round-robin; each worker answers in order.
 */
import os from 'node:os'
import type { Worker } from 'node:worker_threads'
import { startWorker } from '../cas/worker-file.js'
import { readSavedShard, type SavedShardRead } from './saved-shard.js'

export interface LoadRequest { id: number; actor: string; name: string; bytes: Uint8Array; heads: string[] }
export type LoadReply = { id: number; read: SavedShardRead } | { id: number; error: string }

/** Workers by default: one per core, at most 4 (the main thread mostly waits for them). */
export function defaultLoadWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()))
}

export class SavedShardReaders {
  private readonly workers: Worker[] = []
  private readonly waiting = new Map<number, { resolve(r: SavedShardRead): void; reject(e: Error): void }>()
  private nextId = 1
  private turn = 0
  private failed: Error | null = null

  constructor(private readonly actor: string, count: number) {
    for (let i = 0; i < count; i++) {
      const w = startWorker('state-load-worker', import.meta.url)
      w.unref()
      w.on('message', (m: LoadReply) => {
        const p = this.waiting.get(m.id)
        if (!p) return
        this.waiting.delete(m.id)
        if ('error' in m) p.reject(new Error(`reading a saved shard: ${m.error}`))
        else p.resolve(m.read)
      })
      w.on('error', (err) => this.fail(err))
      w.on('exit', (code) => { if (this.workers.includes(w)) this.fail(new Error(`a state-load worker exited (code ${code})`)) })
      this.workers.push(w)
    }
  }

  /** Whether reads run on other threads (then keep several in flight). */
  get threaded(): boolean { return this.workers.length > 0 }

  read(name: string, bytes: Uint8Array, heads: string[]): Promise<SavedShardRead> {
    if (this.workers.length === 0) {
      try {
        return Promise.resolve(readSavedShard(this.actor, name, bytes, heads))
      } catch (e) {
        return Promise.reject(e as Error)
      }
    }
    if (this.failed) return Promise.reject(this.failed)
    const id = this.nextId++
    // A copy of just these bytes, moved: cloning a view would copy the whole buffer under it (the state file).
    const own = new Uint8Array(bytes)
    const req: LoadRequest = { id, actor: this.actor, name, bytes: own, heads }
    const w = this.workers[this.turn++ % this.workers.length]!
    return new Promise<SavedShardRead>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      w.postMessage(req, [own.buffer as ArrayBuffer])
    })
  }

  private fail(err: Error): void {
    this.failed ??= err
    for (const p of this.waiting.values()) p.reject(err)
    this.waiting.clear()
  }

  /** Stops the workers (reads still waiting fail). */
  async close(): Promise<void> {
    const ws = this.workers.splice(0)
    this.fail(new Error('the state-load workers were stopped'))
    await Promise.all(ws.map((w) => w.terminate()))
  }
}
