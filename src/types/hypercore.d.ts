// Typed surface of hypercore 11 that bazil uses (the package ships no types).
declare module 'hypercore' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface KeyPair { publicKey: Buffer; secretKey: Buffer }

  export interface GetOptions {
    wait?: boolean
    timeout?: number
    valueEncoding?: 'binary' | 'utf-8' | 'json'
  }

  export interface Range { done(): Promise<void>; destroy(): void }

  /** A merkle tree node: flat-tree index, bytes under it, BLAKE2b-256 hash. */
  export interface TreeNode { index: number; size: number; hash: Buffer }

  /** What `proof()` returns; opaque to bazil except as input to `verifyFullyRemote`. */
  export interface TreeProof {
    fork: number
    block: { index: number; value: Buffer | null; nodes: TreeNode[] } | null
    upgrade: { start: number; length: number; nodes: TreeNode[]; additionalNodes: TreeNode[]; signature: Buffer | null } | null
  }

  /** A merkle batch whose roots were checked against the core's signature (manifest signers). */
  export interface VerifiedTree {
    length: number
    fork: number
    roots: TreeNode[]
    signature: Buffer | null
    hash(): Buffer
  }

  /**
   * A replicating peer of a core (lib/replicator.js `Peer`). The sync fields are internal to
   * hypercore 11; only src/net/length-resync.ts reads them (re-check after an upgrade).
   */
  export interface ReplicatorPeer {
    readonly remoteLength: number
    readonly remoteContiguousLength: number
    readonly remotePublicKey?: Uint8Array
    readonly protomux: unknown
    readonly remoteSynced: boolean
    readonly syncsProcessing: number
    readonly remoteFork: number
    /** The length of ours this peer last echoed. */
    readonly lengthAcked: number
    sendSync(): void
  }

  export interface Hypercore extends EventEmitter {
    readonly key: Buffer
    readonly discoveryKey: Buffer
    readonly id: string
    readonly length: number
    readonly byteLength: number
    readonly contiguousLength: number
    readonly writable: boolean
    readonly readable: boolean
    readonly closed: boolean
    readonly keyPair: KeyPair | null
    /** Replicating peers of this core: the length of its copy and of the prefix it holds whole, as it announced them; its node key. */
    readonly peers: ReplicatorPeer[]
    ready(): Promise<void>
    close(): Promise<void>
    append(blocks: Buffer | Buffer[]): Promise<{ length: number; byteLength: number }>
    get(index: number, opts?: GetOptions): Promise<Buffer | null>
    has(start: number, end?: number): Promise<boolean>
    update(opts?: { wait?: boolean }): Promise<boolean>
    clear(start: number, end?: number): Promise<unknown>
    /** Compacts this core's key ranges in RocksDB (frees the space of cleared blocks). */
    compact(): Promise<unknown>
    truncate(newLength?: number): Promise<void>
    download(range?: { start?: number; end?: number; blocks?: number[]; linear?: boolean }): Range
    info(opts?: { storage?: boolean }): Promise<{ byteLength: number; length: number; contiguousLength: number; storage?: { oplog: number; tree: number; blocks: number; bitfield: number } | null }>
    session(opts?: Record<string, unknown>): Hypercore
    replicate(isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    findingPeers(): () => void
    createReadStream(opts?: { start?: number; end?: number; live?: boolean }): AsyncIterable<Buffer>
    getUserData(key: string): Promise<Buffer | null>
    readonly fork: number
    readonly signedLength: number
    readonly manifest: { version: number; signers: { publicKey: Buffer; namespace: Buffer; signature: string }[] } | null
    /** Proof from local storage; `upgrade` adds the tree roots and the stored signature for that length. */
    proof(opts: { block?: { index: number; nodes: number }; upgrade?: { start: number; length: number } }): Promise<TreeProof>
    /** Rebuilds the tree from a proof and checks its signature; throws (code INVALID_SIGNATURE) if it fails. */
    verifyFullyRemote(proof: TreeProof): Promise<VerifiedTree>
    treeHash(length?: number): Promise<Buffer>
    setUserData(key: string, value: Buffer | string | null): Promise<void>
    /**
     * Session internals of hypercore 11.37.1 that src/logs/local-blocks.ts reads held blocks
     * through (as hypercore's own get does): a storage read batch, and what makes a session
     * unfit for it (not opened, block encryption, a snapshot, closing). Check on any upgrade.
     */
    readonly opened?: boolean
    readonly closing?: unknown
    readonly encryption?: unknown
    readonly _snapshot?: unknown
    readonly state?: { readonly storage?: { read?(): StorageReadBatch } } | null
  }

  /** A batch of storage reads (hypercore-storage): queue getBlock calls, then tryFlush runs them as one RocksDB read. */
  export interface StorageReadBatch {
    getBlock(index: number): Promise<Buffer | null>
    tryFlush(): void
  }

  interface HypercoreStatic {
    getProtocolMuxer(stream: Duplex): unknown
    createProtocolStream(isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    /** The key of the core a signer's public key (or manifest) makes. */
    key(manifest: Uint8Array): Uint8Array
  }
  const Hypercore: HypercoreStatic
  export default Hypercore
}
