// An in-memory Bloom filter over the store's addresses. Hyperbee lookups cost ~0.3 ms each,
// which alone would cap imports near 200 MiB/s; new content (the common case on import) is
// ruled out here without touching the index. Addresses are keyed BLAKE2b output, so their
// own bytes serve as the hash functions. "Maybe" answers are confirmed in the index.
const BITS_PER_ENTRY = 10
const PROBES = 7 // ~1% false positives at 10 bits per entry
const FIRST_CAPACITY = 1 << 16

interface Layer {
  bits: Int32Array
  mask: number
  capacity: number
  count: number
}

function layer(capacity: number): Layer {
  // A power-of-two bit count: probes are masked, not divided.
  const bitCount = 1 << Math.ceil(Math.log2(capacity * BITS_PER_ENTRY))
  return { bits: new Int32Array(bitCount >>> 5), mask: bitCount - 1, capacity, count: 0 }
}

/** Grows by adding layers of doubling size (a scalable Bloom filter): entries are never rehashed. */
export class AddressFilter {
  private readonly layers: Layer[] = [layer(FIRST_CAPACITY)]

  add(address: Buffer): void {
    let top = this.layers[this.layers.length - 1]!
    if (top.count >= top.capacity) {
      top = layer(top.capacity * 2)
      this.layers.push(top)
    }
    const h1 = address.readUInt32LE(0)
    const h2 = address.readUInt32LE(4) | 1
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & top.mask
      top.bits[bit >>> 5]! |= 1 << (bit & 31)
    }
    top.count++
  }

  /** False only when the address was certainly never added. */
  mayHold(address: Buffer): boolean {
    const h1 = address.readUInt32LE(0)
    const h2 = address.readUInt32LE(4) | 1
    for (const l of this.layers) {
      let all = true
      for (let i = 0; i < PROBES && all; i++) {
        const bit = (h1 + Math.imul(i, h2)) & l.mask
        all = (l.bits[bit >>> 5]! & (1 << (bit & 31))) !== 0
      }
      if (all) return true
    }
    return false
  }
}
