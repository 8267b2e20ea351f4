// The main-thread side of the seal workers (seal-worker.ts): a pool shared by every Cas of
// the process. A big file is a "stream" of pieces, all sent to one worker, the least busy
// when it opens (its cut points depend on the bytes before): the main thread reads the file into fresh ArrayBuffers and
// transfers them (no copy); the worker cuts and seals and transfers the blocks back. Small
// files go in batches ("files" requests) to whichever worker has the least queued; a batch
// names files by path (the worker reads them: nothing is read on the main thread) or carries
// their bytes. Chunking and sealing (most of an import's CPU) then run beside the main
// thread, which appends and indexes.
import os from 'node:os'
import type { Worker } from 'node:worker_threads'
import { startWorker } from './worker-file.js'
import type { GearTable } from './chunker.js'
import { blockBytes, type CasKeys } from './convergent.js'
import { unpackFiles, type SealedFiles } from './seal-file.js'

interface Keys { addressKey: Uint8Array; chunkKeyRoot: Uint8Array; gear: GearTable }

export type SealRequest =
  | {
    kind: 'piece'
    stream: number
    /** First piece of a stream: its keys. */
    open?: Keys
    data: ArrayBuffer
    length: number
    /** Last piece: cut everything, down to a short last chunk. */
    final: boolean
  }
  /** The stream is abandoned: drop its state, no reply. */
  | { kind: 'cancel'; stream: number }
  /** Whole files: a path to read, or the file's bytes (the whole ArrayBuffer). */
  | { kind: 'files'; stream: number; keys: Keys; items: (string | ArrayBuffer)[] }

type FilesReply = { stream: number } & { [K in keyof SealedFiles]: SealedFiles[K] extends Buffer ? ArrayBuffer : SealedFiles[K] }

export type SealReply =
  | { stream: number; error: string; code?: string }
  | { stream: number; hashes: ArrayBuffer; blocks: ArrayBuffer; sizes: Uint32Array }
  | FilesReply

export interface SealedChunk {
  /** Plaintext hash P. */
  hash: Buffer
  /** Store address A. */
  address: Buffer
  block: Buffer
  /** Plaintext bytes. */
  size: number
}

export interface SealedFile {
  /** Plaintext hash P of the root manifest node. */
  hash: Buffer
  size: number
  /** The file's chunks and manifest nodes, ready for ChunkStore.put. */
  objects: { address: Buffer; block: Buffer }[]
}

/**
 * Workers in the pool. More than one pays when a core is free beside the main thread (an
 * import of a big file: one worker cuts, the main thread appends; batches of small files
 * spread over all of them).
 */
const WORKERS = Math.max(1, Math.min(2, os.availableParallelism?.() ?? os.cpus().length))

interface Waiter {
  resolve: (reply: SealReply) => void
  reject: (err: Error) => void
}


/** One worker thread and the replies it owes, per stream. */
class SealWorker {
  private worker: Worker | null = null
  private readonly streams = new Map<number, Waiter[]>()
  /** Requests sent and not answered yet. */
  queued = 0

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = startWorker('seal-worker')
    worker.on('message', (reply: SealReply) => this.onReply(reply))
    const fail = (err: Error): void => {
      if (this.worker === worker) this.worker = null
      for (const waiters of this.streams.values()) {
        for (const w of waiters.splice(0)) {
          this.queued--
          w.reject(new Error(`seal worker failed: ${err.message}`, { cause: err }))
        }
      }
      this.streams.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)))
    worker.unref()
    this.worker = worker
    return worker
  }

  private onReply(reply: SealReply): void {
    const waiter = this.streams.get(reply.stream)?.shift()
    if (!waiter) return
    this.queued--
    if ('error' in reply) {
      this.finish(reply.stream)
      waiter.reject(Object.assign(new Error(reply.error), reply.code ? { code: reply.code } : {}))
      return
    }
    waiter.resolve(reply)
  }

  /** Registers a stream; replies come in the order of its requests. */
  open(stream: number): void {
    const worker = this.start()
    // A worker with open streams keeps the process alive (replies are awaited); an idle one doesn't.
    if (this.streams.size === 0) worker.ref()
    this.streams.set(stream, [])
  }

  send(msg: Exclude<SealRequest, { kind: 'cancel' }>, transfer: ArrayBuffer[]): Promise<SealReply> {
    const waiters = this.streams.get(msg.stream)
    if (!waiters || !this.worker) return Promise.reject(new Error('seal worker: stream is closed'))
    const reply = new Promise<SealReply>((resolve, reject) => waiters.push({ resolve, reject }))
    this.queued++
    this.worker.postMessage(msg, transfer)
    return reply
  }

  cancel(stream: number): void {
    const waiters = this.streams.get(stream)
    if (!waiters) return
    for (const w of waiters.splice(0)) {
      this.queued--
      w.reject(new Error('seal stream cancelled'))
    }
    this.worker?.postMessage({ kind: 'cancel', stream } satisfies SealRequest)
    this.finish(stream)
  }

  finish(stream: number): void {
    if (!this.streams.delete(stream)) return
    if (this.streams.size === 0) this.worker?.unref()
  }
}

class SealPool {
  private readonly workers = Array.from({ length: WORKERS }, () => new SealWorker())
  private nextStream = 1

  /** The worker with the fewest requests queued. */
  private pick(): SealWorker {
    let best = this.workers[0]!
    for (const w of this.workers) if (w.queued < best.queued) best = w
    return best
  }

  open(keys: CasKeys, gear: GearTable): SealStream {
    const worker = this.pick()
    const id = this.nextStream++
    worker.open(id)
    return new SealStream(worker, id, { addressKey: keys.addressKey, chunkKeyRoot: keys.chunkKeyRoot, gear })
  }

  /** Seals whole files (paths are read by the worker; buffers copied, or handed over when `owned`). */
  async files(keys: CasKeys, gear: GearTable, items: (string | Buffer)[], owned: boolean): Promise<SealedFile[]> {
    const worker = this.pick()
    const id = this.nextStream++
    worker.open(id)
    const transfer: ArrayBuffer[] = []
    const sent = items.map((item) => {
      if (typeof item === 'string') return item
      // An owned buffer that is all of its own memory is transferred; others are copied.
      let ab = item.buffer as ArrayBuffer
      if (!owned || item.byteOffset !== 0 || item.length !== ab.byteLength || transfer.includes(ab)) {
        ab = new ArrayBuffer(item.length)
        item.copy(new Uint8Array(ab))
      }
      transfer.push(ab)
      return ab
    })
    try {
      const reply = await worker.send({ kind: 'files', stream: id, keys: { addressKey: keys.addressKey, chunkKeyRoot: keys.chunkKeyRoot, gear }, items: sent }, transfer)
      const r = reply as FilesReply
      return unpackFiles({
        roots: Buffer.from(r.roots), sizes: r.sizes, chunks: r.chunks, nodes: r.nodes, addresses: Buffer.from(r.addresses),
        lengths: r.lengths, chunkBlocks: Buffer.from(r.chunkBlocks), nodeBlocks: Buffer.from(r.nodeBlocks),
      })
    } finally {
      worker.finish(id)
    }
  }
}

/**
 * One file's pieces, in order; each reply is the chunks that piece completed. Cutting and
 * sealing a stream stay on its worker: sealing its chunks on the other worker (one more
 * message per piece) gave no measurable gain (512 MiB import 5.1-8.3 s either way, load 5-8;
 * the cut, one thread per stream, is the bound).
 */
export class SealStream {
  private opening: Keys | undefined
  private done = false

  constructor(private readonly owner: SealWorker, private readonly id: number, open: Keys) {
    this.opening = open
  }

  /** Hands `data` (transferred: unusable here afterwards) to the worker. */
  async send(data: ArrayBuffer, length: number, final: boolean): Promise<SealedChunk[]> {
    const msg: SealRequest = { kind: 'piece', stream: this.id, data, length, final }
    if (this.opening) {
      msg.open = this.opening
      this.opening = undefined
    }
    const pending = this.owner.send(msg, data.byteLength > 0 ? [data] : [])
    if (final) {
      this.done = true
      void pending.then(() => this.owner.finish(this.id), () => {})
    }
    const reply = (await pending) as Extract<SealReply, { hashes: ArrayBuffer }>
    const hashes = Buffer.from(reply.hashes)
    const blocks = Buffer.from(reply.blocks)
    const chunks: SealedChunk[] = new Array(reply.sizes.length)
    let at = 0
    for (let i = 0; i < chunks.length; i++) {
      const size = reply.sizes[i]!
      const n = blockBytes(size)
      chunks[i] = { hash: hashes.subarray(i * 64, i * 64 + 32), address: hashes.subarray(i * 64 + 32, i * 64 + 64), block: blocks.subarray(at, at + n), size }
      at += n
    }
    return chunks
  }

  /** Abandons the stream (after an error): the worker drops what it holds of it. */
  cancel(): void {
    if (!this.done) this.owner.cancel(this.id)
    this.done = true
  }
}

let shared: SealPool | null = null

export function openSealStream(keys: CasKeys, gear: GearTable): SealStream {
  shared ??= new SealPool()
  return shared.open(keys, gear)
}

/**
 * Seals whole files on a seal worker: paths (read there) or buffers (copied; with `owned`,
 * a buffer that is all of its ArrayBuffer is handed over instead, and detached here).
 */
export function sealWholeFiles(keys: CasKeys, gear: GearTable, items: (string | Buffer)[], owned = false): Promise<SealedFile[]> {
  shared ??= new SealPool()
  return shared.files(keys, gear, items, owned)
}
