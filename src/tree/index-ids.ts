/**
 * The id buckets of the index on disk (spec/tree.md "The index on disk", Id buckets): the one
 * home of their encoding. An id bucket says, for the node ids (entry ids) that hash to it,
 * where the entry lies: the directory whose page holds it and the entry's name there, so that
 * a lookup by id reads the one chunk of that name (index-page.ts), not the directory's page.
 *
 * Version 2 (written now): binary, sorted by the ids' UTF-8 bytes, read by binary search
 * without decoding the other records:
 *
 *   "BZID" | version u8 (2) | record count u32 | dir count u32 | record offsets u32 × records |
 *   dir offsets u32 × dirs | dirs | records
 *
 * Integers big-endian, offsets from the bucket's start; a dir is str16 (u16 length + UTF-8); a
 * record: id (str16), dir index u32 (into the dirs), flags u8 (0: no name, the entry is not
 * attached; 1: a name follows, str16; 2: the name is not known: read the directory's page).
 *
 * Version 1 (read; written by indexes of manifest versions 4-7): UTF-8 JSON `[[id, dir]…]`
 * sorted by id; names not known.
 */
export const IDS_MAGIC = Buffer.from('BZID')
export const IDS_VERSION = 2
const PREFIX = 13

/** Where an entry lies: its directory (`''`: not attached) and its name there (null: none; undefined: not known). */
export type IdPlace = [dir: string, name: string | null | undefined]

/** A parsed id bucket (either version): lookups by id, and its records for a commit that rewrites it. */
export interface IdBucket {
  get(id: string): IdPlace | undefined
  entries(): Iterable<[string, IdPlace]>
}

/** An id bucket's bytes (checked against its digest by the caller). */
export function parseIds(b: Buffer): IdBucket {
  if (b.length >= 5 && b.subarray(0, 4).equals(IDS_MAGIC)) {
    if (b[4] !== IDS_VERSION) throw new Error(`id bucket version ${b[4]} is not supported`)
    return new BinaryIds(b)
  }
  const m = new Map<string, IdPlace>()
  for (const [id, dir] of JSON.parse(b.toString('utf8')) as [string, string][]) m.set(id, [dir, undefined])
  return m
}

class BinaryIds implements IdBucket {
  private readonly count: number
  private readonly dirCount: number
  private readonly dirs: (string | undefined)[]

  constructor(private readonly b: Buffer) {
    if (b.length < PREFIX) throw new Error('id bucket too short')
    this.count = b.readUInt32BE(5)
    this.dirCount = b.readUInt32BE(9)
    if (PREFIX + 4 * (this.count + this.dirCount) > b.length) throw new Error('id bucket names more records than it holds')
    this.dirs = new Array(this.dirCount)
  }

  private recordAt(i: number): number { return this.b.readUInt32BE(PREFIX + 4 * i) }

  private dir(i: number): string {
    if (i >= this.dirCount) throw new Error('id bucket record names a dir it does not hold')
    let d = this.dirs[i]
    if (d === undefined) {
      const at = this.b.readUInt32BE(PREFIX + 4 * (this.count + i))
      d = this.dirs[i] = this.b.toString('utf8', at + 2, at + 2 + this.b.readUInt16BE(at))
    }
    return d
  }

  /** The record at byte offset `at`: its place. */
  private place(at: number): IdPlace {
    const b = this.b
    const idEnd = at + 2 + b.readUInt16BE(at)
    const dir = this.dir(b.readUInt32BE(idEnd))
    const flags = b[idEnd + 4]
    if (flags === 0) return [dir, null]
    if (flags === 2) return [dir, undefined]
    if (flags !== 1) throw new Error(`id record flags ${flags}`)
    const n = b.readUInt16BE(idEnd + 5)
    if (idEnd + 7 + n > b.length) throw new Error('id bucket bytes end early')
    return [dir, b.toString('utf8', idEnd + 7, idEnd + 7 + n)]
  }

  get(id: string): IdPlace | undefined {
    const want = Buffer.from(id)
    const b = this.b
    let lo = 0, hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const at = this.recordAt(mid)
      const c = b.compare(want, 0, want.length, at + 2, at + 2 + b.readUInt16BE(at))
      if (c === 0) return this.place(at)
      if (c > 0) hi = mid
      else lo = mid + 1
    }
    return undefined
  }

  *entries(): Iterable<[string, IdPlace]> {
    for (let i = 0; i < this.count; i++) {
      const at = this.recordAt(i)
      yield [this.b.toString('utf8', at + 2, at + 2 + this.b.readUInt16BE(at)), this.place(at)]
    }
  }
}

/** Encodes an id bucket in version 2 from its records (any order). */
export function encodeIds(records: Iterable<[string, IdPlace]>): Buffer {
  const recs = [...records].map(([id, p]) => ({ id: Buffer.from(id), p }))
  recs.sort((x, y) => Buffer.compare(x.id, y.id))
  const dirIndex = new Map<string, number>()
  for (const r of recs) if (!dirIndex.has(r.p[0])) dirIndex.set(r.p[0], dirIndex.size)
  const dirs = [...dirIndex.keys()].map((d) => Buffer.from(d))
  const names = recs.map((r) => (typeof r.p[1] === 'string' ? Buffer.from(r.p[1]) : null))
  for (const x of [...dirs, ...recs.map((r) => r.id), ...names]) if (x && x.length > 0xffff) throw new Error('id bucket: a string is too long')
  const tables = PREFIX + 4 * (recs.length + dirs.length)
  let size = tables
  for (const d of dirs) size += 2 + d.length
  const dirsEnd = size
  for (let i = 0; i < recs.length; i++) size += 2 + recs[i].id.length + 5 + (names[i] ? 2 + names[i]!.length : 0)
  const b = Buffer.alloc(size)
  IDS_MAGIC.copy(b)
  b[4] = IDS_VERSION
  b.writeUInt32BE(recs.length, 5)
  b.writeUInt32BE(dirs.length, 9)
  let at = tables
  dirs.forEach((d, i) => {
    b.writeUInt32BE(at, PREFIX + 4 * (recs.length + i))
    b.writeUInt16BE(d.length, at)
    d.copy(b, at + 2)
    at += 2 + d.length
  })
  if (at !== dirsEnd) throw new Error('id bucket: dirs misplaced')
  recs.forEach((r, i) => {
    b.writeUInt32BE(at, PREFIX + 4 * i)
    b.writeUInt16BE(r.id.length, at)
    r.id.copy(b, at + 2)
    at += 2 + r.id.length
    b.writeUInt32BE(dirIndex.get(r.p[0])!, at)
    const name = names[i]
    b[at + 4] = name ? 1 : r.p[1] === null ? 0 : 2
    at += 5
    if (name) {
      b.writeUInt16BE(name.length, at)
      name.copy(b, at + 2)
      at += 2 + name.length
    }
  })
  return b
}
