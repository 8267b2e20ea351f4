// Content on demand: blocks this node doesn't hold, read from peers' stores (their `cas`
// core through their `cas-index` hyperbee), sparsely: only the index nodes and blocks a read
// needs are downloaded (a bulk read, see bulk(), takes a source's whole index first). Misses
// share index updates, so concurrent reads are pipelined. Spec: spec/cas.md, "Remote reads".
//
// Nothing a peer sends is trusted: hypercore verifies each block against the core's signed
// tree, this module checks the block's own address A against the one asked for, and Cas
// then opens it (AEAD bound to A) and checks P. A peer that doesn't answer in time costs one
// timeout and a log line; the read fails with MissingContentError (EIO in the mount).
//
// What was fetched stays in this node's copies of the sources' cores (hypercore keeps what it
// downloaded); localBlock() reads it from there without the network. The sources are listed
// in a file (SOURCES_FILE_NAME) so that those copies are found again after a restart, before
// (or without) their peer connecting.
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import Hyperbee from 'hyperbee'
import { blockAddress } from './convergent.js'
import { replaceFile } from '../../atomic-file.js'
import { Lru } from './lru.js'
import type { Log } from '../../log.js'
import type { ChunkStore } from './chunk-store.js'

/** A peer's store as its hello offers it: its cas core and cas-index core keys. */
export interface RemoteStoreKeys {
  cas: Buffer
  index: Buffer
}

interface Source {
  /** The peer's public key (z-base-32), for log lines. */
  name: string
  /** The node whose store this is (z-base-32), when add() was told; null otherwise. */
  owner: string | null
  cas: Hypercore
  index: Hyperbee<Buffer, Buffer>
  /** The index update in flight (shared by every lookup that missed while it runs). */
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
 * The sources file, in the corestore's directory beside `cas-filter` (DATA/corestore/cas-sources):
 * the peers' stores whose copies in this corestore may hold fetched content (spec/cas.md §6).
 */
export const SOURCES_FILE_NAME = 'cas-sources'
const SOURCES_FILE_VERSION = 1
const MAX_SOURCES = 4096

export interface RemoteStoresOptions {
  /** Where the sources are listed between runs; default `cas-sources` in the corestore's directory, null: not kept. */
  sourcesFile?: string | null
}

export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000
const INDEX_VALUE_VERSION = 1
/**
 * `sessions: false`: lookups read the index core itself instead of opening and closing a
 * snapshot session each (~0.2 ms per lookup). Safe here: the peer's index is only ever
 * appended to, blocks never change, so a lookup that runs while a newer version arrives still
 * walks one consistent older version.
 */
const INDEX_OPTIONS = { keyEncoding: 'binary', valueEncoding: 'binary', sessions: false } as { keyEncoding: 'binary'; valueEncoding: 'binary' }
/** How long a read waits for a disconnected source's cores to get a peer. */
const PEER_GRACE_MS = 1_000

function replicating(s: Source): boolean {
  return s.cas.peers.length > 0 && s.index.core.peers.length > 0
}

/** Resolves once both of a source's cores have a peer (a read needs its index and its blocks), or after `ms`. */
function bothReplicating(s: Source, ms: number): Promise<void> {
  const ready = (core: Hypercore): Promise<void> => (core.peers.length > 0 ? Promise.resolve() : peerAdded(core, ms))
  return Promise.all([ready(s.cas), ready(s.index.core)]).then(() => {})
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

export class RemoteStores {
  private readonly sources = new Map<string, Source>()
  private closed = false

  /** Where misses and misbehaving peers are reported (the server sets its log). */
  log: Log = () => {}

  private readonly sourcesFile: string | null
  /** The sources file write in flight (writes are serialized). */
  private saving: Promise<void> = Promise.resolve()
  /** Opens in flight, by id: concurrent add()/load() of one store open it once. */
  private readonly opening = new Map<string, Promise<Source | null>>()

  constructor(
    private readonly store: Corestore,
    readonly timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS,
    opts: RemoteStoresOptions = {}
  ) {
    const storagePath = (store.storage as { path?: unknown } | undefined)?.path
    this.sourcesFile = opts.sourcesFile !== undefined ? opts.sourcesFile : typeof storagePath === 'string' ? path.join(storagePath, SOURCES_FILE_NAME) : null
  }

  /** Makes `chunks` read what it lacks through these sources: the local copies of their stores first, then the network. */
  serve(chunks: Pick<ChunkStore, 'remote' | 'replica'>): void {
    chunks.remote = (address) => this.fetch(address)
    chunks.replica = (address) => this.localBlock(address)
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
    let records: Array<{ name: string; owner: string; keys: RemoteStoreKeys }>
    try {
      records = parseSources(await fs.promises.readFile(this.sourcesFile, 'utf8'))
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
   */
  async add(name: string, keys: RemoteStoreKeys, owner: string | null = null): Promise<void> {
    await this.open(name, keys, true, owner)
  }

  /**
   * The stores this node keeps copies of, with the node each belongs to (z-base-32, null if
   * unknown): the network's access rules give such a core only to its owner (spec/protocol.md).
   */
  stores(): { owner: string | null; cas: Buffer; index: Buffer }[] {
    return [...this.sources.values()].map((s) => ({ owner: s.owner, cas: s.cas.key, index: s.index.core.key }))
  }

  /** Owner of the store whose answer a recent fetch of A returned (see add()), or null. */
  fetchedFrom(address: Buffer): string | null {
    return this.answered.get(address.toString('hex')) ?? null
  }

  private readonly answered = new Lru<string, string>(4096)

  private async open(name: string, keys: RemoteStoreKeys, active: boolean, owner: string | null = null): Promise<void> {
    const id = `${keys.cas.toString('hex')}:${keys.index.toString('hex')}`
    if (this.closed) return
    let source: Source | null | undefined = this.sources.get(id)
    if (!source) {
      let p = this.opening.get(id)
      if (!p) {
        p = this.openCores(name, keys).finally(() => this.opening.delete(id))
        this.opening.set(id, p)
      }
      source = await p
      if (!source) return
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
  }

  private async openCores(name: string, keys: RemoteStoreKeys): Promise<Source | null> {
    const cas = this.store.get({ key: keys.cas })
    const index = new Hyperbee<Buffer, Buffer>(this.store.get({ key: keys.index }), INDEX_OPTIONS)
    await cas.ready()
    await index.ready()
    if (this.closed) {
      await index.close()
      await cas.close()
      return null
    }
    return { name, owner: null, cas, index, updating: null, nextUpdate: null, active: false }
  }

  /** Rewrites the sources file (in the background, serialized; a failure is logged). */
  private save(): void {
    const file = this.sourcesFile
    if (!file) return
    this.saving = this.saving.then(async () => {
      const sources = [...this.sources.values()].map((s) => ({ name: s.name, owner: s.owner ?? undefined, cas: s.cas.key.toString('hex'), index: s.index.core.key.toString('hex') }))
      try {
        await replaceFile(file, JSON.stringify({ version: SOURCES_FILE_VERSION, sources }, null, 2) + '\n', { mode: 0o600 })
      } catch (err) {
        if (!this.closed) this.log('warn', `cas: cannot write ${file}: ${(err as Error).message}`)
      }
    })
  }

  /**
   * The block with address A if this node's copy of some source's store already holds it (and
   * the index nodes that lead to it), without the network; null otherwise. The same checks as
   * a fetch (index value, block address); never throws.
   */
  async localBlock(address: Buffer): Promise<Buffer | null> {
    for (const source of this.sources.values()) {
      try {
        if (source.index.core.length === 0 || source.cas.length === 0) continue
        const node = await source.index.get(address, { wait: false, update: false })
        if (!node) continue
        const seq = indexValue(node.value)
        if (seq === null || seq >= source.cas.length || !(await source.cas.has(seq))) continue
        const block = await source.cas.get(seq, { wait: false })
        if (!block) continue
        const actual = blockAddress(block)
        if (!actual || !Buffer.from(actual).equals(address)) continue
        return block
      } catch {
        // An index node that isn't here (BLOCK_NOT_AVAILABLE), a closed core: not held locally.
      }
    }
    return null
  }

  /**
   * Runs `fn`, which reads many objects (an export). The first time it needs a source, that
   * source's whole index is downloaded in one pipelined range request, so that each lookup
   * after it is local instead of a chain of round trips down the hyperbee (the index is ~1-2%
   * of the content it maps). Nothing is trusted more: index blocks are verified by hypercore
   * as any other, each block fetched through them has its address checked here and its
   * content checked by Cas.
   */
  async bulk<T>(fn: () => Promise<T>): Promise<T> {
    this.bulkDepth++
    try {
      return await fn()
    } finally {
      if (--this.bulkDepth === 0) this.prefetched.clear()
    }
  }

  private bulkDepth = 0
  private readonly prefetched = new Map<Source, Promise<void>>()

  /** The source's whole index, downloaded (once per bulk); best effort, within the timeout. */
  private prefetchIndex(source: Source): Promise<void> {
    let p = this.prefetched.get(source)
    if (!p) {
      p = this.downloadIndex(source)
      this.prefetched.set(source, p)
    }
    return p
  }

  private async downloadIndex(s: Source): Promise<void> {
    let timer: NodeJS.Timeout | null = null
    let range: { done(): Promise<void>; destroy(): void } | null = null
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.timeoutMs / 2) // half: the reads waiting on it keep time to fetch
    })
    try {
      await Promise.race([this.updated(s), timeout])
      const length = s.index.core.length
      if (length === 0 || (await s.index.core.has(0, length))) return
      range = s.index.core.download({ start: 0, end: length })
      await Promise.race([range.done(), timeout])
    } catch (err) {
      // Lookups then fetch the index nodes they need, as outside a bulk.
      if (!this.closed) this.log('debug', `cas: peer ${s.name}: index prefetch: ${(err as Error).message}`)
    } finally {
      if (timer) clearTimeout(timer)
      range?.destroy()
    }
  }

  /** Reads that find no source connected share one wait for a peer (one listener per core, not per read). */
  private peerWait: Promise<void> | null = null

  private anyPeer(all: Source[]): Promise<void> {
    if (!this.peerWait) {
      // Both cores: a cas channel opens a moment before the index's, and a read needs both.
      this.peerWait = Promise.race(all.map((s) => bothReplicating(s, Math.min(PEER_GRACE_MS, this.timeoutMs)))).finally(() => {
        this.peerWait = null
      })
    }
    return this.peerWait
  }

  /**
   * The block with address A from the first source that has it (all are asked at once), or
   * null when none has it within the timeout. Never throws for what a peer did.
   */
  async fetch(address: Buffer): Promise<Buffer | null> {
    const all = [...this.sources.values()].filter((s) => s.active)
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
    let timer: NodeJS.Timeout | null = null
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.timeoutMs)
    })
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
    const block = await Promise.race([found, timeout])
    if (timer) clearTimeout(timer)
    if (!block) {
      const waited = Date.now() - started
      this.log('warn', `cas: block ${address.toString('hex').slice(0, 16)}… not found at ${sources.map((s) => s.name).join(', ')} (${waited >= this.timeoutMs ? `timed out after ${waited} ms` : 'not held there'})`)
    }
    return block
  }

  private async fetchFrom(source: Source, address: Buffer): Promise<Buffer | null> {
    try {
      // The index as we know it first; on a miss its newest version (the peer may have stored
      // the block since we last looked): one update round trip per burst of misses, not per object.
      if (this.bulkDepth > 0) await this.prefetchIndex(source)
      let seq = await this.lookup(source, address)
      if (seq === null) {
        await this.updated(source)
        seq = await this.lookup(source, address)
      }
      if (seq === null) return null
      const block = await source.cas.get(seq, { timeout: this.timeoutMs })
      if (!block) return null
      const actual = blockAddress(block)
      if (!actual || !Buffer.from(actual).equals(address)) {
        this.log('warn', `cas: peer ${source.name}: block ${seq} is not the one its index names for ${address.toString('hex').slice(0, 16)}…`)
        return null
      }
      return block
    } catch (err) {
      if (!this.closed) this.log('debug', `cas: peer ${source.name}: ${(err as Error).message}`)
      return null
    }
  }

  /** Block number the source's index gives A at the version this node knows, or null. */
  private async lookup(source: Source, address: Buffer): Promise<number | null> {
    if (source.index.core.length === 0) return null
    const node = await source.index.get(address, { update: false })
    if (!node) return null
    const seq = indexValue(node.value)
    if (seq === null) this.log('warn', `cas: peer ${source.name}: bad index value for ${address.toString('hex').slice(0, 16)}…`)
    return seq
  }

  /**
   * Resolves after an index update that started after this call. Lookups that miss together
   * share one: a burst of misses costs one round trip.
   */
  private updated(source: Source): Promise<void> {
    if (source.nextUpdate) return source.nextUpdate
    if (!source.updating) {
      const run = source.index.core.update({ wait: true }).then(() => {}, () => {})
      source.updating = run.finally(() => {
        source.updating = null
      })
      return source.updating
    }
    const current = source.updating
    source.nextUpdate = current.then(() => {
      source.nextUpdate = null
      return this.updated(source)
    })
    return source.nextUpdate
  }

  async close(): Promise<void> {
    this.closed = true
    await this.saving
    const all = [...this.sources.values()]
    this.sources.clear()
    for (const s of all) {
      await s.index.close().catch(() => {})
      await s.cas.close().catch(() => {})
    }
  }
}

/** A block number from an index value (spec/cas.md §4: 9 bytes, version 1), or null. */
function indexValue(value: Buffer): number | null {
  if (value.length !== 9 || value[0] !== INDEX_VALUE_VERSION) return null
  const seq = Number(value.readBigUInt64LE(1))
  return Number.isSafeInteger(seq) ? seq : null
}

/** The sources file's records; throws on anything but the format of spec/cas.md §6. */
function parseSources(text: string): Array<{ name: string; owner: string; keys: RemoteStoreKeys }> {
  const obj = JSON.parse(text) as { version?: unknown; sources?: unknown }
  if (typeof obj !== 'object' || obj === null || obj.version !== SOURCES_FILE_VERSION) throw new Error('not a sources file of version 1')
  if (!Array.isArray(obj.sources) || obj.sources.length > MAX_SOURCES) throw new Error('bad source list')
  const hex32 = (v: unknown): Buffer => {
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new Error('bad core key')
    return Buffer.from(v, 'hex')
  }
  return obj.sources.map((r: unknown) => {
    const rec = r as { name?: unknown; cas?: unknown; index?: unknown }
    if (typeof rec !== 'object' || rec === null || typeof rec.name !== 'string') throw new Error('bad source record')
    // owner: the node whose store it is (z-base-32). Older files lack it: the name begins with it.
    const owner = typeof (rec as { owner?: unknown }).owner === 'string' ? ((rec as { owner: string }).owner) : rec.name.split(' ')[0]
    return { name: rec.name, owner, keys: { cas: hex32(rec.cas), index: hex32(rec.index) } }
  })
}
