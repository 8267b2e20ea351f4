// When each unreferenced object of the own store was first found unreferenced (spec/gc.md,
// "Grace"): GC removes an object only once it has stayed unreferenced for the grace period.
// File `DATA/gc-marks` (DataPaths.gcMarks; mode 0600, replaced atomically):
//   "bzgcmark" · u32 version 1 · u32 n · n x { 16 bytes: address prefix; u32 seconds since the epoch } · H(all before)
// A file that doesn't read exactly so is ignored (every mark starts again: removal is only delayed).
import fs from 'node:fs'
import { hash, HASH_BYTES } from '../crypto.js'
import { replaceFile } from '../atomic-file.js'
import { KEY_BYTES, PackTable } from './pack-table.js'

const MAGIC = Buffer.from('bzgcmark', 'latin1')
const VERSION = 1
const ENTRY_BYTES = KEY_BYTES + 4

/** Address prefix -> first seen unreferenced (seconds), in a PackTable (the seconds ride in `pack`). */
export class GcMarks {
  private readonly table: PackTable

  private constructor(table: PackTable) {
    this.table = table
  }

  static empty(): GcMarks {
    return new GcMarks(new PackTable())
  }

  /** The marks in `file`; none when it is absent or not exactly a marks file (logged by the caller through `why`). */
  static async read(file: string, why: (reason: string) => void = () => {}): Promise<GcMarks> {
    let data: Buffer
    try {
      data = await fs.promises.readFile(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') why(`cannot read ${file}: ${(err as Error).message}`)
      return GcMarks.empty()
    }
    try {
      return new GcMarks(decodeMarks(data))
    } catch (err) {
      why(`${file}: ${(err as Error).message}; marks start again`)
      return GcMarks.empty()
    }
  }

  /** Seconds since the epoch when the address was first found unreferenced, or null. */
  since(address: Buffer): number | null {
    return this.table.get(address)?.pack ?? null
  }

  mark(address: Buffer, seconds: number): void {
    this.table.add(address, { pack: seconds, offset: 0, length: 1 })
  }

  get size(): number {
    return this.table.size
  }

  async write(file: string): Promise<void> {
    const out = Buffer.allocUnsafe(16 + ENTRY_BYTES * this.table.size + HASH_BYTES)
    MAGIC.copy(out, 0)
    out.writeUInt32LE(VERSION, 8)
    out.writeUInt32LE(this.table.size, 12)
    let at = 16
    for (const { key, loc } of this.table.entries()) {
      at += key.copy(out, at)
      at = out.writeUInt32LE(loc.pack, at)
    }
    hash(out.subarray(0, at)).copy(out, at)
    await replaceFile(file, out, { mode: 0o600 })
  }
}

export function decodeMarks(data: Buffer): PackTable {
  if (data.length < 16 + HASH_BYTES || !data.subarray(0, 8).equals(MAGIC)) throw new Error('not a gc marks file')
  const version = data.readUInt32LE(8)
  if (version !== VERSION) throw new Error(`unknown gc marks version ${version}`)
  const count = data.readUInt32LE(12)
  const body = 16 + ENTRY_BYTES * count
  if (data.length !== body + HASH_BYTES) throw new Error(`${data.length} bytes for ${count} marks`)
  if (!hash(data.subarray(0, body)).equals(data.subarray(body))) throw new Error('digest mismatch')
  const table = new PackTable(count)
  for (let i = 0, at = 16; i < count; i++, at += ENTRY_BYTES) {
    const seconds = data.readUInt32LE(at + KEY_BYTES)
    table.add(data.subarray(at, at + KEY_BYTES), { pack: seconds, offset: 0, length: 1 })
  }
  return table
}
