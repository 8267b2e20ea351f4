// Snapshot retention (spec/gc.md section 7, spec/tree.md `snap-retention`): a rule replicated
// with the volume says which snapshots are kept: the `last` newest, and the newest of each of
// the `hourly` / `daily` / `weekly` most recent hours / days / weeks (UTC) that have one. The
// rest are removed (`snapshot rm`) by whichever node applies the rule (the server, before each
// automatic collection; `bazil volume gc`). The outcome needs no coordination: a node that has
// not seen every snapshot yet keeps a superset of what a node that has seen them all keeps of
// the snapshots it knows, so removals by any node are removals the rule makes anyway.
import type { Node } from './node.js'

export interface RetentionRule {
  last: number
  hourly: number
  daily: number
  weekly: number
}

const VERSION = 1
const MAX = 100_000

export function encodeRetention(r: RetentionRule): string {
  return JSON.stringify([VERSION, r.last, r.hourly, r.daily, r.weekly])
}

/** The rule a stored value says, or null (absent, all zero, or not exactly `[1, 4 ints 0..100000]`: no rule, keep every snapshot). */
export function decodeRetention(text: string | null): RetentionRule | null {
  if (text === null) return null
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return null
  }
  if (!Array.isArray(v) || v.length !== 5 || v[0] !== VERSION) return null
  const n = v.slice(1)
  if (!n.every((x) => Number.isInteger(x) && x >= 0 && x <= MAX)) return null
  const [last, hourly, daily, weekly] = n as number[]
  const rule = { last: last!, hourly: hourly!, daily: daily!, weekly: weekly! }
  return rule.last + rule.hourly + rule.daily + rule.weekly === 0 ? null : rule
}

export function describeRetention(r: RetentionRule | null): string {
  if (!r) return 'no rule: every snapshot is kept'
  const parts = [['last', r.last], ['hourly', r.hourly], ['daily', r.daily], ['weekly', r.weekly]].filter(([, n]) => (n as number) > 0).map(([k, n]) => `${k} ${n}`)
  return `keep ${parts.join(', ')}`
}

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** The names the rule keeps among `snaps`. */
export function keptSnapshots(snaps: { name: string; time: number }[], rule: RetentionRule): Set<string> {
  const newest = [...snaps].sort((a, b) => b.time - a.time || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0))
  const kept = new Set<string>()
  for (const s of newest.slice(0, rule.last)) kept.add(s.name)
  const buckets = (n: number, bucketOf: (t: number) => number): void => {
    const seen = new Set<number>()
    for (const s of newest) {
      const b = bucketOf(s.time)
      if (seen.has(b)) continue
      if (seen.size >= n) break
      seen.add(b)
      kept.add(s.name) // the newest of its bucket
    }
  }
  buckets(rule.hourly, (t) => Math.floor(t / HOUR))
  buckets(rule.daily, (t) => Math.floor(t / DAY))
  buckets(rule.weekly, (t) => Math.floor((t / DAY + 3) / 7)) // weeks from Monday (1970-01-01 was a Thursday)
  return kept
}

/** Removes, in every readable volume with a rule, the snapshots it does not keep (dryRun: only says which). */
export async function applyRetention(node: Node, opts: { dryRun?: boolean; volume?: string } = {}): Promise<{ volume: string; name: string; rule: string }[]> {
  const removed: { volume: string; name: string; rule: string }[] = []
  for (const entry of node.dir.listVolumes()) {
    if (entry.storageOnly || (opts.volume !== undefined && entry.name !== opts.volume)) continue
    const vol = await node.volume(entry.name)
    const rule = decodeRetention(vol.retentionText)
    if (!rule) continue
    const snaps = vol.tree.snapshots()
    const kept = keptSnapshots(snaps, rule)
    for (const s of snaps) {
      if (kept.has(s.name)) continue
      if (!opts.dryRun) vol.removeSnapshot(s.name)
      removed.push({ volume: entry.name, name: s.name, rule: describeRetention(rule) })
    }
    if (!opts.dryRun) await vol.flush()
  }
  return removed
}
