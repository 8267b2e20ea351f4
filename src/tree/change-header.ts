/**
 * Checks an Automerge change chunk before Automerge sees it, and reads its header (deps,
 * actor, seq), with the work bounded by limits rather than by what the bytes claim.
 *
 * Automerge's change format declares no op count and no inflated size: a deflated chunk
 * (type 2) can inflate ~1000-fold, and the op columns are run-length encoded, so 80 bytes can
 * hold a million ops (each applied by Automerge, ~2 µs apiece). This module inflates with a
 * hard cap, then walks the column metadata and counts the rows of every column (runs are
 * summed, never expanded), so a change's cost is known before it is applied. Automerge is
 * then given the uncompressed chunk (same checksum, same hash: Automerge defines both on the
 * uncompressed form), so nothing is inflated twice and Automerge never inflates untrusted
 * data. Layouts: spec/tree.md "Applying changes" and spec/oplog.md "Limits".
 *
 * Chunk: magic 85 6f 4a 83, checksum (4 bytes), type (1 = change, 2 = deflate-compressed
 * change), body length (uLEB128), body. Change body: dep count (uLEB), deps (32 bytes each),
 * actor length (uLEB), actor, seq (uLEB), start op (uLEB), time (sLEB), message length (uLEB),
 * message, other actor count (uLEB), other actors (uLEB length + bytes each), column count
 * (uLEB), per column spec (uLEB) and data length (uLEB), column data, extra bytes.
 */
import { inflateRawSync } from 'node:zlib'
import { sha256 } from '../crypto.js'

export interface ChangeHeader {
  /** The change's hash (what deps and heads name): SHA-256 of the uncompressed chunk from its type byte on. */
  hash: string
  actor: string
  seq: number
  deps: string[]
}

/** A checked change: its header, what it costs, and the chunk to give Automerge (always uncompressed). */
export interface CheckedChange extends ChangeHeader {
  /** The uncompressed chunk (the input itself unless it was deflated). */
  chunk: Uint8Array
  /** Bytes of the uncompressed change body. */
  size: number
  /** What it costs in ops: rows of its longest op column (the ops Automerge decodes and applies), an op on the root map counting rootOpWeight. */
  ops: number
  /**
   * Objects (Automerge ids, `counter@actorHex`) on which an op of the change writes key
   * `content` or `del`: the records whose concurrent values it may join (Automerge emits no
   * patch when a losing value joins a conflicted key, so those records are re-read by id).
   */
  valueObjs: string[]
}

/**
 * Limits on the work one log entry can cause (spec/oplog.md "Limits of an entry's changes").
 * Measured on this machine: Automerge applies an entry of 16k one-op records in ~80 ms (quiet)
 * and reading them back costs as much again; with 4 MiB of values an entry took 0.5-0.7 s
 * under load, with 1 MiB ~0.15. These keep one entry near 100 ms of blocked event loop on a
 * quiet machine; a local batch of ~540 new files is one entry.
 */
export const CHANGE_LIMITS = {
  /** Ops (rows of the longest column) summed over the changes of one entry. */
  entryOps: 8192,
  /** What each change counts for besides its ops (Automerge's fixed cost per change, ~30 µs). */
  changeOps: 16,
  /** What an op on a shard's root map counts for: each is a record the index reads back (an honest new record is 1 such op and 1 other in format 2, 7 others in format 1). */
  rootOpWeight: 8,
  /** Uncompressed change bytes summed over the changes of one entry. */
  entryBytes: 1024 * 1024,
  /** A deflated change may inflate to at most ratio x its compressed size + ratioSlack bytes. */
  ratio: 32,
  ratioSlack: 4096,
} as const

/** What is left of an entry's allowance; readChangeHeader takes each change's cost from it. */
export interface ChangeBudget { ops: number; bytes: number }

export function entryBudget(): ChangeBudget {
  return { ops: CHANGE_LIMITS.entryOps, bytes: CHANGE_LIMITS.entryBytes }
}

/** A change over a limit: rejected, never applied (the message names the limit). */
export class ChangeLimitError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ChangeLimitError'
  }
}

/** A change whose values claim another writer than its actor (see checkClaims): rejected. */
export class ForgedWriterError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ForgedWriterError'
  }
}

const MAGIC = [0x85, 0x6f, 0x4a, 0x83]
const TYPE_CHANGE = 1
const TYPE_COMPRESSED = 2
const COLUMN_DEFLATE = 8
// Column types (the low 3 bits of a column spec): 0 group, 1 actor, 2 integer, 3 delta integer and
// 6 value metadata are run-length encoded numbers; 4 boolean; 5 run-length encoded strings; 7 raw values.
const COL_BOOL = 4, COL_STRING = 5, COL_VALUE = 7

class Reader {
  at = 0
  constructor(readonly b: Uint8Array, readonly end = b.length) {}

  uleb(what: string): number {
    return this.leb(what, false)
  }

  sleb(what: string): number {
    return this.leb(what, true)
  }

  /** One LEB128 number; a signed one takes its sign from bit 6 of the last byte. */
  private leb(what: string, signed: boolean): number {
    let result = 0
    let shift = 0
    for (;;) {
      if (this.at >= this.end) throw new Error(`truncated ${what}`)
      const byte = this.b[this.at++]
      result += (byte & 0x7f) * 2 ** shift
      shift += 7
      if ((byte & 0x80) === 0) return signed && byte & 0x40 ? result - 2 ** shift : result
      if (shift > 49) throw new Error(`${what} too large`)
    }
  }

  /** Skips one LEB128 number (signed or not). */
  skipLeb(what: string): void {
    for (let n = 0; ; n++) {
      if (this.at >= this.end) throw new Error(`truncated ${what}`)
      if (n > 9) throw new Error(`${what} too large`)
      if ((this.b[this.at++] & 0x80) === 0) return
    }
  }

  skip(n: number, what: string): void {
    if (n > this.end - this.at) throw new Error(`${what} longer than the change`)
    this.at += n
  }
}

/**
 * Throws an Error naming what is wrong when `bytes` is not a change chunk, and a
 * ChangeLimitError when it is over what is left of `budget` (which it then leaves as it was);
 * otherwise takes the change's cost from `budget`. Without a budget, one entry's allowance.
 */
export function readChangeHeader(bytes: Uint8Array, budget: ChangeBudget = entryBudget()): CheckedChange {
  return check(bytes, budget, true)
}

/**
 * The ops (with the per-change allowance) and uncompressed bytes of an entry's changes, as
 * readChangeHeader counts them but without hashing. An entry over its limits or with a
 * malformed change counts as a whole allowance: rejecting it may take as much work (inflating
 * up to the cap, counting up to the limit). For a replayer that applies entries in bounded batches.
 */
export function entryCost(changes: Iterable<Uint8Array>): { ops: number; bytes: number } {
  const budget = entryBudget()
  for (const c of changes) {
    try {
      check(c, budget, false)
    } catch {
      return { ops: CHANGE_LIMITS.entryOps, bytes: CHANGE_LIMITS.entryBytes }
    }
  }
  return { ops: CHANGE_LIMITS.entryOps - budget.ops, bytes: CHANGE_LIMITS.entryBytes - budget.bytes }
}

function check(bytes: Uint8Array, budget: ChangeBudget, hashIt: boolean): CheckedChange {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) throw new Error('not an Automerge change (bad magic)')
  const type = bytes[8]
  const head = new Reader(bytes)
  head.at = 9
  const length = head.uleb('chunk length')
  if (head.at + length !== bytes.length) throw new Error(`chunk length ${length} does not match its ${bytes.length - head.at} body bytes`)
  let body: Uint8Array
  let chunk: Uint8Array
  if (type === TYPE_CHANGE) {
    body = bytes.subarray(head.at)
    if (body.length > budget.bytes) throw new ChangeLimitError(`change of ${body.length} bytes is over the ${budget.bytes} bytes left of the entry's ${CHANGE_LIMITS.entryBytes}`)
    chunk = bytes
  } else if (type === TYPE_COMPRESSED) {
    const packed = bytes.subarray(head.at)
    const byRatio = CHANGE_LIMITS.ratio * packed.length + CHANGE_LIMITS.ratioSlack
    const cap = Math.min(budget.bytes, byRatio)
    try {
      // Inflation stops at the cap: the work is bounded by it, not by what the stream would produce.
      body = inflateRawSync(packed, { maxOutputLength: cap })
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ChangeLimitError(cap === byRatio
          ? `compressed change of ${packed.length} bytes inflates beyond ${CHANGE_LIMITS.ratio}x its size (+${CHANGE_LIMITS.ratioSlack})`
          : `compressed change inflates beyond the ${budget.bytes} bytes left of the entry's ${CHANGE_LIMITS.entryBytes}`)
      }
      throw new Error(`compressed change does not inflate: ${(e as Error).message}`)
    }
    // The same chunk uncompressed, with the checksum it declares (Automerge checks that
    // checksum against the uncompressed body in both forms, so it decides alike).
    chunk = Buffer.concat([Buffer.from(bytes.subarray(0, 8)), Buffer.from([TYPE_CHANGE]), ulebBytes(body.length), body])
  } else throw new Error(`chunk type ${type} is not a change`)
  const hash = hashIt ? sha256(chunk.subarray(8)).toString('hex') : ''

  const r = new Reader(body)
  const ndeps = r.uleb('dependency count')
  if (ndeps > (body.length - r.at) / 32) throw new Error('dependency list longer than the change')
  const deps: string[] = []
  for (let i = 0; i < ndeps; i++, r.at += 32) deps.push(Buffer.from(body.subarray(r.at, r.at + 32)).toString('hex'))
  const alen = r.uleb('actor length')
  if (alen === 0 || r.at + alen > body.length) throw new Error('bad actor length')
  const actor = Buffer.from(body.subarray(r.at, r.at + alen)).toString('hex')
  r.at += alen
  const seq = r.uleb('seq')
  if (seq < 1) throw new Error('change seq must be >= 1')
  if (budget.ops < CHANGE_LIMITS.changeOps) throw tooMany(budget.ops)
  const { ops, cols, actors } = countOps(r, budget.ops - CHANGE_LIMITS.changeOps)
  const valueObjs = checkClaims(body, cols, actor, actors)
  budget.ops -= ops + CHANGE_LIMITS.changeOps
  budget.bytes -= body.length
  return { hash, actor, seq, deps, chunk, size: body.length, ops, valueObjs }
}

/** Column data by spec: [start, end) in the body. */
type Columns = Map<number, [number, number]>

/** The rest of the body after seq: the rows of its longest op column (throws over `maxOps`) and where each column is. */
function countOps(r: Reader, maxOps: number): { ops: number; cols: Columns; actors: [number, number][] } {
  const startOp = r.uleb('start op')
  if (startOp < 1) throw new Error('change start op must be >= 1')
  r.skipLeb('time')
  r.skip(r.uleb('message length'), 'message')
  const nActors = r.uleb('other actor count')
  if (nActors > r.end - r.at) throw new Error('other actor list longer than the change')
  const actors: [number, number][] = []
  for (let i = 0; i < nActors; i++) {
    const n = r.uleb('actor length')
    actors.push([r.at, r.at + n])
    r.skip(n, 'actor')
  }
  const nCols = r.uleb('column count')
  if (nCols > (r.end - r.at) / 2) throw new Error('column list longer than the change')
  const cols: [number, number][] = []
  let total = 0
  for (let i = 0; i < nCols; i++) {
    const spec = r.uleb('column spec')
    const len = r.uleb('column length')
    if (spec & COLUMN_DEFLATE) throw new Error('change has a compressed column')
    cols.push([spec, len])
    total += len
  }
  if (total > r.end - r.at) throw new Error('column data longer than the change')
  let ops = 0
  const where: Columns = new Map()
  for (const [spec, len] of cols) {
    const col = new Reader(r.b, r.at + len)
    col.at = r.at
    where.set(spec, [r.at, r.at + len])
    r.at += len
    const type = spec & 7
    if (type === COL_VALUE) continue // raw bytes, located by the value-metadata column
    const rows = type === COL_BOOL ? boolRows(col, maxOps) : rleRows(col, type === COL_STRING, maxOps)
    if (rows > ops) ops = rows
  }
  // Ops on the root map: null rows of the object column, and every op when it is absent or shorter.
  const obj = where.get(OBJ_ACTOR)
  let rootOps = ops
  if (obj) {
    const c = new Reader(r.b, obj[1])
    c.at = obj[0]
    const { rows, nulls } = rleCount(c, false, Number.MAX_SAFE_INTEGER)
    rootOps = nulls + Math.max(0, ops - rows)
  }
  const cost = ops + (CHANGE_LIMITS.rootOpWeight - 1) * rootOps
  if (cost > maxOps) throw tooMany(maxOps)
  // The rest is extra bytes, which Automerge keeps and ignores.
  return { ops: cost, cols: where, actors }
}

// Op columns the authorship check reads (spec = column id << 4 | type).
const OBJ_ACTOR = 0x01, OBJ_CTR = 0x02, KEY_STR = 0x15, ACTION = 0x42, VALUE_META = 0x56, VALUE = 0x57
const ACTION_SET = 1
/** makeMap, makeList, makeText, makeTable. */
const MAKE_ACTIONS = new Set([0, 2, 4, 6])
const VALUE_STRING = 6
const SNAP_PREFIX = 'snap.'
const SNAP_BYTES = Buffer.from(SNAP_PREFIX, 'latin1')

/**
 * Authorship by construction: a change may only write values that name its own actor as
 * their writer. Every op assigning a string to `loc`, `content` or `del` (or `snap.*`) whose
 * JSON is a value of format 1 must name the change's actor in its writer field, a string
 * assigned to `by` (a record's creator) must be the actor, so must the creator of a v2
 * record's creation (`c`, format 2, whose loc and content name no other writer), and no op may put an object (text,
 * map, list) under those keys; otherwise the change is rejected. So every writer field in a document is the signed author of the
 * change that wrote it (the actor is checked against the log key), and what the view shows
 * as a version's or a name's writer never comes from an unchecked claim.
 */
function checkClaims(body: Uint8Array, cols: Columns, actor: string, others: [number, number][]): string[] {
  const keys = cols.get(KEY_STR), actions = cols.get(ACTION), metas = cols.get(VALUE_META)
  const objs: string[] = []
  if (!keys || !actions || !metas) return objs // no map keys, actions or values: nothing claims a writer
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const keyRows = new RleCursor(buf, keys, true)
  const actionRows = new RleCursor(buf, actions, false)
  const metaRows = new RleCursor(buf, metas, false)
  const objActorCol = cols.get(OBJ_ACTOR), objCtrCol = cols.get(OBJ_CTR)
  const objActors = objActorCol ? new RleCursor(buf, objActorCol, false) : null
  const objCtrs = objCtrCol ? new RleCursor(buf, objCtrCol, false) : null
  const values = cols.get(VALUE) ?? [0, 0]
  let at = values[0]
  while (!metaRows.done) {
    const m = metaRows.next() ?? 0
    const key = keyRows.done ? KEY_OTHER : keyRows.next() ?? KEY_OTHER
    const action = actionRows.done ? -1 : actionRows.next() ?? -1
    const objActor = objActors === null || objActors.done ? null : objActors.next()
    const objCtr = objCtrs === null || objCtrs.done ? null : objCtrs.next()
    if ((key === KEY_CONTENT || key === KEY_DEL) && objActor !== null && objCtr !== null) {
      const who = objActor === 0 ? actor : objActor <= others.length ? buf.toString('hex', others[objActor - 1]![0], others[objActor - 1]![1]) : null
      if (who !== null) objs.push(`${objCtr}@${who}`)
    }
    const len = Math.floor(m / 16)
    const start = at
    at += len
    if (at > values[1]) throw new Error('value column shorter than its metadata')
    if (key === KEY_OTHER) continue
    const what = KEY_NAMES[key]
    // A text or other object under such a key would read back as a string no op ever checked.
    if (MAKE_ACTIONS.has(action)) throw new ForgedWriterError(`change writes an object to key ${what}, whose values are strings`)
    if (action !== ACTION_SET || m % 16 !== VALUE_STRING) continue
    if (key === KEY_BY) {
      const creator = buf.toString('utf8', start, at)
      if (creator !== actor) throw new ForgedWriterError(`change by actor ${actor.slice(0, 16)}… names ${creator.slice(0, 16)}… as a record's creator`)
      continue
    }
    // Most values name their own writer: found by a scan of the bytes, no JSON parsed (the
    // check's share of a 1M-file join). Element `KEY_WRITER_INDEX[key]` being exactly the
    // actor's string settles it, valid JSON or not; anything else is parsed below.
    if (namesActor(buf, start, at, KEY_WRITER_INDEX[key]!, actor)) continue
    let v: unknown
    try { v = JSON.parse(buf.toString('utf8', start, at)) } catch { continue } // not a value: the record is invalid, names no one
    // A v2 record's creation (`c`, format 2) names its creator; the other values are of format 1.
    // A snapshot record of format 2 (heads in parts) names its writer where format 1 does.
    if (!Array.isArray(v) || !(v[0] === (key === KEY_CREATION ? 2 : 1) || (key === KEY_SNAPSHOT && v[0] === 2))) continue
    const claim = v[KEY_WRITER_INDEX[key]]
    if (typeof claim === 'string' && claim !== actor) throw new ForgedWriterError(`change by actor ${actor.slice(0, 16)}… writes a ${what} value naming writer ${claim.slice(0, 16)}…`)
  }
  return objs
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, OPEN = 0x5b, CLOSE = 0x5d, OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d

/**
 * Whether the JSON array in buf[start, end) has as element `k` exactly the string `actor`
 * (lowercase hex, as JSON.stringify writes it: no whitespace, no escapes). False whenever it
 * is not plainly so (whitespace, escapes in it, fewer elements, not an array): the caller then
 * parses the value. Elements before `k` are skipped by their brackets and quotes.
 */
function namesActor(buf: Buffer, start: number, end: number, k: number, actor: string): boolean {
  if (start >= end || buf[start] !== OPEN) return false
  let p = start + 1
  for (let i = 0; i < k; i++) {
    // Skip one element: a string, a nested array or object, or a bare number/literal.
    let depth = 0
    for (;;) {
      if (p >= end) return false
      const c = buf[p]!
      if (c === QUOTE) {
        p++
        while (p < end && buf[p] !== QUOTE) p += buf[p] === BACKSLASH ? 2 : 1
        if (p >= end) return false
        p++
        continue
      }
      if (c === OPEN || c === OPEN_OBJ) depth++
      else if (c === CLOSE || c === CLOSE_OBJ) {
        if (depth === 0) return false // the array ended before element k
        depth--
      } else if (c === COMMA && depth === 0) break
      p++
    }
    p++ // the comma
  }
  const n = actor.length
  if (p + n + 2 > end || buf[p] !== QUOTE || buf[p + n + 1] !== QUOTE) return false
  const after = p + n + 2 < end ? buf[p + n + 2] : -1
  if (after !== COMMA && after !== CLOSE) return false
  for (let j = 0; j < n; j++) if (buf[p + 1 + j] !== actor.charCodeAt(j)) return false
  return true
}

// Keys whose values name a writer, as codes (0 = any other key), their names and writer index.
const KEY_OTHER = 0
const KEY_CONTENT = 2, KEY_DEL = 3, KEY_SNAPSHOT = 4, KEY_BY = 5
const KEY_CREATION = 6
// Hard links (spec/tree.md "Hard links"): `ln.<lid>` holds a loc (writer at 3), `lx.<nid>` a name's removal (writer at 1).
const KEY_NAME = 7, KEY_REMOVAL = 8
const KEY_NAMES = ['', 'loc', 'content', 'del', 'snapshot', 'by', 'c', 'ln.*', 'lx.*']
const KEY_WRITER_INDEX = [0, 3, 3, 1, 2, 0, 2, 3, 1]

/** The code of a key by its prefix (`snap.`, `ln.`, `lx.`), given its first characters. */
function prefixCode(head: string): number {
  if (head.startsWith(SNAP_PREFIX)) return KEY_SNAPSHOT
  if (head.startsWith('ln.')) return KEY_NAME
  if (head.startsWith('lx.')) return KEY_REMOVAL
  return KEY_OTHER
}
const KEY_CODES = new Map([['loc', 1], ['content', 2], ['del', 3], ['by', KEY_BY], ['c', KEY_CREATION]])

/**
 * The rows of a run-length column one at a time (null for null rows), without allocating:
 * numbers as numbers; strings (key names) as the codes above, computed once per run.
 */
class RleCursor {
  private readonly r: Reader
  private left = 0
  private value: number | null = null
  private literal = false
  constructor(private readonly buf: Buffer, [start, end]: [number, number], private readonly strings: boolean) {
    this.r = new Reader(buf, end)
    this.r.at = start
  }

  get done(): boolean { return this.left === 0 && this.r.at >= this.r.end }

  next(): number | null {
    if (this.left === 0) {
      const n = this.r.sleb('run length')
      if (n > 0) {
        this.left = n
        this.literal = false
        this.value = this.read()
      } else if (n < 0) {
        this.left = -n
        this.literal = true
      } else {
        this.left = this.r.uleb('null run length')
        this.literal = false
        this.value = null
      }
      if (this.left === 0) return null
    }
    this.left--
    return this.literal ? this.read() : this.value
  }

  private read(): number {
    if (!this.strings) return this.r.uleb('column value')
    const n = this.r.uleb('string length')
    const from = this.r.at
    this.r.skip(n, 'string')
    if (n > 7) {
      // Node ids and other long keys: only a `snap.`, `ln.` or `lx.` prefix counts (compared in place, nothing allocated).
      const b0 = this.buf[from], b1 = this.buf[from + 1], b2 = this.buf[from + 2]
      if (b0 === 0x6c && b2 === 0x2e) return b1 === 0x6e ? KEY_NAME : b1 === 0x78 ? KEY_REMOVAL : KEY_OTHER // ln. lx.
      for (let j = 0; j < SNAP_BYTES.length; j++) if (this.buf[from + j] !== SNAP_BYTES[j]) return KEY_OTHER
      return 4
    }
    const k = this.buf.toString('latin1', from, this.r.at)
    return KEY_CODES.get(k) ?? prefixCode(k)
  }
}

function tooMany(maxOps: number): ChangeLimitError {
  return new ChangeLimitError(`change has more ops than the ${maxOps} left of the entry's ${CHANGE_LIMITS.entryOps} (${CHANGE_LIMITS.changeOps} per change besides its own, ${CHANGE_LIMITS.rootOpWeight} per op on the root map)`)
}

/** Rows of a run-length column: runs (n > 0: one value n times), literals (n < 0: -n values), null runs (0, count). */
function rleRows(c: Reader, strings: boolean, maxOps: number): number {
  return rleCount(c, strings, maxOps).rows
}

function rleCount(c: Reader, strings: boolean, maxOps: number): { rows: number; nulls: number } {
  let rows = 0
  let nulls = 0
  while (c.at < c.end) {
    const n = c.sleb('run length')
    let values = 0
    if (n > 0) {
      rows += n
      values = 1
    } else if (n < 0) {
      rows += -n
      values = -n
    } else {
      const k = c.uleb('null run length')
      rows += k
      nulls += k
    }
    if (rows > maxOps) throw tooMany(maxOps)
    for (let i = 0; i < values; i++) {
      if (strings) c.skip(c.uleb('string length'), 'string')
      else c.skipLeb('column value')
    }
  }
  return { rows, nulls }
}

/** Rows of a boolean column: alternating run lengths of false and true. */
function boolRows(c: Reader, maxOps: number): number {
  let rows = 0
  while (c.at < c.end) {
    rows += c.uleb('boolean run length')
    if (rows > maxOps) throw tooMany(maxOps)
  }
  return rows
}

/** Unsigned LEB128 (Automerge's varint), as bytes. */
export function ulebBytes(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

/**
 * Splits changes (in order) into groups that each fit one entry's allowance, for a writer
 * cutting a batch into entries. Throws if one change alone does not fit (the tree never makes one).
 */
export function entryGroups<T extends { change: Uint8Array }>(changes: T[]): T[][] {
  const groups: T[][] = []
  let cur: T[] = []
  let budget = entryBudget()
  // Counted as readChangeHeader counts, without hashing: these are the writer's own changes.
  for (const c of changes) {
    try {
      check(c.change, budget, false)
    } catch (e) {
      if (!(e instanceof ChangeLimitError) || cur.length === 0) throw e
      groups.push(cur)
      cur = []
      budget = entryBudget()
      check(c.change, budget, false)
    }
    cur.push(c)
  }
  if (cur.length > 0) groups.push(cur)
  return groups
}
