/**
 * The Automerge documents of one volume: one per node shard plus the meta shard.
 * Node shards are driven through Automerge's low-level handle: the JS API materializes every
 * document as JS objects and turns every op into patches, which cost most of the time at 10k+
 * records; the derived index makes that copy useless.
 */
import * as A from '@automerge/automerge'
import type { MetaDoc } from './model.js'
import { META_SHARD } from './model.js'

export type Handle = ReturnType<typeof A.getBackend>
export type Heads = string[]

export class Shards {
  private readonly docs = new Map<string, A.Doc<unknown>>()
  private metaDoc: A.Doc<MetaDoc> | null = null

  constructor(readonly actor: string) {}

  // Every shard starts empty, with no change, so copies created independently by two writers
  // merge: records live directly in the root map, never under a key two writers could both create.
  node(shard: string): Handle {
    let d = this.docs.get(shard)
    if (!d) this.docs.set(shard, (d = A.init<unknown>({ actor: this.actor })))
    return A.getBackend(d)
  }

  has(shard: string): boolean { return this.docs.has(shard) }

  meta(): A.Doc<MetaDoc> {
    if (!this.metaDoc) this.metaDoc = A.init<MetaDoc>({ actor: this.actor })
    return this.metaDoc
  }

  setMeta(doc: A.Doc<MetaDoc>): void { this.metaDoc = doc }

  /** Heads of every shard that has any change, keyed by shard name. */
  heads(): Record<string, Heads> {
    const out: Record<string, Heads> = {}
    for (const shard of [...this.docs.keys()].sort()) {
      const h = this.node(shard).getHeads()
      if (h.length > 0) out[shard] = h
    }
    if (this.metaDoc) {
      const h = A.getHeads(this.metaDoc)
      if (h.length > 0) out[META_SHARD] = h
    }
    return out
  }

  hasHeads(shard: string, heads: Heads): boolean {
    if (shard === META_SHARD) return A.hasHeads(this.meta(), heads)
    if (!this.docs.has(shard)) return heads.length === 0
    const h = this.node(shard)
    return heads.every((x) => h.getChangeByHash(x) !== null)
  }

  free(): void {
    for (const d of this.docs.values()) A.free(d)
    this.docs.clear()
    if (this.metaDoc) A.free(this.metaDoc)
    this.metaDoc = null
  }
}
