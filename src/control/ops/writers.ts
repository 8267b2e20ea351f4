// The control API's writer-set ops (spec/oplog.md "Writer set"): who may write a volume, who
// admitted them, revocations; and recording a revocation.
import { UserError } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { Hypercore } from 'hypercore'
import type { WriterSet } from '../../logs/index.js'
import type { OpFn } from '../context.js'
import type { WriterRow } from '../requests.js'

const z = (h: string): string => encodeKey(Buffer.from(h, 'hex'))

/** Blocks of a log as known here (`length`) and held here from the start (`held`: up to a revocation's limit at most). */
function blocks(core: Hypercore | null): { length: number; held: number } {
  return { length: core?.length ?? 0, held: core?.contiguousLength ?? 0 }
}

/** Authorised logs first, then the known logs that are not. */
function rows(set: WriterSet, known: { log: string; node: string | null }[], coreOf: (hex: string) => Hypercore | null): WriterRow[] {
  const out: WriterRow[] = []
  for (const w of set.writers.values()) {
    out.push({
      ...blocks(coreOf(w.log)),
      log: z(w.log),
      node: w.node === null ? null : z(w.node),
      authorised: true,
      root: w.root,
      admittedBy: w.admittedBy ? { log: z(w.admittedBy.log), seq: w.admittedBy.seq } : null,
      limit: w.limit,
      revokedBy: w.revokedBy.map((r) => ({ log: z(r.log), seq: r.seq, last: r.last, undecided: r.undecided }))
    })
  }
  for (const k of known) {
    if (set.writers.has(k.log)) continue
    out.push({ ...blocks(coreOf(k.log)), log: z(k.log), node: k.node === null ? null : z(k.node), authorised: false, root: false, admittedBy: null, limit: null, revokedBy: [] })
  }
  return out
}

export const writers: OpFn<'volume.writers'> = async (ctx, a) => {
  const node = await ctx.node()
  const rec = node.dir.volumeEntry(a.volume)
  if (rec.storageOnly) {
    const held = await node.heldVolume(rec.name)
    await held.update()
    const set = held.writerSet
    return { volume: rec.name, rootNode: set.rootNode === null ? null : z(set.rootNode), writers: rows(set, held.knownLogs(), (hex) => held.core(Buffer.from(hex, 'hex'))), refused: [] }
  }
  const vol = await node.volume(rec.name)
  await vol.refresh()
  const set = vol.writerSet
  return {
    volume: rec.name,
    rootNode: set.rootNode === null ? null : z(set.rootNode),
    writers: rows(set, vol.knownLogs(), (hex) => vol.writers.get(hex)?.core ?? null),
    refused: vol.refused.map((r) => ({ at: new Date(r.at).toISOString(), ops: r.ops.map((o) => ({ op: o.op, path: o.path ?? null })), seqs: r.seqs, reason: r.reason }))
  }
}

export const remove: OpFn<'volume.writers.remove'> = async (ctx, a) => {
  let key: Buffer
  try {
    key = decodeKey(a.key, 'node key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  if (key.equals(ctx.dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key`)
  return { message: await (await ctx.node()).revokeWriter(a.volume, key) }
}
