// Finding the running server's peer network from a command running inside the server.
// Type-only imports: the CLI loads this without the network stack (~0.2 s of module loading).
import type { ServerHandle } from '../server/handle.js'
import type { PeerNetwork } from '../net/swarm.js'

/** The server's PeerNetwork, if the server has one (ServerHandle.net); null in the CLI process. */
export function serverNetwork(server: ServerHandle | undefined): PeerNetwork | null {
  return server?.net ?? null
}
