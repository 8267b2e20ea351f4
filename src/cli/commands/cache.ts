// cache size, pin, unpin: the budget for content read from peers, and paths kept for offline use.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'
import { formatBytes } from '../../format-bytes.js'

export class CacheSizeCommand extends BazilCommand {
  static override paths = [['cache', 'size']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Show or set the budget for cached content',
    details: 'Content read from peers is kept here as a cache, least recently used out first, within the budget. SIZE is like 20GiB, 500MiB, 2GB, or 10% (of the disk holding the data dir; the default). Pinned content (`bazil pin`) does not count against it and is never evicted.',
    examples: [
      ['Show the budget and what is held', 'bazil cache size'],
      ['Set it', 'bazil cache size 20GiB']
    ]
  })
  asJson = Option.Boolean('--json', false)
  size = Option.String({ required: false })

  async run(): Promise<void> {
    const { status, set } = await this.call('cache.size', this.size !== undefined ? { size: this.size } : {})
    if (this.asJson) return this.json(status)
    if (set !== null) this.out(`cache budget set to ${set}${set.endsWith('%') ? ` (${formatBytes(status.budgetBytes)})` : ''}`)
    else this.out(`cache budget: ${status.budget} = ${formatBytes(status.budgetBytes)}`)
    if (status.effectiveBudgetBytes < status.budgetBytes) this.out(`effective budget now: ${formatBytes(status.effectiveBudgetBytes)} (the disk is nearly full: the cache leaves 5% of it free)`)
    this.out(`held: ${formatBytes(status.heldBytes)} in ${status.packs} packs of peers' stores (${formatBytes(status.cachedBytes)} cached, ${formatBytes(status.pinnedBytes)} pinned)`)
  }
}

/** Pin and unpin: what the user named, VOLUME PATH... or paths inside the server's mounts. */
abstract class PinPathsCommand extends BazilCommand {
  args = Option.Rest()

  /** VOLUME PATH... when the first word names a volume; else local paths, made absolute here (the server maps them through its mounts). */
  protected async targets(): Promise<{ volume?: string; paths: string[] }> {
    const a = this.args
    if (a.length >= 2 && !a[0]!.includes('/')) {
      const { volumes } = await this.call('volume.list', {})
      if (volumes.some((v) => v.name === a[0])) return { volume: a[0]!, paths: a.slice(1) }
    }
    return { paths: a.map((p) => this.resolvePath(p)) }
  }
}

export class PinCommand extends PinPathsCommand {
  static override paths = [['pin']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Keep files here for offline use',
    details: 'Files or directory trees of a volume are fetched in the background and never evicted. A pinned directory includes whatever is added under it later. Paths may be given as VOLUME PATH... or as paths inside a volume a running server has mounted. `--list` shows the pins.',
    examples: [
      ['Pin a directory', 'bazil pin photos /2024'],
      ['Pin through a mount', 'bazil pin ~/photos/2024'],
      ['List the pins', 'bazil pin --list']
    ]
  })
  list = Option.Boolean('--list', false, { description: 'List the pins and how much of each is held here' })
  wait = Option.Boolean('--wait', false, { description: 'Wait until the pinned files are here, showing progress (the server fetches them either way)' })
  asJson = Option.Boolean('--json', false, { description: 'With --list: the pins as JSON; with --wait: progress as JSON lines, then a summary object' })

  async run(): Promise<void> {
    if (this.list) {
      if (this.args.length > 0) throw new UserError('--list takes no paths')
      return this.listPins()
    }
    const t = await this.targets()
    const { result: r, view } = await this.callWithProgress('pin', { ...t, ...(this.wait ? { wait: true } : {}) }, this.asJson)
    view.finish({ ...r })
    if (!this.asJson) for (const l of r.lines) this.out(l)
  }

  private async listPins(): Promise<void> {
    const { pins: rows } = await this.call('pin.list', {})
    if (this.asJson) return this.json(rows)
    if (rows.length === 0) return this.out('no pins')
    for (const r of rows) {
      const held = r.heldBytes === null ? '' : `, ${formatBytes(r.heldBytes)} held`
      this.out(`${r.volume ?? r.volumeId}\t${r.path}\t${r.files} files, ${formatBytes(r.bytes)}${held}${r.problem ? ` (${r.problem})` : ''}`)
    }
  }
}

export class UnpinCommand extends PinPathsCommand {
  static override paths = [['unpin']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Stop keeping pinned paths here',
    details: 'Their content becomes cache (evicted when the budget needs room). Paths are given as for `bazil pin`.',
    examples: [['Unpin a directory', 'bazil unpin photos /2024']]
  })

  async run(): Promise<void> {
    const { lines } = await this.call('unpin', await this.targets())
    for (const l of lines) this.out(l)
  }
}
