// The entry codec: an op-log entry's plaintext body (binary, versioned) and the sealed block
// that carries it (XChaCha20-Poly1305 under the volume key). Layouts: spec/oplog.md.
import { NONCE_BYTES, TAG_BYTES, DecryptError, open, randomBytes, seal } from '../crypto.js'
import { ByteReader, ByteWriter } from './bytes.js'
import { LogFormatError } from './errors.js'

export interface AuditOp {
  op: string
  path?: string
  to?: string
  kind?: string
  size?: number
  hash?: string
  mode?: number
  mtime?: number
  target?: string
}
export interface ShardChange {
  shard: string
  change: Uint8Array
}
export interface EntryBody {
  time: number
  ops: AuditOp[]
  changes: ShardChange[]
}
/** Where an entry sits: what its associated data binds it to. */
export interface EntryPlace {
  volumeKey: Buffer
  volumeId: Buffer
  logKey: Buffer
  seq: number
}

export const ENTRY_BLOCK_VERSION = 1
export const ENTRY_BODY_VERSION = 1
/** Hypercore's own per-block ceiling (MAX_SUGGESTED_BLOCK_SIZE): a block must replicate in one message. */
export const MAX_BLOCK_BYTES = 15 * 1024 * 1024
export const MAX_BODY_BYTES = MAX_BLOCK_BYTES - 1 - NONCE_BYTES - TAG_BYTES
export const LIMITS = {
  changes: 100_000,
  ops: 1_000_000,
  shardBytes: 256,
  opNameBytes: 64,
  kindBytes: 64,
  pathBytes: 4096,
  hashBytes: 64,
  /** |mtime| bound so that its zigzag encoding stays a safe integer. */
  mtimeAbs: 2 ** 52 - 1,
  mode: 0xffffffff
} as const
/** Context string at the start of every entry's associated data. */
export const ENTRY_AD_CONTEXT = 'bazil/log/entry/v1'

// Optional audit fields, in encoding order; bit i of an op's flags says field i is present.
const OPTIONAL_FIELDS = ['path', 'to', 'kind', 'size', 'hash', 'mode', 'mtime', 'target'] as const
type OptionalField = (typeof OPTIONAL_FIELDS)[number]
const KNOWN_FIELDS = new Set<string>(['op', ...OPTIONAL_FIELDS])
const ALL_FLAGS = (1 << OPTIONAL_FIELDS.length) - 1
const HEX = /^(?:[0-9a-f]{2})+$/

export function encodeEntryBody(body: EntryBody): Buffer {
  const w = new ByteWriter()
  w.u8(ENTRY_BODY_VERSION)
  w.varint(body.time, 'entry time')
  if (!Array.isArray(body.changes) || body.changes.length > LIMITS.changes) {
    throw new LogFormatError(`entry changes must be an array of at most ${LIMITS.changes}`)
  }
  w.varint(body.changes.length, 'change count')
  for (const { shard, change } of body.changes) {
    if (shard.length === 0) throw new LogFormatError('change shard id is empty')
    w.string(shard, LIMITS.shardBytes, 'change shard id')
    if (!(change instanceof Uint8Array) || change.byteLength === 0) throw new LogFormatError(`change of shard ${shard} must be non-empty bytes`)
    w.bytes(change, MAX_BODY_BYTES, `change of shard ${shard}`)
  }
  if (!Array.isArray(body.ops) || body.ops.length > LIMITS.ops) {
    throw new LogFormatError(`entry ops must be an array of at most ${LIMITS.ops}`)
  }
  w.varint(body.ops.length, 'op count')
  for (const op of body.ops) encodeOp(w, op)
  if (w.length > MAX_BODY_BYTES) {
    throw new LogFormatError(`entry body is ${w.length} bytes, over the limit of ${MAX_BODY_BYTES}: split the batch into more entries`)
  }
  return w.finish()
}

function encodeOp(w: ByteWriter, op: AuditOp): void {
  for (const k of Object.keys(op)) {
    if (!KNOWN_FIELDS.has(k)) throw new LogFormatError(`audit op has unknown field "${k}"`)
  }
  let flags = 0
  OPTIONAL_FIELDS.forEach((f, i) => {
    if (op[f] !== undefined) flags |= 1 << i
  })
  w.varint(flags, 'audit op flags')
  if (typeof op.op !== 'string' || op.op.length === 0) throw new LogFormatError('audit op name must be a non-empty string')
  w.string(op.op, LIMITS.opNameBytes, 'audit op name')
  for (const f of OPTIONAL_FIELDS) {
    const v = op[f]
    if (v !== undefined) encodeField(w, f, v)
  }
}

function encodeField(w: ByteWriter, f: OptionalField, v: string | number): void {
  const what = `audit op ${f}`
  switch (f) {
    case 'path':
    case 'to':
    case 'target':
      return w.string(v as string, LIMITS.pathBytes, what)
    case 'kind':
      return w.string(v as string, LIMITS.kindBytes, what)
    case 'hash':
      if (typeof v !== 'string' || !HEX.test(v)) throw new LogFormatError(`${what} must be lowercase hex of whole bytes`)
      return w.bytes(Buffer.from(v, 'hex'), LIMITS.hashBytes, what)
    case 'size':
      return w.varint(v as number, what)
    case 'mode':
      if (typeof v !== 'number' || v > LIMITS.mode) throw new LogFormatError(`${what} must be in 0..${LIMITS.mode}`)
      return w.varint(v, what)
    case 'mtime':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || Math.abs(v) > LIMITS.mtimeAbs) {
        throw new LogFormatError(`${what} must be an integer of magnitude at most 2^52-1`)
      }
      return w.varint(v >= 0 ? v * 2 : -v * 2 - 1, what)
  }
}

export function decodeEntryBody(plain: Uint8Array): EntryBody {
  const r = new ByteReader(plain, 'entry body')
  if (plain.byteLength > MAX_BODY_BYTES) throw new LogFormatError(`entry body: ${plain.byteLength} bytes is over the limit of ${MAX_BODY_BYTES}`)
  const version = r.u8('version')
  if (version !== ENTRY_BODY_VERSION) throw new LogFormatError(`entry body: unknown version ${version}`)
  const time = r.varint('time')
  const changes: ShardChange[] = []
  const changeCount = r.count('change count', LIMITS.changes, 4)
  for (let i = 0; i < changeCount; i++) {
    const shard = r.string(LIMITS.shardBytes, `change ${i} shard id`)
    if (shard.length === 0) throw new LogFormatError(`entry body: change ${i} shard id is empty`)
    const change = r.bytes(MAX_BODY_BYTES, `change ${i} bytes`)
    if (change.byteLength === 0) throw new LogFormatError(`entry body: change ${i} is empty`)
    changes.push({ shard, change: new Uint8Array(change) })
  }
  const ops: AuditOp[] = []
  const opCount = r.count('op count', LIMITS.ops, 3)
  for (let i = 0; i < opCount; i++) ops.push(decodeOp(r, i))
  r.end()
  return { time, ops, changes }
}

function decodeOp(r: ByteReader, i: number): AuditOp {
  const flags = r.varint(`op ${i} flags`)
  if (flags > ALL_FLAGS) throw new LogFormatError(`entry body: op ${i} has unknown field flags 0x${flags.toString(16)}`)
  const name = r.string(LIMITS.opNameBytes, `op ${i} name`)
  if (name.length === 0) throw new LogFormatError(`entry body: op ${i} name is empty`)
  const op: AuditOp = { op: name }
  OPTIONAL_FIELDS.forEach((f, bit) => {
    if ((flags & (1 << bit)) === 0) return
    const field = `op ${i} ${f}`
    switch (f) {
      case 'path':
      case 'to':
      case 'target':
        op[f] = r.string(LIMITS.pathBytes, field)
        return
      case 'kind':
        op.kind = r.string(LIMITS.kindBytes, field)
        return
      case 'hash': {
        const h = r.bytes(LIMITS.hashBytes, field)
        if (h.byteLength === 0) throw new LogFormatError(`entry body: ${field} is empty`)
        op.hash = Buffer.from(h).toString('hex')
        return
      }
      case 'size':
        op.size = r.varint(field)
        return
      case 'mode': {
        const mode = r.varint(field)
        if (mode > LIMITS.mode) throw new LogFormatError(`entry body: ${field} ${mode} is over ${LIMITS.mode}`)
        op.mode = mode
        return
      }
      case 'mtime': {
        const z = r.varint(field)
        if (z > 2 * LIMITS.mtimeAbs) throw new LogFormatError(`entry body: ${field} is out of range`)
        op.mtime = z % 2 === 0 ? z / 2 : -(z + 1) / 2
        return
      }
    }
  })
  return op
}

/** The associated data that ties an entry's ciphertext to its volume, log and position. */
export function entryAssociatedData(volumeId: Buffer, logKey: Buffer, seq: number): Buffer {
  if (volumeId.length !== 32 || logKey.length !== 32) throw new LogFormatError('volume id and log key must be 32 bytes')
  if (!Number.isSafeInteger(seq) || seq < 1) throw new LogFormatError(`entry seq must be a positive integer, got ${seq}`)
  const seqBytes = Buffer.alloc(8)
  seqBytes.writeBigUInt64LE(BigInt(seq))
  return Buffer.concat([Buffer.from(ENTRY_AD_CONTEXT, 'utf8'), Buffer.from([0]), volumeId, logKey, seqBytes])
}

/** Encodes and seals one entry for the block at `place.seq`. */
export function encodeEntry(body: EntryBody, place: EntryPlace): Buffer {
  const plain = encodeEntryBody(body)
  const nonce = randomBytes(NONCE_BYTES)
  const sealed = seal(place.volumeKey, nonce, plain, entryAssociatedData(place.volumeId, place.logKey, place.seq))
  return Buffer.concat([Buffer.from([ENTRY_BLOCK_VERSION]), nonce, sealed])
}

/** Opens and decodes one entry block; any failure is a LogFormatError saying which step failed. */
export function decodeEntry(block: Uint8Array, place: EntryPlace): EntryBody {
  if (block.byteLength > MAX_BLOCK_BYTES) throw new LogFormatError(`entry block: ${block.byteLength} bytes is over the limit of ${MAX_BLOCK_BYTES}`)
  const r = new ByteReader(block, 'entry block')
  const version = r.u8('version')
  if (version !== ENTRY_BLOCK_VERSION) throw new LogFormatError(`entry block: unknown version ${version}`)
  const nonce = Buffer.from(r.raw(NONCE_BYTES, 'nonce'))
  if (r.remaining < TAG_BYTES) throw new LogFormatError('entry block: truncated at ciphertext')
  const sealed = Buffer.from(r.raw(r.remaining, 'ciphertext'))
  let plain: Buffer
  try {
    plain = open(place.volumeKey, nonce, sealed, entryAssociatedData(place.volumeId, place.logKey, place.seq), 'entry block')
  } catch (err) {
    if (err instanceof DecryptError) throw new LogFormatError('entry block: decryption failed (wrong volume key, or the block was altered or moved)')
    throw err
  }
  return decodeEntryBody(plain)
}
