// The buffer's network side (spec/protocol.md, KEEP and HOLDS): this node asks the peers it
// stores to (a volume's `storage` list) to keep its store, and answers a peer that asked it
// with HOLDS as its replica of that peer's store grows. The replica itself is a StoreMirrors
// entry (closet.ts), downloaded fully and live, so new content flows to the keeper as soon as
// it is appended, and resumes where it stopped after a restart or a lost connection. A sweep
// every second looks at every connected peer: cheap, and nothing is missed between events.
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { Link } from './links.js'
import type { Message } from './protocol.js'
import { ReplicaPrefix } from './replica-prefix.js'
import { Coalesced } from '../coalesced.js'

export const SWEEP_MS = 1000

export class HoldingsExchange {
  private timer: NodeJS.Timeout | null = null
  private stopped = false
  private readonly passes: Coalesced
  /** Per replica (packs key hex): what HOLDS says of it. */
  private readonly prefixes = new Map<string, ReplicaPrefix>()

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
  }

  /** The peers this node stores to: listed in some volume's `storage` (z-base-32). */
  private storesTo(): Set<string> {
    const out = new Set<string>()
    try {
      for (const v of this.node.dir.listVolumes()) for (const k of v.storage ?? []) out.add(k)
    } catch (err) {
      this.log('error', `net: cannot list volumes: ${(err as Error).message}`)
    }
    return out
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
      if (!link.keepSent && link.access?.storage) {
        storesTo ??= this.storesTo()
        if (storesTo.has(link.z)) {
          this.send(link, { type: 'keep' })
          link.keepSent = true
          this.log('debug', `net: asked peer ${link.z} to keep this node's store`)
        }
      }
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
}
