// volume gc | volume snapshot rm | volume snapshot keep: removing what nothing references (spec/gc.md).
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'
import { parseDuration } from '../../duration.js'
import type { GcReport } from '../../gc.js'

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

export class VolumeGcCommand extends BazilCommand {
  static override paths = [['volume', 'gc']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Remove content nothing references any more',
    details: `
      Content no live file, conflict copy or kept snapshot references. The content store is
      shared by every volume of this node, so every readable volume is walked (VOLUME must be
      one of them). An object is removed once it has stayed unreferenced for the grace period
      (--grace, default 24h) and no writer has entries this node knows of but has not applied
      (spec/gc.md). Packs mostly garbage are rewritten and cleared, and the database compacted:
      the disk space comes back.
    `,
    examples: [
      ['See what would be removed', 'bazil volume gc --dry-run photos'],
      ['Collect without a grace period', 'bazil volume gc --grace=0 photos']
    ]
  })
  volume = Option.String({ required: true })
  dryRun = Option.Boolean('--dry-run', false, { description: 'Say what would be removed; change nothing' })
  asJson = Option.Boolean('--json', false, { description: 'Progress as JSON lines (message_type status), then the report as a summary object' })
  grace = Option.String('--grace', { description: 'Keep what became unreferenced less than this long ago (default 24h; 0: none)' })

  async run(): Promise<void> {
    const graceMs = this.grace === undefined ? undefined : parseDuration(this.grace, '--grace')
    const { result: r, view } = await this.callWithProgress('volume.gc', { volume: this.volume, ...(this.dryRun ? { dryRun: true } : {}), graceMs }, this.asJson)
    view.finish({ ...r })
    if (this.asJson) return
    const { snapshotsRemoved, ...report } = r
    for (const s of snapshotsRemoved) this.out(`${this.dryRun ? 'would remove' : 'removed'} snapshot "${s.name}" of volume ${s.volume} (retention: ${s.rule})`)
    for (const line of describeReport(report)) this.out(line)
  }
}

export function describeReport(r: GcReport): string[] {
  const verb = r.dryRun ? 'would remove' : 'removed'
  const lines = [
    `volumes walked: ${r.volumes.join(', ') || '(none)'} (${r.referenced.files} file versions, ${r.referenced.objects} objects referenced${r.referenced.missingManifests ? `, ${r.referenced.missingManifests} manifests not held here` : ''})`,
    `store: ${r.stored.objects} objects, ${mib(r.stored.bytes)}; unreferenced ${r.unreferenced.objects} (${mib(r.unreferenced.bytes)}), past the grace period ${r.collectable.objects} (${mib(r.collectable.bytes)})`,
    `${verb} ${r.removed.objects} objects (${mib(r.removed.bytes)}) from ${r.packs.rewritten} of ${r.packs.total} packs, moving ${r.moved.objects} live objects (${mib(r.moved.bytes)})`
  ]
  if (r.packs.leftHeld > 0) lines.push(`${r.packs.leftHeld} dropped packs stay on disk for now: clearing them would delete Merkle tree nodes peers need to verify what this node still serves (spec/gc.md 3)`)
  lines.push(r.disk.after === null ? `disk: ${mib(r.disk.before)} (data dir)` : `disk: ${mib(r.disk.before)} -> ${mib(r.disk.after)} (data dir)`)
  return lines
}

export class VolumeSnapshotRmCommand extends BazilCommand {
  static override paths = [['volume', 'snapshot', 'rm']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Remove a snapshot',
    details: 'Its content is collected by the next gc once nothing else references it.',
    examples: [['Remove a snapshot', 'bazil volume snapshot rm photos before-trip']]
  })
  volume = Option.String({ required: true })
  name = Option.String({ required: true })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const r = await this.call('volume.snapshot.rm', { volume: this.volume, name: this.name })
    if (this.asJson) return this.json(r)
    this.out(`snapshot "${r.name}" of volume "${r.volume}" removed`)
  }
}

export class VolumeSnapshotKeepCommand extends BazilCommand {
  static override paths = [['volume', 'snapshot', 'keep']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Show or set which snapshots are kept',
    details: `
      A volume's snapshot retention rule: keeps the LAST newest snapshots and the newest of each
      of the HOURLY / DAILY / WEEKLY most recent hours / days / weeks (UTC) that have one; the
      others are removed by the next \`volume gc\` and by the server's automatic collection.
      \`--none\` removes the rule (every snapshot is kept). The rule is part of the volume, so
      every node applies the same one.
    `,
    examples: [
      ['Show the rule', 'bazil volume snapshot keep photos'],
      ['Keep the 10 newest and one a day for a week', 'bazil volume snapshot keep photos --last=10 --daily=7']
    ]
  })
  volume = Option.String({ required: true })
  last = Option.String('--last', { description: 'Keep the N newest snapshots' })
  hourly = Option.String('--hourly', { description: 'Keep the newest snapshot of each of the N most recent hours that have one' })
  daily = Option.String('--daily', { description: 'The same per day' })
  weekly = Option.String('--weekly', { description: 'The same per week' })
  none = Option.Boolean('--none', false, { description: 'No rule: keep every snapshot' })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const count = (v: string | undefined, what: string): number | undefined => {
      if (v === undefined) return undefined
      // The op checks the range.
      if (!/^\d{1,9}$/.test(v)) throw new UserError(`${what}: "${v}" is not a count`)
      return Number(v)
    }
    const r = await this.call('volume.snapshot.keep', {
      volume: this.volume,
      last: count(this.last, '--last'),
      hourly: count(this.hourly, '--hourly'),
      daily: count(this.daily, '--daily'),
      weekly: count(this.weekly, '--weekly'),
      ...(this.none ? { none: true } : {})
    })
    if (this.asJson) this.json(r.rule)
    else this.out(`volume ${this.volume}: ${r.text}`)
  }
}
