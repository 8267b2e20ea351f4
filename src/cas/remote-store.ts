// Content on demand: objects this node doesn't hold, read from peers' pack stores (their
// `packs` core through their `pack-index` core, spec/cas.md section 4.1). This module keeps
// the sources (which stores, from which peers, listed in the sources file so their copies are
// found after a restart: sources-file.ts) and answers reads and requests ahead from them; a
// source's index is source-index.ts (a PackTable per source, caught up on a miss), and its
// packs are read, fetched and requested ahead by pack-fetch.ts (hypercore spreads a core's
// requests over every peer that has it, so a store several peers hold is fetched from all).
//
// Nothing a peer sends is trusted: hypercore verifies each block (pack or index) against the
// core's signed tree, index blocks are decoded strictly (pack-codec.ts), the sliced object's
// own address A is checked against the one asked for, and Cas then opens it (AEAD bound to A)
// and checks P. A peer that doesn't answer in time costs one timeout and a log line; the read
// fails with MissingContentError (EIO in the mount). What was fetched stays in this node's
// copies of the sources' cores (hypercore keeps what it downloaded); localBlock() reads it
// from there without the network. Spec: spec/cas.md section 6.
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { replaceFile } from '../atomic-file.js'
import { Lru } from './lru.js'
import { SourceIndex } from './source-index.js'
import type { PackLocation } from './pack-table.js'
import { PackFetcher } from './pack-fetch.js'
import { SOURCES_FILE_NAME, encodeSources, parseSources, type RemoteStoreKeys, type SourceRecord } from './sources-file.js'
import { within } from '../timeout.js'
import type { Log } from '../log.js'
import type { ChunkStore } from './chunk-store.js'

export { SOURCES_FILE_NAME, type RemoteStoreKeys } from './sources-file.js'

interface Source {
  /** Id in `sources`: both core keys. */
  id: string
  /** The peer's public key (z-base-32) and how it is reached, for log lines. */
  name: string
  /** The node whose store this is (z-base-32), when add() was told; null otherwise. */
  owner: string | null
  packs: Hypercore
  index: SourceIndex
  /**
   * Asked over the network (made a source by add() in this run). A source only listed in the
   * sources file is read locally (localBlock) until then.
   */
  active: boolean
}

export interface RemoteStoresOptions {
  /** Where the sources are listed between runs; default `cas-sources` in the corestore's directory, null: not kept. */
  sourcesFile?: string | null
}

export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000
/** How long a read waits for a disconnected source's cores to get a peer. */
const PEER_GRACE_MS = 1_000

function replicating(s: Source): boolean {
  return s.packs.peers.length > 0 && s.index.core.peers.length > 0
}

/** Resolves once both of a source's cores have a peer (a read needs its index and its packs), or after `ms`. */
function bothReplicating(s: Source, ms: number): Promise<void> {
  const ready = (core: Hypercore): Promise<void> => (core.peers.length > 0 ? Promise.resolve() : peerAdded(core, ms))
  return Promise.all([ready(s.packs), ready(s.index.core)]).then(() => {})
}

/** Resolves once `core` has a replicating peer, or after `ms`. */
export function peerAdded(core: Hypercore, ms: number): Promise<void> {
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
  /** The sources' packs: local reads, fetches, ranges requested ahead. */
  private readonly packs: PackFetcher
  /** The own store (serve()): prefetch() skips what it holds. */
  private own: Pick<ChunkStore, 'locate'> | null = null

  constructor(
    private readonly store: Corestore,
    readonly timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS,
    opts: RemoteStoresOptions = {}
  ) {
    const storagePath = (store.storage as { path?: unknown } | undefined)?.path
    this.sourcesFile = opts.sourcesFile !== undefined ? opts.sourcesFile : typeof storagePath === 'string' ? path.join(storagePath, SOURCES_FILE_NAME) : null
    this.packs = new PackFetcher(timeoutMs, () => this.log)
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
    return [...this.sources.values()].map((s) => ({ owner: s.owner, cas: s.packs.key, index: s.index.core.key }))
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
    const source: Source = {
      id, name, owner: null, packs, active: false,
      index: new SourceIndex(index, { name: () => source.name, log: () => this.log, timeoutMs: this.timeoutMs, closed: () => this.closed }),
    }
    return source
  }

  private async closeSource(s: Source): Promise<void> {
    await s.index.core.close().catch(() => {})
    await s.packs.close().catch(() => {})
  }

  /** Rewrites the sources file (in the background, serialized; a failure is logged). */
  private save(): void {
    const file = this.sourcesFile
    if (!file) return
    this.saving = this.saving.then(async () => {
      const records: SourceRecord[] = [...this.sources.values()].map((s) => ({ name: s.name, owner: s.owner, keys: { cas: s.packs.key, index: s.index.core.key } }))
      try {
        await replaceFile(file, encodeSources(records), { mode: 0o600 })
      } catch (err) {
        if (!this.closed) this.log('warn', `cas: cannot write ${file}: ${(err as Error).message}`)
      }
    })
  }

  /**
   * The object with address A if this node's copy of some source's store already holds it (its
   * index block and its pack), without the network; null otherwise. The same checks as a
   * fetch (index decoding, object address); never throws.
   */
  async localBlock(address: Buffer): Promise<Buffer | null> {
    for (const s of this.sources.values()) {
      try {
        if (s.index.unusable) continue
        await s.index.catchUpLocal()
        // Where the index places it now; else a dropped pack the copy still holds (until the
        // object is held where it moved: cache-drops.ts).
        for (const loc of [s.index.get(address), s.index.retired.get(address)]) {
          if (!loc) continue
          const pack = await this.packs.localPack(s, loc.pack)
          if (!pack) continue
          const object = this.packs.slice(s, pack, loc, address)
          if (!object) continue
          if (s.owner) this.answered.set(address.toString('hex'), s.owner)
          this.onPackRead?.(s.packs.key, loc.pack)
          return object
        }
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
    const add = (s: Source, pack: number): void => {
      const key = s.packs.key.toString('hex')
      let set = out.get(key)
      if (!set) out.set(key, (set = new Set()))
      set.add(pack)
    }
    const list = [...addresses]
    await this.placements(list, (s, _a, loc) => add(s, loc.pack))
    // Dropped packs still held that hold them too: kept until they are held where they moved (cache-drops.ts).
    for (const s of this.sources.values()) {
      if (s.index.retired.size === 0) continue
      for (const a of list) {
        const old = s.index.retired.get(a)
        if (old) add(s, old.pack)
      }
    }
    return out
  }

  /**
   * The dropped packs (named by drop records this node holds, spec/gc.md section 4) that its
   * copies of the sources' stores still hold, each with the addresses (16-byte prefixes) it
   * held when dropped. Dropped packs no longer held are forgotten (their old locations).
   */
  async droppedHeld(): Promise<{ packsKey: Buffer; pack: number; keys: Buffer[] }[]> {
    const out: { packsKey: Buffer; pack: number; keys: Buffer[] }[] = []
    for (const s of [...this.sources.values()]) {
      if (s.index.unusable) continue
      await s.index.catchUpLocal().catch(() => {})
      const held = new Map<number, Buffer[]>()
      const gone: number[] = []
      for (const p of s.index.table.dropped) {
        if (p < s.packs.length && (await s.packs.has(p).catch(() => false))) held.set(p, [])
        else gone.push(p)
      }
      if (gone.length > 0 && s.index.retired.size > 0) s.index.retired.dropPacks(gone)
      if (held.size === 0) continue
      for (const { key, loc } of s.index.retired.entries()) held.get(loc.pack)?.push(key)
      for (const [pack, keys] of held) out.push({ packsKey: s.packs.key, pack, keys })
    }
    return out
  }

  /**
   * Downloads the index blocks the connected sources wrote since (their drop records among
   * them: cache-drops.ts follows them), each within the timeout. Never throws.
   */
  async catchUpIndexes(): Promise<void> {
    for (const s of [...this.sources.values()]) {
      if (this.closed) return
      if (s.active && !s.index.unusable && replicating(s)) await s.index.updated().catch(() => {})
    }
  }

  /** The source whose `packs` core has this key, if any. */
  private sourceByPacks(packsKey: Buffer): Source | undefined {
    for (const s of this.sources.values()) if (s.packs.key.equals(packsKey)) return s
    return undefined
  }

  /** Forgets the old locations of the objects of a dropped pack (held where they moved now: nothing reads it any more). */
  forgetRetired(packsKey: Buffer, pack: number): void {
    const s = this.sourceByPacks(packsKey)
    if (s && s.index.retired.size > 0) s.index.retired.dropPacks([pack])
  }

  /** Which of packs [start, end) this node's copy of the source with that `packs` core holds. */
  async holdsPacks(packsKey: Buffer, start: number, end: number): Promise<Set<number>> {
    const out = new Set<number>()
    const s = this.sourceByPacks(packsKey)
    if (s) for (let p = start; p < end; p++) if (await s.packs.has(p).catch(() => false)) out.add(p)
    return out
  }

  /** Whether this node holds the object where the index places it now: its own store, or a copy of a source's pack. */
  async heldWhereItIs(key: Buffer): Promise<boolean> {
    if (this.own && (await this.own.locate(key)) !== null) return true
    for (const s of this.sources.values()) {
      const loc = s.index.get(key)
      if (loc && (await s.packs.has(loc.pack).catch(() => false))) return true
    }
    return false
  }

  /** Calls `visit` for each source whose local table places one of these objects (index blocks held here; no network). */
  private async placements(addresses: Iterable<Buffer>, visit: (s: Source, address: Buffer, loc: PackLocation) => void): Promise<void> {
    const sources = [...this.sources.values()].filter((s) => !s.index.unusable)
    for (const s of sources) await s.index.catchUpLocal().catch(() => {})
    for (const a of addresses) {
      for (const s of sources) {
        const loc = s.index.get(a)
        if (loc) visit(s, a, loc)
      }
    }
  }

  /**
   * Clears packs [start, end) of this node's copy of the source whose `packs` core this is
   * (the cache's eviction, cache.ts) so that no read of them runs meanwhile (PackFetcher.clear:
   * 'busy', 'kept' or 'cleared'); null when no source has that core.
   */
  async clearPack(packsKey: Buffer, start: number, end = start + 1): Promise<'cleared' | 'busy' | 'kept' | null> {
    const s = this.sourceByPacks(packsKey)
    return s ? this.packs.clear(s, start, end) : null
  }

  /**
   * Where the stores this node reads from place these objects, by their local tables (index
   * blocks held here; no network): per address (hex), each source's packs key, owner, pack,
   * stored length, and whether this node's copy holds that pack. For `bazil where`/`du`.
   */
  async locate(addresses: Iterable<Buffer>): Promise<Map<string, { packs: Buffer; owner: string | null; pack: number; length: number; held: boolean }[]>> {
    const out = new Map<string, { packs: Buffer; owner: string | null; pack: number; length: number; held: boolean }[]>()
    const found: { s: Source; hex: string; loc: PackLocation }[] = []
    await this.placements(addresses, (s, a, loc) => found.push({ s, hex: a.toString('hex'), loc }))
    for (const { s, hex, loc } of found) {
      const held = await s.packs.has(loc.pack).catch(() => false)
      let list = out.get(hex)
      if (!list) out.set(hex, (list = []))
      list.push({ packs: s.packs.key, owner: s.owner, pack: loc.pack, length: loc.length, held })
    }
    return out
  }

  // ---- bulk: packs requested ahead ------------------------------------------------------------

  /**
   * Runs `fn`, which reads many objects (an export). Inside it, prefetch() requests the packs
   * the reads will need as ranges (many in flight, from every peer of each core); they are
   * let go when `fn` ends. Nothing is trusted more: the same checks apply to every read.
   */
  bulk<T>(fn: () => Promise<T>): Promise<T> {
    return this.packs.bulk(fn)
  }

  /**
   * Requests, as ranges of consecutive packs, the packs of the active sources that hold these
   * objects and that this node holds neither in its own store nor in its copies. Resolves once
   * the requests are made (not when the packs are in: reads of them wait for them as for any
   * fetch). Returns how many packs were requested. Inside bulk() the requests end with it;
   * outside, when done or after a minute.
   */
  async prefetch(addresses: Buffer[]): Promise<number> {
    const all = [...this.sources.values()].filter((s) => s.active && !s.index.unusable)
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
      await s.index.catchUpLocal()
      if (missing.some((a) => !s.index.has(a))) await s.index.updated()
      const packs = new Set<number>()
      const rest: Buffer[] = []
      for (const a of missing) {
        const loc = s.index.get(a)
        if (loc) packs.add(loc.pack)
        else rest.push(a)
      }
      wanted.set(s, packs)
      missing = rest
    }
    let requested = 0
    for (const [s, packs] of wanted) requested += await this.packs.request(s, packs)
    return requested
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
    const all = [...this.sources.values()].filter((s) => s.active && !s.index.unusable)
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
      // A location found while the source's index is known to have grown may be stale (the
      // owner compacted: the object moved and its old pack was dropped, spec/gc.md), and a
      // dropped pack is never served: so is one found before a failed fetch.
      await s.index.catchUpLocal()
      let loc = s.index.get(address)
      if (!loc || s.index.behind) {
        await s.index.updated()
        loc = s.index.get(address)
      }
      for (let attempt = 0; loc; attempt++) {
        const pack = await this.packs.fetchPack(s, loc.pack)
        if (pack) {
          this.onPackRead?.(s.packs.key, loc.pack)
          return this.packs.slice(s, pack, loc, address)
        }
        if (attempt > 0 || this.closed) return null
        const before = loc
        await s.index.updated()
        loc = s.index.get(address)
        if (loc && loc.pack === before.pack) return null // not moved: the pack is just not there
      }
      return null
    } catch (err) {
      if (!this.closed) this.log('debug', `cas: peer ${s.name}: ${(err as Error).message}`)
      return null
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.packs.close()
    await this.saving
    const all = [...this.sources.values()]
    this.sources.clear()
    for (const s of all) await this.closeSource(s)
  }
}
