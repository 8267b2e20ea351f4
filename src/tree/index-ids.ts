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

/**
 * A version 2 id bucket (`old`, already checked against its digest) with `edits` applied (an
 * id's new place; null: no entry any more): the bytes encodeIds gives for the edited records,
 * made without decoding the others (their records are copied, the dir index they name
 * renumbered). A commit that moves a few entries of a bucket of ~1,000 then costs a pass over
 * its bytes. Returns 'empty' when no record is left, null for a bucket of version 1 (the caller
 * rewrites it from its records).
 */
export function patchIds(old: Buffer, edits: ReadonlyMap<string, IdPlace | null>): Buffer | 'empty' | null {
  if (!(old.length >= 5 && old.subarray(0, 4).equals(IDS_MAGIC))) return null
  if (old[4] !== IDS_VERSION) throw new Error(`id bucket version ${old[4]} is not supported`)
  if (old.length < PREFIX) throw new Error('id bucket too short')
  const count = old.readUInt32BE(5)
  const dirCount = old.readUInt32BE(9)
  if (PREFIX + 4 * (count + dirCount) > old.length) throw new Error('id bucket names more records than it holds')
  // Dirs numbered by first use in record order (as encodeIds does). An old dir is copied as its
  // bytes (not decoded); an edit's dir is matched to an old one by its bytes.
  const dirOut: (number | Buffer)[] = []
  let dirBytes = 0
  const newOfOld = new Int32Array(dirCount).fill(-1)
  const editDirs = new Map<string, { bytes: Buffer; index: number }>()
  const byKey = new Map<number, { bytes: Buffer; index: number }[]>()
  for (const p of edits.values()) {
    if (p === null || editDirs.has(p[0])) continue
    const x = { bytes: Buffer.from(p[0]), index: -1 }
    if (x.bytes.length > 0xffff) throw new Error('id bucket: a string is too long')
    editDirs.set(p[0], x)
    const k = dirKey(x.bytes, 0, x.bytes.length)
    const list = byKey.get(k)
    if (list) list.push(x)
    else byKey.set(k, [x])
  }
  const use = (d: string): number => {
    const x = editDirs.get(d)!
    if (x.index < 0) {
      x.index = dirOut.length
      dirOut.push(x.bytes)
      dirBytes += 2 + x.bytes.length
    }
    return x.index
  }
  const useOld = (i: number): number => {
    if (i >= dirCount) throw new Error('id bucket record names a dir it does not hold')
    let n = newOfOld[i]
    if (n < 0) {
      const at = old.readUInt32BE(PREFIX + 4 * (count + i))
      if (at + 2 > old.length) throw new Error('id bucket bytes end early')
      const len = old.readUInt16BE(at)
      if (at + 2 + len > old.length) throw new Error('id bucket bytes end early')
      const same = byKey.get(dirKey(old, at + 2, len))?.find((x) => old.compare(x.bytes, 0, x.bytes.length, at + 2, at + 2 + len) === 0)
      if (same && same.index >= 0) n = same.index
      else {
        n = dirOut.length
        dirOut.push(at)
        dirBytes += 2 + len
        if (same) same.index = n
      }
      newOfOld[i] = n
    }
    return n
  }
  const ed = [...edits].map(([id, p]) => ({ id: Buffer.from(id), p })).sort((x, y) => Buffer.compare(x.id, y.id))
  // The records in order: an old one (copied) as its number i >= 0, an edited one as -1 - its index in `news`.
  const order: number[] = []
  const oldAt = new Uint32Array(count), oldLen = new Uint32Array(count), oldDir = new Uint32Array(count)
  const news: { id: Buffer; dir: number; name: Buffer | null; flags: number }[] = []
  let size = 0
  const pushEdit = (x: { id: Buffer; p: IdPlace | null }): void => {
    if (x.p === null) return
    const name = typeof x.p[1] === 'string' ? Buffer.from(x.p[1]) : null
    if (x.id.length > 0xffff || (name && name.length > 0xffff)) throw new Error('id bucket: a string is too long')
    order.push(-1 - news.length)
    news.push({ id: x.id, dir: use(x.p[0]), name, flags: name ? 1 : x.p[1] === null ? 0 : 2 })
    size += 2 + x.id.length + 5 + (name ? 2 + name.length : 0)
  }
  let j = 0
  for (let i = 0; i < count; i++) {
    const at = old.readUInt32BE(PREFIX + 4 * i)
    if (at + 2 > old.length) throw new Error('id bucket bytes end early')
    const idEnd = at + 2 + old.readUInt16BE(at)
    if (idEnd + 5 > old.length) throw new Error('id bucket bytes end early')
    const flags = old[idEnd + 4]
    if (flags > 2) throw new Error(`id record flags ${flags}`)
    if (flags === 1 && (idEnd + 7 > old.length || idEnd + 7 + old.readUInt16BE(idEnd + 5) > old.length)) throw new Error('id bucket bytes end early')
    let c = 1
    while (j < ed.length && (c = compareBytes(old, at + 2, idEnd, ed[j].id)) > 0) pushEdit(ed[j++])
    if (j < ed.length && c === 0) {
      pushEdit(ed[j++])
      continue
    }
    const len = idEnd + 5 + (flags === 1 ? 2 + old.readUInt16BE(idEnd + 5) : 0) - at
    order.push(i)
    oldAt[i] = at
    oldLen[i] = len
    oldDir[i] = useOld(old.readUInt32BE(idEnd))
    size += len
  }
  while (j < ed.length) pushEdit(ed[j++])
  if (order.length === 0) return 'empty'
  const tables = PREFIX + 4 * (order.length + dirOut.length)
  // Every byte is written below (checked at the end).
  const b = Buffer.allocUnsafe(tables + dirBytes + size)
  IDS_MAGIC.copy(b)
  b[4] = IDS_VERSION
  b.writeUInt32BE(order.length, 5)
  b.writeUInt32BE(dirOut.length, 9)
  let at = tables
  let k = 0
  for (const d of dirOut) {
    b.writeUInt32BE(at, PREFIX + 4 * (order.length + k++))
    if (typeof d === 'number') {
      const n = 2 + old.readUInt16BE(d)
      old.copy(b, at, d, d + n)
      at += n
    } else {
      b.writeUInt16BE(d.length, at)
      d.copy(b, at + 2)
      at += 2 + d.length
    }
  }
  // A run of old records lies back to back in `old` as it does in `b`: copied in one go.
  let from = -1, to = -1, into = at
  for (k = 0; k < order.length; k++) {
    b.writeUInt32BE(at, PREFIX + 4 * k)
    const i = order[k]
    if (i >= 0) {
      if (oldAt[i] !== to) {
        if (from >= 0) old.copy(b, into, from, to)
        from = oldAt[i]
        into = at
      }
      to = oldAt[i] + oldLen[i]
      // The dir index is written once the run is copied (below), from oldDir.
      at += oldLen[i]
      continue
    }
    if (from >= 0) old.copy(b, into, from, to)
    from = to = -1
    const r = news[-1 - i]
    b.writeUInt16BE(r.id.length, at)
    r.id.copy(b, at + 2)
    at += 2 + r.id.length
    b.writeUInt32BE(r.dir, at)
    b[at + 4] = r.flags
    at += 5
    if (r.name) {
      b.writeUInt16BE(r.name.length, at)
      r.name.copy(b, at + 2)
      at += 2 + r.name.length
    }
  }
  if (from >= 0) old.copy(b, into, from, to)
  if (at !== b.length) throw new Error('id bucket: records misplaced')
  // The copied records' dir indexes, renumbered.
  for (k = 0; k < order.length; k++) {
    const i = order[k]
    if (i < 0) continue
    const r = b.readUInt32BE(PREFIX + 4 * k)
    b.writeUInt32BE(oldDir[i], r + 2 + b.readUInt16BE(r))
  }
  return b
}

/** `a[start, end)` against all of `b`, as Buffer.compare orders them (a JS loop: most ids differ in their first byte). */
function compareBytes(a: Buffer, start: number, end: number, b: Buffer): number {
  const n = Math.min(end - start, b.length)
  for (let k = 0; k < n; k++) {
    const d = a[start + k] - b[k]
    if (d !== 0) return d < 0 ? -1 : 1
  }
  const la = end - start
  return la === b.length ? 0 : la < b.length ? -1 : 1
}

/** A number told by a dir's length and first bytes: the edits' dirs are found among a bucket's by it, then by their bytes. */
function dirKey(b: Buffer, start: number, len: number): number {
  let k = len
  for (let i = 0; i < 4; i++) k = k * 256 + (i < len ? b[start + i] : 0)
  return k
}
