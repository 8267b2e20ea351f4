// volume history|restore, log blame: a file's versions, bringing one back, who changed what
// (spec/history.md). `log show` and its filters are in log.ts.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import type { HistoryVersion, WriterLabel } from '../../control/requests.js'

/** A writer as one word: its node (8 characters) or, unbound, its log; this node and a peer's address marked. */
export function writerName(w: WriterLabel): string {
  const who = w.node ? w.node.slice(0, 8) : `log:${w.log.slice(0, 8)}`
  return `${who}${w.self ? ' (this node)' : w.location ? ` (${w.location})` : ''}`
}

function describeVersion(v: HistoryVersion): string {
  const what = v.op === 'restore' ? `restore${v.snapshot !== undefined ? ` from snapshot ${v.snapshot}` : ''}` : v.op
  const parts = [v.time, what.padEnd(7), v.to !== undefined ? `${v.path} -> ${v.to}` : v.path]
  if (v.size !== undefined) parts.push(`size=${v.size}`)
  if (v.hash !== undefined) parts.push(`hash=${v.hash.slice(0, 16)}`)
  parts.push(`by ${writerName(v.writer)}`)
  if (v.current) parts.push('[current]')
  if (v.conflictCopy !== undefined) parts.push(`[conflict copy ${v.conflictCopy}]`)
  return parts.join('  ')
}

export class VolumeHistoryCommand extends BazilCommand {
  static override paths = [['volume', 'history']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Every version of a file',
    details: 'Oldest first: writes, restores, renames (earlier names followed) and deletes, with writer, time, size and hash. Works for a path that no longer exists (its versions up to the delete). `[current]` marks the content the file has now, `[conflict copy PATH]` a version shown now as a conflict copy. Bring a version back with `bazil volume restore VOLUME PATH --version=HASH`.',
    examples: [['A file\'s versions', 'bazil volume history docs /notes.txt']]
  })
  volume = Option.String({ required: true })
  file = Option.String({ required: true })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const h = await this.call('volume.history', { volume: this.volume, path: this.file })
    if (this.asJson) return this.json(h)
    this.out(`${h.path}${h.exists ? '' : ' (no longer exists)'}`)
    for (const v of h.versions) this.out(`  ${describeVersion(v)}`)
  }
}

export class VolumeRestoreCommand extends BazilCommand {
  static override paths = [['volume', 'restore']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Bring an earlier version of a file back',
    details: 'A logged op that replicates like any write. The version is named by 8 or more hex digits of its hash (as `bazil volume history` shows it) or taken from a snapshot. Over an existing file it is a new version (the one it replaces stays in the history); a deleted file is made again. `--to` restores to another path.',
    examples: [['An earlier version', 'bazil volume restore docs /notes.txt --version=3f2a9c01'], ['From a snapshot, beside the current file', 'bazil volume restore docs /notes.txt --snapshot=monday --to=/notes-monday.txt']]
  })
  volume = Option.String({ required: true })
  file = Option.String({ required: true })
  version = Option.String('--version', { description: 'The version: 8+ hex digits of its hash' })
  snapshot = Option.String('--snapshot', { description: 'Take the file from this snapshot' })
  to = Option.String('--to', { description: 'Restore to this path instead' })

  async run(): Promise<void> {
    const r = await this.call('volume.restore', { volume: this.volume, path: this.file, version: this.version, snapshot: this.snapshot, to: this.to })
    const from = this.snapshot !== undefined ? `snapshot ${this.snapshot}` : `version ${r.hash.slice(0, 16)}`
    if (r.unchanged) return this.out(`${r.path} has this content already (${from}): nothing to restore`)
    this.out(`restored ${r.path} from ${from} (${r.size} bytes)${r.created ? ', made again' : `; the version it replaced (${r.previous?.slice(0, 16)}) stays in its history`}`)
  }
}

export class LogBlameCommand extends BazilCommand {
  static override paths = [['log', 'blame']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Who changed what, per path',
    details: 'Per entry of a directory (or one file): how many changes, by which writers, and the last one. A subdirectory counts every change below it. Renames are followed (a file\'s changes under its earlier names count).',
    examples: [['The root of a volume', 'bazil log blame docs'], ['One file', 'bazil log blame docs /notes.txt']]
  })
  volume = Option.String({ required: true })
  target = Option.String({ required: false })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const b = await this.call('log.blame', { volume: this.volume, path: this.target })
    if (this.asJson) return this.json(b)
    for (const r of b.rows) {
      const name = r.kind === 'dir' ? `${r.path}/` : r.path
      const last = r.last ? `${r.last.time} ${r.last.op} by ${writerName(r.last.writer)}` : 'no change logged'
      const by = r.writers.map((w) => `${writerName(w.writer)}: ${w.changes}`).join(', ')
      this.out(`${name}\t${r.changes} change${r.changes === 1 ? '' : 's'}\t${last}${by ? `\t(${by})` : ''}`)
    }
  }
}
