// The control API's copies between a local directory and a volume: `volume.import` and
// `volume.export`, with their progress as `status` events (files and bytes).
import type { CopyProgress } from '../../copy/local-copy.js'
import type { OpContext, OpFn } from '../context.js'
import { OpProgress } from '../progress.js'

/** Progress events of a copy: files and bytes copied of those to copy. */
function copyProgress(ctx: OpContext): { progress: OpProgress; onProgress: (p: CopyProgress) => void } {
  const progress = new OpProgress((e) => ctx.emit(e), { unit: 'files' })
  const onProgress = (p: CopyProgress): void => progress.update({ done: p.files, total: p.totalFiles, bytesDone: p.bytes, bytesTotal: p.totalBytes })
  return { progress, onProgress }
}

export const importDir: OpFn<'volume.import'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const { importDir } = await import('../../copy/local-copy.js')
  const { progress, onProgress } = copyProgress(ctx)
  // Nothing to do is still one event: a script sees the stream it expects.
  progress.update({ done: 0, total: 0, bytesDone: 0, bytesTotal: 0 })
  const s = await importDir(vol, a.src, a.to ?? '/', onProgress)
  progress.end({ done: s.files, total: s.files, bytesDone: s.bytes, bytesTotal: s.bytes })
  return { files: s.files, dirs: s.dirs, symlinks: s.symlinks, links: s.links ?? 0, special: s.special ?? 0, bytes: s.bytes, skipped: [] }
}

export const exportTree: OpFn<'volume.export'> = async (ctx, a) => {
  const node = await ctx.node()
  const vol = await node.volume(a.volume)
  const { exportTree } = await import('../../copy/local-copy.js')
  const { progress, onProgress } = copyProgress(ctx)
  progress.update({ done: 0, total: 0, bytesDone: 0, bytesTotal: 0 })
  // Many reads: content not held here is requested from the volume's storage peers ahead,
  // as ranges of packs (RemoteStores.bulk, prefetch).
  const remote = node.remoteStores
  const s = await remote.bulk(() => exportTree(vol.cas, vol.view(a.snapshot), a.dest, { prefetch: (x) => remote.prefetch(x), onProgress }))
  progress.end()
  return { files: s.files, dirs: s.dirs, symlinks: s.symlinks, links: s.links ?? 0, special: s.special ?? 0, bytes: s.bytes, skipped: s.skipped ?? [] }
}
