// volume conflicts|resolve: files two writers changed concurrently, owners and extended
// attributes two writers set concurrently, and settling them.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../datadir.js'
import { attrConflicts, jsonValue, resolveAttr, showValue } from '../../volume/attr-conflict-ops.js'

const KEEP = ['mine', 'theirs', 'both'] as const

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
    await this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const conflicts = await vol.conflicts()
      const attrs = await attrConflicts(vol)
      if (this.asJson) {
        const rows: { path: string; row: unknown }[] = [
          ...conflicts.map((c) => ({ path: c.path, row: {
            path: c.path,
            versions: c.versions.map((v) => ({ path: v.path, writer: v.node ?? v.log, log: v.log, mine: v.mine, time: new Date(v.time).toISOString(), size: v.size, hash: v.hash })),
          } })),
          ...attrs.map((c) => ({ path: c.path, row: {
            path: c.path, attribute: c.attribute,
            values: c.values.map((v) => ({ value: jsonValue(v.value), writer: v.node ?? v.log, log: v.log, mine: v.mine, won: v.won })),
          } })),
        ]
        return this.json(rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((r) => r.row))
      }
      if (conflicts.length === 0 && attrs.length === 0) return this.out(`no conflicts in volume "${vol.name}"`)
      for (const c of conflicts) {
        this.out(c.path)
        for (const v of c.versions) {
          const who = `${v.node ?? `log ${v.log}`}${v.mine ? ' (this node)' : ''}`
          this.out(`  ${v.path}\t${who}\t${new Date(v.time).toISOString()}\t${v.size} bytes\t${v.hash}`)
        }
      }
      for (const c of attrs) {
        this.out(`${c.path}\t${c.attribute} set concurrently`)
        for (const v of c.values) {
          const who = `${v.node ?? `log ${v.log}`}${v.mine ? ' (this node)' : ''}`
          this.out(`  ${v.won ? 'shown' : 'lost '}\t${who}\t${showValue(v.value)}`)
        }
      }
    })
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

  async run(): Promise<void> {
    const attr = this.attr
    if (attr !== undefined) {
      const st = await this.withNode(async (node) => {
        const vol = await node.volume(this.volume)
        const result = await resolveAttr(vol, this.target, attr, this.keep)
        await vol.flush()
        return result
      })
      this.out(`resolved ${attr} of ${st.path} (${this.keep})`)
      return
    }
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
