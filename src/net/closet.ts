// What a storage-only ("closet") node keeps for others: the writer logs of volumes it holds
// without their sharing key, and full replicas of peers' content stores. Only ciphertext:
// nothing here decrypts, opens a tree or reads a name. Spec: spec/protocol.md ("Storage-only
// nodes") and spec/datadir.md (writers/, mirrors.json).
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { UserError, type StorageOnlyRecord, type VolumeRecord } from '../datadir.js'
import { decodeKey, encodeKey } from '../crypto.js'
import { HeldRange, LogBindingError, checkBindingFull, computeWriterSet, scanControl, type ControlRecord, type LogInfo, type WriterSet } from '../logs/index.js'
import { readWritersFile, writeWritersFile } from '../writers-file.js'
import type { StoreReplica } from './protocol.js'
import { replaceFileSync } from '../atomic-file.js'
import type { Log } from '../log.js'
import { DropFollower } from './mirror-drops.js'
import { ChunkStore } from '../cas/chunk-store.js'
import { clearBlocks } from '../core-clear.js'
import { DataPaths } from '../data-paths.js'

interface Held {
  core: Hypercore
  range: HeldRange
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
  return { core, range: await HeldRange.open(core) }
}

async function unfollow(h: Held): Promise<void> {
  h.range.destroy()
  await h.core.close().catch(() => {})
}

/** What a held volume needs from its node: updating its record, and telling the network its writer set changed. */
export interface HeldVolumeHost {
  updateRecord(patch: Pick<VolumeRecord, 'genesis' | 'roots'>): StorageOnlyRecord
  writersChanged(volumeId: Buffer): void
}

/**
 * A volume held without its sharing key: the set of its writer logs (DATA/writers/ID.json,
 * the format Volume uses, here with every log since there is no own one), each downloaded
 * in full and kept live. Serving them to peers is the network's business; which of them are
 * authorised is computed here from the plaintext bindings and control entries, exactly as a
 * reader does (spec/oplog.md "Writer set").
 */
export class HeldVolume {
  readonly id: Buffer
  private readonly logs = new Map<string, Held>()
  private adding: Promise<unknown> = Promise.resolve()
  private closed = false
  private readonly bindings = new Map<string, LogInfo>()
  private readonly badBindings = new Set<string>()
  private readonly control = new Map<string, ControlRecord>()
  private readonly scanned = new Map<string, number>()
  private genesis: { node: Buffer; nonce: Buffer } | null = null
  private set: WriterSet = computeWriterSet({ logs: [], control: [] })
  private setInputs = ''
  private updating: Promise<void> | null = null
  private updateAgain = false
  private timer: NodeJS.Timeout | null = null

  private constructor(
    private readonly store: Corestore,
    private readonly dataDir: string,
    private rec: StorageOnlyRecord,
    private readonly host: HeldVolumeHost | null
  ) {
    this.id = Buffer.from(rec.id, 'hex')
  }

  get record(): StorageOnlyRecord {
    return this.rec
  }

  get name(): string {
    return this.record.name
  }

  static async open(store: Corestore, dataDir: string, record: StorageOnlyRecord, host: HeldVolumeHost | null = null): Promise<HeldVolume> {
    const v = new HeldVolume(store, dataDir, record, host)
    try {
      const keys = readWritersFile(dataDir, record.id)
      for (const key of keys) await v.openLog(key)
      await v.update()
      // Migration of a volume an older bazil held (no genesis, no roots): the logs held now are its roots.
      if (!record.genesis && record.roots === undefined && keys.length > 0 && v.genesis === null && host) {
        v.rec = host.updateRecord({ roots: keys.map((k) => encodeKey(k)).sort() })
        await v.update()
      }
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
    const onData = (): void => this.scheduleUpdate()
    held.core.on('append', onData)
    held.core.on('download', onData)
    return held
  }

  private scheduleUpdate(): void {
    if (this.timer || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.update().catch(() => {})
    }, 25)
  }

  /** Reads new bindings and control entries of the held logs and recomputes the writer set. */
  update(): Promise<void> {
    if (this.updating) {
      this.updateAgain = true
      return this.updating
    }
    const run = async (): Promise<void> => {
      do {
        this.updateAgain = false
        await this.updateOnce()
      } while (this.updateAgain && !this.closed)
    }
    this.updating = run().finally(() => { this.updating = null })
    return this.updating
  }

  private async updateOnce(): Promise<void> {
    for (const [hex, h] of this.logs) {
      if (this.closed) return
      if (!this.bindings.has(hex) && !this.badBindings.has(hex)) {
        const block = h.core.length > 0 ? await h.core.get(0, { wait: false }) : null
        if (block === null) continue
        try {
          const b = checkBindingFull(block, h.core.key, this.id)
          this.bindings.set(hex, { log: hex, node: b.node.toString('hex'), genesisNode: b.genesis?.node.toString('hex') ?? null })
          if (b.genesis && !this.genesis) this.genesis = b.genesis
        } catch (err) {
          if (!(err instanceof LogBindingError)) throw err
          this.badBindings.add(hex)
          continue
        }
      }
      const from = this.scanned.get(hex) ?? 1
      if (from >= h.core.length) continue
      const r = await scanControl(h.core, from, h.core.length, h.range.pastLimit())
      for (const c of r.found) this.control.set(`${hex}:${c.seq}`, c)
      this.scanned.set(hex, r.next)
    }
    if (this.genesis && !this.rec.genesis && this.host) {
      this.rec = this.host.updateRecord({ genesis: { node: encodeKey(this.genesis.node), nonce: this.genesis.nonce.toString('hex') } })
    }
    const inputs = `${this.bindings.size}/${this.control.size}/${(this.rec.roots ?? []).join(',')}`
    if (inputs === this.setInputs) return // bindings and control entries only grow: nothing new
    this.setInputs = inputs
    const before = this.set.fingerprint
    this.set = computeWriterSet({
      logs: [...this.bindings.values()],
      legacyRoots: (this.rec.roots ?? []).map((k) => decodeKey(k).toString('hex')),
      control: [...this.control.values()]
    })
    // Logs admitted by key that are not held yet: held from now on.
    for (const hex of this.set.admittedUnknown) {
      if (this.logs.has(hex) || this.closed) continue
      await this.openLog(Buffer.from(hex, 'hex'))
      writeWritersFile(this.dataDir, this.record.id, this.allLogs())
    }
    // A revoked writer's sealed entries past its limit are not kept (so never relayed); its control entries are.
    for (const [hex, h] of this.logs) await h.range.setLimit(this.set.writers.get(hex)?.limit ?? null)
    if (this.set.fingerprint !== before) this.host?.writersChanged(this.id)
  }

  /** The writer set as last computed. */
  get writerSet(): WriterSet {
    return this.set
  }

  /** Every log held with the node its binding names (null: block 0 not here yet), key hex. */
  knownLogs(): { log: string; node: string | null }[] {
    return [...this.logs.keys()].sort().map((hex) => ({ log: hex, node: this.bindings.get(hex)?.node ?? null }))
  }

  /** Whether the bindings of these logs are held (checked, or found bad) here. */
  bindingsKnown(keys: Buffer[]): boolean {
    return keys.every((k) => this.bindings.has(k.toString('hex')) || this.badBindings.has(k.toString('hex')))
  }

  /** After connecting: a volume whose logs carry no genesis (made before binding v2) takes `offered` as its roots. */
  async decideRoots(offered: Buffer[]): Promise<void> {
    await this.update()
    if (this.rec.genesis || this.genesis || this.rec.roots !== undefined || !this.host) return
    this.rec = this.host.updateRecord({ roots: offered.map((k) => encodeKey(k)).sort() })
    await this.update()
  }

  /** The writer logs to serve and relay: the authorised ones held, and those a valid admit names whose binding is not here yet. */
  writers(): Buffer[] {
    const byKey = new Set(this.set.admittedUnknown)
    return [...this.logs.values()].map((h) => h.core.key).filter((k) => this.set.writers.has(k.toString('hex')) || byKey.has(k.toString('hex')))
  }

  /** Every log held, authorised or not (candidates, revoked ones). */
  allLogs(): Buffer[] {
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
      writeWritersFile(this.dataDir, this.record.id, this.allLogs())
      await this.update()
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
    if (this.timer) clearTimeout(this.timer)
    await this.adding
    if (this.updating) await this.updating.catch(() => {})
    const all = [...this.logs.values()]
    this.logs.clear()
    for (const h of all) await unfollow(h)
  }
}

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
  /** Clears the packs the owner's drop records name, once the packs before them are held (spec/gc.md section 5). */
  drops: DropFollower
}

/** After packs were cleared, the database is compacted (so the space comes back) this long after the last clear... */
const COMPACT_SETTLE_MS = 2000
/** ...and at most once per this long. */
const COMPACT_EVERY_MS = 60_000

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
    return new DataPaths(this.dataDir).mirrors
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
    const drops = new DropFollower(cas.core, index.core, { fetchFrom: (start) => cas.range.fetchFrom(start), cleared: () => this.compactSoon() })
    this.mirrors.set(replica.node.toString('hex'), { record, replica, cas, index, drops })
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
        old.drops.close()
        await unfollow(old.cas)
        await unfollow(old.index)
      }
      const record = { node: encodeKey(replica.node), cas: encodeKey(replica.cas), index: encodeKey(replica.index), added: Date.now() }
      await this.open(record, replica)
      this.writeFile()
      return true
    })
  }

  /**
   * Stops keeping the replica of `node`'s store (its owner released it: RELEASE) and gives its
   * disk space back: the record leaves mirrors.json, the packs held are cleared (src/core-clear.ts)
   * and the database compacted. The index stays (a few bytes per pack: what reading that store
   * on demand needs, if this node does). Returns the packs cleared, or null if none was kept.
   */
  drop(node: Buffer): Promise<{ packs: number } | null> {
    return this.serial(async () => {
      const hex = node.toString('hex')
      const m = this.mirrors.get(hex)
      if (!m || this.closed) return null
      this.mirrors.delete(hex)
      this.writeFile()
      m.drops.close()
      m.cas.range.destroy()
      m.index.range.destroy()
      let held = 0
      for (let i = 0; i < m.cas.core.length; i++) if (await m.cas.core.has(i)) held++
      const left = await clearBlocks(m.cas.core, 0, m.cas.core.length)
      await m.cas.core.close().catch(() => {})
      await m.index.core.close().catch(() => {})
      void this.compactNow()
      return { packs: held - left }
    })
  }

  private compactTimer: NodeJS.Timeout | null = null
  private lastCompact = 0
  private compacting: Promise<void> = Promise.resolve()

  private compactSoon(): void {
    if (this.closed) return
    if (this.compactTimer) clearTimeout(this.compactTimer)
    const wait = Math.max(COMPACT_SETTLE_MS, this.lastCompact + COMPACT_EVERY_MS - Date.now())
    this.compactTimer = setTimeout(() => {
      this.compactTimer = null
      void this.compactNow()
    }, wait)
    this.compactTimer.unref()
  }

  /** Compacts the database now (what compactSoon does later), so that cleared packs' space comes back. */
  compactNow(): Promise<void> {
    this.lastCompact = Date.now()
    this.compacting = this.compacting.then(() => (this.closed ? undefined : ChunkStore.compactStorage(this.store))).catch(() => {})
    return this.compacting
  }

  /** Runs a drop-record pass of the replica of `node`'s store now (tests); resolves with the packs cleared so far. */
  async followDrops(node: Buffer): Promise<number> {
    const m = this.mirrors.get(node.toString('hex'))
    if (!m) return 0
    await m.drops.pass()
    return m.drops.clearedPacks
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
    if (this.compactTimer) clearTimeout(this.compactTimer)
    await this.compacting
    for (const m of all) {
      m.drops.close()
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
