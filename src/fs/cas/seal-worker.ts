// Worker thread: cuts the pieces of file streams into chunks and seals them (the CPU-heavy
// half of an import: chunking, P, A, K/N and encryption), so the main thread only appends
// and indexes. Protocol in sealer.ts; one reply per piece, in order, buffers transferred.
import { parentPort } from 'node:worker_threads'
import { cutAll, type GearTable } from './chunker.js'
import { sealObject, type CasKeys } from './convergent.js'
import type { SealRequest, SealReply } from './sealer.js'

interface StreamState {
  keys: CasKeys
  gear: GearTable
  /** Input not cut yet (less than MAX_CHUNK, or everything before the final piece). */
  tail: Buffer | null
}

const streams = new Map<number, StreamState>()
const port = parentPort
if (!port) throw new Error('seal-worker must run in a worker thread')

port.on('message', (msg: SealRequest) => {
  if (msg.cancel) {
    streams.delete(msg.stream)
    return
  }
  try {
    port.postMessage(...handle(msg))
  } catch (err) {
    streams.delete(msg.stream)
    const reply: SealReply = { stream: msg.stream, error: (err as Error).message ?? String(err) }
    port.postMessage(reply)
  }
})

function handle(msg: SealRequest): [SealReply, ArrayBuffer[]] {
  if (msg.open) {
    streams.set(msg.stream, {
      keys: { addressKey: Buffer.from(msg.open.addressKey), chunkKeyRoot: Buffer.from(msg.open.chunkKeyRoot) },
      gear: msg.open.gear,
      tail: null
    })
  }
  const state = streams.get(msg.stream)
  if (!state) throw new Error(`seal worker: unknown stream ${msg.stream}`)
  const piece = Buffer.from(msg.data, 0, msg.length)
  const data = state.tail && state.tail.length > 0 ? Buffer.concat([state.tail, piece]) : piece
  const lengths = cutAll(state.gear, data, msg.final)
  const count = lengths.length
  let blockBytes = 0
  for (const n of lengths) blockBytes += n + SEAL_OVERHEAD
  const hashes = Buffer.allocUnsafeSlow(count * 64)
  const blocks = Buffer.allocUnsafeSlow(blockBytes)
  const sizes = new Uint32Array(count)
  let start = 0
  let at = 0
  for (let i = 0; i < count; i++) {
    const n = lengths[i]!
    const sealed = sealObject(state.keys, data.subarray(start, start + n))
    sealed.hash.copy(hashes, i * 64)
    sealed.address.copy(hashes, i * 64 + 32)
    sealed.block.copy(blocks, at)
    sizes[i] = n
    at += sealed.block.length
    start += n
  }
  // The uncut rest is copied: `data` may be the transferred piece, reused by nobody but us.
  state.tail = start < data.length ? Buffer.from(data.subarray(start)) : null
  if (msg.final) streams.delete(msg.stream)
  return [{ stream: msg.stream, hashes: hashes.buffer, blocks: blocks.buffer, sizes }, [hashes.buffer, blocks.buffer, sizes.buffer]]
}

/** Block bytes beyond the plaintext: version, address, tag. */
const SEAL_OVERHEAD = 1 + 32 + 16
