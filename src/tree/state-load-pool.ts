/**
 * Worker threads that read a joiner's saved shards (saved-shard.ts) beside the main thread:
 * Automerge's load (with its hash check) and materialize of every shard were most of a 1M-file
 * join on one core, and garbage for the heap that holds the index. `count` 0 reads on the
 * calling thread (at the call). Requests go round-robin; each worker answers in order.
 */
import os from 'node:os'
import { readSavedShard, type SavedShardRead } from './saved-shard.js'
import { WorkerRequests, type WorkerReply } from './worker-requests.js'

export interface LoadRequest { id: number; actor: string; name: string; bytes: Uint8Array; heads: string[] }
export type LoadReply = WorkerReply<{ read: SavedShardRead }>

/** Workers by default: one per core, at most 4 (the main thread mostly waits for them). */
export function defaultLoadWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()))
}

export class SavedShardReaders {
  private readonly pool: WorkerRequests<{ read: SavedShardRead }> | null

  constructor(private readonly actor: string, count: number) {
    this.pool = count > 0 ? new WorkerRequests('state-load-worker', import.meta.url, count, 'reading a saved shard') : null
  }

  /** Whether reads run on other threads (then keep several in flight). */
  get threaded(): boolean { return this.pool !== null }

  async read(name: string, bytes: Uint8Array, heads: string[]): Promise<SavedShardRead> {
    if (this.pool === null) return readSavedShard(this.actor, name, bytes, heads)
    // A copy of just these bytes, moved: cloning a view would copy the whole buffer under it (the state file).
    const own = new Uint8Array(bytes)
    const req: Omit<LoadRequest, 'id'> = { actor: this.actor, name, bytes: own, heads }
    return (await this.pool.ask(req, [own.buffer as ArrayBuffer])).read
  }

  /** Stops the workers (reads still waiting fail). */
  async close(): Promise<void> { await this.pool?.close() }
}
