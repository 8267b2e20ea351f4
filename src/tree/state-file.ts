/**
 * A volume's directory state as one file (spec/tree.md "Starting from a state"): the saved
 * Automerge shard documents of a replica and how far into each writer log they reach. A
 * joiner starts from it instead of replaying the history, and believes none of it: every
 * shard is checked against the changes the writers' signed logs carry (state-check.ts).
 *
 * Layout: "BZST" · version u8 (1) · header length u32 BE · header JSON (UTF-8) · the shard
 * saves back to back (in header order, then meta's) · BLAKE2b-256 (unkeyed) of everything before it.
 * Header: {volume: id hex, logs: {log key hex: next seq}, shards: [[name, heads[], byteLength]…],
 * meta: [heads[], byteLength] | null}.
 */
import fs from 'node:fs'
import { NONCE_BYTES, TAG_BYTES, DecryptError, hash, open, randomBytes, seal } from '../crypto.js'
import { isShard } from './model.js'

export const STATE_MAGIC = Buffer.from('BZST')
export const STATE_VERSION = 1
const HASH_BYTES = 32
/** Bounds what a header may claim (a 1M-file volume has a few thousand shards). */
const MAX_SHARDS = 1 << 20
const MAX_HEADER = 256 * 1024 * 1024

export interface SavedShard { name: string; heads: string[]; bytes: Uint8Array }

export interface VolumeState {
  /** Volume id, hex. */
  volume: string
  /** Per writer log (key hex): the next seq the state does not cover (every entry before it is in it). */
  logs: Record<string, number>
  shards: SavedShard[]
  meta: { heads: string[]; bytes: Uint8Array } | null
}

/** A state file that is not one, or not one this reader knows (the message says which). */
export class StateFileError extends Error {}

export function encodeState(s: VolumeState): Buffer {
  const header = Buffer.from(JSON.stringify({
    volume: s.volume,
    logs: s.logs,
    shards: s.shards.map((x) => [x.name, x.heads, x.bytes.byteLength]),
    meta: s.meta ? [s.meta.heads, s.meta.bytes.byteLength] : null,
  }))
  const head = Buffer.alloc(9)
  STATE_MAGIC.copy(head, 0)
  head[4] = STATE_VERSION
  head.writeUInt32BE(header.length, 5)
  const parts: Buffer[] = [head, header]
  for (const x of s.shards) parts.push(Buffer.from(x.bytes.buffer, x.bytes.byteOffset, x.bytes.byteLength))
  if (s.meta) parts.push(Buffer.from(s.meta.bytes.buffer, s.meta.bytes.byteOffset, s.meta.bytes.byteLength))
  const body = Buffer.concat(parts)
  return Buffer.concat([body, hash(body)])
}

const isHeads = (h: unknown): h is string[] => Array.isArray(h) && h.every((x) => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x))
const isLength = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

export function decodeState(buf: Buffer): VolumeState {
  if (buf.length < 9 + HASH_BYTES || !buf.subarray(0, 4).equals(STATE_MAGIC)) throw new StateFileError('not a bazil state file (no BZST header)')
  if (buf[4] !== STATE_VERSION) throw new StateFileError(`state file version ${buf[4]} is not known here (this bazil reads version ${STATE_VERSION})`)
  const body = buf.subarray(0, buf.length - HASH_BYTES)
  if (!hash(body).equals(buf.subarray(buf.length - HASH_BYTES))) throw new StateFileError('state file is damaged (its digest does not match)')
  const len = buf.readUInt32BE(5)
  if (len > MAX_HEADER || 9 + len > body.length) throw new StateFileError('state file is damaged (header length)')
  let h: { volume?: unknown; logs?: unknown; shards?: unknown; meta?: unknown }
  try {
    h = JSON.parse(body.subarray(9, 9 + len).toString('utf8')) as typeof h
  } catch {
    throw new StateFileError('state file is damaged (header is not JSON)')
  }
  const bad = (what: string): never => { throw new StateFileError(`state file is malformed: ${what}`) }
  if (typeof h !== 'object' || h === null) bad('header')
  if (typeof h.volume !== 'string' || !/^[0-9a-f]{64}$/.test(h.volume)) bad('volume id')
  if (typeof h.logs !== 'object' || h.logs === null || Array.isArray(h.logs)) bad('logs')
  const logs: Record<string, number> = {}
  for (const [k, v] of Object.entries(h.logs as object)) {
    if (!/^[0-9a-f]{64}$/.test(k) || !Number.isSafeInteger(v) || (v as number) < 1) bad(`log ${k.slice(0, 16)}`)
    logs[k] = v as number
  }
  if (!Array.isArray(h.shards) || h.shards.length > MAX_SHARDS) bad('shards')
  let at = 9 + len
  const take = (n: number): Uint8Array => {
    if (at + n > body.length) bad('shard bytes run past the end')
    const b = body.subarray(at, at + n)
    at += n
    return b
  }
  const shards: SavedShard[] = []
  const names = new Set<string>()
  for (const x of h.shards as unknown[]) {
    if (!Array.isArray(x) || x.length !== 3 || typeof x[0] !== 'string' || !isShard(x[0]) || x[0] === 'meta' || !isHeads(x[1]) || !isLength(x[2])) bad('a shard record')
    const [name, heads, n] = x as [string, string[], number]
    if (names.has(name)) bad(`shard ${name} listed twice`)
    names.add(name)
    shards.push({ name, heads, bytes: take(n) })
  }
  let meta: VolumeState['meta'] = null
  if (h.meta !== null) {
    const m = h.meta
    if (!Array.isArray(m) || m.length !== 2 || !isHeads(m[0]) || !isLength(m[1])) bad('meta')
    const [heads, n] = m as [string[], number]
    meta = { heads, bytes: take(n) }
  }
  if (at !== body.length) bad('trailing bytes')
  return { volume: h.volume as string, logs, shards, meta }
}

export function readStateFile(file: string): VolumeState {
  let buf: Buffer
  try {
    buf = fs.readFileSync(file)
  } catch (err) {
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`)
  }
  return decodeState(buf)
}

/**
 * A state as it travels between peers (spec/tree.md "Starting from a state"): the state file's
 * bytes sealed under the volume's state key, so that a peer without the sharing key (a
 * storage-only one) reads nothing of it. Layout: nonce (24 bytes) · XChaCha20-Poly1305 of the
 * state file, with the volume id as associated data.
 */
export function sealState(file: Buffer, stateKey: Buffer, volumeId: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES)
  return Buffer.concat([nonce, seal(stateKey, nonce, file, volumeId)])
}

/** Inverse of sealState, then decodeState; a StateFileError says what was wrong. */
export function openSealedState(sealed: Buffer, stateKey: Buffer, volumeId: Buffer): VolumeState {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new StateFileError('sealed state is too short')
  let file: Buffer
  try {
    file = open(stateKey, sealed.subarray(0, NONCE_BYTES), sealed.subarray(NONCE_BYTES), volumeId, 'sealed state')
  } catch (err) {
    if (err instanceof DecryptError) throw new StateFileError('sealed state does not open under this volume\'s state key (another volume, another sharing key, or altered)')
    throw err
  }
  return decodeState(file)
}
