// Who may write to a volume, as this node records it in its own log: admitting candidate logs
// of nodes the host allows, admitting a node, revoking a node (spec/oplog.md "Admission and
// revocation"). The decisions read what replay knows of the logs (bindings, control entries,
// the writer set) and append control entries to this node's log.
import { UserError } from '../datadir.js'
import type { ControlOp } from '../logs/index.js'
import type { VolumeHost } from './host.js'
import type { Replay } from './replay.js'

/**
 * Records admit(log, node) in this node's log for every candidate log (bound, not
 * authorised, never revoked) whose node the host allows to write; true if it recorded any.
 */
export async function admitCandidates(r: Replay, host: VolumeHost): Promise<boolean> {
  if (r.isClosed || !r.canWrite) return false
  const ops: ControlOp[] = []
  for (const hex of r.writerSet.unauthorised) {
    const info = r.bindings.get(hex)
    if (!info || info.node === null) continue
    const revoked = [...r.control.values()].some((c) => c.ops.some((o) => (o.op === 'revoke' && o.log.toString('hex') === hex) || (o.op === 'revoke-node' && o.node.toString('hex') === info.node)))
    if (revoked) continue
    const node = Buffer.from(info.node, 'hex')
    if (!host.allowsWriter(r.id, node)) continue
    ops.push({ op: 'admit', log: Buffer.from(hex, 'hex'), node })
  }
  if (ops.length === 0) return false
  await r.log.appendControl(ops)
  return true
}

/**
 * Records admit-node(node): every log bound to `node` may write, including logs not seen
 * yet (`peer volume allow` on a writer). False if this node may not write (nothing recorded)
 * or the node was revoked here before (a revocation is final).
 */
export async function admitNode(r: Replay, node: Buffer): Promise<boolean> {
  await r.refresh()
  if (!r.canWrite) return false
  const hex = node.toString('hex')
  const own = r.log.key.toString('hex')
  for (const c of r.control.values()) {
    for (const o of c.ops) {
      if (o.op === 'revoke-node' && o.node.toString('hex') === hex) return false
      if (o.op === 'admit-node' && o.node.toString('hex') === hex && c.log === own) return true // recorded already
    }
  }
  await r.log.appendControl([{ op: 'admit-node', node }])
  await r.refresh()
  return true
}

/**
 * Revokes `node`: records revoke(log, last applied seq) for every log bound to it that is
 * authorised and not a root (with admit(log) so that those entries stay accepted), and
 * revoke-node(node) so that no log of it is admitted by node from now on. Returns what it
 * revoked and the root logs it could not.
 */
export async function revokeNode(r: Replay, node: Buffer): Promise<{ revoked: { log: Buffer; last: number }[]; roots: Buffer[] }> {
  await r.refresh()
  const revoked: { log: Buffer; last: number }[] = []
  const roots: Buffer[] = []
  const own = r.log.key.toString('hex')
  for (const [hex, info] of r.bindings) {
    if (info.node !== node.toString('hex')) continue
    const w = r.writerSet.writers.get(hex)
    if (!w) continue
    if (w.root) {
      roots.push(Buffer.from(hex, 'hex'))
      continue
    }
    const applied = (r.applied.get(hex) ?? 1) - 1
    const last = w.limit === null ? applied : Math.min(w.limit, applied)
    if (w.limit !== null && w.limit <= last && w.revokedBy.some((x) => x.log === own)) continue // revoked by us already
    revoked.push({ log: Buffer.from(hex, 'hex'), last })
  }
  const hexNode = node.toString('hex')
  const nodeRevoked = [...r.control.values()].some((c) => c.log === own && c.ops.some((o) => o.op === 'revoke-node' && o.node.toString('hex') === hexNode))
  if (revoked.length > 0 || (!nodeRevoked && roots.length === 0)) {
    if (!r.canWrite) throw new UserError(r.writeRefusal())
    const ops: ControlOp[] = []
    for (const x of revoked) ops.push({ op: 'admit', log: x.log, node }, { op: 'revoke', log: x.log, last: x.last })
    if (!nodeRevoked) ops.push({ op: 'revoke-node', node })
    await r.log.appendControl(ops)
    await r.refresh()
  }
  return { revoked, roots }
}
