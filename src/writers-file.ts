// DATA/writers/VOLUME-ID.json: the writer logs (keys) of a volume this node holds other than
// its own (spec/datadir.md). Not a cache: it is how a restarted node knows which logs to open.
//
//   { "format": 1, "writers": ["<z-base-32 log key>", ...] }   (sorted; written whole, temp + rename)
//
// Volume keeps the other writers' logs here; a storage-only volume (no sharing key, no own
// log) lists every log.
import fs from 'node:fs'
import path from 'node:path'
import { decodeKey, encodeKey } from './crypto.js'
import { replaceFileSync } from './atomic-file.js'
import { DataPaths } from './data-paths.js'

export const WRITERS_FILE_FORMAT = 1

export function writersFilePath(dataDir: string, volumeId: string): string {
  return new DataPaths(dataDir).writers(volumeId)
}

/** The writer log keys recorded for a volume (none if the file does not exist). */
export function readWritersFile(dataDir: string, volumeId: string): Buffer[] {
  const file = writersFilePath(dataDir, volumeId)
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  let v: { format?: unknown; writers?: unknown }
  try {
    v = JSON.parse(text)
  } catch {
    throw new Error(`${file} is not valid JSON: the writer set of the volume is damaged`)
  }
  if (typeof v !== 'object' || v === null || v.format !== WRITERS_FILE_FORMAT || !Array.isArray(v.writers)) {
    throw new Error(`${file}: unknown writer set format ${JSON.stringify((v as { format?: unknown } | null)?.format)}`)
  }
  return v.writers.map((k) => decodeKey(String(k), 'writer log key'))
}

/** Records a volume's writer log keys (replacing the file atomically). */
export function writeWritersFile(dataDir: string, volumeId: string, keys: Buffer[]): void {
  const file = writersFilePath(dataDir, volumeId)
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  replaceFileSync(file, JSON.stringify({ format: WRITERS_FILE_FORMAT, writers: keys.map((k) => encodeKey(k)).sort() }, null, 2) + '\n')
}
