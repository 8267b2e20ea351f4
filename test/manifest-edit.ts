// Rewriting an index manifest as an older bazil wrote it (tests of the migrations read these).
import fs from 'node:fs'
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
