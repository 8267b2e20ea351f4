// volume writers [remove]: the writer set of a volume (spec/oplog.md "Writer set"): who may
// write, who admitted them, revocations; and recording a revocation.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { Hypercore } from 'hypercore'
import type { WriterSet } from '../../logs/index.js'

const z = (h: string): string => encodeKey(Buffer.from(h, 'hex'))

/** Blocks of a log as known here (`length`) and held here from the start (`held`: up to a revocation's limit at most). */
function blocks(core: Hypercore | null): { length: number; held: number } {
  return { length: core?.length ?? 0, held: core?.contiguousLength ?? 0 }
}

/** Rows for `volume writers`: authorised logs first, then the known logs that are not. */
function rows(set: WriterSet, known: { log: string; node: string | null }[], coreOf: (hex: string) => Hypercore | null) {
  const out = []
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

export class VolumeWritersCommand extends BazilCommand {
  static override paths = [['volume', 'writers']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'List the writers of a volume',
    details: 'Each writer log, its node, who admitted it (log and seq), revocations and its last accepted seq, and whether it is a root; then the logs held that are not authorised.',
    examples: [
      ['List writers', 'bazil volume writers myfiles'],
      ['As JSON', 'bazil volume writers --json myfiles']
    ]
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })

  async run(): Promise<void> {
    return this.withNode(async (node) => {
      const rec = node.dir.volumeEntry(this.volume)
      let set: WriterSet
      let known: { log: string; node: string | null }[]
      let coreOf: (hex: string) => Hypercore | null
      if (rec.storageOnly) {
        const held = await node.heldVolume(rec.name)
        await held.update()
        set = held.writerSet
        known = held.knownLogs()
        coreOf = (hex) => held.core(Buffer.from(hex, 'hex'))
      } else {
        const vol = await node.volume(rec.name)
        await vol.refresh()
        set = vol.writerSet
        known = vol.knownLogs()
        coreOf = (hex) => vol.writers.get(hex)?.core ?? null
      }
      const list = rows(set, known, coreOf)
      // This node's edits its log could not take (spec/oplog.md "Edits a revocation overtakes").
      const refused = (rec.storageOnly ? [] : (await node.volume(rec.name)).refused).map((r) => ({ at: new Date(r.at).toISOString(), ops: r.ops.map((o) => ({ op: o.op, path: o.path ?? null })), seqs: r.seqs, reason: r.reason }))
      if (this.asJson) {
        this.json({ volume: rec.name, rootNode: set.rootNode === null ? null : z(set.rootNode), writers: list, refused })
        return
      }
      for (const r of list) {
        const parts = [r.log, `node=${r.node ?? '(binding not here yet)'}`]
        if (!r.authorised) parts.push('NOT AUTHORISED (entries not applied)')
        else if (r.root) parts.push('root')
        else parts.push(`admitted by ${r.admittedBy!.log} seq ${r.admittedBy!.seq}`)
        if (r.limit !== null) parts.push(`revoked: last accepted seq ${r.limit} (${r.revokedBy.map((x) => `by ${x.log} seq ${x.seq}${x.undecided ? ', undecided' : ''}`).join('; ')})`)
        this.out(parts.join('\t'))
      }
      for (const r of refused) this.out(`refused at ${r.at}: ${r.ops.map((o) => `${o.op} ${o.path ?? ''}`.trim()).join(', ') || '(no ops)'}${r.seqs.length > 0 ? ` (seqs ${r.seqs.join(',')})` : ' (never written)'}: ${r.reason}`)
    })
  }
}

export class VolumeWritersRemoveCommand extends BazilCommand {
  static override paths = [['volume', 'writers', 'remove']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: "Revoke a node's writer logs of a volume",
    details: 'Its entries after the last one applied here are never applied, on any peer.',
    examples: [['Revoke a node', 'bazil volume writers remove myfiles KEY']]
  })
  volume = Option.String({ required: true })
  key = Option.String({ required: true })

  async run(): Promise<void> {
    let key: Buffer
    try {
      key = decodeKey(this.key, 'node key')
    } catch (err) {
      throw new UserError((err as Error).message)
    }
    return this.withNode(async (node) => {
      if (key.equals(node.dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key`)
      this.out(await node.revokeWriter(this.volume, key))
    })
  }
}
