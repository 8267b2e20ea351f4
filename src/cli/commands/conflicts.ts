// volume conflicts|resolve: files two writers changed concurrently, owners and extended
// attributes two writers set concurrently, and settling them.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import type { AttrValueJson } from '../../control/requests.js'

/** A value as the text listing shows it: an owner id (-1: the mounting user), or an attribute's bytes as text when they are printable UTF-8, else as hex. */
function showValue(v: AttrValueJson): string {
  if (typeof v === 'number') return v === -1 ? '-1 (the mounting user)' : String(v)
  if (v.text !== undefined && !/[\u0000-\u001f\u007f]/.test(v.text)) return JSON.stringify(v.text)
  return `0x${Buffer.from(v.base64, 'base64').toString('hex')}`
}

export class VolumeConflictsCommand extends BazilCommand {
  static override paths = [['volume', 'conflicts']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'List conflicting versions and attributes',
    details: "Files with concurrent versions, and owners and extended attributes set concurrently, with each writer's value. The first version of each file conflict keeps the name; the others are shown as read-only conflict copies. For an owner (uid, gid) or extended attribute set concurrently, every node shows the first value listed (the winner); the others are listed so that none is lost silently. Settle one with `bazil volume resolve` (`--attr NAME` for an attribute). `--json`: file conflicts are `{path, versions}`, attribute conflicts `{path, attribute, values: [{value, writer, log, mine, won}]}` (uid/gid values are numbers, -1 the mounting user; attribute values `{base64, text?}`), sorted by path.",
    examples: [['List the conflicts of a volume', 'bazil volume conflicts docs']]
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('volume.conflicts', { volume: this.volume })
    const who = (v: { node: string | null; log: string; mine: boolean }): string => `${v.node ?? `log ${v.log}`}${v.mine ? ' (this node)' : ''}`
    if (this.asJson) {
      const rows: { path: string; row: unknown }[] = [
        ...r.files.map((c) => ({ path: c.path, row: {
          path: c.path,
          versions: c.versions.map((v) => ({ path: v.path, writer: v.node ?? v.log, log: v.log, mine: v.mine, time: v.time, size: v.size, hash: v.hash })),
        } })),
        ...r.attributes.map((c) => ({ path: c.path, row: {
          path: c.path, attribute: c.attribute,
          values: c.values.map((v) => ({ value: v.value, writer: v.node ?? v.log, log: v.log, mine: v.mine, won: v.won })),
        } })),
      ]
      return this.json(rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((x) => x.row))
    }
    if (r.files.length === 0 && r.attributes.length === 0) return this.out(`no conflicts in volume "${r.volume}"`)
    for (const c of r.files) {
      this.out(c.path)
      for (const v of c.versions) this.out(`  ${v.path}\t${who(v)}\t${v.time}\t${v.size} bytes\t${v.hash}`)
    }
    for (const c of r.attributes) {
      this.out(`${c.path}\t${c.attribute} set concurrently`)
      for (const v of c.values) this.out(`  ${v.won ? 'shown' : 'lost '}\t${who(v)}\t${showValue(v.value)}`)
    }
  }
}

export class VolumeResolveCommand extends BazilCommand {
  static override paths = [['volume', 'resolve']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Settle a conflict',
    details: "Keep this node's version, the other writer's, or both (the other as a new file); or, with --attr, one value of an owner or extended attribute set concurrently.",
    examples: [
      ["Keep the other writer's version", 'bazil volume resolve docs /notes.txt --keep=theirs'],
      ["Keep this node's owner of a file two nodes chowned concurrently", 'bazil volume resolve docs /notes.txt --attr=uid --keep=mine']
    ]
  })
  keep = Option.String('--keep', { required: true, description: 'mine | theirs | both | HASH (8+ hex digits of the version to keep); with --attr: mine | theirs | WRITER (8+ characters of its node or log key)' })
  attr = Option.String('--attr', { description: 'settle an owner (uid, gid) or extended attribute (its name) set concurrently, instead of the content' })
  volume = Option.String({ required: true })
  target = Option.String({ required: true })

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('volume.resolve', { volume: this.volume, path: this.target, keep: this.keep, ...(this.attr !== undefined ? { attr: this.attr } : {}) })
    if (this.asJson) return this.json(r)
    if (r.attribute !== undefined) return this.out(`resolved ${r.attribute} of ${r.path} (${this.keep})`)
    this.out(`resolved ${r.path}: kept ${r.kept ?? ''} (${this.keep})`)
    for (const c of r.created) this.out(`  other version kept as ${c}`)
  }
}
