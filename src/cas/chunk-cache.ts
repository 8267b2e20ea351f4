// Decrypted, verified chunks kept for reads: bounded by bytes, least recently used out first,
// shared by every open file of a Cas (so readers of one file, or a chunk two reads straddle,
// decrypt it once). Keyed by store address A (per sharing key: no plaintext crosses keys).
// Loads in flight are shared too: a second reader of a chunk being loaded waits for that load.
import { Lru } from './lru.js'
import { SharedLoads } from './shared-loads.js'

export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

export class ChunkCache {
  private readonly held: Lru<string, Buffer>
  private readonly loads: SharedLoads<string, Buffer>

  constructor(readonly maxBytes = DEFAULT_CACHE_BYTES) {
    this.held = new Lru<string, Buffer>(maxBytes, (chunk) => chunk.length)
    this.loads = new SharedLoads(this.held)
  }

  /** Bytes of plaintext held now (always <= maxBytes). */
  get bytes(): number {
    return this.held.weight
  }

  get size(): number {
    return this.held.size
  }

  /** A chunk held, refreshed as most recently used. */
  get(key: string): Buffer | undefined {
    return this.held.get(key)
  }

  /** Whether the chunk is held or being loaded (no reordering). */
  covers(key: string): boolean {
    return this.held.has(key) || this.loads.loading(key)
  }

  /** The chunk from the cache, from a load in flight, or from `load` (kept once it succeeds). */
  async load(key: string, load: () => Promise<Buffer>): Promise<Buffer> {
    return (await this.loads.load(key, load))!
  }

  /** Forgets a chunk (a sequential reader is past it: drop-behind). */
  drop(key: string): void {
    this.held.delete(key)
  }
}

let shared: ChunkCache | null = null

/** The process's cache, shared by every Cas (keys are store addresses, distinct per sharing key). */
export function sharedCache(): ChunkCache {
  shared ??= new ChunkCache()
  return shared
}
