// Typed surface of corestore 7 that bazil uses (the package ships no types).
declare module 'corestore' {
  import type { Hypercore, KeyPair } from 'hypercore'
  import type { Duplex } from 'node:stream'

  export interface GetOptions {
    name?: string
    key?: Buffer
    /** Open a stored core by discovery key alone; the session fails (STORAGE_EMPTY) if it isn't stored. */
    discoveryKey?: Buffer
    keyPair?: KeyPair
    exclusive?: boolean
    valueEncoding?: 'binary' | 'utf-8' | 'json'
    encryption?: { key: Buffer } | null
    manifest?: unknown
    writable?: boolean
    active?: boolean
  }

  /** hypercore's lib/mutex.js. */
  export interface CoreMutex {
    readonly destroyed: boolean
    idle(): boolean
    lock(): Promise<void>
    unlock(): void
  }

  /**
   * An open core in the store's tracker (hypercore's lib/core.js Core, not a session): what
   * src/store-close.ts waits on before the store closes.
   */
  export interface StoreCore {
    readonly replicator: {
      /** Peers attached over replication streams; dataProcessing counts blocks being verified/stored. */
      readonly peers: ReadonlyArray<{ readonly dataProcessing: number }>
      /** Serialises incoming upgrades. */
      readonly _rxLock: CoreMutex
      /** Closes every replication channel of the core and detaches it from its streams. */
      destroy(): void
    }
    /** The default session state; its mutex is held while a verified block is stored. */
    readonly state: { readonly mutex: CoreMutex } | null
  }

  export default class Corestore {
    constructor(storage: unknown, opts?: Record<string, unknown>)
    readonly storage: {
      /** RocksDB compactRange over the whole database (rocksdb-native options). */
      compact(opts?: { blobGarbageCollectionPolicy?: number; blobGarbageCollectionAgeCutoff?: number; bottommostLevelCompaction?: number }): Promise<void>
      /** The RocksDB column family session the cores live in (rocksdb-native): flush() writes its memtables to SST files, after which RocksDB drops the write-ahead log files that held them. */
      readonly db: { flush(): Promise<void> }
      /** The discovery key of the core stored under a name (store.get({ name })), or null if there is none. */
      getAlias(alias: { name: string; namespace: Buffer }): Promise<Buffer | null>
    }
    /** The namespace names are resolved in (store.get({ name })). */
    readonly ns: Buffer
    /** The open cores (shared by every session/namespace of the store); yields those not closing. */
    readonly cores: Iterable<StoreCore>
    ready(): Promise<void>
    close(): Promise<void>
    get(opts: GetOptions): Hypercore
    namespace(name: string): Corestore
    session(opts?: Record<string, unknown>): Corestore
    replicate(isInitiatorOrStream: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    createKeyPair(name: string, ns?: Buffer): Promise<KeyPair>
  }
}
