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
    ready(): Promise<void>
    close(): Promise<void>
    get(opts: GetOptions): Hypercore
    namespace(name: string): Corestore
    session(opts?: Record<string, unknown>): Corestore
    replicate(isInitiatorOrStream: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    createKeyPair(name: string, ns?: Buffer): Promise<KeyPair>
  }
}
