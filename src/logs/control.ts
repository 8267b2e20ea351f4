// Control entries: the writer-set ops (admit, revoke) a writer records in its own log. They
// are PLAINTEXT (authenticated by the log's hypercore signature, not sealed), so a node
// holding the volume without its sharing key computes the same writer set as a reader.
// Layout: spec/oplog.md ("Control entries").
import type { Hypercore } from 'hypercore'
import { ByteReader, ByteWriter } from './bytes.js'
import { LogFormatError } from './errors.js'
import { blocksInOrder } from './local-blocks.js'

/** Block version of a control entry (sealed entries are block version 1). */
export const CONTROL_BLOCK_VERSION = 2
export const CONTROL_BODY_VERSION = 1
/** Ops in one control entry. */
export const MAX_CONTROL_OPS = 1024
const ADMIT = 1
const REVOKE = 2
const ADMIT_NODE = 3
const REVOKE_NODE = 4

/**
 * admit: the log `log`, bound to node `node`, may write. revoke: entries of `log` after seq
 * `last` are not accepted. admit-node: every log bound to `node` may write (recorded by
 * `peer volume allow`, before the node's log is known). revoke-node: cancels admit-node ops
 * for `node` (logs admitted by name stay admitted, up to their revocations).
 */
export type ControlOp =
  | { op: 'admit'; log: Buffer; node: Buffer }
  | { op: 'revoke'; log: Buffer; last: number }
  | { op: 'admit-node'; node: Buffer }
  | { op: 'revoke-node'; node: Buffer }

export interface ControlBody {
  time: number
  ops: ControlOp[]
}

export function isControlBlock(block: Uint8Array): boolean {
  return block.byteLength > 0 && block[0] === CONTROL_BLOCK_VERSION
}

export function encodeControl(body: ControlBody): Buffer {
  if (!Array.isArray(body.ops) || body.ops.length === 0 || body.ops.length > MAX_CONTROL_OPS) {
    throw new LogFormatError(`a control entry holds 1 to ${MAX_CONTROL_OPS} ops`)
  }
  const w = new ByteWriter()
  w.u8(CONTROL_BLOCK_VERSION)
  w.u8(CONTROL_BODY_VERSION)
  w.varint(body.time, 'control entry time')
  w.varint(body.ops.length, 'control op count')
  for (const op of body.ops) {
    if (op.op === 'admit-node' || op.op === 'revoke-node') {
      if (!Buffer.isBuffer(op.node) || op.node.length !== 32) throw new LogFormatError(`${op.op}: node key must be 32 bytes`)
      w.u8(op.op === 'admit-node' ? ADMIT_NODE : REVOKE_NODE)
      w.raw(op.node)
      continue
    }
    if (!Buffer.isBuffer(op.log) || op.log.length !== 32) throw new LogFormatError('control op: log key must be 32 bytes')
    if (op.op === 'admit') {
      if (!Buffer.isBuffer(op.node) || op.node.length !== 32) throw new LogFormatError('admit: node key must be 32 bytes')
      w.u8(ADMIT)
      w.raw(op.log)
      w.raw(op.node)
    } else if (op.op === 'revoke') {
      w.u8(REVOKE)
      w.raw(op.log)
      w.varint(op.last, 'revoke: last accepted seq')
    } else {
      throw new LogFormatError(`unknown control op ${JSON.stringify((op as { op: unknown }).op)}`)
    }
  }
  return w.finish()
}

/** Decodes a control block; LogFormatError naming the field on anything else. */
export function decodeControl(block: Uint8Array): ControlBody {
  const r = new ByteReader(block, 'control entry')
  const version = r.u8('block version')
  if (version !== CONTROL_BLOCK_VERSION) throw new LogFormatError(`control entry: block version ${version} is not a control entry`)
  const bodyVersion = r.u8('body version')
  if (bodyVersion !== CONTROL_BODY_VERSION) throw new LogFormatError(`control entry: unknown body version ${bodyVersion}`)
  const time = r.varint('time')
  const n = r.count('op count', MAX_CONTROL_OPS, 33)
  if (n === 0) throw new LogFormatError('control entry: no ops')
  const ops: ControlOp[] = []
  for (let i = 0; i < n; i++) {
    const kind = r.u8(`op ${i} kind`)
    if (kind === ADMIT_NODE || kind === REVOKE_NODE) {
      ops.push({ op: kind === ADMIT_NODE ? 'admit-node' : 'revoke-node', node: Buffer.from(r.raw(32, `op ${i} node key`)) })
      continue
    }
    const log = Buffer.from(r.raw(32, `op ${i} log key`))
    if (kind === ADMIT) ops.push({ op: 'admit', log, node: Buffer.from(r.raw(32, `op ${i} node key`)) })
    else if (kind === REVOKE) ops.push({ op: 'revoke', log, last: r.varint(`op ${i} last seq`) })
    else throw new LogFormatError(`control entry: op ${i} has unknown kind ${kind}`)
  }
  r.end()
  return { time, ops }
}

/** A control entry found in a log, where it is. */
export interface ControlRecord {
  /** Log key, hex. */
  log: string
  seq: number
  ops: ControlOp[]
}

/**
 * Where a core's blocks past a revocation limit stand here (src/logs/held-range.ts): from
 * `from` on, a block not held is either examined already (a sealed entry, cleared) or not
 * fetched yet, and the blocks after it may be held.
 */
export interface PastLimit {
  from: number
  examined(seq: number): boolean
}

/**
 * The control entries of a core between `from` and `to` (exclusive), reading only blocks held
 * locally, without any key: what a storage-only node needs. Bad control blocks, and blocks
 * the local store cannot give back (a damaged file), are skipped and returned in `bad`;
 * sealed entries are skipped unread. Returns where it stopped: the first seq not held, or `to`.
 * With `past`, blocks from `past.from` on are read over the gaps (examined blocks, and blocks
 * not fetched yet: the first of those is `next`, so a later scan reads from there again).
 */
export async function scanControl(core: Hypercore, from: number, to: number = core.length, past: PastLimit | null = null): Promise<{ next: number; found: ControlRecord[]; bad: { seq: number; reason: string }[] }> {
  const found: ControlRecord[] = []
  const bad: { seq: number; reason: string }[] = []
  const log = core.key.toString('hex')
  const start = Math.max(1, from)
  let hole = -1
  for await (const b of blocksInOrder(core, start, to)) {
    const seq = b.seq
    if (b.block === undefined) {
      bad.push({ seq, reason: `block cannot be read from the local store: ${(b.error as Error)?.message ?? String(b.error)}` })
      continue
    }
    if (b.block === null) {
      if (past === null || seq < past.from) return { next: seq, found, bad }
      if (hole < 0 && !past.examined(seq)) hole = seq
      continue
    }
    if (!isControlBlock(b.block)) continue
    try {
      found.push({ log, seq, ops: decodeControl(b.block).ops })
    } catch (err) {
      if (!(err instanceof LogFormatError)) throw err
      bad.push({ seq, reason: err.message })
    }
  }
  return { next: hole >= 0 ? hole : Math.max(start, to), found, bad }
}
