/**
 * What the writers' signed logs say a state must be (spec/tree.md "Starting from a state"):
 * every change of the covered entries is checked as replay checks it before Automerge sees it
 * (shard name, the entry's limits, the header, the actor bound to the log: rules 2 and 3 of
 * "Applying changes"), without applying anything; per shard, the changes whose dependencies are
 * all there (rule 4) are the shard's document, and their heads are what the state's save of
 * that shard must load to. Automerge checks on load that a saved document's changes hash to
 * its heads (the hashes chain the history), so equal heads mean the same changes.
 */
import { isShard } from './model.js'
import { ChangeLimitError, ForgedWriterError, entryBudget, readChangeHeader } from './change-header.js'

interface Known { hash: string; deps: string[]; seq: string }

/** One shard as the logs say it must be: its heads, and the changes still waiting for a dependency (held). */
export interface ExpectedShard {
  heads: string[]
  held: { change: Uint8Array; tag: string }[]
  changes: number
  /** Two different changes with one actor and seq: Automerge refuses the second on replay (rule 5), so no state is believed for this shard. */
  duplicateSeq: string | null
}

export class StateExpectation {
  private readonly byShard = new Map<string, Map<string, Known & { change: Uint8Array; tag: string }>>()
  /** Entries some change of which replay would reject (and so skip), with why. */
  readonly rejected: { writer: string; seq: number; reason: string }[] = []
  changes = 0

  /**
   * Adds the changes of one log entry (writer = log key hex). Returns false (and records why)
   * if replay would reject one of them; the entry's other changes still count, as in replay.
   */
  addEntry(writer: string, seq: number, changes: { shard: string; change: Uint8Array }[]): boolean {
    const budget = entryBudget()
    const ok: { shard: string; known: Known & { change: Uint8Array; tag: string } }[] = []
    let why: string | null = null
    const tag = `${writer}:${seq}`
    for (const [i, c] of changes.entries()) {
      if (!isShard(c.shard)) {
        why ??= `change ${i} names no shard: ${JSON.stringify(c.shard.slice(0, 40))}`
        continue
      }
      let h
      try {
        h = readChangeHeader(c.change, budget)
      } catch (e) {
        if (e instanceof ChangeLimitError) {
          // Over its limits: the whole entry is rejected.
          this.rejected.push({ writer, seq, reason: `entry over its limits: ${e.message}` })
          return false
        }
        why ??= `change ${i} (shard ${c.shard}) ${e instanceof ForgedWriterError ? 'claims another writer' : 'is not an Automerge change'}: ${(e as Error).message}`
        continue
      }
      if (h.actor !== writer) {
        why ??= `change by actor ${h.actor} in the log of writer ${writer}`
        continue
      }
      ok.push({ shard: c.shard, known: { hash: h.hash, deps: h.deps, seq: `${h.actor}:${h.seq}`, change: h.chunk, tag } })
    }
    for (const { shard, known } of ok) {
      let m = this.byShard.get(shard)
      if (!m) this.byShard.set(shard, (m = new Map()))
      if (!m.has(known.hash)) {
        m.set(known.hash, known)
        this.changes++
      }
    }
    if (why !== null) this.rejected.push({ writer, seq, reason: why })
    return why === null
  }

  /** Per shard: heads of the changes whose dependencies are all present, and the others (held). */
  shards(): Map<string, ExpectedShard> {
    const out = new Map<string, ExpectedShard>()
    for (const [shard, m] of this.byShard) {
      // Ready: every dependency ready (an empty document to start with). Kahn's order over the set.
      const waiting = new Map<string, number>()
      const dependents = new Map<string, string[]>()
      const queue: string[] = []
      for (const [hash, k] of m) {
        let missing = 0
        for (const d of new Set(k.deps)) {
          missing++
          let l = dependents.get(d)
          if (!l) dependents.set(d, (l = []))
          l.push(hash)
        }
        waiting.set(hash, missing)
        if (missing === 0) queue.push(hash)
      }
      const ready = new Set<string>()
      while (queue.length > 0) {
        const h = queue.pop()!
        ready.add(h)
        for (const next of dependents.get(h) ?? []) {
          const n = waiting.get(next)! - 1
          waiting.set(next, n)
          if (n === 0) queue.push(next)
        }
      }
      const covered = new Set<string>()
      for (const h of ready) for (const d of m.get(h)!.deps) covered.add(d)
      const heads = [...ready].filter((h) => !covered.has(h)).sort()
      const held = [...m.values()].filter((k) => !ready.has(k.hash)).map((k) => ({ change: k.change, tag: k.tag }))
      const seqs = new Set<string>()
      let duplicateSeq: string | null = null
      for (const k of m.values()) {
        if (seqs.has(k.seq)) duplicateSeq ??= k.seq
        seqs.add(k.seq)
      }
      out.set(shard, { heads, held, changes: ready.size, duplicateSeq })
    }
    return out
  }
}
