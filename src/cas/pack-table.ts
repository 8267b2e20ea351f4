// Where each object of a pack store lies: address -> (pack, offset, length), in one Buffer
// (an open-addressing hash table with linear probing), not a JS Map of hex strings: 28 bytes
// per slot, at most 3/4 of the slots used, so ~37-75 bytes per object. Used for the own store
// (chunk-store.ts) and for each remote source's index (remote-store.ts).
//
// Keyed by the first 16 bytes of the address (spec/cas.md section 4): addresses are keyed
// BLAKE2b output, so the prefix is uniform and its bytes serve as the hash. Two addresses
// sharing a 16-byte prefix (2^64 work for a holder of the sharing key, never by chance) map
// to one location; every read verifies the full address in the object's header, so such a
// collision shows as a failed read, never as other content.

import type { IndexRecord } from './pack-codec.js'
import { PackBits } from './pack-bits.js'

export interface PackLocation {
  pack: number
  offset: number
  length: number
}

/** Address bytes the table keys by. */
export const KEY_BYTES = 16
/** Words (u32) per slot: 4 of key, pack, offset, length (length 0 marks an empty slot). */
const SLOT_WORDS = 7
const FIRST_SLOTS = 1 << 10
const U32_MAX = 0xffffffff

export class PackTable {
  private slots: Uint32Array
  private mask: number
  private count = 0
  private lengthSum = 0
  /**
   * Every pack a drop record named (dropPacks): the owner dropped it, whether or not its block
   * is still held (spec/gc.md section 3: a clear left for the tree nodes peers need).
   */
  dropped = new PackBits()

  constructor(expected = 0) {
    let n = FIRST_SLOTS
    while (n * 0.75 < expected) n *= 2
    this.slots = new Uint32Array(n * SLOT_WORDS)
    this.mask = n - 1
  }

  /** Objects in the table. */
  get size(): number {
    return this.count
  }

  /** The sum of the objects' lengths. */
  get bytes(): number {
    return this.lengthSum
  }

  /** Bytes the table holds in memory. */
  get byteLength(): number {
    return this.slots.byteLength
  }

  /** Adds an object's location; an address already present keeps its first location (then false). */
  add(address: Buffer, loc: PackLocation): boolean {
    if (address.length < KEY_BYTES) throw new Error(`pack table: address of ${address.length} bytes`)
    if (!isU32(loc.pack) || !isU32(loc.offset) || !isU32(loc.length) || loc.length === 0) {
      throw new Error(`pack table: location out of range (pack ${loc.pack}, offset ${loc.offset}, length ${loc.length})`)
    }
    if ((this.count + 1) * 4 > (this.mask + 1) * 3) this.grow()
    const found = this.probe(address)
    if (found >= 0) return false
    const at = -found - 1
    const s = this.slots
    for (let w = 0; w < 4; w++) s[at + w] = address.readUInt32LE(4 * w)
    s[at + 4] = loc.pack
    s[at + 5] = loc.offset
    s[at + 6] = loc.length
    this.count++
    this.lengthSum += loc.length
    return true
  }

  /**
   * Sets an address's location, replacing any earlier one (later index entries win: a
   * compaction appends an object again in a new pack). Returns the location replaced, or null.
   */
  set(address: Buffer, loc: PackLocation): PackLocation | null {
    const at = this.find(address)
    if (at < 0) {
      this.add(address, loc)
      return null
    }
    if (!isU32(loc.pack) || !isU32(loc.offset) || !isU32(loc.length) || loc.length === 0) {
      throw new Error(`pack table: location out of range (pack ${loc.pack}, offset ${loc.offset}, length ${loc.length})`)
    }
    const s = this.slots
    const old = { pack: s[at + 4]!, offset: s[at + 5]!, length: s[at + 6]! }
    s[at + 4] = loc.pack
    s[at + 5] = loc.offset
    s[at + 6] = loc.length
    this.lengthSum += loc.length - old.length
    return old
  }

  /**
   * Forgets every object located in one of `packs` (a drop record, spec/gc.md). One pass over
   * the slots, then the survivors are placed again. Returns how many objects and bytes went.
   * `retired`: where the forgotten locations go (a copy of a peer's store that still holds a
   * dropped pack reads from it until the objects are held where they moved: remote-store.ts).
   */
  dropPacks(packs: Iterable<number>, retired?: PackTable): { objects: number; bytes: number } {
    const dead = new Set(packs)
    for (const p of dead) this.dropped.add(p)
    const old = this.slots
    let objects = 0
    let bytes = 0
    for (let at = 0; at < old.length; at += SLOT_WORDS) {
      if (old[at + 6] !== 0 && dead.has(old[at + 4]!)) {
        objects++
        bytes += old[at + 6]!
        if (retired) {
          const key = Buffer.allocUnsafe(KEY_BYTES)
          for (let w = 0; w < 4; w++) key.writeUInt32LE(old[at + w]!, 4 * w)
          retired.set(key, { pack: old[at + 4]!, offset: old[at + 5]!, length: old[at + 6]! })
        }
      }
    }
    if (objects === 0) return { objects, bytes }
    const s = new Uint32Array(old.length)
    for (let from = 0; from < old.length; from += SLOT_WORDS) {
      if (old[from + 6] === 0 || dead.has(old[from + 4]!)) continue
      let i = old[from]! & this.mask
      while (s[i * SLOT_WORDS + 6] !== 0) i = (i + 1) & this.mask
      s.set(old.subarray(from, from + SLOT_WORDS), i * SLOT_WORDS)
    }
    this.slots = s
    this.count -= objects
    this.lengthSum -= bytes
    return { objects, bytes }
  }

  /**
   * Forgets one address (false: not in the table). Backward-shift deletion: the entries after
   * it in its probe run move back where their lookups still find them, so no tombstones.
   */
  delete(address: Buffer): boolean {
    const at = this.find(address)
    if (at < 0) return false
    const s = this.slots
    this.count--
    this.lengthSum -= s[at + 6]!
    let hole = at / SLOT_WORDS
    for (let j = (hole + 1) & this.mask; s[j * SLOT_WORDS + 6] !== 0; j = (j + 1) & this.mask) {
      const home = s[j * SLOT_WORDS]! & this.mask
      // The entry at j stays if its home slot lies cyclically in (hole, j]: its lookup never passes the hole.
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j
      if (stays) continue
      s.copyWithin(hole * SLOT_WORDS, j * SLOT_WORDS, (j + 1) * SLOT_WORDS)
      hole = j
    }
    s.fill(0, hole * SLOT_WORDS, (hole + 1) * SLOT_WORDS)
    return true
  }

  /** Every (address prefix, location) in the table, in slot order (the prefix is KEY_BYTES bytes). */
  *entries(): Generator<{ key: Buffer; loc: PackLocation }> {
    const s = this.slots
    for (let at = 0; at < s.length; at += SLOT_WORDS) {
      if (s[at + 6] === 0) continue
      const key = Buffer.allocUnsafe(KEY_BYTES)
      for (let w = 0; w < 4; w++) key.writeUInt32LE(s[at + w]!, 4 * w)
      yield { key, loc: { pack: s[at + 4]!, offset: s[at + 5]!, length: s[at + 6]! } }
    }
  }

  /** The location of an address, or null when the table doesn't hold it. */
  get(address: Buffer): PackLocation | null {
    const at = this.find(address)
    if (at < 0) return null
    const s = this.slots
    return { pack: s[at + 4]!, offset: s[at + 5]!, length: s[at + 6]! }
  }

  has(address: Buffer): boolean {
    return this.find(address) >= 0
  }

  private find(address: Buffer): number {
    return address.length < KEY_BYTES ? -1 : Math.max(-1, this.probe(address))
  }

  /** The word offset of the slot holding the address's key, or -(offset + 1) of the empty slot where it would go. */
  private probe(address: Buffer): number {
    const k0 = address.readUInt32LE(0)
    const k1 = address.readUInt32LE(4)
    const k2 = address.readUInt32LE(8)
    const k3 = address.readUInt32LE(12)
    const s = this.slots
    for (let i = k0 & this.mask; ; i = (i + 1) & this.mask) {
      const at = i * SLOT_WORDS
      if (s[at + 6] === 0) return -at - 1
      if (s[at] === k0 && s[at + 1] === k1 && s[at + 2] === k2 && s[at + 3] === k3) return at
    }
  }

  /** The slots as they are (a view, not a copy: for saving while nothing is added). */
  get slotWords(): Uint32Array {
    return this.slots
  }

  /**
   * A table from slots slotWords gave (e.g. saved in a file): a power-of-two number of slots,
   * at least the first size, at most 3/4 used, `count` of them used. Throws otherwise.
   */
  static fromSlots(slots: Uint32Array, dropped: PackBits = new PackBits()): PackTable {
    const n = slots.length / SLOT_WORDS
    if (!Number.isInteger(n) || n < FIRST_SLOTS || (n & (n - 1)) !== 0) throw new Error(`pack table: ${slots.length} words are not a table`)
    let count = 0
    let lengthSum = 0
    for (let at = 6; at < slots.length; at += SLOT_WORDS) {
      if (slots[at] !== 0) {
        count++
        lengthSum += slots[at]!
      }
    }
    if (count * 4 > n * 3) throw new Error(`pack table: ${count} of ${n} slots used`)
    const table = new PackTable()
    table.slots = slots
    table.mask = n - 1
    table.count = count
    table.lengthSum = lengthSum
    table.dropped = dropped
    return table
  }

  private grow(): void {
    const old = this.slots
    const n = (this.mask + 1) * 2
    const s = new Uint32Array(n * SLOT_WORDS)
    const mask = n - 1
    for (let from = 0; from < old.length; from += SLOT_WORDS) {
      if (old[from + 6] === 0) continue
      let i = old[from]! & mask
      while (s[i * SLOT_WORDS + 6] !== 0) i = (i + 1) & mask
      s.set(old.subarray(from, from + SLOT_WORDS), i * SLOT_WORDS)
    }
    this.slots = s
    this.mask = mask
  }
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX
}

/**
 * Index block `seq` applied to a table built from blocks 0..seq-1 in order (spec/cas.md 4.1):
 * a pack's entries are set (later entries win: a compaction appended them again), a drop
 * record forgets what is still located in the packs it names. Throws when the block is not
 * at its own position.
 */
export function applyIndexRecord(table: PackTable, seq: number, rec: IndexRecord, retired?: PackTable): void {
  if (rec.kind === 'pack') {
    if (rec.pack !== seq) throw new Error(`indexes pack ${rec.pack}`)
    for (const e of rec.entries) table.set(e.address, { pack: seq, offset: e.offset, length: e.length })
  } else {
    if (rec.position !== seq) throw new Error(`is a drop record of position ${rec.position}`)
    table.dropPacks(rec.packs, retired)
  }
}
