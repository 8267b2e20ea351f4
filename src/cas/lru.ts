/**
 * A least-recently-used map bounded by the sum of its values' weights (by default each weighs
 * 1: a bound on the count). Decoded manifest nodes, pack blocks and decrypted chunks are read
 * again and again by FUSE reads; a value heavier than the whole bound is not kept.
 */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()
  private total = 0

  constructor(private readonly capacity: number, private readonly weigh: (value: V) => number = () => 1) {}

  /** How many values are held. */
  get size(): number {
    return this.map.size
  }

  /** The sum of the held values' weights (always <= capacity). */
  get weight(): number {
    return this.total
  }

  /** Whether `key` is held (without refreshing it). */
  has(key: K): boolean {
    return this.map.has(key)
  }

  /** The value held for `key`, refreshed as most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key)
    if (value === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, value)
    return value
  }

  set(key: K, value: V): void {
    this.delete(key)
    const w = this.weigh(value)
    if (w > this.capacity) return
    this.map.set(key, value)
    this.total += w
    for (const [k, v] of this.map) {
      if (this.total <= this.capacity) break
      this.map.delete(k)
      this.total -= this.weigh(v)
    }
  }

  delete(key: K): void {
    const old = this.map.get(key)
    if (old === undefined) return
    this.map.delete(key)
    this.total -= this.weigh(old)
  }
}
