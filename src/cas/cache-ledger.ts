// The cache's accounting: which packs of peers' stores (blocks of this node's local copies of
// their `packs` cores) are held here, their bytes, and their order of last use (least recently
// used first). Kept in DATA/cache-ledger (format below and in spec/datadir.md) so that the LRU
// order survives restarts; it is a cache: a missing or damaged file costs one scan of the
// copies at the next start (held packs are then all "old", in pack order).
import { HASH_BYTES, hash } from '../crypto.js'

export interface LedgerEntry {
  /** The `packs` core's key, hex. */
  core: string
  pack: number
  bytes: number
  /** Last use, ms since the epoch. */
  at: number
}

const MAGIC = Buffer.from('bzcachel', 'latin1')
const VERSION = 1
const RECORD_BYTES = 24
const MAX_PACK = 2 ** 53 - 1

export class CacheLedger {
  /** By `core:pack`, in order of last use, oldest first (a Map keeps insertion order). */
  private readonly entries = new Map<string, LedgerEntry>()
  private total = 0
  /** Changed since the last encode(). */
  dirty = false

  /** Bytes of every held pack. */
  get bytes(): number {
    return this.total
  }

  get size(): number {
    return this.entries.size
  }

  has(core: string, pack: number): boolean {
    return this.entries.has(`${core}:${pack}`)
  }

  get(core: string, pack: number): LedgerEntry | null {
    return this.entries.get(`${core}:${pack}`) ?? null
  }

  /** Marks a held pack used now (the newest); false if it is not in the ledger. */
  touch(core: string, pack: number, now = Date.now()): boolean {
    const key = `${core}:${pack}`
    const e = this.entries.get(key)
    if (!e) return false
    this.entries.delete(key)
    e.at = now
    this.entries.set(key, e)
    this.dirty = true
    return true
  }

  /** A pack that arrived (or was found held): the newest unless `at` says otherwise (then appended as given). */
  add(core: string, pack: number, bytes: number, at = Date.now()): void {
    const key = `${core}:${pack}`
    const old = this.entries.get(key)
    if (old) {
      this.total -= old.bytes
      this.entries.delete(key)
    }
    this.entries.set(key, { core, pack, bytes, at })
    this.total += bytes
    this.dirty = true
  }

  remove(core: string, pack: number): LedgerEntry | null {
    const key = `${core}:${pack}`
    const e = this.entries.get(key)
    if (!e) return null
    this.entries.delete(key)
    this.total -= e.bytes
    this.dirty = true
    return e
  }

  /** Every held pack, least recently used first (a copy: the caller may remove while iterating). */
  oldestFirst(): LedgerEntry[] {
    return [...this.entries.values()]
  }

  /** The held packs of one core (pack numbers). */
  packsOf(core: string): number[] {
    const out: number[] = []
    for (const e of this.entries.values()) if (e.core === core) out.push(e.pack)
    return out
  }

  /**
   * The file: magic "bzcachel", u32 version 1, u32 s, s x 32-byte core keys, u32 n,
   * n x { u32 core index, u32 bytes, u64 pack, u64 last use (ms) } oldest first, then the
   * 32-byte BLAKE2b of everything before. Little-endian.
   */
  encode(): Buffer {
    const cores = new Map<string, number>()
    for (const e of this.entries.values()) if (!cores.has(e.core)) cores.set(e.core, cores.size)
    const head = 16 + 32 * cores.size + 4
    const buf = Buffer.alloc(head + RECORD_BYTES * this.entries.size + HASH_BYTES)
    MAGIC.copy(buf, 0)
    buf.writeUInt32LE(VERSION, 8)
    buf.writeUInt32LE(cores.size, 12)
    let o = 16
    for (const core of cores.keys()) {
      Buffer.from(core, 'hex').copy(buf, o)
      o += 32
    }
    buf.writeUInt32LE(this.entries.size, o)
    o += 4
    for (const e of this.entries.values()) {
      buf.writeUInt32LE(cores.get(e.core)!, o)
      buf.writeUInt32LE(e.bytes, o + 4)
      buf.writeBigUInt64LE(BigInt(e.pack), o + 8)
      buf.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(e.at))), o + 16)
      o += RECORD_BYTES
    }
    hash(buf.subarray(0, o)).copy(buf, o)
    this.dirty = false
    return buf
  }

  /** Reads the file; throws (with why) on anything but exactly the format of encode(). */
  static decode(buf: Buffer): CacheLedger {
    if (buf.length < 20 + HASH_BYTES || !buf.subarray(0, 8).equals(MAGIC)) throw new Error('not a cache ledger')
    const version = buf.readUInt32LE(8)
    if (version !== VERSION) throw new Error(`cache ledger version ${version} is not supported`)
    const body = buf.subarray(0, buf.length - HASH_BYTES)
    if (!hash(body).equals(buf.subarray(buf.length - HASH_BYTES))) throw new Error('cache ledger checksum mismatch')
    const s = buf.readUInt32LE(12)
    let o = 16
    if (o + 32 * s + 4 > body.length) throw new Error('cache ledger truncated')
    const cores: string[] = []
    for (let i = 0; i < s; i++, o += 32) cores.push(buf.subarray(o, o + 32).toString('hex'))
    const n = buf.readUInt32LE(o)
    o += 4
    if (o + RECORD_BYTES * n !== body.length) throw new Error('cache ledger has a wrong length')
    const ledger = new CacheLedger()
    for (let i = 0; i < n; i++, o += RECORD_BYTES) {
      const core = cores[buf.readUInt32LE(o)]
      const pack = Number(buf.readBigUInt64LE(o + 8))
      if (core === undefined || pack > MAX_PACK) throw new Error('cache ledger has a bad record')
      ledger.add(core, pack, buf.readUInt32LE(o + 4), Number(buf.readBigUInt64LE(o + 16)))
    }
    ledger.dirty = false
    return ledger
  }
}
