// Decrypted, verified chunks kept for reads: bounded by bytes, least recently used out first,
// shared by every open file of a Cas (so readers of one file, or a chunk two reads straddle,
// decrypt it once). Keyed by store address A (per sharing key: no plaintext crosses keys).
// Loads in flight are shared too: a second reader of a chunk being loaded waits for that load.

export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

export class ChunkCache {
  private readonly map = new Map<string, Buffer>()
  private readonly loading = new Map<string, Promise<Buffer>>()
  private held = 0

  constructor(readonly maxBytes = DEFAULT_CACHE_BYTES) {}

  /** Bytes of plaintext held now (always <= maxBytes). */
  get bytes(): number {
    return this.held
  }

  get size(): number {
    return this.map.size
  }

  /** A chunk held, refreshed as most recently used. */
  get(key: string): Buffer | undefined {
    const value = this.map.get(key)
    if (value === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, value)
    return value
  }

  /** Whether the chunk is held or being loaded (no reordering). */
  covers(key: string): boolean {
    return this.map.has(key) || this.loading.has(key)
  }

  /** The chunk from the cache, from a load in flight, or from `load` (kept once it succeeds). */
  load(key: string, load: () => Promise<Buffer>): Promise<Buffer> {
    const held = this.get(key)
    if (held) return Promise.resolve(held)
    let p = this.loading.get(key)
    if (p) return p
    p = load().then(
      (value) => {
        this.loading.delete(key)
        this.set(key, value)
        return value
      },
      (err: unknown) => {
        this.loading.delete(key)
        throw err
      }
    )
    this.loading.set(key, p)
    return p
  }

  /** Forgets a chunk (a sequential reader is past it: drop-behind). */
  drop(key: string): void {
    const old = this.map.get(key)
    if (!old) return
    this.map.delete(key)
    this.held -= old.length
  }

  private set(key: string, value: Buffer): void {
    if (value.length > this.maxBytes) return
    const old = this.map.get(key)
    if (old) {
      this.held -= old.length
      this.map.delete(key)
    }
    this.map.set(key, value)
    this.held += value.length
    for (const [k, v] of this.map) {
      if (this.held <= this.maxBytes) break
      this.map.delete(k)
      this.held -= v.length
    }
  }
}

let shared: ChunkCache | null = null

/** The process's cache, shared by every Cas (keys are store addresses, distinct per sharing key). */
export function sharedCache(): ChunkCache {
  shared ??= new ChunkCache()
  return shared
}
