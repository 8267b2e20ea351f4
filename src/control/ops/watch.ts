// The control API's `watch`: a stream of events for status views (the web view, `status
// --watch`): one `change` event each time entries from other writers were applied to a volume,
// and with `peers`, one `peer` event each time a peer connects or goes away.
import { encodeKey } from '../../crypto.js'
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
    const send = (e: { message_type: string; [field: string]: unknown }): void => {
      ctx.emit({ ...e, time: new Date().toISOString() })
      if (++events === a.limit) finish()
    }
    for (const vol of vols) offs.push(vol.onChange((entries) => send({ message_type: 'change', volume: vol.name, entries })))
    const net = ctx.server?.net
    if (a.peers && net) {
      const peer = (connected: boolean) => (key: Buffer): void => send({ message_type: 'peer', peer: encodeKey(key), connected })
      const on = peer(true), off = peer(false)
      net.on('peer-connected', on)
      net.on('peer-disconnected', off)
      offs.push(() => net.off('peer-connected', on), () => net.off('peer-disconnected', off))
    }
  })
  return { events }
}
