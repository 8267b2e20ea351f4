// The buffer's network side (spec/protocol.md, KEEP and HOLDS): this node asks the peers it
// stores to (a volume's `storage` list) to keep its store, and answers a peer that asked it
// with HOLDS as its replica of that peer's store grows. The replica itself is a StoreMirrors
// entry (closet.ts), downloaded fully and live, so new content flows to the keeper as soon as
// it is appended, and resumes where it stopped after a restart or a lost connection. A sweep
// every second looks at every connected peer: cheap, and nothing is missed between events.
// RELEASE undoes KEEP: a keeper that confirmed holding this node's store and is no longer in
// any storage list (`volume storage rm`, `peer remove`) is told to stop keeping it, once every
// live pack not safe without it is held here again (own-eviction.ts holdUnsafe), and only if
// its handshake says it understands RELEASE (an older node would drop the connection).
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { Link } from './links.js'
import type { Message } from './protocol.js'
import { ReplicaPrefix } from './replica-prefix.js'
import { Coalesced } from '../coalesced.js'
import { storagePeers } from '../placement/placement.js'
import { FEATURE_RELEASE } from './protocol.js'

export const SWEEP_MS = 1000

export class HoldingsExchange {
  private timer: NodeJS.Timeout | null = null
  private stopped = false
  private readonly passes: Coalesced
  /** Per replica (packs key hex): what HOLDS says of it. */
  private readonly prefixes = new Map<string, ReplicaPrefix>()
  /** Releases in flight, by peer (z-base-32). */
  private readonly releasing = new Map<string, Promise<boolean>>()

  constructor(
    private readonly node: Node,
    private readonly log: Log,
    private readonly links: () => Iterable<Link>,
    private readonly send: (link: Link, m: Message) => void
  ) {
    this.passes = new Coalesced(() => this.pass(), (err) => this.log('error', `net: holdings: ${err.message}`), () => this.stopped)
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.passes.current
    await Promise.allSettled(this.releasing.values())
  }

  /** The peers this node stores to: listed in some volume's `storage` (z-base-32). */
  private storesTo(): Set<string> | null {
    try {
      return storagePeers(this.node.dir)
    } catch (err) {
      this.log('error', `net: cannot list volumes: ${(err as Error).message}`)
      return null
    }
  }

  /** One pass over the connected peers (one at a time; a request meanwhile runs one more). */
  sweep(): Promise<void> {
    return this.passes.run()
  }

  private async pass(): Promise<void> {
    let storesTo: Set<string> | null = null
    for (const link of this.links()) {
      if (!link.connected || link.closed) continue
      // KEEP: once per connection, to a peer we store to that may read our store.
      storesTo ??= this.storesTo()
      if (!link.keepSent && link.access?.storage) {
        if (storesTo?.has(link.z)) {
          this.send(link, { type: 'keep' })
          link.keepSent = true
          this.log('debug', `net: asked peer ${link.z} to keep this node's store`)
        }
      }
      // RELEASE: a peer that kept our store and that we no longer store to.
      if (storesTo && !storesTo.has(link.z) && (link.features & FEATURE_RELEASE) !== 0 && this.node.placement.confirmationOf(link.z)) void this.release(link)
      // HOLDS: what we keep of the store of a peer that asked us to.
      const offer = link.hello?.storage
      if (!link.keepAsked || !offer) continue
      const m = this.node.mirrors.get(link.key)
      if (!m || !m.replica.cas.equals(offer.cas) || !m.replica.index.equals(offer.index)) continue
      const hex = m.replica.cas.toString('hex')
      let prefix = this.prefixes.get(hex)
      if (!prefix) this.prefixes.set(hex, (prefix = new ReplicaPrefix()))
      const length = await prefix.length(m.cas, m.index)
      if (length === link.holdsSent) continue
      await this.node.storeSync.sync() // a confirmation is a promise: what it counts is on disk
      if (link.closed) continue
      this.send(link, { type: 'holds', packs: m.replica.cas, length })
      link.holdsSent = length
    }
  }

  /** `peer remove`: RELEASE now if the peer can take it; then waits (10 s at most) until it let go of the store's packs (its bitfield, as hypercore tells us). */
  async releaseNow(link: Link | undefined): Promise<string> {
    if (!link?.connected || link.closed) return 'not connected: it was not told to stop keeping this node\'s store'
    if ((link.features & FEATURE_RELEASE) === 0) return 'it runs an older bazil: it was not told to stop keeping this node\'s store (remove its replica there by hand)'
    if (!(await this.release(link))) return 'it was not told to stop keeping this node\'s store: content written here is not back from it yet (see the server log)'
    const packs = this.node.store.get({ key: this.node.chunks.casKey })
    await packs.ready()
    try {
      const holding = (): boolean => (packs.peers as { remotePublicKey?: Uint8Array; remoteContiguousLength: number }[]).some((p) => !!p.remotePublicKey && link.key.equals(Buffer.from(p.remotePublicKey)) && p.remoteContiguousLength > 0)
      for (const until = Date.now() + 10_000; holding() && Date.now() < until;) await new Promise((r) => setTimeout(r, 100))
      return holding() ? 'told it to stop keeping this node\'s store (not confirmed before it was disconnected)' : 'told it to stop keeping this node\'s store: it let go of it'
    } finally {
      await packs.close()
    }
  }

  /**
   * Tells a connected peer to stop keeping this node's store (RELEASE) once nothing depends on
   * its replica: every live pack not safe without it held here (fetched back from the keepers
   * if evicted). Its confirmation is forgotten. Resolves true once sent; one per peer at a time
   * (the sweep tries again while it is still to do). Never throws.
   */
  release(link: Link): Promise<boolean> {
    let p = this.releasing.get(link.z)
    if (p) return p
    p = (async () => {
      try {
        const missing = await this.node.ownEviction.holdUnsafe()
        if (missing > 0) {
          this.log('warn', `net: not telling peer ${link.z} to stop keeping this node's store yet: ${missing} packs written here were evicted and are not back yet (tried again)`)
          return false
        }
        if (link.closed || this.stopped || !link.connected) return false
        const own = this.node.chunks.casKey
        this.send(link, { type: 'release', packs: own })
        this.node.placement.forgetPeer(link.key)
        link.keepSent = false
        this.log('info', `net: told peer ${link.z} to stop keeping this node's store (no volume stores to it any more)`)
        return true
      } catch (err) {
        this.log('warn', `net: releasing peer ${link.z}: ${(err as Error).message}`)
        return false
      }
    })().finally(() => this.releasing.delete(link.z))
    this.releasing.set(link.z, p)
    return p
  }
}
