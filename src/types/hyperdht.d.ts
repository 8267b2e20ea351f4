// Typed surface of hyperdht 6 that bazil uses (the package ships no types).
declare module 'hyperdht' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface KeyPair { publicKey: Buffer; secretKey: Buffer }
  export interface HostPort { host: string; port: number }

  /** An encrypted, authenticated connection (@hyperswarm/secret-stream's NoiseSecretStream). */
  export interface SecretStream extends Duplex {
    readonly publicKey: Buffer
    readonly remotePublicKey: Buffer
    readonly isInitiator: boolean
    readonly handshakeHash: Buffer | null
    readonly rawBytesRead: number
    readonly rawBytesWritten: number
    /** Resolves true once the handshake finished, false if the stream closed before. */
    readonly opened: Promise<boolean>
    /** The UDX stream under the encryption: where its packets go (null before it connected). */
    readonly rawStream: { readonly remoteHost: string | null; readonly remotePort: number } | null
    /** Protomux attaches itself here (Hypercore.getProtocolMuxer reads it). */
    userData: unknown
    sendKeepAlive(): void
    setKeepAlive(ms: number): void
  }

  export interface DHTOptions {
    bootstrap?: (string | HostPort)[]
    keyPair?: KeyPair
    port?: number
    anyPort?: boolean
    host?: string
    firewalled?: boolean
    ephemeral?: boolean
  }

  export interface ConnectOptions {
    keyPair?: KeyPair
    relayAddresses?: HostPort[]
  }

  export interface Server extends EventEmitter {
    listen(keyPair?: KeyPair): Promise<Server>
    close(): Promise<void>
  }

  export default class DHT extends EventEmitter {
    constructor(opts?: DHTOptions)
    static bootstrapper(port: number, host: string, opts?: DHTOptions): DHT
    static keyPair(seed?: Buffer): KeyPair
    readonly destroyed: boolean
    readonly firewalled: boolean
    readonly host: string | null
    readonly port: number
    readonly bootstrapped: boolean
    /** Counters; `relaying`: blind-relay pairings this node's server side took part in. */
    readonly stats: { relaying: { attempts: number; successes: number; aborts: number } }
    ready(): Promise<void>
    bind(): Promise<void>
    fullyBootstrapped(): Promise<void>
    /** The socket other nodes send requests to (null before bind). */
    address(): { host: string; family: number; port: number } | null
    /** This host's address and the port handshakes reach (the server socket). */
    localAddress(): HostPort | null
    connect(remotePublicKey: Buffer, opts?: ConnectOptions): SecretStream
    createServer(opts: Record<string, unknown>, onconnection?: (conn: SecretStream) => void): Server
    destroy(opts?: { force?: boolean }): Promise<void>
  }
}
