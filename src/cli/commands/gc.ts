// volume gc | volume snapshot rm | volume snapshot keep: removing what nothing references (spec/gc.md).
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { UserError } from '../../datadir.js'
import { collectGarbage, DEFAULT_GRACE_MS, type GcReport } from '../../gc.js'

/** `0`, `90s`, `30m`, `12h`, `7d` (a number alone: seconds) -> ms. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new UserError(`${what}: "${text}" is not a duration (e.g. 0, 90s, 30m, 12h, 7d)`)
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']
  return Math.round(Number(m[1]) * unit)
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

export class VolumeGcCommand extends BazilCommand {
  static override paths = [['volume', 'gc']]
  static override usage = BazilCommand.Usage({
    description: 'Remove content no live file, conflict copy or kept snapshot references',
    details: `
      The content store is shared by every volume of this node, so every readable volume is
      walked (VOLUME must be one of them). An object is removed once it has stayed unreferenced
      for the grace period (--grace, default 24h) and no writer has entries this node knows of
      but has not applied (spec/gc.md). Packs mostly garbage are rewritten and cleared, and
      the database compacted: the disk space comes back.
    `
  })
  volume = Option.String({ required: true })
  dryRun = Option.Boolean('--dry-run', false, { description: 'Say what would be removed; change nothing' })
  asJson = Option.Boolean('--json', false)
  grace = Option.String('--grace', { description: 'Keep what became unreferenced less than this long ago (default 24h; 0: none)' })

  async run(): Promise<void> {
    const graceMs = this.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(this.grace, '--grace')
    const tty = (this.context.stderr as { isTTY?: boolean }).isTTY === true
    const report = await this.withNode(async (node) => {
      if (node.dir.volumeEntry(this.volume).storageOnly) throw new UserError(`volume ${this.volume} is storage-only on this node: its mirrors follow the origin's drop records (spec/gc.md)`)
      return collectGarbage(node, { dryRun: this.dryRun, graceMs, progress: tty ? (line) => this.context.stderr.write(line + '\n') : undefined })
    })
    if (this.asJson) this.json(report)
    else for (const line of describeReport(report)) this.out(line)
  }
}

export function describeReport(r: GcReport): string[] {
  const verb = r.dryRun ? 'would remove' : 'removed'
  const lines = [
    `volumes walked: ${r.volumes.join(', ') || '(none)'} (${r.referenced.files} file versions, ${r.referenced.objects} objects referenced${r.referenced.missingManifests ? `, ${r.referenced.missingManifests} manifests not held here` : ''})`,
    `store: ${r.stored.objects} objects, ${mib(r.stored.bytes)}; unreferenced ${r.unreferenced.objects} (${mib(r.unreferenced.bytes)}), past the grace period ${r.collectable.objects} (${mib(r.collectable.bytes)})`,
    `${verb} ${r.removed.objects} objects (${mib(r.removed.bytes)}) from ${r.packs.rewritten} of ${r.packs.total} packs, moving ${r.moved.objects} live objects (${mib(r.moved.bytes)})`
  ]
  lines.push(r.disk.after === null ? `disk: ${mib(r.disk.before)} (data dir)` : `disk: ${mib(r.disk.before)} -> ${mib(r.disk.after)} (data dir)`)
  return lines
}

export class VolumeSnapshotRmCommand extends BazilCommand {
  static override paths = [['volume', 'snapshot', 'rm']]
  static override usage = BazilCommand.Usage({ description: 'Remove a snapshot (its content is collected by the next gc once nothing else references it)' })
  volume = Option.String({ required: true })
  name = Option.String({ required: true })

  async run(): Promise<void> {
    await this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      vol.removeSnapshot(this.name)
      await vol.flush()
    })
    this.out(`snapshot "${this.name}" of volume "${this.volume}" removed`)
  }
}
