// volume writers [remove]: the writer set of a volume (spec/oplog.md "Writer set"): who may
// write, who admitted them, revocations; and recording a revocation.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'

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
    const r = await this.call('volume.writers', { volume: this.volume })
    if (this.asJson) return this.json(r)
    for (const w of r.writers) {
      const parts = [w.log, `node=${w.node ?? '(binding not here yet)'}`]
      if (!w.authorised) parts.push('NOT AUTHORISED (entries not applied)')
      else if (w.root) parts.push('root')
      else parts.push(`admitted by ${w.admittedBy!.log} seq ${w.admittedBy!.seq}`)
      if (w.limit !== null) parts.push(`revoked: last accepted seq ${w.limit} (${w.revokedBy.map((x) => `by ${x.log} seq ${x.seq}${x.undecided ? ', undecided' : ''}`).join('; ')})`)
      this.out(parts.join('\t'))
    }
    for (const x of r.refused) this.out(`refused at ${x.at}: ${x.ops.map((o) => `${o.op} ${o.path ?? ''}`.trim()).join(', ') || '(no ops)'}${x.seqs.length > 0 ? ` (seqs ${x.seqs.join(',')})` : ' (never written)'}: ${x.reason}`)
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('volume.writers.remove', { volume: this.volume, key: this.key })
    if (this.asJson) return this.json(r)
    this.out(r.message)
  }
}
