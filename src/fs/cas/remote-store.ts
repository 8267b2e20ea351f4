// Content on demand: objects this node doesn't hold, read from peers' pack stores (their
// `packs` core through their `pack-index` core, spec/cas.md section 4.1). A source's index is
// small (~40 bytes per object): it is downloaded whole, in pipelined ranges, and again from
// where it stopped when a lookup misses (misses share that catch-up), into one PackTable per
// source; a lookup is then local. A read fetches the pack block that holds the object and
// slices it out; packs the reads of a bulk (an export) will need are requested ahead as
// ranges (prefetch()), so a first sync moves whole packs, many in flight, from every peer
// that holds them (hypercore spreads a core's requests over its peers).
//
// Nothing a peer sends is trusted: hypercore verifies each block (pack or index) against the
// core's signed tree, index blocks are decoded strictly (pack-codec.ts), this module checks
// the sliced object's own address A against the one asked for, and Cas then opens it (AEAD
// bound to A) and checks P. A peer that doesn't answer in time costs one timeout and a log
// line; the read fails with MissingContentError (EIO in the mount).
//
// What was fetched stays in this node's copies of the sources' cores (hypercore keeps what it
// downloaded); localBlock() reads it from there without the network. The sources are listed
// in a file (SOURCES_FILE_NAME) so that those copies are found again after a restart, before
// (or without) their peer connecting. Spec: spec/cas.md section 6.
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { replaceFile } from '../../atomic-file.js'
import { Lru } from './lru.js'
import { SharedLoads } from './shared-loads.js'
import { PackTable, applyIndexRecord, type PackLocation } from './pack-table.js'
import { decodeIndexRecord } from './pack-codec.js'
import { HASH_BYTES } from '../../crypto.js'
import type { Log } from '../../log.js'
import type { ChunkStore } from './chunk-store.js'

/** A peer's store as its hello offers it: its `packs` core (field `cas`) and `pack-index` core (field `index`). */
export interface RemoteStoreKeys {
  cas: Buffer
  index: Buffer
}

interface Source {
  /** Id in `sources`: both core keys. */
  id: string
  /** The peer's public key (z-base-32) and how it is reached, for log lines. */
  name: string
  /** The node whose store this is (z-base-32), when add() was told; null otherwise. */
  owner: string | null
  packs: Hypercore
  index: Hypercore
  /** Address -> (pack, offset, length) for index blocks 0..indexed-1. */
  table: PackTable
  indexed: number
  /** Decoding of local index blocks in flight (serialized: `indexed` only grows). */
  decoding: Promise<void> | null
  /** Why this store is not read (its index is not a pack index we know), once found; logged once. */
  unusable: string | null
  /** The network catch-up of the index in flight (shared by every lookup that missed while it runs). */
  updating: Promise<void> | null
  /** The one queued behind it: a lookup that missed after `updating` started waits for this. */
  nextUpdate: Promise<void> | null
  /**
   * Asked over the network (made a source by add() in this run). A source only listed in the
   * sources file is read locally (localBlock) until then.
   */
  active: boolean
}

/**
 * The sources file, in the corestore's directory (DATA/corestore/cas-sources): the peers'
 * stores whose copies in this corestore may hold fetched content (spec/cas.md §6).
 */
export const SOURCES_FILE_NAME = 'cas-sources'
/** Version 2: records name pack stores. Version 1 named the old cas/cas-index stores (no longer read). */
const SOURCES_FILE_VERSION = 2
const MAX_SOURCES = 4096

export interface RemoteStoresOptions {
  /** Where the sources are listed between runs; default `cas-sources` in the corestore's directory, null: not kept. */
  sourcesFile?: string | null
}

export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000
/** How long a read waits for a disconnected source's cores to get a peer. */
const PEER_GRACE_MS = 1_000
/** Pack blocks kept decoded in memory (~1 MiB each): the objects of one pack are read one after another. */
const PACK_CACHE = 32
/** How long packs requested ahead outside a bulk stay requested. */
const LOOSE_RANGE_MS = 60_000
/** Consecutive packs requested as a range of their own (fewer go in one request by block list). */
const MIN_RUN = 4
/** Index blocks read from local storage per step when catching the table up. */
const INDEX_READ_BATCH = 64

function replicating(s: Source): boolean {
  return s.packs.peers.length > 0 && s.index.peers.length > 0
}

/** Resolves once both of a source's cores have a peer (a read needs its index and its packs), or after `ms`. */
function bothReplicating(s: Source, ms: number): Promise<void> {
  const ready = (core: Hypercore): Promise<void> => (core.peers.length > 0 ? Promise.resolve() : peerAdded(core, ms))
  return Promise.all([ready(s.packs), ready(s.index)]).then(() => {})
}

function peerAdded(core: Hypercore, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      core.off('peer-add', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    core.on('peer-add', done)
  })
}

/** Resolves with `p`'s value, or with `fallback` after `ms`. */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | null = null
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms)
  })
  return Promise.race([p, timeout]).finally(() => {
    if (timer) clearTimeout(timer)
  })
}

/** Block 0 of an old store's `cas-index` is a hyperbee header (protobuf field 1: "hyperbee"). */
function isHyperbeeHeader(block: Buffer): boolean {
  return block.length >= 10 && block[0] === 0x0a && block.subarray(2, 10).toString('latin1') === 'hyperbee'
}

export class RemoteStores {
  private readonly sources = new Map<string, Source>()
  private closed = false

  /** Where misses and misbehaving peers are reported (the server sets its log). */
  log: Log = () => {}

  /**
   * Called when a source's pack is used for a read (held locally or just fetched): the cache's
   * LRU (cache-ledger.ts). Must not throw or block.
   */
  onPackRead: ((packsKey: Buffer, pack: number) => void) | null = null

  private readonly sourcesFile: string | null
  /** The sources file write in flight (writes are serialized). */
  private saving: Promise<void> = Promise.resolve()
  /** Opens in flight, by id: concurrent add()/load() of one store open it once. */
  private readonly opening = new Map<string, Promise<Source | null>>()
  /** Pack blocks read recently, by source id and pack number. */
  private readonly packCache = new Lru<string, Buffer>(PACK_CACHE)
  /** Local pack reads in flight (concurrent reads of one pack share one storage read). */
  private readonly packReads = new SharedLoads<string, Buffer>(this.packCache)
  /** Pack fetches over the network in flight (concurrent reads of one pack share one). */
  private readonly packFetches = new SharedLoads<string, Buffer>(this.packCache)
  /** The own store (serve()): prefetch() skips what it holds. */
  private own: Pick<ChunkStore, 'locate'> | null = null

  constructor(
    private readonly store: Corestore,
    readonly timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS,
    opts: RemoteStoresOptions = {}
  ) {
    const storagePath = (store.storage as { path?: unknown } | undefined)?.path
    this.sourcesFile = opts.sourcesFile !== undefined ? opts.sourcesFile : typeof storagePath === 'string' ? path.join(storagePath, SOURCES_FILE_NAME) : null
  }

  /** Makes `chunks` read what it lacks through these sources: the local copies of their stores first, then the network. */
  serve(chunks: Pick<ChunkStore, 'remote' | 'replica' | 'ahead' | 'locate'>): void {
    chunks.remote = (address) => this.fetch(address)
    chunks.replica = (address) => this.localBlock(address)
    chunks.ahead = (addresses) => this.prefetch(addresses)
    this.own = chunks
  }

  /** Sources that may be asked (peer names). */
  list(): string[] {
    return [...this.sources.values()].filter((s) => s.active).map((s) => s.name)
  }

  /**
   * Opens the copies of the stores the sources file lists, for local reads (localBlock); they
   * are asked over the network only once add() makes them sources again. An unreadable file
   * is reported and otherwise ignored (what it listed is then not found until re-added).
   */
  async load(): Promise<void> {
    if (!this.sourcesFile) return
    let records: SourceRecord[]
    try {
      const parsed = parseSources(await fs.promises.readFile(this.sourcesFile, 'utf8'))
      if (parsed === 'old') {
        this.log('info', `cas: ${this.sourcesFile} lists copies of stores in the old format (before packs): not read; their content is fetched again from the peers' current stores`)
        return
      }
      records = parsed
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      this.log('warn', `cas: ${this.sourcesFile}: ${(err as Error).message} (ignored: content fetched earlier is found again once its peer's store is a source again)`)
      return
    }
    for (const r of records) {
      await this.open(r.name, r.keys, false, r.owner).catch((err: Error) => this.log('warn', `cas: cannot open the copy of ${r.name}'s store: ${err.message}`))
    }
  }

  /**
   * Makes a peer's store a source. Opening its cores locally is what lets the network attach
   * them to that peer's connection (they are sparse: nothing is downloaded until read).
   * A store its owner offers itself (`owner` is the peer, `name` its key) replaces the copies
   * of that owner's other stores: the node moved to new cores (a store migration).
   */
  async add(name: string, keys: RemoteStoreKeys, owner: string | null = null): Promise<void> {
    const source = await this.open(name, keys, true, owner)
    if (source && owner !== null && name === owner) await this.dropOtherStoresOf(owner, source)
  }

  private async dropOtherStoresOf(owner: string, current: Source): Promise<void> {
    const stale = [...this.sources.values()].filter((s) => s !== current && s.owner === owner)
    if (stale.length === 0) return
    for (const s of stale) {
      this.sources.delete(s.id)
      this.log('info', `cas: node ${owner} offers a new store: forgetting the copy of its old one`)
      await this.closeSource(s)
    }
    this.save()
  }

  /**
   * The stores this node keeps copies of, with the node each belongs to (z-base-32, null if
   * unknown): the network's access rules give such a core only to its owner (spec/protocol.md).
   */
  stores(): { owner: string | null; cas: Buffer; index: Buffer }[] {
    return [...this.sources.values()].map((s) => ({ owner: s.owner, cas: s.packs.key, index: s.index.key }))
  }

  /** Owner of the store whose answer a recent fetch of A returned (see add()), or null. */
  fetchedFrom(address: Buffer): string | null {
    return this.answered.get(address.toString('hex')) ?? null
  }

  private readonly answered = new Lru<string, string>(4096)

  private async open(name: string, keys: RemoteStoreKeys, active: boolean, owner: string | null = null): Promise<Source | null> {
    const id = `${keys.cas.toString('hex')}:${keys.index.toString('hex')}`
    if (this.closed) return null
    let source: Source | null | undefined = this.sources.get(id)
    if (!source) {
      let p = this.opening.get(id)
      if (!p) {
        p = this.openCores(id, name, keys).finally(() => this.opening.delete(id))
        this.opening.set(id, p)
      }
      source = await p
      if (!source) return null
      if (!this.sources.has(id)) {
        this.sources.set(id, source)
        if (active) this.save()
      }
    }
    if (active && !source.active) {
      source.active = true
      source.name = name
    }
    if (owner && source.owner !== owner) {
      source.owner = owner
      this.save()
    }
    return source
  }

  private async openCores(id: string, name: string, keys: RemoteStoreKeys): Promise<Source | null> {
    const packs = this.store.get({ key: keys.cas })
    const index = this.store.get({ key: keys.index })
    await packs.ready()
    await index.ready()
    if (this.closed) {
      await index.close()
      await packs.close()
      return null
    }
    return { id, name, owner: null, packs, index, table: new PackTable(), indexed: 0, decoding: null, unusable: null, updating: null, nextUpdate: null, active: false }
  }

  private async closeSource(s: Source): Promise<void> {
    await s.index.close().catch(() => {})
    await s.packs.close().catch(() => {})
  }

  /** Rewrites the sources file (in the background, serialized; a failure is logged). */
  private save(): void {
    const file = this.sourcesFile
    if (!file) return
    this.saving = this.saving.then(async () => {
      const sources = [...this.sources.values()].map((s) => ({ name: s.name, owner: s.owner ?? undefined, packs: s.packs.key.toString('hex'), index: s.index.key.toString('hex') }))
      try {
        await replaceFile(file, JSON.stringify({ version: SOURCES_FILE_VERSION, sources }, null, 2) + '\n', { mode: 0o600 })
      } catch (err) {
        if (!this.closed) this.log('warn', `cas: cannot write ${file}: ${(err as Error).message}`)
      }
    })
  }

  // ---- the index: a PackTable per source --------------------------------------------------

  /** Adds index block `seq` to the source's table; a block that doesn't decode makes the source unusable (logged once). */
  private addIndexBlock(s: Source, seq: number, block: Buffer): boolean {
    if (seq !== s.indexed) return seq < s.indexed // decoded already (the local and the network catch-up overlap)
    let why: string | null = null
    try {
      const rec = decodeIndexRecord(block)
      try {
        applyIndexRecord(s.table, seq, rec) // later entries win; drop records forget (spec/gc.md)
      } catch (err) {
        why = `index block ${seq} ${(err as Error).message}`
      }
    } catch (err) {
      why = seq === 0 && isHyperbeeHeader(block)
        ? 'it is a store in the old format (a cas-index hyperbee: that node runs a bazil from before packs)'
        : `index block ${seq}: ${(err as Error).message}`
    }
    if (why === null) {
      s.indexed = seq + 1
      return true
    }
    if (!s.unusable) {
      s.unusable = why
      this.log('warn', `cas: not reading the store of ${s.name}: ${why}`)
    }
    return false
  }

  /** Decodes the index blocks held locally beyond what the table covers (no network). */
  private catchUpLocal(s: Source): Promise<void> {
    if (s.decoding) return s.decoding
    if (s.unusable || s.indexed >= s.index.length) return Promise.resolve()
    s.decoding = (async () => {
      // (contiguousLength is a hint hypercore saves lazily: after a restart it may say 0; has() reads the bitfield)
      while (!s.unusable && !this.closed && s.indexed < s.index.length) {
        const from = s.indexed
        const to = Math.min(s.index.length, from + INDEX_READ_BATCH)
        let held = from
        while (held < to && (await s.index.has(held))) held++
        if (held === from) return
        const blocks = await Promise.all(Array.from({ length: held - from }, (_, i) => s.index.get(from + i, { wait: false })))
        for (let i = 0; i < blocks.length; i++) {
          const block = blocks[i]
          if (!block || !this.addIndexBlock(s, from + i, block)) return
        }
      }
    })()
      .catch(() => {}) // a closed core: nothing more to read
      .finally(() => {
        s.decoding = null
      })
    return s.decoding
  }

  /**
   * Downloads the source's index from where the table stops to the newest length a peer has
   * (one pipelined range), decoding it as it arrives. Bounded by the timeout; never throws.
   */
  private async catchUpNetwork(s: Source): Promise<void> {
    if (s.unusable) return
    await within(s.index.update({ wait: true }).catch(() => false), this.timeoutMs, false)
    await this.catchUpLocal(s)
    const end = s.index.length
    if (s.unusable || s.indexed >= end) return
    const range = s.index.download({ start: s.indexed, end })
    const deadline = Date.now() + this.timeoutMs
    try {
      for (let seq = s.indexed; seq < end && !s.unusable && !this.closed; seq = s.indexed) {
        const block = await s.index.get(seq, { timeout: Math.max(1, deadline - Date.now()) })
        if (!block) return
        if (!this.addIndexBlock(s, seq, block)) return
        await this.catchUpLocal(s) // the blocks behind it that arrived meanwhile: decoded without waiting one by one
      }
    } catch (err) {
      if (!this.closed) this.log('debug', `cas: peer ${s.name}: index: ${(err as Error).message}`)
    } finally {
      range.destroy()
    }
  }

  /**
   * Resolves after an index catch-up that started after this call. Lookups that miss together
   * share one: a burst of misses costs one round trip.
   */
  private updated(s: Source): Promise<void> {
    if (s.nextUpdate) return s.nextUpdate
    if (!s.updating) {
      s.updating = this.catchUpNetwork(s).finally(() => {
        s.updating = null
      })
      return s.updating
    }
    const current = s.updating
    s.nextUpdate = current.then(() => {
      s.nextUpdate = null
      return this.updated(s)
    })
    return s.nextUpdate
  }

  // ---- packs ---------------------------------------------------------------------------------

  /** Pack `seq` of the source if held locally (no network), or null. Concurrent reads of one pack share one. */
  private localPack(s: Source, seq: number): Promise<Buffer | null> {
    return this.packReads.load(`${s.id}:${seq}`, async () => {
      if (seq >= s.packs.length || !(await s.packs.has(seq))) return null
      return s.packs.get(seq, { wait: false })
    })
  }

  /**
   * Pack `seq` of the source, fetched if need be (hypercore verifies it); null if it doesn't
   * come within the timeout. A shared fetch that started earlier (before the peer came back,
   * say) and gave up is followed by one of this read's own while its time lasts.
   */
  private async fetchPack(s: Source, seq: number): Promise<Buffer | null> {
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      const pack = await this.sharedFetch(s, seq).catch(() => null)
      if (pack || this.closed || attempt >= 2 || Date.now() - started >= this.timeoutMs) return pack
    }
  }

  private sharedFetch(s: Source, seq: number): Promise<Buffer | null> {
    return this.packFetches.load(`${s.id}:${seq}`, async () => {
      const local = await this.localPack(s, seq) // arrived meanwhile (a range requested ahead)
      if (local) return local
      if (seq >= s.packs.length) await within(s.packs.update({ wait: true }).catch(() => false), this.timeoutMs, false)
      return s.packs.get(seq, { timeout: this.timeoutMs })
    })
  }

  /** The object at `loc` in the pack, if its header address is A; else null (logged: the source's index and packs disagree). */
  private slice(s: Source, pack: Buffer, loc: PackLocation, address: Buffer): Buffer | null {
    const end = loc.offset + loc.length
    const object = end <= pack.length ? pack.subarray(loc.offset, end) : null
    if (object && object.length > HASH_BYTES && object.subarray(1, 1 + HASH_BYTES).equals(address)) return object
    this.log('warn', `cas: peer ${s.name}: pack ${loc.pack} does not hold ${address.toString('hex').slice(0, 16)}… where its index says (offset ${loc.offset}, ${loc.length} bytes)`)
    return null
  }

  /**
   * The object with address A if this node's copy of some source's store already holds it (its
   * index block and its pack), without the network; null otherwise. The same checks as a
   * fetch (index decoding, object address); never throws.
   */
  async localBlock(address: Buffer): Promise<Buffer | null> {
    for (const s of this.sources.values()) {
      try {
        if (s.unusable) continue
        await this.catchUpLocal(s)
        const loc = s.table.get(address)
        if (!loc) continue
        const pack = await this.localPack(s, loc.pack)
        if (!pack) continue
        const object = this.slice(s, pack, loc, address)
        if (!object) continue
        if (s.owner) this.answered.set(address.toString('hex'), s.owner)
        this.onPackRead?.(s.packs.key, loc.pack)
        return object
      } catch {
        // A closed core: not held locally.
      }
    }
    return null
  }

  /**
   * Which packs of which sources' stores hold these objects, by `packs` core key (hex), from
   * the index blocks held locally (no network). The cache uses it to keep the packs of
   * pinned and open files.
   */
  async packsOf(addresses: Iterable<Buffer>): Promise<Map<string, Set<number>>> {
    const out = new Map<string, Set<number>>()
    const sources = [...this.sources.values()].filter((s) => !s.unusable)
    for (const s of sources) await this.catchUpLocal(s)
    for (const a of addresses) {
      for (const s of sources) {
        const loc = s.table.get(a)
        if (!loc) continue
        const key = s.packs.key.toString('hex')
        let set = out.get(key)
        if (!set) out.set(key, (set = new Set()))
        set.add(loc.pack)
      }
    }
    return out
  }

  /**
   * Where the stores this node reads from place these objects, by their local tables (index
   * blocks held here; no network): per address (hex), each source's packs key, owner, pack,
   * stored length, and whether this node's copy holds that pack. For `bazil where`/`du`.
   */
  async locate(addresses: Iterable<Buffer>): Promise<Map<string, { packs: Buffer; owner: string | null; pack: number; length: number; held: boolean }[]>> {
    const out = new Map<string, { packs: Buffer; owner: string | null; pack: number; length: number; held: boolean }[]>()
    const sources = [...this.sources.values()].filter((s) => !s.unusable)
    for (const s of sources) await this.catchUpLocal(s).catch(() => {})
    for (const a of addresses) {
      for (const s of sources) {
        const loc = s.table.get(a)
        if (!loc) continue
        const held = await s.packs.has(loc.pack).catch(() => false)
        const hex = a.toString('hex')
        let list = out.get(hex)
        if (!list) out.set(hex, (list = []))
        list.push({ packs: s.packs.key, owner: s.owner, pack: loc.pack, length: loc.length, held })
      }
    }
    return out
  }

  // ---- bulk: packs requested ahead ------------------------------------------------------------

  /**
   * Runs `fn`, which reads many objects (an export). Inside it, prefetch() requests the packs
   * the reads will need as ranges (many in flight, from every peer of each core); they are
   * let go when `fn` ends. Nothing is trusted more: the same checks apply to every read.
   */
  async bulk<T>(fn: () => Promise<T>): Promise<T> {
    this.bulkDepth++
    try {
      return await fn()
    } finally {
      if (--this.bulkDepth === 0) {
        for (const r of this.ranges.splice(0)) r.destroy()
      }
    }
  }

  private bulkDepth = 0
  private readonly ranges: { destroy(): void }[] = []

  /**
   * Requests, as ranges of consecutive packs, the packs of the active sources that hold these
   * objects and that this node holds neither in its own store nor in its copies. Resolves once
   * the requests are made (not when the packs are in: reads of them wait for them as for any
   * fetch). Returns how many packs were requested. Inside bulk() the requests end with it;
   * outside, when done or after a minute.
   */
  async prefetch(addresses: Buffer[]): Promise<number> {
    const all = [...this.sources.values()].filter((s) => s.active && !s.unusable)
    if (all.length === 0 || addresses.length === 0) return 0
    let missing: Buffer[] = []
    for (const a of addresses) if (!this.own || (await this.own.locate(a)) === null) missing.push(a)
    if (missing.length === 0) return 0
    let sources = all.filter(replicating)
    if (sources.length === 0) {
      await this.anyPeer(all)
      sources = all.filter(replicating)
    }
    const wanted = new Map<Source, Set<number>>()
    for (const s of sources) {
      if (missing.length === 0) break
      await this.catchUpLocal(s)
      if (missing.some((a) => !s.table.has(a))) await this.updated(s)
      const packs = new Set<number>()
      const rest: Buffer[] = []
      for (const a of missing) {
        const loc = s.table.get(a)
        if (loc) packs.add(loc.pack)
        else rest.push(a)
      }
      wanted.set(s, packs)
      missing = rest
    }
    let requested = 0
    for (const [s, packs] of wanted) {
      const list: number[] = []
      for (const p of packs) if (!(await s.packs.has(p))) list.push(p)
      list.sort((a, b) => a - b)
      // Runs of consecutive packs as ranges; packs standing alone in one request by block
      // list (hypercore walks each request on every update: not thousands of tiny ranges).
      const alone: number[] = []
      for (let i = 0; i < list.length;) {
        let j = i + 1
        while (j < list.length && list[j] === list[j - 1]! + 1) j++
        if (j - i >= MIN_RUN) this.download(s, { start: list[i]!, end: list[j - 1]! + 1, linear: true })
        else alone.push(...list.slice(i, j))
        i = j
      }
      if (alone.length > 0) this.download(s, { blocks: alone })
      requested += list.length
    }
    return requested
  }

  private download(s: Source, range: { start: number; end: number; linear: boolean } | { blocks: number[] }): void {
    const r = s.packs.download(range)
    if (this.bulkDepth > 0) {
      this.ranges.push(r)
      return
    }
    // Outside a bulk (a file opened through the mount): let go once done, or after a while.
    const timer = setTimeout(() => r.destroy(), LOOSE_RANGE_MS)
    timer.unref()
    r.done().then(() => clearTimeout(timer), () => clearTimeout(timer))
  }

  // ---- fetch ---------------------------------------------------------------------------------

  /** Reads that find no source connected share one wait for a peer (one listener per core, not per read). */
  private peerWait: Promise<void> | null = null

  private anyPeer(all: Source[]): Promise<void> {
    if (!this.peerWait) {
      // Both cores: a packs channel opens a moment before the index's, and a read needs both.
      this.peerWait = Promise.race(all.map((s) => bothReplicating(s, Math.min(PEER_GRACE_MS, this.timeoutMs)))).finally(() => {
        this.peerWait = null
      })
    }
    return this.peerWait
  }

  /**
   * The object with address A from the first source that has it (all are asked at once), or
   * null when none has it within the timeout. Never throws for what a peer did.
   */
  async fetch(address: Buffer): Promise<Buffer | null> {
    const all = [...this.sources.values()].filter((s) => s.active && !s.unusable)
    if (all.length === 0) return null
    const started = Date.now()
    // A source with no peer on its cores can't answer: don't spend the timeout on it, but
    // give one that is (re)connecting a moment to attach.
    let sources = all.filter(replicating)
    if (sources.length === 0) {
      await this.anyPeer(all)
      sources = all.filter(replicating)
      if (sources.length === 0) {
        this.log('warn', `cas: block ${address.toString('hex').slice(0, 16)}… is not held here and no store that may have it is connected (${all.map((s) => s.name).join(', ')})`)
        return null
      }
    }
    const attempts = sources.map((s) => this.fetchFrom(s, address))
    const found = new Promise<Buffer | null>((resolve) => {
      let left = attempts.length
      attempts.forEach((a, i) => {
        void a.then((block) => {
          if (block) {
            const owner = sources[i]!.owner
            if (owner) this.answered.set(address.toString('hex'), owner)
            resolve(block)
          } else if (--left === 0) resolve(null)
        })
      })
    })
    const block = await within(found, this.timeoutMs, null)
    if (!block) {
      const waited = Date.now() - started
      this.log('warn', `cas: block ${address.toString('hex').slice(0, 16)}… not found at ${sources.map((s) => s.name).join(', ')} (${waited >= this.timeoutMs ? `timed out after ${waited} ms` : 'not held there'})`)
    }
    return block
  }

  private async fetchFrom(s: Source, address: Buffer): Promise<Buffer | null> {
    try {
      // The index as we hold it first; on a miss its newest version (the peer may have stored
      // the object since we last looked): one catch-up per burst of misses, not per object.
      await this.catchUpLocal(s)
      let loc = s.table.get(address)
      if (!loc) {
        await this.updated(s)
        loc = s.table.get(address)
      }
      if (!loc) return null
      const pack = await this.fetchPack(s, loc.pack)
      if (pack) this.onPackRead?.(s.packs.key, loc.pack)
      return pack ? this.slice(s, pack, loc, address) : null
    } catch (err) {
      if (!this.closed) this.log('debug', `cas: peer ${s.name}: ${(err as Error).message}`)
      return null
    }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const r of this.ranges.splice(0)) r.destroy()
    await this.saving
    const all = [...this.sources.values()]
    this.sources.clear()
    for (const s of all) await this.closeSource(s)
  }
}

interface SourceRecord {
  name: string
  owner: string | null
  keys: RemoteStoreKeys
}

/** The sources file's records ('old': a version 1 file); throws on anything but the format of spec/cas.md §6. */
function parseSources(text: string): SourceRecord[] | 'old' {
  const obj = JSON.parse(text) as { version?: unknown; sources?: unknown }
  if (typeof obj !== 'object' || obj === null) throw new Error('not a sources file')
  if (obj.version === 1) return 'old'
  if (obj.version !== SOURCES_FILE_VERSION) throw new Error(`not a sources file of version ${SOURCES_FILE_VERSION}`)
  if (!Array.isArray(obj.sources) || obj.sources.length > MAX_SOURCES) throw new Error('bad source list')
  const hex32 = (v: unknown): Buffer => {
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new Error('bad core key')
    return Buffer.from(v, 'hex')
  }
  return obj.sources.map((r: unknown) => {
    const rec = r as { name?: unknown; owner?: unknown; packs?: unknown; index?: unknown }
    if (typeof rec !== 'object' || rec === null || typeof rec.name !== 'string') throw new Error('bad source record')
    if (rec.owner !== undefined && typeof rec.owner !== 'string') throw new Error('bad source owner')
    return { name: rec.name, owner: rec.owner ?? null, keys: { cas: hex32(rec.packs), index: hex32(rec.index) } }
  })
}
