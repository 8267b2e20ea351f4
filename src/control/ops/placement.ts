// The control API's placement ops: the copy rule and where a volume's content lives
// (src/placement/placement.ts, src/placement/where.ts; spec/protocol.md KEEP/HOLDS), and which
// peers' stores a volume reads missing content from and stores to.
import { UserError, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import { MAX_COPIES } from '../../tree/model.js'
import { DEFAULT_COPIES, storagePeers } from '../../placement/placement.js'
import { keepers, notYetSafe, where as whereReport } from '../../placement/where.js'
import type { OpContext, OpFn } from '../context.js'
import { knownPeer } from './sync.js'

export const copies: OpFn<'volume.copies'> = async (ctx, a) => {
  if (a.copies !== undefined && (a.copies < 1 || a.copies > MAX_COPIES)) throw new UserError(`invalid copies "${a.copies}": give an integer 1..${MAX_COPIES}`)
  const node = await ctx.node()
  const vol = await node.volume(a.volume)
  if (a.copies !== undefined) {
    vol.setCopies(a.copies)
    await vol.flush()
  }
  const set = vol.copies
  const store = await notYetSafe(node)
  return {
    volume: vol.record.name,
    copies: set ?? DEFAULT_COPIES,
    set: set !== null,
    store: { copies: store.copies, packs: store.totalPacks, safePacks: store.safePacks, notSafeBytes: store.bytes },
    keepers: keepers(node, node.dir.volume(vol.record.name).storage ?? [])
  }
}

async function report(ctx: OpContext, volume: string, path: string) {
  const node = await ctx.node()
  return whereReport(node, await node.volume(volume), path)
}

export const where: OpFn<'where'> = async (ctx, a) => report(ctx, a.volume, a.path)

export const du: OpFn<'volume.du'> = async (ctx, a) => {
  const r = await report(ctx, a.volume, a.path ?? '/')
  return { volume: r.volume, path: r.path, files: r.files, logicalBytes: r.logicalBytes, storedBytes: r.storedBytes, hereBytes: r.here.bytes, pinnedBytes: r.here.pinned, notSafeBytes: r.here.notSafe }
}

/** The peer of a `peerkey:KEY` store. */
function storeKey(store: string): string {
  if (!store.startsWith('peerkey:')) throw new UserError(`unknown store "${store}": give peerkey:KEY`)
  return store.slice('peerkey:'.length)
}

export const storageAdd: OpFn<'volume.storage.add'> = async (ctx, a) => {
  const dir: DataDir = ctx.dir
  const key = knownPeer(storeKey(a.store), dir)
  const rec = dir.volume(a.volume)
  if (a.sharing !== undefined && a.sharing !== rec.sharing) throw new UserError(`volume "${rec.name}" uses sharing key "${rec.sharing}", not "${a.sharing}"`)
  const added = dir.addVolumeStorage(rec.name, encodeKey(key))
  // Without a server only the record is written; the server uses it when the peer connects.
  const net = ctx.server?.net ?? null
  if (!net) return { volume: rec.name, peer: encodeKey(key), added, state: 'no-server' }
  // The peer's own store, or a replica of it another connected peer holds (a closet).
  let using = false
  for (const p of net.connectedPeers()) {
    // Only what the access rules let this node take as those nodes' stores.
    const view = await net.usableStores(p)
    if (p.equals(key) ? !!(view?.storage || view?.stores.length) : !!view?.stores.some((r) => r.node.equals(key))) using = true
  }
  return { volume: rec.name, peer: encodeKey(key), added, state: using ? 'in-use' : net.connected(key) ? 'not-offered' : 'not-connected' }
}

export const storageRm: OpFn<'volume.storage.rm'> = async (ctx, a) => {
  let key: Buffer
  try {
    key = decodeKey(storeKey(a.store), 'peer key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  const rec = ctx.dir.volume(a.volume)
  const z = encodeKey(key)
  if (!ctx.dir.removeVolumeStorage(rec.name, z)) throw new UserError(`volume "${rec.name}" does not store to peer ${z} (see \`bazil volume copies ${rec.name}\`)`)
  return { volume: rec.name, peer: z, stillUsed: storagePeers(ctx.dir).has(z), server: !!ctx.server }
}
