// Worker thread: encodes page buckets (index-page.ts encodePage, the one home of the format)
// for a commit that writes a whole index (a joiner's first), beside the main thread. Protocol
// in page-encode-pool.ts; one reply per request, the bytes moved.
import { parentPort } from 'node:worker_threads'
import type { BaseEntry } from './index-layers.js'
import { encodePage, type Page } from './index-page.js'
import type { EncodeReply, EncodeRequest } from './page-encode-pool.js'

const port = parentPort
if (!port) throw new Error('page-encode-worker must run in a worker thread')

port.on('message', (m: EncodeRequest) => {
  let reply: EncodeReply
  try {
    const page: Page = new Map()
    for (const [dir, list] of m.dirs) {
      const entries = new Map<string, BaseEntry>()
      for (const [id, raw, parent, name, live, versions] of list) entries.set(id, { raw, parent, name, live, versions })
      page.set(dir, entries)
    }
    const { bytes, digest } = encodePage(page, null)
    const own = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)
    reply = { id: m.id, bytes: own as ArrayBuffer, digest }
    port.postMessage(reply, [own as ArrayBuffer])
  } catch (err) {
    reply = { id: m.id, error: (err as Error).message ?? String(err) }
    port.postMessage(reply)
  }
})
