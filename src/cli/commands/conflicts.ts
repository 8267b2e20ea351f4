// volume conflicts|resolve: files two writers changed concurrently, and settling them.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { UserError } from '../../datadir.js'

const KEEP = ['mine', 'theirs', 'both'] as const

export class VolumeConflictsCommand extends BazilCommand {
  static override paths = [['volume', 'conflicts']]
  static override usage = BazilCommand.Usage({
    description: 'List files with concurrent versions: each version with its writer, time, size and hash',
    details: 'The first version of each conflict keeps the name; the others are shown as read-only conflict copies. Settle one with `bazil volume resolve`.',
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })

  async run(): Promise<void> {
    await this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const conflicts = await vol.conflicts()
      if (this.asJson) {
        return this.json(conflicts.map((c) => ({
          path: c.path,
          versions: c.versions.map((v) => ({ path: v.path, writer: v.node ?? v.log, log: v.log, mine: v.mine, time: new Date(v.time).toISOString(), size: v.size, hash: v.hash })),
        })))
      }
      if (conflicts.length === 0) return this.out(`no conflicts in volume "${vol.name}"`)
      for (const c of conflicts) {
        this.out(c.path)
        for (const v of c.versions) {
          const who = `${v.node ?? `log ${v.log}`}${v.mine ? ' (this node)' : ''}`
          this.out(`  ${v.path}\t${who}\t${new Date(v.time).toISOString()}\t${v.size} bytes\t${v.hash}`)
        }
      }
    })
  }
}

export class VolumeResolveCommand extends BazilCommand {
  static override paths = [['volume', 'resolve']]
  static override usage = BazilCommand.Usage({
    description: 'Settle a conflict: keep this node\'s version, the other writer\'s, or both (the other as a new file)',
    examples: [['Keep the other writer\'s version', 'bazil volume resolve docs /notes.txt --keep=theirs']],
  })
  keep = Option.String('--keep', { required: true, description: 'mine | theirs | both | HASH (8+ hex digits of the version to keep)' })
  volume = Option.String({ required: true })
  target = Option.String({ required: true })

  async run(): Promise<void> {
    if (!(KEEP as readonly string[]).includes(this.keep) && !/^[0-9a-f]{8,64}$/.test(this.keep)) throw new UserError(`--keep must be mine, theirs, both or the hash of a version (8+ hex digits, see volume conflicts), got "${this.keep}"`)
    const r = await this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const result = vol.resolve(this.target, this.keep)
      await vol.flush()
      return result
    })
    this.out(`resolved ${r.kept.path}: kept ${r.kept.content?.hash ?? ''} (${this.keep})`)
    for (const c of r.created) this.out(`  other version kept as ${c.path}`)
  }
}
