// Opening stored blocks (decryption and verification) on worker threads (open-worker.ts).
//
// The main thread serves FUSE and the store; a chunk's AEAD decryption and plaintext hash
// (about 4 ms a MiB here) go to a small pool of workers, each block copied once into a buffer
// that is transferred there, the plaintext transferred back. Objects up to INLINE_BYTES
// (manifest nodes of small files, small files) are opened inline: a round trip to a worker
// costs more than they do.
import os from 'node:os'
import type { Worker } from 'node:worker_threads'
import { openObject, type CasKeys } from './convergent.js'
import { startWorker } from './worker-file.js'

export interface OpenRequest {
  id: number
  keysId: number
  /** Sent with the first request of these keys to a worker. */
  keys?: { addressKey: Uint8Array; chunkKeyRoot: Uint8Array }
  hash: Uint8Array
  block: ArrayBuffer
}

export type OpenReply = { id: number; plain: ArrayBuffer } | { id: number; error: string }

/** Blocks up to this size are opened on the calling thread. */
export const INLINE_BYTES = 16 * 1024

interface Pending {
  resolve: (plain: Buffer) => void
  reject: (err: Error) => void
  bytes: number
  slot: Slot
}

interface Slot {
  worker: Worker
  /** Bytes handed to this worker and not answered yet (requests go to the least loaded). */
  load: number
  pending: number
  /** Key ids this worker knows. */
  known: Set<number>
}

export class OpenPool {
  private slots: Slot[] = []
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private readonly keyIds = new WeakMap<CasKeys, number>()
  private nextKeysId = 1

  /** `workers`: 0 opens everything inline. */
  constructor(readonly workers: number) {}

  /** Decrypts and verifies `block` against P (openObject's checks and errors). */
  open(keys: CasKeys, hash: Buffer, block: Buffer): Promise<Buffer> {
    if (this.workers === 0 || block.length <= INLINE_BYTES) {
      try {
        return Promise.resolve(openObject(keys, hash, block))
      } catch (err) {
        return Promise.reject(err)
      }
    }
    const slot = this.leastLoaded()
    let keysId = this.keyIds.get(keys)
    if (keysId === undefined) {
      keysId = this.nextKeysId++
      this.keyIds.set(keys, keysId)
    }
    const id = this.nextId++
    // One copy: the block (often a view into a larger storage buffer) into a transferable one.
    const data = new ArrayBuffer(block.length)
    new Uint8Array(data).set(block)
    const msg: OpenRequest = { id, keysId, hash: new Uint8Array(hash), block: data }
    if (!slot.known.has(keysId)) {
      msg.keys = { addressKey: new Uint8Array(keys.addressKey), chunkKeyRoot: new Uint8Array(keys.chunkKeyRoot) }
      slot.known.add(keysId)
    }
    const reply = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject, bytes: block.length, slot }))
    slot.load += block.length
    if (slot.pending++ === 0) slot.worker.ref()
    slot.worker.postMessage(msg, [data])
    return reply
  }

  private leastLoaded(): Slot {
    while (this.slots.length < this.workers) this.slots.push(this.start())
    let best = this.slots[0]!
    for (const s of this.slots) if (s.load < best.load) best = s
    return best
  }

  private start(): Slot {
    const worker = startWorker('open-worker')
    const slot: Slot = { worker, load: 0, pending: 0, known: new Set() }
    worker.on('message', (reply: OpenReply) => {
      const p = this.pending.get(reply.id)
      if (!p) return
      this.settle(reply.id, p)
      if ('error' in reply) p.reject(new Error(reply.error))
      else p.resolve(Buffer.from(reply.plain))
    })
    const fail = (err: Error): void => {
      const i = this.slots.indexOf(slot)
      if (i >= 0) this.slots.splice(i, 1)
      for (const [id, p] of this.pending) {
        if (p.slot !== slot) continue
        this.settle(id, p)
        p.reject(new Error(`open worker failed: ${err.message}`, { cause: err }))
      }
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)))
    worker.unref()
    return slot
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id)
    p.slot.load -= p.bytes
    // A worker with requests in flight keeps the process alive (replies are awaited); an idle one doesn't.
    if (--p.slot.pending === 0) p.slot.worker.unref()
  }
}

let shared: OpenPool | null = null

/**
 * The process's pool: with 3 cores or more, a worker per core beside the main thread's (at most
 * 4); on 2 cores, none. Measured here (2 cores shared with other work, load ~13, cold reads of
 * 192 MiB through the mount, 4 alternating runs): inline 68 MiB/s, one worker 54 MiB/s (the
 * copies, messages and transferred buffers cost more main-thread CPU than the decryption
 * saved, with no idle core to run it), two workers slower still. BAZIL_OPEN_WORKERS=N overrides.
 */
export function openPool(): OpenPool {
  const cores = os.availableParallelism()
  shared ??= new OpenPool(Number(process.env.BAZIL_OPEN_WORKERS ?? (cores >= 3 ? Math.min(4, cores - 1) : 0)))
  return shared
}
