// The control API's peer ops: who this node talks to and what each peer may see. The registry
// is DATA/peers.json; inside a running server the network picks changes up at once
// (refresh), otherwise at its next start.
import { UserError, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { PeerStatus } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { formatHostPort, parseHostPort } from '../../net/config.js'
import type { OpContext, OpFn } from '../context.js'
import type { PeerRow } from '../requests.js'

/** A node key the user gave, not this node's own. */
function peerKey(text: string, dir: DataDir): Buffer {
  let key: Buffer
  try {
    key = decodeKey(text, 'peer key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  if (key.equals(dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key: give the other node's key (\`bazil debug pubkey\` there)`)
  return key
}

/** Changes the registry; a running server's network acts on it at once. */
function update<T>(ctx: OpContext, fn: (r: PeerRegistry) => T): T {
  const result = PeerRegistry.update(ctx.dir.root, fn)
  ctx.server?.net?.refresh()
  return result
}

export const add: OpFn<'peer.add'> = async (ctx, a) => {
  const key = peerKey(a.key, ctx.dir)
  return { key: encodeKey(key), added: update(ctx, (r) => r.add(key)) }
}

export const remove: OpFn<'peer.remove'> = async (ctx, a) => {
  const dir = ctx.dir
  const key = peerKey(a.key, dir)
  const volumes = PeerRegistry.load(dir.root).get(key)?.volumes ?? []
  // A peer keeping this node's store is told to stop (spec/protocol.md RELEASE) while it is still connected.
  const net = ctx.server?.net ?? null
  let released: string | null = null
  if (net) {
    const node = await ctx.node()
    if (node.placement.confirmationOf(encodeKey(key))) {
      node.placement.forgetPeer(key)
      released = await net.releaseStore(key)
    }
  }
  update(ctx, (r) => r.remove(key))
  // Its writer logs of the volumes it was allowed: revoked (spec/oplog.md "Admission and revocation").
  const names = dir.listVolumes().filter((v) => volumes.includes(v.id)).map((v) => v.name)
  const node = await ctx.node()
  const revoked: string[] = []
  for (const n of names) revoked.push(await node.revokeWriter(n, key))
  // What it confirmed keeping no longer counts toward the copy rule (spec/protocol.md "Keeping a peer's store").
  const confirmationsDropped = node.placement.forgetPeer(key) || released !== null
  return { key: encodeKey(key), revoked, confirmationsDropped, released }
}

export const list: OpFn<'peer.list'> = async (ctx) => {
  const net = ctx.server?.net ?? null
  const live = new Map<string, PeerStatus>((net?.peers() ?? []).map((p) => [p.key, p]))
  const names = new Map(ctx.dir.listVolumes().map((v) => [v.id, v.name]))
  const peers: PeerRow[] = PeerRegistry.load(ctx.dir.root)
    .list()
    .map((r) => {
      const status = live.get(r.key)
      const lastSeen = status?.lastSeen ?? r.lastSeen
      return {
        key: r.key,
        location: r.location,
        storage: r.storage,
        volumes: r.volumes.map((id) => names.get(id) ?? id),
        connected: net ? (status?.connected ?? false) : null,
        lastSeen: lastSeen === null ? null : new Date(lastSeen).toISOString()
      }
    })
  return { peers }
}

export const locationSet: OpFn<'peer.location.set'> = async (ctx, a) => {
  const key = peerKey(a.key, ctx.dir)
  const location = formatHostPort(parseHostPort(a.location, 'location'))
  update(ctx, (r) => r.setLocation(key, location))
  return { key: encodeKey(key), location }
}

export const storage: OpFn<'peer.storage'> = async (ctx, a) => {
  const key = peerKey(a.key, ctx.dir)
  if (a.store !== 'local') throw new UserError(`unknown store "${a.store}": this node has one store, "local"`)
  update(ctx, (r) => r.setStorage(key, a.allow))
  return { key: encodeKey(key), store: a.store, allow: a.allow }
}

export const volume: OpFn<'peer.volume'> = async (ctx, a) => {
  const key = peerKey(a.key, ctx.dir)
  const vol = ctx.dir.volumeEntry(a.volume) // storage-only volumes are shared like any other
  const changed = update(ctx, (r) => r.setVolume(key, vol.id, a.allow))
  // Deny: its writer logs of the volume are revoked; allow: a log of it seen already is admitted now.
  const node = await ctx.node()
  const writers: string[] = []
  if (!a.allow) writers.push(await node.revokeWriter(vol.name, key))
  else {
    const line = await node.admitWriter(vol.name, key)
    if (line) writers.push(line)
  }
  return { key: encodeKey(key), volume: vol.name, allow: a.allow, changed, writers }
}
