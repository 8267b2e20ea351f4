// Worker thread: opens stored blocks (version, address, AEAD decryption, plaintext hash: the
// verification of spec/cas.md section 2), so reads decrypt on another core than the one
// serving FUSE. Protocol in open-pool.ts; one reply per request, buffers transferred.
import { parentPort } from 'node:worker_threads'
import { openObject, type CasKeys } from './convergent.js'
import type { OpenReply, OpenRequest } from './open-pool.js'

const port = parentPort
if (!port) throw new Error('open-worker must run in a worker thread')

/** Keys by the id the pool gave them (sent once per worker). */
const keysById = new Map<number, CasKeys>()

port.on('message', (msg: OpenRequest) => {
  if (msg.keys) keysById.set(msg.keysId, { addressKey: Buffer.from(msg.keys.addressKey), chunkKeyRoot: Buffer.from(msg.keys.chunkKeyRoot) })
  try {
    const keys = keysById.get(msg.keysId)
    if (!keys) throw new Error(`open worker: unknown keys ${msg.keysId}`)
    const plain = openObject(keys, Buffer.from(msg.hash), Buffer.from(msg.block))
    // Buffer.alloc above 4 KiB owns its ArrayBuffer; a smaller one may share the pool's: copy it out.
    const out = plain.byteOffset === 0 && plain.buffer.byteLength === plain.length ? plain.buffer : plain.buffer.slice(plain.byteOffset, plain.byteOffset + plain.length)
    const reply: OpenReply = { id: msg.id, plain: out as ArrayBuffer }
    port.postMessage(reply, [out as ArrayBuffer])
  } catch (err) {
    const reply: OpenReply = { id: msg.id, error: (err as Error).message ?? String(err) }
    port.postMessage(reply)
  }
})
