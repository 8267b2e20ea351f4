// Content on demand: blocks this node doesn't hold, read from peers' stores (their `cas`
// core through their `cas-index` hyperbee), sparsely: only the index nodes and blocks a read
// needs are downloaded. Spec: spec/cas.md, "Remote reads".
//
// Nothing a peer sends is trusted: hypercore verifies each block against the core's signed
// tree, this module checks the block's own address A against the one asked for, and Cas
// then opens it (AEAD bound to A) and checks P. A peer that doesn't answer in time costs one
// timeout and a log line; the read fails with MissingContentError (EIO in the mount).
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import Hyperbee from 'hyperbee'
import { blockAddress } from './convergent.js'
import type { Log } from '../../server/logger.js'

/** A peer's store as its hello offers it: its cas core and cas-index core keys. */
export interface RemoteStoreKeys {
  cas: Buffer
  index: Buffer
}

interface Source {
  /** The peer's public key (z-base-32), for log lines. */
  name: string
  cas: Hypercore
  index: Hyperbee<Buffer, Buffer>
}

export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000
const INDEX_VALUE_VERSION = 1
/** How long a read waits for a disconnected source's cores to get a peer. */
const PEER_GRACE_MS = 1_000

function replicating(s: Source): boolean {
  return s.cas.peers.length > 0 && s.index.core.peers.length > 0
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

  constructor(
    private readonly store: Corestore,
    readonly timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS
  ) {}

  /** Sources that may be asked (peer names). */
  list(): string[] {
    return [...this.sources.values()].map((s) => s.name)
  }

  /**
   * Makes a peer's store a source. Opening its cores locally is what lets the network attach
   * them to that peer's connection (they are sparse: nothing is downloaded until read).
   */
  async add(name: string, keys: RemoteStoreKeys): Promise<void> {
    const id = `${keys.cas.toString('hex')}:${keys.index.toString('hex')}`
    if (this.closed || this.sources.has(id)) return
    const cas = this.store.get({ key: keys.cas })
    const index = new Hyperbee<Buffer, Buffer>(this.store.get({ key: keys.index }), { keyEncoding: 'binary', valueEncoding: 'binary' })
    await cas.ready()
    await index.ready()
    if (this.closed) {
      await index.close()
      await cas.close()
      return
    }
    this.sources.set(id, { name, cas, index })
  }

  /**
   * The block with address A from the first source that has it (all are asked at once), or
   * null when none has it within the timeout. Never throws for what a peer did.
   */
  async fetch(address: Buffer): Promise<Buffer | null> {
    const all = [...this.sources.values()]
    if (all.length === 0) return null
    const started = Date.now()
    // A source with no peer on its cores can't answer: don't spend the timeout on it, but
    // give one that is (re)connecting a moment to attach.
    let sources = all.filter(replicating)
    if (sources.length === 0) {
      await Promise.race(all.map((s) => peerAdded(s.cas, Math.min(PEER_GRACE_MS, this.timeoutMs))))
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
      for (const a of attempts) {
        void a.then((block) => {
          if (block) resolve(block)
          else if (--left === 0) resolve(null)
        })
      }
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
      // The index's newest version: the peer may have stored the block since we last looked.
      await source.index.core.update({ wait: true })
      const node = await source.index.get(address)
      if (!node) return null
      const value = node.value
      if (value.length !== 9 || value[0] !== INDEX_VALUE_VERSION) {
        this.log('warn', `cas: peer ${source.name}: bad index value for ${address.toString('hex').slice(0, 16)}…`)
        return null
      }
      const seq = Number(value.readBigUInt64LE(1))
      if (!Number.isSafeInteger(seq)) return null
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

  async close(): Promise<void> {
    this.closed = true
    const all = [...this.sources.values()]
    this.sources.clear()
    for (const s of all) {
      await s.index.close().catch(() => {})
      await s.cas.close().catch(() => {})
    }
  }
}
