/**
 * What the writers' signed logs say a state must be (spec/tree.md "Starting from a state"):
 * every change of the covered entries is checked as replay checks it before Automerge sees it
 * (shard name, the entry's limits, the header, the actor bound to the log: rules 2 and 3 of
 * "Applying changes"), without applying anything; per shard, the changes whose dependencies are
 * all there (rule 4) are the shard's document, and their heads are what the state's save of
 * that shard must load to. Automerge checks on load that a saved document's changes hash to
 * its heads (the hashes chain the history), so equal heads mean the same changes.
 */
import { entryBudget } from './change-header.js'
import { checkChange, shardProblem } from './change-check.js'

interface Known { hash: string; deps: string[]; seq: string; change: Uint8Array; tag: string }

/** One shard while entries are added: readiness kept up to date (Kahn's order, incrementally), so only waiting changes keep their bytes. */
class ShardChanges {
  readonly ready = new Set<string>()
  readonly heads = new Set<string>()
  /** Changes with a dependency not ready yet: how many, and the change (held if it stays so). */
  readonly waiting = new Map<string, { deps: string[]; missing: number; change: Uint8Array; tag: string }>()
  /** Per dependency not ready yet: the waiting changes that need it. */
  private readonly dependents = new Map<string, string[]>()
  private readonly seqs = new Set<string>()
  duplicateSeq: string | null = null

  /** False if the change was here already. */
  add(k: Known): boolean {
    if (this.ready.has(k.hash) || this.waiting.has(k.hash)) return false
    if (this.seqs.has(k.seq)) this.duplicateSeq ??= k.seq
    this.seqs.add(k.seq)
    const missing = [...new Set(k.deps)].filter((d) => !this.ready.has(d))
    if (missing.length === 0) {
      this.makeReady(k.hash, k.deps)
      return true
    }
    this.waiting.set(k.hash, { deps: k.deps, missing: missing.length, change: k.change, tag: k.tag })
    for (const d of missing) {
      let l = this.dependents.get(d)
      if (!l) this.dependents.set(d, (l = []))
      l.push(k.hash)
    }
    return true
  }

  private makeReady(hash: string, deps: string[]): void {
    const stack: [string, string[]][] = [[hash, deps]]
    while (stack.length > 0) {
      const [h, ds] = stack.pop()!
      this.ready.add(h)
      this.heads.add(h)
      for (const d of ds) this.heads.delete(d)
      for (const w of this.dependents.get(h) ?? []) {
        const x = this.waiting.get(w)!
        if (--x.missing === 0) {
          this.waiting.delete(w)
          stack.push([w, x.deps])
        }
      }
      this.dependents.delete(h)
    }
  }
}

/** One shard as the logs say it must be: its heads, and the changes still waiting for a dependency (held). */
export interface ExpectedShard {
  heads: string[]
  held: { change: Uint8Array; tag: string }[]
  changes: number
  /** Two different changes with one actor and seq: Automerge refuses the second on replay (rule 5), so no state is believed for this shard. */
  duplicateSeq: string | null
}

export class StateExpectation {
  private readonly byShard = new Map<string, ShardChanges>()
  /** Entries some change of which replay would reject (and so skip), with why. */
  readonly rejected: { writer: string; seq: number; reason: string }[] = []
  changes = 0

  /**
   * Adds the changes of one log entry (writer = log key hex). Returns false (and records why)
   * if replay would reject one of them; the entry's other changes still count, as in replay.
   */
  addEntry(writer: string, seq: number, changes: { shard: string; change: Uint8Array }[]): boolean {
    const budget = entryBudget()
    const ok: { shard: string; known: Known }[] = []
    let why: string | null = null
    const tag = `${writer}:${seq}`
    for (const [i, c] of changes.entries()) {
      const badShard = shardProblem(i, c.shard)
      if (badShard !== null) {
        why ??= badShard
        continue
      }
      const v = checkChange(i, c.shard, c.change, writer, budget)
      if (!('header' in v)) {
        if (v.overLimit) {
          // Over its limits: the whole entry is rejected.
          this.rejected.push({ writer, seq, reason: v.reason })
          return false
        }
        why ??= v.reason
        continue
      }
      const h = v.header
      ok.push({ shard: c.shard, known: { hash: h.hash, deps: h.deps, seq: `${h.actor}:${h.seq}`, change: h.chunk, tag } })
    }
    for (const { shard, known } of ok) {
      let m = this.byShard.get(shard)
      if (!m) this.byShard.set(shard, (m = new ShardChanges()))
      if (m.add(known)) this.changes++
    }
    if (why !== null) this.rejected.push({ writer, seq, reason: why })
    return why === null
  }

  /** Per shard: heads of the changes whose dependencies are all present, and the others (held). */
  shards(): Map<string, ExpectedShard> {
    const out = new Map<string, ExpectedShard>()
    for (const [shard, m] of this.byShard) {
      const held = [...m.waiting.values()].map((x) => ({ change: x.change, tag: x.tag }))
      out.set(shard, { heads: [...m.heads].sort(), held, changes: m.ready.size, duplicateSeq: m.duplicateSeq })
    }
    return out
  }
}
