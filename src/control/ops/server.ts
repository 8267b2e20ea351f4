// The control API's server ops: status, and mounts (which only the server holds).
import path from 'node:path'
import { UserError } from '../../datadir.js'
import { VERSION } from '../../version.js'
import type { OpContext, OpFn } from '../context.js'
import type { StatusResult } from '../requests.js'
import { mountOpts, sameMountOpts, type MountOpts } from '../../server/handle.js'

export const status: OpFn<'status'> = async (ctx) => {
  const server = ctx.server
  // Content written here not yet held by enough confirmed storage peers (src/placement/where.ts).
  const { notYetSafe } = await import('../../placement/where.js')
  const { volumeStatus } = await import('./volume-status.js')
  const node = await ctx.node()
  const safety = await notYetSafe(node).catch(() => null)
  const peers = (server?.net?.peers() ?? []).map(({ since, ...p }) => ({ ...p, ...(since !== undefined ? { since: new Date(since).toISOString() } : {}) }))
  const mounts = server ? server.mounts() : []
  const volumes = await volumeStatus(node, peers, mounts, !!server)
  const cache = await node.cache.status().then(
    (c) => ({ budget: c.budget, budgetBytes: c.budgetBytes, heldBytes: c.heldBytes, cachedBytes: c.cachedBytes, pinnedBytes: c.pinnedBytes }),
    () => null
  )
  // Pinned content not held here yet: the server's last pin sync knows it.
  const pinned = volumes.filter((v) => v.pins.bytes !== null)
  const result: StatusResult = {
    dataDir: ctx.dir.root,
    server: server ? { running: true, pid: server.pid, since: new Date(server.startedAt).toISOString(), uptimeSeconds: Math.round((Date.now() - server.startedAt) / 1000), version: VERSION } : { running: false },
    volumes: ctx.dir.listVolumes().map((v) => v.name),
    mounts,
    peers,
    notYetSafe: safety,
    volumeStatus: volumes,
    transfer: {
      fetchBytes: server ? pinned.reduce((n, v) => n + Math.max(0, (v.pins.bytes ?? 0) - (v.pins.heldBytes ?? 0)), 0) : null,
      pushBytes: safety ? safety.bytes : null
    },
    cache
  }
  return result
}

function needServer(ctx: OpContext, what: string) {
  if (!ctx.server) throw new UserError(`${what} needs a running server: start \`bazil server run\` (data dir ${ctx.dir.root})`)
  return ctx.server
}

export const mount: OpFn<'volume.mount'> = async (ctx, a) => {
  const server = needServer(ctx, 'mounting')
  // The same volume on the same path again (say, after a restart remounted it): not an error.
  const mp = path.resolve(a.mountpoint)
  const had = server.mounts().find((m) => m.mountpoint === mp)
  if (had && had.volume === a.volume) {
    if (!sameMountOpts(had, a)) {
      throw new UserError(`volume "${a.volume}" is already mounted at ${mp} ${describeOpts(had)}: unmount it first (\`bazil volume unmount ${mp}\`) to mount it ${describeOpts(a)}`)
    }
    return { ...had, already: true }
  }
  const opts = mountOpts(a)
  await server.mount(a.volume, mp, opts)
  return { volume: a.volume, mountpoint: mp, ...opts, already: false }
}

/** A mount's options as the CLI flags that set them. */
function describeOpts(o: MountOpts): string {
  const flags = [o.allowOther ? '--allow-other' : '', o.atime ? '--atime' : ''].filter(Boolean)
  return flags.length ? `with ${flags.join(' ')}` : 'without options'
}

export const unmount: OpFn<'volume.unmount'> = async (ctx, a) => {
  const mp = path.resolve(a.mountpoint)
  await needServer(ctx, 'unmounting').unmount(mp)
  return { mountpoint: mp }
}
