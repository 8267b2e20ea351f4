// Finding the running server's peer network from a command running inside the server.
import { PeerNetwork } from './swarm.js'

/** The server's PeerNetwork, if the server has one (ServerHandle.net); null in the CLI process. */
export function serverNetwork(server: unknown): PeerNetwork | null {
  if (typeof server !== 'object' || server === null) return null
  const net = (server as { net?: unknown }).net
  return net instanceof PeerNetwork ? net : null
}
