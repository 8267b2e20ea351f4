// One node's signed op log of one volume: a hypercore whose block 0 binds it to (volume,
// node) and whose later blocks are sealed entries. Formats: spec/oplog.md.
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { equal, type KeyPair } from '../crypto.js'
import { checkBindingFull, encodeBinding, type Binding, type Genesis } from './binding.js'
import { decodeControl, encodeControl, isControlBlock, type ControlOp } from './control.js'
import { decodeEntry, encodeEntry, type EntryBody } from './entry-codec.js'
import { EntryError, LogBindingError, LogFormatError } from './errors.js'
import { blocksInOrder } from './local-blocks.js'
import { widenLogRequests } from './inflight.js'
import { TreeHasher } from './merkle.js'

export interface LogEntry {
  writer: Buffer
  seq: number
  /** A sealed entry's body; for a control entry, its time with no ops and no changes. */
  body: EntryBody
  /** The writer-set ops of a control entry (plaintext, spec/oplog.md); null for a sealed entry. */
  control: ControlOp[] | null
}

export interface ReadOptions {
  /** First seq to read (default 1: block 0 is the binding, not an entry). */
  from?: number
  /** Seq to stop before (default: the log's length when reading starts). */
  to?: number
  /** Wait for blocks not held locally (default true). With false, reading stops at the first such block. */
  wait?: boolean
  /** With wait: give up on a remote block after this many ms (hypercore's REQUEST_TIMEOUT error). */
  timeout?: number
}

export interface VerifyResult {
  /** Blocks in the log, binding included. */
  length: number
  /** Entry blocks held locally that decrypted and decoded. */
  entries: number
  /** Blocks not held locally (a sparse replica): not checked. */
  missing: number
  /** Bad entries, by seq; seq 0 means the log as a whole (binding or hypercore signature). */
  errors: EntryError[]
}

/** The corestore name of this node's writer log of a volume (stable: reopening gives the same key). */
export function writerLogName(volumeId: Buffer): string {
  return `bazil/log/v1/${volumeId.toString('hex')}`
}

// Serializes first-time setup per core within this process, so two concurrent create() calls
// on one volume can't both write a binding block.
const setups = new Map<string, Promise<unknown>>()

async function serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
  const prev = setups.get(id) ?? Promise.resolve()
  const next = prev.then(fn, fn)
  setups.set(id, next)
  try {
    return await next
  } finally {
    if (setups.get(id) === next) setups.delete(id)
  }
}

function checkId(buf: Buffer, what: string): void {
  if (!Buffer.isBuffer(buf) || buf.length !== 32) throw new TypeError(`${what} must be a 32-byte Buffer`)
}

/**
 * Why a held block could not be read (RocksDB's checksum failure of a damaged file, an I/O
 * error): reported as that entry's error, like an entry that fails to decode.
 */
function unreadableBlock(err: unknown): string {
  return `block cannot be read from the local store: ${(err as Error).message ?? String(err)}`
}

/**
 * A log that fails to open for a reason of its own (a bad key, a binding to another node) keeps
 * its error; a storage failure (RocksDB's "Blob CRC mismatch" of a damaged file, an I/O error)
 * is named with the log it hit and what to do, instead of the bare storage message.
 */
function storageNamed(err: unknown, what: string): unknown {
  if (err instanceof LogBindingError || err instanceof LogFormatError || err instanceof TypeError) return err
  const msg = (err as Error)?.message ?? String(err)
  if (!/crc|checksum|corrupt|EIO|I\/O/i.test(msg)) return err
  return new Error(`${what} cannot be read from the local store (${msg}): the data dir is damaged; restore it from a backup (the peers of the volume still hold their copies)`)
}

export class WriterLog {
  readonly core: Hypercore
  private readonly volumeId: Buffer
  private readonly volumeKey: Buffer
  private bindingInfo: Binding | null = null
  private identity: KeyPair | null = null
  private appending: Promise<unknown> = Promise.resolve()

  private constructor(core: Hypercore, volumeId: Buffer, volumeKey: Buffer) {
    this.core = core
    this.volumeId = volumeId
    this.volumeKey = volumeKey
  }

  /**
   * This node's log of the volume: reopens it, or creates it and writes the binding block
   * (version 2 with `genesis`, else version 1). With `bind: false` a new log is left empty
   * until `bind()` (a node joining a volume learns its genesis from the other logs first).
   */
  static async create(store: Corestore, opts: { volumeId: Buffer; identity: KeyPair; volumeKey: Buffer; genesis?: Genesis | null; bind?: boolean }): Promise<WriterLog> {
    checkId(opts.volumeId, 'volume id')
    checkId(opts.volumeKey, 'volume key')
    const core = store.get({ name: writerLogName(opts.volumeId) })
    try {
      await core.ready()
      if (!core.writable) throw new Error(`writer log of volume ${opts.volumeId.toString('hex')} is not writable in this corestore`)
      const log = new WriterLog(core, opts.volumeId, opts.volumeKey)
      log.identity = opts.identity
      if (core.length === 0 && opts.bind === false) return log
      await log.bind(opts.genesis ?? null)
      const node = await log.node()
      if (node === null || !equal(node, opts.identity.publicKey)) {
        throw new LogBindingError(`writer log of volume ${opts.volumeId.toString('hex')} is bound to another node`)
      }
      return log
    } catch (err) {
      await core.close()
      throw storageNamed(err, `this node's writer log of volume ${opts.volumeId.toString('hex')}`)
    }
  }

  /** Another writer's log by key, read-only. Its binding is checked now if block 0 is local, else on first read. */
  static async open(store: Corestore, opts: { key: Buffer; volumeId: Buffer; volumeKey: Buffer }): Promise<WriterLog> {
    checkId(opts.key, 'log key')
    checkId(opts.volumeId, 'volume id')
    checkId(opts.volumeKey, 'volume key')
    const core = store.get({ key: opts.key })
    try {
      await core.ready()
      widenLogRequests(core)
      const log = new WriterLog(core, opts.volumeId, opts.volumeKey)
      if (core.length > 0 && (await core.has(0))) await log.node()
      return log
    } catch (err) {
      await core.close()
      throw storageNamed(err, `writer log ${opts.key.toString('hex').slice(0, 16)}… of volume ${opts.volumeId.toString('hex')}`)
    }
  }

  get key(): Buffer {
    return this.core.key
  }

  get writable(): boolean {
    return this.core.writable
  }

  get length(): number {
    return this.core.length
  }

  /** Writes the binding block of this node's own log if it has none yet (no-op otherwise). */
  async bind(genesis: Genesis | null): Promise<void> {
    const identity = this.identity
    if (!identity) throw new Error(`log ${this.core.id} is not this node's own log`)
    await serialized(this.core.id, async () => {
      if (this.core.length === 0) await this.core.append(encodeBinding(this.volumeId, this.core.key, identity, genesis))
    })
  }

  /** Whether block 0 (the binding) is written/held. */
  get bound(): boolean {
    return this.core.length > 0
  }

  /** The node named by the (verified) binding block; null while block 0 isn't held locally. */
  async node(): Promise<Buffer | null> {
    return (await this.binding())?.node ?? null
  }

  /** The verified binding block; null while block 0 isn't held locally. Throws LogBindingError on a bad one. */
  async binding(): Promise<Binding | null> {
    if (this.bindingInfo !== null) return this.bindingInfo
    if (this.core.length === 0) return null
    const block = await this.core.get(0, { wait: false })
    if (block === null) return null
    this.bindingInfo = checkBindingFull(block, this.core.key, this.volumeId)
    return this.bindingInfo
  }

  /** Appends one control entry (plaintext writer-set ops); returns its seq. */
  appendControl(ops: ControlOp[]): Promise<number> {
    const run = this.appending.then(async () => {
      if (!this.core.writable) throw new Error(`log ${this.core.id} is not writable (another node's log)`)
      if (this.core.length === 0) throw new LogBindingError(`log ${this.core.id} has no binding block`)
      const { length } = await this.core.append(encodeControl({ time: Date.now(), ops }))
      return length - 1
    })
    this.appending = run.catch(() => {})
    return run
  }

  /** Appends the bodies as consecutive entries in one hypercore append; returns their seqs. */
  append(bodies: EntryBody[]): Promise<number[]> {
    const run = this.appending.then(() => this.appendNow(bodies))
    this.appending = run.catch(() => {})
    return run
  }

  private async appendNow(bodies: EntryBody[]): Promise<number[]> {
    if (!this.core.writable) throw new Error(`log ${this.core.id} is not writable (another node's log)`)
    if (bodies.length === 0) return []
    const start = this.core.length
    if (start === 0) throw new LogBindingError(`log ${this.core.id} has no binding block`)
    const place = { volumeKey: this.volumeKey, volumeId: this.volumeId, logKey: this.core.key }
    const blocks = bodies.map((body, i) => encodeEntry(body, { ...place, seq: start + i }))
    const { length } = await this.core.append(blocks)
    // The associated data holds each seq: if anything else appended meanwhile the entries
    // would sit at the wrong seq and never decrypt, so say so loudly.
    if (length - blocks.length !== start) throw new Error(`log ${this.core.id}: concurrent append moved entries from seq ${start} to ${length - blocks.length}`)
    return blocks.map((_, i) => start + i)
  }

  /**
   * Entries in seq order. A bad entry comes out as an EntryError and reading goes on. A bad
   * binding comes out as one EntryError at seq 0 and ends the reading (nothing in the log
   * can be trusted to belong to this volume).
   */
  async *read(opts: ReadOptions = {}): AsyncIterable<LogEntry | EntryError> {
    const from = opts.from ?? 1
    const to = opts.to ?? this.core.length
    if (!Number.isSafeInteger(from) || from < 1) throw new RangeError(`read: from must be an integer >= 1, got ${from}`)
    if (!Number.isSafeInteger(to) || to < from - 1) throw new RangeError(`read: to must be an integer >= from, got ${to}`)
    if (from >= to) return
    const wait = opts.wait ?? true
    const getOpts = opts.timeout === undefined ? { wait } : { wait, timeout: opts.timeout }
    if (this.bindingInfo === null) {
      let block: Buffer | null
      try {
        block = await this.core.get(0, getOpts)
      } catch (err) {
        yield new EntryError(this.core.key, 0, unreadableBlock(err))
        return
      }
      if (block === null) return
      try {
        this.bindingInfo = checkBindingFull(block, this.core.key, this.volumeId)
      } catch (err) {
        yield new EntryError(this.core.key, 0, (err as Error).message)
        return
      }
    }
    // Held blocks only (a replay) by storage read batches, else gets that wait as asked.
    for await (const b of blocksInOrder(this.core, from, to, !wait && opts.timeout === undefined ? undefined : getOpts)) {
      // A block the local store cannot give back (a damaged RocksDB file) is one bad entry,
      // named by its seq, not the end of the log.
      if (b.block === undefined) yield new EntryError(this.core.key, b.seq, unreadableBlock(b.error))
      else if (b.block === null) return
      else yield this.decodeAt(b.seq, b.block)
    }
  }

  private decodeAt(seq: number, block: Buffer): LogEntry | EntryError {
    try {
      if (isControlBlock(block)) {
        const c = decodeControl(block)
        return { writer: this.core.key, seq, body: { time: c.time, ops: [], changes: [] }, control: c.ops }
      }
      const body = decodeEntry(block, { volumeKey: this.volumeKey, volumeId: this.volumeId, logKey: this.core.key, seq })
      return { writer: this.core.key, seq, body, control: null }
    } catch (err) {
      if (err instanceof LogFormatError) return new EntryError(this.core.key, seq, err.message)
      throw err
    }
  }

  /**
   * Checks everything that can be checked without the network: the hypercore signature over
   * the merkle tree, every local block against that tree, the binding, and that every local
   * entry decrypts and decodes. Never throws for bad data: it is all in `errors`.
   */
  async verify(): Promise<VerifyResult> {
    const key = this.core.key
    const length = this.core.length
    const errors: EntryError[] = []
    const result: VerifyResult = { length, entries: 0, missing: 0, errors }
    if (length === 0) {
      errors.push(new EntryError(key, 0, 'log is empty: binding block (block 0) is missing'))
      return result
    }

    let signedHash: Buffer | null = null
    try {
      const tree = await this.core.verifyFullyRemote(await this.core.proof({ upgrade: { start: 0, length } }))
      signedHash = tree.hash()
    } catch (err) {
      errors.push(new EntryError(key, 0, `hypercore signature over blocks 0..${length - 1} does not verify: ${(err as Error).message}`))
    }

    const hasher = new TreeHasher()
    let unreadable = false
    for (let seq = 0; seq < length; seq++) {
      let block: Buffer | null
      try {
        block = await this.core.get(seq, { wait: false })
      } catch (err) {
        errors.push(new EntryError(key, seq, unreadableBlock(err)))
        unreadable = true
        continue
      }
      if (block === null) {
        result.missing++
        continue
      }
      if (result.missing === 0 && !unreadable) hasher.push(block)
      if (seq === 0) {
        try {
          this.bindingInfo = checkBindingFull(block, key, this.volumeId)
        } catch (err) {
          errors.push(new EntryError(key, 0, (err as Error).message))
        }
        continue
      }
      const entry = this.decodeAt(seq, block)
      if (entry instanceof EntryError) errors.push(entry)
      else result.entries++
    }

    // With every block local, one recomputed tree hash checks them all against the signature;
    // otherwise (or to find which block broke it) each local block gets its own signed proof.
    if (signedHash !== null && !unreadable && (result.missing > 0 || !equal(hasher.treeHash(), signedHash))) {
      for (let seq = 0; seq < length; seq++) {
        if (!(await this.core.has(seq))) continue
        const reason = await this.checkBlockProof(seq, length)
        if (reason !== null) {
          errors.push(new EntryError(key, seq, reason))
          if (result.missing === 0) break // the fast check failed: the first bad block is what matters
        }
      }
    }
    errors.sort((a, b) => a.seq - b.seq)
    return result
  }

  private async checkBlockProof(seq: number, length: number): Promise<string | null> {
    try {
      await this.core.verifyFullyRemote(await this.core.proof({ block: { index: seq, nodes: 0 }, upgrade: { start: 0, length } }))
      return null
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'INVALID_SIGNATURE' || code === 'INVALID_CHECKSUM') return 'block does not match the signed merkle tree'
      return `block could not be checked against the signed merkle tree: ${(err as Error).message}`
    }
  }

  async close(): Promise<void> {
    await this.appending
    await this.core.close()
  }
}
