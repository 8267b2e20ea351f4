// What the tests of several in-process tree replicas share: writer ids, deterministic clocks
// and ids per replica, and handing one replica's changes to the others.
import assert from 'node:assert/strict'
import type { Tree } from '../src/tree/index.js'

export const W1 = 'aa'.repeat(32)
export const W2 = 'bb'.repeat(32)
export const W3 = 'cc'.repeat(32)

/** A 64-hex-digit id from a number. */
export const h = (n: number): string => n.toString(16).padStart(64, '0')

/** Tree options for replica `k`: a clock that ticks 3 ms a call, ids no other replica makes. */
export function opts(k: number): { clock: () => number; random: (n: number) => string } {
  let t = 1_000_000
  let r = 0
  return { clock: () => (t += 3), random: (n: number) => h(k * 1_000_000 + ++r).slice(-2 * n) }
}

/** Applies `from`'s new changes to each of `to` (none refused). */
export function sync(from: Tree, ...to: Tree[]): void {
  const changes = from.takeChanges().map((c) => ({ ...c, writer: from.actor }))
  for (const t of to) assert.deepEqual(t.apply(changes), [])
}
