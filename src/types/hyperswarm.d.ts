// Typed surface of hyperswarm 4 that bazil uses (the package ships no types).
declare module 'hyperswarm' {
  import type { EventEmitter } from 'node:events'
  import type DHT from 'hyperdht'
  import type { HostPort, KeyPair, SecretStream } from 'hyperdht'

  export interface PeerInfo {
    readonly publicKey: Buffer
    readonly client: boolean
    banned: boolean
    attempts: number
    ban(banned: boolean): void
  }

  export interface SwarmOptions {
    keyPair?: KeyPair
    dht?: DHT
    bootstrap?: HostPort[]
    /** Returns true to REJECT the remote key. */
    firewall?: (remotePublicKey: Buffer, payload: unknown) => boolean
    maxPeers?: number
  }

  export default class Hyperswarm extends EventEmitter {
    constructor(opts?: SwarmOptions)
    readonly keyPair: KeyPair
    readonly dht: DHT
    readonly destroyed: boolean
    readonly connections: Set<SecretStream>
    /** Peers by public key (hex). */
    readonly peers: Map<string, PeerInfo>
    listen(): Promise<void>
    joinPeer(publicKey: Buffer): void
    leavePeer(publicKey: Buffer): void
    flush(): Promise<boolean>
    destroy(opts?: { force?: boolean }): Promise<void>
    on(event: 'connection', fn: (conn: SecretStream, info: PeerInfo) => void): this
    on(event: 'update', fn: () => void): this
    on(event: string, fn: (...args: unknown[]) => void): this
  }
}
