// A small seeded PRNG for the torture sections: the same seed makes the same choices, so a
// failing round can be replayed with BAZIL_TORTURE_SEED.

/** The seed from BAZIL_TORTURE_SEED, else a fresh one (printed by the sections). */
export function baseSeed(): number {
  const raw = process.env.BAZIL_TORTURE_SEED
  if (raw === undefined || raw === '') return (Date.now() ^ (process.pid << 16)) >>> 0
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`BAZIL_TORTURE_SEED=${raw}: expected a whole number below 2^32`)
  return n
}

/** mulberry32: 32-bit state, good enough to pick files, offsets and moments. */
export class Rand {
  private s: number
  constructor(readonly seed: number) {
    this.s = seed >>> 0
  }
  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list')
    return xs[this.int(xs.length)]!
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  /** Bytes from this generator (not secret; reproducible content). */
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) {
      if ((i & 3) === 0) this.word = (this.next() * 4294967296) >>> 0
      b[i] = (this.word >>> ((i & 3) * 8)) & 0xff
    }
    return b
  }
  private word = 0
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
