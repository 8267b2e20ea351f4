// The control API's history ops (spec/history.md): a file's versions, restoring one, and who
// changed what. The work is src/volume/history.ts; this names the writers (keys z-base-32,
// this node, a peer's known address) and turns times into ISO 8601.
import { encodeKey } from '../../crypto.js'
import { UserError } from '../../datadir.js'
import { PeerRegistry } from '../../net/peers.js'
import type { Node } from '../../node.js'
import { blame as blameOf, fileHistory, logNodes, restoreVersion } from '../../volume/history.js'
import type { Volume } from '../../volume/volume.js'
import type { OpFn } from '../context.js'
import type { HistoryVersion, WriterLabel } from '../requests.js'

/** Labels writer logs (key hex) of a volume: its node, whether it is this node, the peer's address. */
function writerLabels(node: Node, vol: Volume): (log: string) => WriterLabel {
  const self = node.dir.publicKey
  const nodes = logNodes(vol, self)
  const peers = PeerRegistry.load(node.dir.root)
  const cache = new Map<string, WriterLabel>()
  return (log) => {
    let label = cache.get(log)
    if (label) return label
    const hex = nodes.get(log) ?? null
    const key = hex === null ? null : Buffer.from(hex, 'hex')
    const location = key && !key.equals(self) ? peers.get(key)?.location : null
    label = { log: encodeKey(Buffer.from(log, 'hex')), node: key ? encodeKey(key) : null, ...(key?.equals(self) ? { self: true as const } : {}), ...(location ? { location } : {}) }
    cache.set(log, label)
    return label
  }
}

export const history: OpFn<'volume.history'> = async (ctx, a) => {
  const node = await ctx.node()
  const vol = await node.volume(a.volume)
  const h = await fileHistory(vol, a.path)
  const label = writerLabels(node, vol)
  const versions = h.events.map((e): HistoryVersion => {
    const { time, log, seq, index: _index, ...rest } = e
    return { ...rest, writer: label(log), seq, time: new Date(time).toISOString() }
  })
  return { path: h.path, exists: h.now !== null, versions }
}

export const restore: OpFn<'volume.restore'> = async (ctx, a) => {
  if ((a.version === undefined) === (a.snapshot === undefined)) throw new UserError('name the version to restore: --version=HASH (see `bazil volume history`) or --snapshot=NAME, one of them')
  const vol = await (await ctx.node()).volume(a.volume)
  return restoreVersion(vol, a.path, a.version !== undefined ? { version: a.version } : { snapshot: a.snapshot! }, a.to)
}

export const blame: OpFn<'log.blame'> = async (ctx, a) => {
  const node = await ctx.node()
  const vol = await node.volume(a.volume)
  const b = await blameOf(vol, a.path)
  const label = writerLabels(node, vol)
  return {
    path: b.path,
    rows: b.rows.map((r) => ({
      path: r.path,
      kind: r.kind,
      changes: r.changes,
      last: r.last ? { writer: label(r.last.log), time: new Date(r.last.time).toISOString(), op: r.last.op.op, path: r.last.op.to ?? r.last.op.path ?? r.path, seq: r.last.seq } : null,
      writers: [...r.byLog].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([log, changes]) => ({ writer: label(log), changes }))
    }))
  }
}
