// Worker thread: cuts the pieces of file streams into chunks and seals them (the CPU-heavy
// half of an import: chunking, P, A, K/N and encryption), and seals batches of whole small
// files (read here when given by path), so the main thread only appends and indexes.
// Protocol in sealer.ts; one reply per request, in order, buffers transferred.
import fs from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { cutAll, type GearTable } from './chunker.js'
import { blockBytes, sealObjectInto, type CasKeys } from './convergent.js'
import { sealFiles } from './seal-file.js'
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
  if (msg.kind === 'cancel') {
    streams.delete(msg.stream)
    return
  }
  try {
    port.postMessage(...(msg.kind === 'files' ? handleFiles(msg) : handlePiece(msg)))
  } catch (err) {
    streams.delete(msg.stream)
    const e = err as NodeJS.ErrnoException
    const reply: SealReply = { stream: msg.stream, error: e.message ?? String(err), code: e.code }
    port.postMessage(reply)
  }
})

function keysOf(k: { addressKey: Uint8Array; chunkKeyRoot: Uint8Array }): CasKeys {
  return { addressKey: Buffer.from(k.addressKey), chunkKeyRoot: Buffer.from(k.chunkKeyRoot) }
}

function handlePiece(msg: Extract<SealRequest, { kind: 'piece' }>): [SealReply, ArrayBuffer[]] {
  if (msg.open) streams.set(msg.stream, { keys: keysOf(msg.open), gear: msg.open.gear, tail: null })
  const state = streams.get(msg.stream)
  if (!state) throw new Error(`seal worker: unknown stream ${msg.stream}`)
  const piece = Buffer.from(msg.data, 0, msg.length)
  const data = state.tail && state.tail.length > 0 ? Buffer.concat([state.tail, piece]) : piece
  const lengths = cutAll(state.gear, data, msg.final)
  const count = lengths.length
  let total = 0
  for (const n of lengths) total += blockBytes(n)
  const hashes = Buffer.allocUnsafeSlow(count * 64)
  const blocks = Buffer.allocUnsafeSlow(total)
  const sizes = new Uint32Array(count)
  let start = 0
  let at = 0
  for (let i = 0; i < count; i++) {
    const n = lengths[i]!
    // Sealed straight into the reply's buffer: no block of its own, no copy.
    const sealed = sealObjectInto(state.keys, data.subarray(start, start + n), blocks, at)
    sealed.hash.copy(hashes, i * 64)
    sealed.address.copy(hashes, i * 64 + 32)
    sizes[i] = n
    at += blockBytes(n)
    start += n
  }
  // The uncut rest is copied: `data` may be the transferred piece, reused by nobody but us.
  state.tail = start < data.length ? Buffer.from(data.subarray(start)) : null
  if (msg.final) streams.delete(msg.stream)
  const ab = (b: Buffer): ArrayBuffer => b.buffer as ArrayBuffer
  return [{ stream: msg.stream, hashes: ab(hashes), blocks: ab(blocks), sizes }, [ab(hashes), ab(blocks), sizes.buffer as ArrayBuffer]]
}

function handleFiles(msg: Extract<SealRequest, { kind: 'files' }>): [SealReply, ArrayBuffer[]] {
  const files = msg.items.map((item) => (typeof item === 'string' ? fs.readFileSync(item) : Buffer.from(item)))
  const s = sealFiles(keysOf(msg.keys), msg.keys.gear, files)
  const ab = (b: Buffer): ArrayBuffer => b.buffer as ArrayBuffer
  const reply: SealReply = {
    stream: msg.stream, roots: ab(s.roots), sizes: s.sizes, chunks: s.chunks, nodes: s.nodes,
    addresses: ab(s.addresses), lengths: s.lengths, chunkBlocks: ab(s.chunkBlocks), nodeBlocks: ab(s.nodeBlocks),
  }
  return [reply, [ab(s.roots), s.sizes.buffer as ArrayBuffer, s.chunks.buffer as ArrayBuffer, s.nodes.buffer as ArrayBuffer, ab(s.addresses), s.lengths.buffer as ArrayBuffer, ab(s.chunkBlocks), ab(s.nodeBlocks)]]
}
