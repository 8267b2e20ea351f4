// Typed surface of @hyperswarm/testnet 3 (hyperdht's in-process DHT for tests).
declare module '@hyperswarm/testnet' {
  import type DHT from 'hyperdht'
  import type { HostPort } from 'hyperdht'

  export interface Testnet {
    readonly nodes: DHT[]
    readonly bootstrap: HostPort[]
    createNode(opts?: Record<string, unknown>): DHT
    destroy(): Promise<void>
  }

  export default function createTestnet(size?: number, opts?: { host?: string; port?: number; bootstrap?: HostPort[] }): Promise<Testnet>
}
