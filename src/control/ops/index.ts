// Which module implements each op of the control API, and where it may run. A client loads
// only the module of the op it calls (the CLI answers fast); the server loads them as asked.
import type { OpFn } from '../context.js'
import type { Op } from '../requests.js'

/**
 * - dir: reads data-dir files only: runs in the caller's process, server or not;
 * - node: in the running server if there is one, else in the caller's process with the data
 *   dir opened directly;
 * - server: only in the running server (mounts, the peer network);
 * - new: makes the data dir: in the caller's process, before there is a data dir to open.
 */
export type Where = 'dir' | 'node' | 'server' | 'new'

type OpTable = { [O in Op]: { where: Where; load: () => Promise<OpFn<O>> } }

const volume = () => import('./volume.js')
const server = () => import('./server.js')
const log = () => import('./log.js')
const sync = () => import('./sync.js')
const identity = () => import('./identity.js')
const peer = () => import('./peer.js')
const writers = () => import('./writers.js')
const conflicts = () => import('./conflicts.js')
const placement = () => import('./placement.js')

export const OPS: OpTable = {
  status: { where: 'node', load: async () => (await server()).status },
  'volume.list': { where: 'dir', load: async () => (await volume()).list },
  'volume.create': { where: 'node', load: async () => (await volume()).create },
  'volume.ls': { where: 'node', load: async () => (await volume()).ls },
  'volume.cat': { where: 'node', load: async () => (await volume()).cat },
  'volume.mkdir': { where: 'node', load: async () => (await volume()).mkdir },
  'volume.rm': { where: 'node', load: async () => (await volume()).rm },
  'volume.mv': { where: 'node', load: async () => (await volume()).mv },
  'volume.snapshot.create': { where: 'node', load: async () => (await volume()).snapshotCreate },
  'volume.snapshot.list': { where: 'node', load: async () => (await volume()).snapshotList },
  'volume.mount': { where: 'server', load: async () => (await server()).mount },
  'volume.unmount': { where: 'server', load: async () => (await server()).unmount },
  'volume.sync': { where: 'server', load: async () => (await sync()).sync },
  'volume.import': { where: 'node', load: async () => (await import('./copy.js')).importDir },
  'volume.export': { where: 'node', load: async () => (await import('./copy.js')).exportTree },
  'volume.connect': { where: 'server', load: async () => (await import('./connect.js')).connect },
  'volume.gc': { where: 'node', load: async () => (await import('./gc.js')).gc },
  pin: { where: 'node', load: async () => (await import('./pins.js')).pin },
  unpin: { where: 'node', load: async () => (await import('./pins.js')).unpin },
  'pin.list': { where: 'node', load: async () => (await import('./pins.js')).list },
  'log.show': { where: 'node', load: async () => (await log()).show },
  'log.verify': { where: 'node', load: async () => (await log()).verify },
  'volume.history': { where: 'node', load: async () => (await import('./history.js')).history },
  'volume.restore': { where: 'node', load: async () => (await import('./history.js')).restore },
  'log.blame': { where: 'node', load: async () => (await import('./history.js')).blame },
  watch: { where: 'server', load: async () => (await import('./watch.js')).watch },
  create: { where: 'new', load: async () => (await identity()).create },
  'debug.pubkey': { where: 'dir', load: async () => (await identity()).pubkey },
  'sharing.add': { where: 'dir', load: async () => (await identity()).sharingAdd },
  'sharing.list': { where: 'dir', load: async () => (await identity()).sharingList },
  // In the server when one runs: its network acts on a change at once, and knows who is connected.
  'peer.add': { where: 'node', load: async () => (await peer()).add },
  'peer.remove': { where: 'node', load: async () => (await peer()).remove },
  'peer.list': { where: 'node', load: async () => (await peer()).list },
  'peer.location.set': { where: 'node', load: async () => (await peer()).locationSet },
  'peer.storage': { where: 'node', load: async () => (await peer()).storage },
  'peer.volume': { where: 'node', load: async () => (await peer()).volume },
  'volume.writers': { where: 'node', load: async () => (await writers()).writers },
  'volume.writers.remove': { where: 'node', load: async () => (await writers()).remove },
  'volume.conflicts': { where: 'node', load: async () => (await conflicts()).conflicts },
  'volume.resolve': { where: 'node', load: async () => (await conflicts()).resolve },
  'volume.copies': { where: 'node', load: async () => (await placement()).copies },
  where: { where: 'node', load: async () => (await placement()).where },
  'volume.du': { where: 'node', load: async () => (await placement()).du },
  'volume.storage.add': { where: 'node', load: async () => (await placement()).storageAdd },
  'volume.storage.rm': { where: 'node', load: async () => (await placement()).storageRm },
  'volume.state.save': { where: 'node', load: async () => (await volume()).stateSave },
  'volume.snapshot.rm': { where: 'node', load: async () => (await volume()).snapshotRm },
  'volume.snapshot.keep': { where: 'node', load: async () => (await volume()).snapshotKeep },
  'cache.size': { where: 'node', load: async () => (await import('./cache.js')).size },
  'web.url': { where: 'server', load: async () => (await import('./web.js')).url },
}
