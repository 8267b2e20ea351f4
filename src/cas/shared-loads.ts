// Loads by key that run once at a time: concurrent callers of one key share the load in
// flight, and what a load found (not null) is kept in an Lru for the next callers. Pack
// blocks are read this way, from the own store and from the copies of peers' stores: the
// chunks of one file sit in one pack, and a reader asks for many of them at once.
import type { Lru } from './lru.js'

export class SharedLoads<K, V> {
  private readonly inFlight = new Map<K, Promise<V | null>>()

  /** `cache` may be shared by several SharedLoads (a local read and a fetch of one pack). */
  constructor(private readonly cache: Lru<K, V>) {}

  /** Whether a load of `key` is in flight. */
  loading(key: K): boolean {
    return this.inFlight.has(key)
  }

  /** The value kept for `key`, from the load in flight, or from `load` (kept unless null). */
  load(key: K, load: () => Promise<V | null>): Promise<V | null> {
    const kept = this.cache.get(key)
    if (kept !== undefined) return Promise.resolve(kept)
    let p = this.inFlight.get(key)
    if (!p) {
      p = load()
        .then((value) => {
          if (value !== null) this.cache.set(key, value)
          return value
        })
        .finally(() => this.inFlight.delete(key))
      this.inFlight.set(key, p)
    }
    return p
  }
}
