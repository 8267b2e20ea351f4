// Pins: paths of volumes (files, or directory trees with whatever is added under them later)
// whose content this node fetches and keeps for offline use. Node-local, in DATA/pins.json
// (spec/datadir.md): {"version": 1, "pins": [{"volume": "<64 hex volume id>", "path": "/a/b",
// "added": <ms>}...]}. Keyed by volume id, so a pin survives renaming the volume locally.
import fs from 'node:fs'
import { UserError } from '../datadir.js'
import { replaceFileSync } from '../atomic-file.js'

export interface Pin {
  /** The volume's id (64 hex). */
  volume: string
  /** Absolute path inside the volume, normalized (`/` for the whole volume). */
  path: string
  added: number
}

const VERSION = 1
const MAX_PINS = 100_000

/** `/a//b/` -> `/a/b`; `.` and `..` are refused (a pin names a path of the tree as it is). */
export function pinPath(p: string): string {
  const parts = p.split('/').filter((x) => x.length > 0)
  if (parts.some((x) => x === '.' || x === '..')) throw new UserError(`bad path "${p}": give a path inside the volume without "." or ".."`)
  return '/' + parts.join('/')
}

/** Whether `path` is `pinned` or lies under it. */
export function covers(pinned: string, path: string): boolean {
  return pinned === '/' || path === pinned || path.startsWith(pinned + '/')
}

export function readPins(file: string): Pin[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new UserError(`cannot read ${file}: ${(err as Error).message}`)
  }
  const damaged = (why: string): UserError => new UserError(`${file} is damaged (${why}): fix it, or delete it and pin again`)
  let obj: { version?: unknown; pins?: unknown }
  try {
    obj = JSON.parse(text) as typeof obj
  } catch {
    throw damaged('not JSON')
  }
  if (typeof obj !== 'object' || obj === null) throw damaged('not an object')
  if (obj.version !== VERSION) throw damaged(`version ${JSON.stringify(obj.version)} is not one this bazil reads`)
  if (!Array.isArray(obj.pins) || obj.pins.length > MAX_PINS) throw damaged('no "pins" list')
  return obj.pins.map((r: unknown) => {
    const p = r as Partial<Pin> | null
    if (!p || typeof p !== 'object' || typeof p.volume !== 'string' || !/^[0-9a-f]{64}$/.test(p.volume) || typeof p.path !== 'string' || typeof p.added !== 'number') throw damaged(`bad entry ${JSON.stringify(r)}`)
    if (pinPath(p.path) !== p.path) throw damaged(`path ${JSON.stringify(p.path)} is not normalized`)
    return { volume: p.volume, path: p.path, added: p.added }
  })
}

export function writePins(file: string, pins: Pin[]): void {
  const sorted = [...pins].sort((a, b) => a.volume.localeCompare(b.volume) || a.path.localeCompare(b.path))
  replaceFileSync(file, JSON.stringify({ version: VERSION, pins: sorted }, null, 2) + '\n', { mode: 0o600 })
}

/** Adds pins (a path already pinned, or under a pinned directory, is kept as it is); returns those added. */
export function addPins(file: string, volume: string, paths: string[], now = Date.now()): Pin[] {
  const pins = readPins(file)
  const added: Pin[] = []
  for (const p of paths) {
    if (pins.some((x) => x.volume === volume && covers(x.path, p))) continue
    const pin = { volume, path: p, added: now }
    pins.push(pin)
    added.push(pin)
  }
  if (added.length > 0) writePins(file, pins)
  return added
}

/** Removes the pins of exactly these paths; returns the paths that were not pinned. */
export function removePins(file: string, volume: string, paths: string[]): string[] {
  const pins = readPins(file)
  const missing = paths.filter((p) => !pins.some((x) => x.volume === volume && x.path === p))
  const kept = pins.filter((x) => !(x.volume === volume && paths.includes(x.path)))
  if (kept.length !== pins.length) writePins(file, kept)
  return missing
}
