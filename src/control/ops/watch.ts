// The control API's `watch`: a stream of events for status views (a later web view, `status
// --watch`): one `change` event each time entries from other writers were applied to a volume.
import type { OpFn } from '../context.js'

export const watch: OpFn<'watch'> = async (ctx, a) => {
  const node = await ctx.node()
  const names = a.volume !== undefined ? [ctx.dir.volume(a.volume).name] : ctx.dir.listVolumes().filter((v) => !v.storageOnly).map((v) => v.name)
  const vols = await Promise.all(names.map((n) => node.volume(n)))
  let events = 0
  await new Promise<void>((resolve) => {
    const offs: (() => unknown)[] = []
    const finish = (): void => {
      for (const off of offs) off()
      ctx.signal.removeEventListener('abort', finish)
      resolve()
    }
    if (ctx.signal.aborted || a.limit === 0) return finish()
    ctx.signal.addEventListener('abort', finish)
    for (const vol of vols) {
      offs.push(vol.onChange((entries) => {
        ctx.emit({ message_type: 'change', volume: vol.name, entries, time: new Date().toISOString() })
        if (++events === a.limit) finish()
      }))
    }
  })
  return { events }
}
