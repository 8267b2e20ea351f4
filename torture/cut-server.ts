// `bazil server run` exactly as the binary runs it, plus one test hook for the sync-cut
// torture section: SIGUSR2 destroys every peer connection the server has at that moment (as
// a dropped link would; the network reconnects on its own). Usage: the bazil CLI's arguments,
// e.g. `node dist/torture/cut-server.js --data-dir=D server run --bootstrap=127.0.0.1:P`.
import { Server } from '../src/server/server.js'
import { main } from '../src/cli/main.js'

let server: Server | null = null
const start = Server.start.bind(Server)
Server.start = async (...args: Parameters<typeof Server.start>): Promise<Server> => {
  server = await start(...args)
  return server
}

process.on('SIGUSR2', () => {
  const net = server?.net
  if (!net) return
  let n = 0
  for (const key of net.connectedPeers()) {
    const mux = net.muxer(key) as unknown as { stream?: { destroy(err?: Error): void } } | null
    if (mux?.stream) {
      mux.stream.destroy()
      n++
    }
  }
  process.stderr.write(`torture: cut ${n} connection(s)\n`)
})

await main(process.argv.slice(2))
