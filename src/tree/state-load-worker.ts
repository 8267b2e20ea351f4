// Worker thread: reads the saved shards of a state a joiner starts from (saved-shard.ts: load,
// heads check, every record read), so that Automerge's load and materialize of a 1M-file
// volume's shards run beside the thread that builds the index and serves the mount. Protocol in
// state-load-pool.ts; one reply per request, in the order asked.
import { parentPort } from 'node:worker_threads'
import { readSavedShard } from './saved-shard.js'
import type { LoadReply, LoadRequest } from './state-load-pool.js'

const port = parentPort
if (!port) throw new Error('state-load-worker must run in a worker thread')

port.on('message', (m: LoadRequest) => {
  let reply: LoadReply
  try {
    reply = { id: m.id, read: readSavedShard(m.actor, m.name, m.bytes, m.heads) }
  } catch (err) {
    reply = { id: m.id, error: (err as Error).message ?? String(err) }
  }
  port.postMessage(reply)
})
