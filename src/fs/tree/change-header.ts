/**
 * Reads the header of an Automerge change chunk (deps, actor, seq) without decoding its ops:
 * checking who authored each change of a log entry must cost microseconds, and
 * Automerge.decodeChange decodes every op (~30 µs a change).
 *
 * Chunk: magic 85 6f 4a 83, checksum (4 bytes), type (1 = change, 2 = deflate-compressed
 * change), body length (uLEB128), body. Change body: dep count (uLEB), deps (32 bytes each),
 * actor length (uLEB), actor bytes, seq (uLEB), ... (the rest is not needed here).
 */
import { inflateRawSync } from 'node:zlib'
import { sha256 } from '../../crypto.js'

export interface ChangeHeader {
  /** The change's hash (what deps and heads name): SHA-256 of the uncompressed chunk from its type byte on. */
  hash: string
  actor: string
  seq: number
  deps: string[]
}

const MAGIC = [0x85, 0x6f, 0x4a, 0x83]
const TYPE_CHANGE = 1
const TYPE_COMPRESSED = 2
/** A compressed chunk that inflates beyond this is not a change we accept (zip-bomb guard). */
const MAX_INFLATED = 64 * 1024 * 1024

function uleb(b: Uint8Array, pos: { at: number }): number {
  let result = 0
  let shift = 0
  for (;;) {
    if (pos.at >= b.length) throw new Error('truncated integer')
    const byte = b[pos.at++]
    result += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) break
    shift += 7
    if (shift > 49) throw new Error('integer too large')
  }
  return result
}

/** Throws an Error naming what is wrong when `bytes` is not a change chunk. */
export function readChangeHeader(bytes: Uint8Array): ChangeHeader {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) throw new Error('not an Automerge change (bad magic)')
  const type = bytes[8]
  const pos = { at: 9 }
  const length = uleb(bytes, pos)
  if (pos.at + length !== bytes.length) throw new Error(`chunk length ${length} does not match its ${bytes.length - pos.at} body bytes`)
  let body: Uint8Array
  let hash: string
  if (type === TYPE_CHANGE) {
    body = bytes.subarray(pos.at)
    hash = sha256(bytes.subarray(8)).toString('hex')
  }
  else if (type === TYPE_COMPRESSED) {
    try {
      body = inflateRawSync(bytes.subarray(pos.at), { maxOutputLength: MAX_INFLATED })
    } catch (e) {
      throw new Error(`compressed change does not inflate: ${(e as Error).message}`)
    }
    hash = sha256(Buffer.concat([Buffer.from([TYPE_CHANGE]), ulebBytes(body.length), body])).toString('hex')
  } else throw new Error(`chunk type ${type} is not a change`)
  const p = { at: 0 }
  const ndeps = uleb(body, p)
  if (ndeps > (body.length - p.at) / 32) throw new Error('dependency list longer than the change')
  const deps: string[] = []
  for (let i = 0; i < ndeps; i++, p.at += 32) deps.push(Buffer.from(body.subarray(p.at, p.at + 32)).toString('hex'))
  const alen = uleb(body, p)
  if (alen === 0 || p.at + alen > body.length) throw new Error('bad actor length')
  const actor = Buffer.from(body.subarray(p.at, p.at + alen)).toString('hex')
  p.at += alen
  const seq = uleb(body, p)
  if (seq < 1) throw new Error('change seq must be >= 1')
  return { hash, actor, seq, deps }
}

function ulebBytes(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}
