// Rewriting an index manifest as an older bazil wrote it (tests of the migrations read these),
// and damaging a bucket of the index (tests of what a reader does then).
import fs from 'node:fs'
import path from 'node:path'
import { hash } from '../src/crypto.js'

/** Rewrites the manifest's JSON with `edit` (its length and digest made again). */
export function editManifest(file: string, edit: (m: Record<string, unknown>) => void): void {
  const buf = fs.readFileSync(file)
  const m = JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as Record<string, unknown>
  edit(m)
  const json = Buffer.from(JSON.stringify(m))
  const head = Buffer.from(buf.subarray(0, 9))
  head.writeUInt32BE(json.length, 5)
  const body = Buffer.concat([head, json])
  fs.writeFileSync(file, Buffer.concat([body, hash(body)]))
}

/** Flips a bit in the middle of the bucket `[segment, offset, length]` of the index in `dir`. */
export function damageBucket(dir: string, [seg, offset, length]: [string, number, number, ...unknown[]]): void {
  const fd = fs.openSync(path.join(dir, seg), 'r+')
  try {
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, offset + Math.floor(length / 2))
    b[0] ^= 1
    fs.writeSync(fd, b, 0, 1, offset + Math.floor(length / 2))
  } finally {
    fs.closeSync(fd)
  }
}
