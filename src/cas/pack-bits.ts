// A set of pack numbers as a bitmap (bit p of byte p >> 3, least significant bit first): the
// packs drop records named (pack-table.ts), one bit per position of a store's `packs` core.
// A million positions (a terabyte of packs) take 125 KiB.

export class PackBits {
  private bits: Uint8Array
  private count = 0

  constructor(bits: Uint8Array = new Uint8Array(0)) {
    this.bits = bits
    for (const b of bits) this.count += popcount(b)
  }

  /** Packs in the set. */
  get size(): number {
    return this.count
  }

  has(p: number): boolean {
    const byte = p >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (p & 7))) !== 0
  }

  add(p: number): void {
    const byte = p >>> 3
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2))
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (p & 7)
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte]! |= mask
      this.count++
    }
  }

  /** The packs in increasing order. */
  *[Symbol.iterator](): Generator<number> {
    for (let i = 0; i < this.bits.length; i++) {
      const b = this.bits[i]!
      if (b === 0) continue
      for (let j = 0; j < 8; j++) if (b & (1 << j)) yield i * 8 + j
    }
  }

  /** The bitmap, without trailing zero bytes (its encoding in the table file, spec/cas.md section 7). */
  encode(): Uint8Array {
    let n = this.bits.length
    while (n > 0 && this.bits[n - 1] === 0) n--
    return this.bits.subarray(0, n)
  }
}

function popcount(b: number): number {
  let n = 0
  for (; b; b &= b - 1) n++
  return n
}
