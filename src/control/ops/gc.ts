// The control API's `volume.gc`: snapshot retention, then removing what nothing references
// (src/gc.ts, spec/gc.md), with its progress as `status` events by phase: volumes walked,
// packs rewritten, the database compacted.
import { UserError } from '../../datadir.js'
import type { OpFn } from '../context.js'
import { OpProgress, type ProgressCounts } from '../progress.js'

/**
 * How much of a run each phase is, roughly (walking dominates on big volumes, rewriting on
 * a store with much garbage): for the percentage and the time left, not a measurement.
 */
const SHARE = { walk: 0.5, rewrite: 0.45, compact: 0.05 }

export const gc: OpFn<'volume.gc'> = async (ctx, a) => {
  const node = await ctx.node()
  if (node.dir.volumeEntry(a.volume).storageOnly) throw new UserError(`volume ${a.volume} is storage-only on this node: its mirrors follow the origin's drop records (spec/gc.md)`)
  const { applyRetention } = await import('../../retention.js')
  const { collectGarbage, DEFAULT_GRACE_MS } = await import('../../gc.js')
  // Snapshot retention rules first (what they drop is then garbage too).
  const snapshotsRemoved = await applyRetention(node, { dryRun: a.dryRun })
  const progress = new OpProgress((e) => ctx.emit(e), { unit: 'volumes' })
  let packs = 0
  const step = (phase: 'walk' | 'rewrite' | 'compact', done: number, total: number): void => {
    const part = total > 0 ? done / total : 1
    const c: ProgressCounts =
      phase === 'walk'
        ? { phase, unit: 'volumes', done, total, fraction: SHARE.walk * part }
        : phase === 'rewrite'
          ? { phase, unit: 'packs', done, total, fraction: SHARE.walk + SHARE.rewrite * part }
          : { phase, unit: 'packs', done: packs, total: packs, fraction: SHARE.walk + SHARE.rewrite + SHARE.compact * part }
    if (phase === 'rewrite') packs = total
    progress.update(c)
  }
  const report = await collectGarbage(node, { dryRun: a.dryRun, graceMs: a.graceMs ?? DEFAULT_GRACE_MS, onStep: step })
  progress.end({ phase: 'done', unit: 'packs', done: report.packs.rewritten, total: report.packs.rewritten, fraction: 1 })
  return { ...report, snapshotsRemoved }
}
