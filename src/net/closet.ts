// What a storage-only ("closet") node keeps for others: the writer logs of volumes it holds
// without their sharing key, and full replicas of peers' content stores. Only ciphertext:
// nothing here decrypts, opens a tree or reads a name. Spec: spec/protocol.md ("Storage-only
// nodes") and spec/datadir.md (writers/, mirrors.json).
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore, Range } from 'hypercore'
import { UserError, type StorageOnlyRecord } from '../datadir.js'
import { decodeKey, encodeKey } from '../crypto.js'
import { readWritersFile, writeWritersFile } from '../writers-file.js'
import type { StoreReplica } from './protocol.js'
import { replaceFileSync } from '../atomic-file.js'
import type { Log } from '../log.js'

interface Held {
  core: Hypercore
  range: Range
}

/** Opens a core by key and keeps all of it downloaded, now and as it grows. */
async function follow(store: Corestore, key: Buffer): Promise<Held> {
  const core = store.get({ key })
  try {
    await core.ready()
  } catch (err) {
    await core.close().catch(() => {})
    throw err
  }
  return { core, range: core.download({ start: 0, end: -1 }) }
}

async function unfollow(h: Held): Promise<void> {
  h.range.destroy()
  await h.core.close().catch(() => {})
}

/**
 * A volume held without its sharing key: the set of its writer logs (DATA/writers/ID.json,
 * the format Volume uses, here with every log since there is no own one), each downloaded
 * in full and kept live. Serving them to peers is the network's business.
 */
export class HeldVolume {
  readonly id: Buffer
  private readonly logs = new Map<string, Held>()
  private adding: Promise<unknown> = Promise.resolve()
  private closed = false

  private constructor(
    private readonly store: Corestore,
    private readonly dataDir: string,
    readonly record: StorageOnlyRecord
  ) {
    this.id = Buffer.from(record.id, 'hex')
  }

  get name(): string {
    return this.record.name
  }

  static async open(store: Corestore, dataDir: string, record: StorageOnlyRecord): Promise<HeldVolume> {
    const v = new HeldVolume(store, dataDir, record)
    try {
      for (const key of readWritersFile(dataDir, record.id)) await v.openLog(key)
    } catch (err) {
      await v.close()
      throw err
    }
    return v
  }

  private async openLog(key: Buffer): Promise<Held> {
    const hex = key.toString('hex')
    const known = this.logs.get(hex)
    if (known) return known
    const held = await follow(this.store, key)
    this.logs.set(hex, held)
    return held
  }

  /** Every writer log key held. */
  writers(): Buffer[] {
    return [...this.logs.values()].map((h) => h.core.key)
  }

  /** The held log with this key, if any (for sync's progress checks). */
  core(key: Buffer): Hypercore | null {
    return this.logs.get(key.toString('hex'))?.core ?? null
  }

  /** Holds (and records) one more writer log; returns its core. Adding a known one is a no-op. */
  addWriter(key: Buffer): Promise<Hypercore> {
    const run = async (): Promise<Hypercore> => {
      if (this.closed) throw new Error(`volume ${this.name} is closed`)
      const hex = key.toString('hex')
      const known = this.logs.get(hex)
      if (known) return known.core
      const held = await this.openLog(key)
      writeWritersFile(this.dataDir, this.record.id, this.writers())
      return held.core
    }
    const p = this.adding.then(run, run)
    this.adding = p.catch(() => {})
    return p
  }

  /** Blocks held of every log, in all (entries + the binding blocks). */
  heldBlocks(): number {
    let n = 0
    for (const h of this.logs.values()) n += h.core.contiguousLength
    return n
  }

  async close(): Promise<void> {
    this.closed = true
    await this.adding
    const all = [...this.logs.values()]
    this.logs.clear()
    for (const h of all) await unfollow(h)
  }
}

export const MIRRORS_FILE = 'mirrors.json'
export const MIRRORS_VERSION = 1

interface MirrorRecord {
  node: string
  cas: string
  index: string
  added: number
}

interface Mirror {
  record: MirrorRecord
  replica: StoreReplica
  cas: Held
  index: Held
}

/**
 * Full replicas of other nodes' content stores (their `cas` and `cas-index` cores), one per
 * node, listed in DATA/mirrors.json and kept live. A node mirrors the store a peer offers it
 * when it holds, storage-only, a volume it shares with that peer (see PeerNetwork).
 */
export class StoreMirrors {
  private readonly mirrors = new Map<string, Mirror>()
  private loaded: Promise<void> | null = null
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor(
    private readonly store: Corestore,
    private readonly dataDir: string
  ) {}

  get file(): string {
    return path.join(this.dataDir, MIRRORS_FILE)
  }

  /** Reads mirrors.json and opens every mirror (once). */
  load(): Promise<void> {
    if (!this.loaded) this.loaded = this.serial(() => this.doLoad())
    return this.loaded
  }

  private async doLoad(): Promise<void> {
    for (const rec of this.readFile()) {
      const node = decodeKey(rec.node, 'node key')
      const replica = { node, cas: decodeKey(rec.cas, 'cas key'), index: decodeKey(rec.index, 'cas index key') }
      await this.open(rec, replica)
    }
  }

  private readFile(): MirrorRecord[] {
    let text: string
    try {
      text = fs.readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const bad = (why: string): UserError => new UserError(`${this.file} is damaged (${why}): fix or remove it`)
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      throw bad('not valid JSON')
    }
    const obj = raw as { version?: unknown; stores?: unknown }
    if (typeof obj !== 'object' || obj === null) throw bad('not an object')
    if (obj.version !== MIRRORS_VERSION) throw new UserError(`${this.file}: version ${String(obj.version)} is not supported (this bazil reads version ${MIRRORS_VERSION})`)
    if (!Array.isArray(obj.stores)) throw bad('no store list')
    const seen = new Set<string>()
    return obj.stores.map((s: unknown) => {
      const r = s as Record<string, unknown>
      if (typeof r !== 'object' || r === null) throw bad('a store is not an object')
      for (const f of ['node', 'cas', 'index']) {
        if (typeof r[f] !== 'string') throw bad(`a store has no ${f} key`)
        try {
          decodeKey(r[f] as string)
        } catch {
          throw bad(`bad ${f} key "${String(r[f])}"`)
        }
      }
      if (typeof r.added !== 'number') throw bad(`bad added time of ${String(r.node)}`)
      if (seen.has(r.node as string)) throw bad(`node ${String(r.node)} listed twice`)
      seen.add(r.node as string)
      return { node: r.node as string, cas: r.cas as string, index: r.index as string, added: r.added }
    })
  }

  private writeFile(): void {
    const stores = [...this.mirrors.values()].map((m) => m.record).sort((a, b) => (a.node < b.node ? -1 : 1))
    replaceFileSync(this.file, JSON.stringify({ version: MIRRORS_VERSION, stores }, null, 2) + '\n', { mode: 0o600 })
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn)
    this.queue = p.catch(() => {})
    return p
  }

  private async open(record: MirrorRecord, replica: StoreReplica): Promise<void> {
    const cas = await follow(this.store, replica.cas)
    let index: Held
    try {
      index = await follow(this.store, replica.index)
    } catch (err) {
      await unfollow(cas)
      throw err
    }
    this.mirrors.set(replica.node.toString('hex'), { record, replica, cas, index })
  }

  /**
   * Keeps a full replica of `node`'s store (replacing one of other keys, if the node's store
   * changed). Returns true if that is new.
   */
  mirror(replica: StoreReplica): Promise<boolean> {
    return this.serial(async () => {
      if (this.closed) return false
      const hex = replica.node.toString('hex')
      const old = this.mirrors.get(hex)
      if (old && old.replica.cas.equals(replica.cas) && old.replica.index.equals(replica.index)) return false
      if (old) {
        this.mirrors.delete(hex)
        await unfollow(old.cas)
        await unfollow(old.index)
      }
      const record = { node: encodeKey(replica.node), cas: encodeKey(replica.cas), index: encodeKey(replica.index), added: Date.now() }
      await this.open(record, replica)
      this.writeFile()
      return true
    })
  }

  /** The replicas held (loaded ones). */
  list(): StoreReplica[] {
    return [...this.mirrors.values()].map((m) => m.replica)
  }

  /** The replica of this node's store, with its cores, if held. */
  get(node: Buffer): { replica: StoreReplica; cas: Hypercore; index: Hypercore } | null {
    const m = this.mirrors.get(node.toString('hex'))
    return m ? { replica: m.replica, cas: m.cas.core, index: m.index.core } : null
  }

  /** The replica this core key belongs to, if any. */
  ownerOf(key: Buffer): StoreReplica | null {
    for (const m of this.mirrors.values()) if (m.replica.cas.equals(key) || m.replica.index.equals(key)) return m.replica
    return null
  }

  async close(): Promise<void> {
    this.closed = true
    await this.queue
    const all = [...this.mirrors.values()]
    this.mirrors.clear()
    for (const m of all) {
      await unfollow(m.cas)
      await unfollow(m.index)
    }
  }
}

/**
 * Starts keeping a replica of the store a peer offers (the caller checked with access.ts that
 * those keys may be taken as that peer's store). Returns true if the replica is new.
 */
export async function mirrorOffered(mirrors: StoreMirrors, replica: StoreReplica, log: Log, who: string): Promise<boolean> {
  try {
    if (!(await mirrors.mirror(replica))) return false
    log('info', `net: keeping a replica of peer ${who}'s store`)
    return true
  } catch (err) {
    log('error', `net: peer ${who}: cannot keep a replica of its store: ${(err as Error).message}`)
    return false
  }
}
