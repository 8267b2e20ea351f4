/** The set of Automerge documents of one volume: one per shard, created on first use. */
import * as A from '@automerge/automerge'
import { META_SHARD, type MetaDoc, type ShardDoc } from './model.js'

export class Shards {
  private readonly nodes = new Map<string, A.Doc<ShardDoc>>()
  private metaDoc: A.Doc<MetaDoc> | null = null

  constructor(readonly actor: string) {}

  // Every shard starts as an empty doc with no change, so independently created copies merge:
  // node records live directly in the root map, never under a key two writers could both create.
  node(shard: string): A.Doc<ShardDoc> {
    let d = this.nodes.get(shard)
    if (!d) this.nodes.set(shard, (d = A.init<ShardDoc>({ actor: this.actor })))
    return d
  }

  setNode(shard: string, doc: A.Doc<ShardDoc>): void { this.nodes.set(shard, doc) }

  existingNode(shard: string): A.Doc<ShardDoc> | undefined { return this.nodes.get(shard) }

  meta(): A.Doc<MetaDoc> {
    if (!this.metaDoc) this.metaDoc = A.init<MetaDoc>({ actor: this.actor })
    return this.metaDoc
  }

  setMeta(doc: A.Doc<MetaDoc>): void { this.metaDoc = doc }

  /** Heads of every shard that has any change, keyed by shard name. */
  heads(): Record<string, string[]> {
    const out: Record<string, string[]> = {}
    for (const shard of [...this.nodes.keys()].sort()) {
      const h = A.getHeads(this.nodes.get(shard)!)
      if (h.length > 0) out[shard] = h
    }
    if (this.metaDoc) {
      const h = A.getHeads(this.metaDoc)
      if (h.length > 0) out[META_SHARD] = h
    }
    return out
  }

  free(): void {
    for (const d of this.nodes.values()) A.free(d)
    this.nodes.clear()
    if (this.metaDoc) A.free(this.metaDoc)
    this.metaDoc = null
  }
}
