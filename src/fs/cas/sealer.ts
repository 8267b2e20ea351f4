// The main-thread side of the seal worker (seal-worker.ts): one worker per process, shared
// by every Cas, carrying one "stream" per file being imported. The main thread reads the
// file into fresh ArrayBuffers and transfers them (no copy); the worker cuts and seals and
// transfers the blocks back. Chunking and sealing (about 60% of an import's CPU) then run on
// the second core while the main thread appends and indexes.
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { GearTable } from './chunker.js'
import type { CasKeys } from './convergent.js'

export interface SealRequest {
  stream: number
  /** First message of a stream: its keys. */
  open?: { addressKey: Uint8Array; chunkKeyRoot: Uint8Array; gear: GearTable }
  /** The stream is abandoned: drop its state, no reply. */
  cancel?: boolean
  data: ArrayBuffer
  length: number
  /** Last piece: cut everything, down to a short last chunk. */
  final: boolean
}

export type SealReply =
  | { stream: number; error: string }
  | { stream: number; hashes: ArrayBuffer; blocks: ArrayBuffer; sizes: Uint32Array }

export interface SealedChunk {
  /** Plaintext hash P. */
  hash: Buffer
  /** Store address A. */
  address: Buffer
  block: Buffer
  /** Plaintext bytes. */
  size: number
}

interface Waiter {
  resolve: (chunks: SealedChunk[]) => void
  reject: (err: Error) => void
}

const EMPTY = new ArrayBuffer(0)

function newWorker(): Worker {
  // Compiled: seal-worker.js next to this file. From sources (run under tsx, whose loader a
  // worker does not inherit): register tsx in the worker, then load seal-worker.ts.
  const js = new URL('./seal-worker.js', import.meta.url)
  if (fs.existsSync(fileURLToPath(js))) return new Worker(js)
  const ts = new URL('./seal-worker.ts', import.meta.url).href
  const tsx = import.meta.resolve('tsx/esm/api')
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}) })`, { eval: true })
}

class SealWorker {
  private worker: Worker | null = null
  private readonly streams = new Map<number, Waiter[]>()
  private nextStream = 1

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = newWorker()
    worker.on('message', (reply: SealReply) => this.onReply(reply))
    const fail = (err: Error): void => {
      if (this.worker === worker) this.worker = null
      for (const waiters of this.streams.values()) for (const w of waiters.splice(0)) w.reject(new Error(`seal worker failed: ${err.message}`, { cause: err }))
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
    if ('error' in reply) {
      this.finish(reply.stream)
      waiter.reject(new Error(reply.error))
      return
    }
    const hashes = Buffer.from(reply.hashes)
    const blocks = Buffer.from(reply.blocks)
    const chunks: SealedChunk[] = new Array(reply.sizes.length)
    let at = 0
    for (let i = 0; i < chunks.length; i++) {
      const size = reply.sizes[i]!
      const blockBytes = size + 49
      chunks[i] = { hash: hashes.subarray(i * 64, i * 64 + 32), address: hashes.subarray(i * 64 + 32, i * 64 + 64), block: blocks.subarray(at, at + blockBytes), size }
      at += blockBytes
    }
    waiter.resolve(chunks)
  }

  open(keys: CasKeys, gear: GearTable): SealStream {
    const worker = this.start()
    const id = this.nextStream++
    // A worker with open streams keeps the process alive (replies are awaited); an idle one doesn't.
    if (this.streams.size === 0) worker.ref()
    this.streams.set(id, [])
    return new SealStream(this, id, { addressKey: keys.addressKey, chunkKeyRoot: keys.chunkKeyRoot, gear })
  }

  send(stream: number, msg: SealRequest, transfer: ArrayBuffer[]): Promise<SealedChunk[]> {
    const waiters = this.streams.get(stream)
    if (!waiters || !this.worker) return Promise.reject(new Error('seal worker: stream is closed'))
    const reply = new Promise<SealedChunk[]>((resolve, reject) => waiters.push({ resolve, reject }))
    this.worker.postMessage(msg, transfer)
    return reply
  }

  cancel(stream: number): void {
    const waiters = this.streams.get(stream)
    if (!waiters) return
    for (const w of waiters.splice(0)) w.reject(new Error('seal stream cancelled'))
    this.worker?.postMessage({ stream, cancel: true, data: EMPTY, length: 0, final: true } satisfies SealRequest)
    this.finish(stream)
  }

  finish(stream: number): void {
    if (!this.streams.delete(stream)) return
    if (this.streams.size === 0) this.worker?.unref()
  }
}

/** One file's pieces, in order; each reply is the chunks that piece completed. */
export class SealStream {
  private opening: SealRequest['open'] | undefined
  private done = false

  constructor(private readonly owner: SealWorker, private readonly id: number, open: SealRequest['open']) {
    this.opening = open
  }

  /** Hands `data` (transferred: unusable here afterwards) to the worker. */
  send(data: ArrayBuffer, length: number, final: boolean): Promise<SealedChunk[]> {
    const msg: SealRequest = { stream: this.id, data, length, final }
    if (this.opening) {
      msg.open = this.opening
      this.opening = undefined
    }
    const reply = this.owner.send(this.id, msg, data.byteLength > 0 ? [data] : [])
    if (final) {
      this.done = true
      void reply.then(() => this.owner.finish(this.id), () => {})
    }
    return reply
  }

  /** Abandons the stream (after an error): the worker drops what it holds of it. */
  cancel(): void {
    if (!this.done) this.owner.cancel(this.id)
    this.done = true
  }
}

let shared: SealWorker | null = null

export function openSealStream(keys: CasKeys, gear: GearTable): SealStream {
  shared ??= new SealWorker()
  return shared.open(keys, gear)
}
