// Hand-built Automerge change chunks for the hostile-entry tests and the fuzz-entries torture
// section: what a hostile writer can put in a log entry without going through Automerge
// (run-length "op bombs", deflate bombs, huge values), in the change format of
// spec/tree.md "Applying changes" (column layout as in automerge's storage/change.rs).
import { deflateRawSync } from 'node:zlib'
import { createHash } from 'node:crypto'
import { ulebBytes } from '../src/tree/change-header.js'

export function uleb(n: number): number[] {
  return [...ulebBytes(n)]
}

export function sleb(n: number): number[] {
  const out: number[] = []
  for (;;) {
    const b = ((n % 128) + 128) % 128
    n = Math.floor(n / 128)
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)
    out.push(done ? b : b | 0x80)
    if (done) return out
  }
}

/** Column specs of a change's op columns: (column id << 4) | type. */
export const COL = {
  objActor: 0x01, objCtr: 0x02, keyActor: 0x11, keyCtr: 0x13, keyStr: 0x15, insert: 0x34, action: 0x42,
  valueMeta: 0x56, value: 0x57, predGroup: 0x70, predActor: 0x71, predCtr: 0x73,
} as const
export const ACTION = { makeMap: 0, set: 1, makeList: 2, del: 3 } as const

export interface RawChange {
  actor: Buffer
  seq?: number
  startOp?: number
  deps?: Buffer[]
  /** [spec, data] in ascending spec order. */
  cols: [number, number[] | Buffer][]
  /** Bytes after the columns (Automerge keeps and ignores them). */
  extra?: Buffer
  /** Deflate the body into a type-2 chunk. */
  compress?: boolean
}

/** A change chunk with a correct checksum (over the uncompressed body, as Automerge defines it). */
export function rawChange(c: RawChange): Buffer {
  const head: number[] = [...uleb((c.deps ?? []).length)]
  for (const d of c.deps ?? []) head.push(...d)
  head.push(...uleb(c.actor.length), ...c.actor, ...uleb(c.seq ?? 1), ...uleb(c.startOp ?? 1), ...sleb(0), ...uleb(0), ...uleb(0))
  head.push(...uleb(c.cols.length))
  for (const [spec, data] of c.cols) head.push(...uleb(spec), ...uleb(data.length))
  const body = Buffer.concat([Buffer.from(head), ...c.cols.map(([, d]) => Buffer.from(d)), c.extra ?? Buffer.alloc(0)])
  const hash = createHash('sha256').update(Buffer.from([1, ...uleb(body.length)])).update(body).digest()
  const magic = Buffer.from([0x85, 0x6f, 0x4a, 0x83, ...hash.subarray(0, 4)])
  if (!c.compress) return Buffer.concat([magic, Buffer.from([1, ...uleb(body.length)]), body])
  const z = deflateRawSync(body, { level: 9 })
  return Buffer.concat([magic, Buffer.from([2, ...uleb(z.length)]), z])
}

/** `ops` ops on the root map (all on key `key`), in about 80 bytes whatever `ops` is: run-length columns. */
export function opBomb(actor: Buffer, ops: number, opts: { action?: number; seq?: number; deps?: Buffer[]; key?: string; compress?: boolean } = {}): Buffer {
  const key = Buffer.from(opts.key ?? 'k')
  return rawChange({
    actor, seq: opts.seq, deps: opts.deps, compress: opts.compress,
    cols: [
      [COL.keyStr, [...sleb(ops), ...uleb(key.length), ...key]],
      [COL.insert, uleb(ops)],
      [COL.action, [...sleb(ops), opts.action ?? ACTION.makeMap]],
      [COL.valueMeta, [...sleb(ops), 0]],
      [COL.predGroup, [...sleb(ops), 0]],
    ],
  })
}

/** One op per key: `keys` distinct keys (literal runs), each a new map, or a string of `valueBytes`. */
export function wideChange(actor: Buffer, keys: string[], opts: { valueBytes?: number; seq?: number; compress?: boolean } = {}): Buffer {
  const n = keys.length
  const keyCol: number[] = [...sleb(-n)]
  for (const k of keys) keyCol.push(...uleb(Buffer.byteLength(k)), ...Buffer.from(k))
  const v = opts.valueBytes
  const cols: [number, number[] | Buffer][] = [
    [COL.keyStr, keyCol],
    [COL.insert, uleb(n)],
    [COL.action, [...sleb(n), v === undefined ? ACTION.makeMap : ACTION.set]],
    [COL.valueMeta, [...sleb(n), ...uleb(v === undefined ? 0 : v * 16 + 6)]],
  ]
  if (v !== undefined) cols.push([COL.value, Buffer.alloc(v * n, 0x61)])
  cols.push([COL.predGroup, [...sleb(n), 0]])
  return rawChange({ actor, seq: opts.seq, compress: opts.compress, cols })
}

/** A valid small change padded with `inflated` zero bytes after its columns, deflated: a compression bomb. */
export function deflateBomb(actor: Buffer, inflated: number, seq = 1): Buffer {
  return rawChange({ actor, seq, compress: true, extra: Buffer.alloc(inflated), cols: [[COL.keyStr, [...sleb(1), 1, 0x6b]], [COL.insert, uleb(1)], [COL.action, [...sleb(1), 0]], [COL.valueMeta, [...sleb(1), 0]], [COL.predGroup, [...sleb(1), 0]]] })
}

/** A new map on the root holding `ops` more ops (all on one key of it): ops that are not on the root map. */
export function nestedBomb(actor: Buffer, ops: number, opts: { seq?: number; key?: string } = {}): Buffer {
  const key = Buffer.from(opts.key ?? 'k')
  return rawChange({
    actor, seq: opts.seq,
    cols: [
      [COL.objActor, [...sleb(0), ...uleb(1), ...sleb(ops), ...uleb(0)]],
      [COL.objCtr, [...sleb(0), ...uleb(1), ...sleb(ops), ...uleb(1)]],
      [COL.keyStr, [...sleb(1), ...uleb(key.length), ...key, ...sleb(ops), 1, 0x78]],
      [COL.insert, uleb(ops + 1)],
      [COL.action, [...sleb(1), ACTION.makeMap, ...sleb(ops), ACTION.set]],
      [COL.valueMeta, [...sleb(ops + 1), 0]],
      [COL.predGroup, [...sleb(ops + 1), 0]],
    ],
  })
}
