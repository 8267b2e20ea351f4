// cache size, pin, unpin: the budget for content read from peers, and paths kept for offline use.
import path from 'node:path'
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError, type DataDir } from '../../datadir.js'
import { formatBytes } from '../../cas/cache-size.js'
import { addPins, covers, pinPath, readPins, removePins } from '../../pins/pins-file.js'
import type { Node } from '../../node.js'
import type { Cas, FileRef } from '../../cas/cas.js'
import type { MountInfo } from '../../server/handle.js'

export class CacheSizeCommand extends BazilCommand {
  static override paths = [['cache', 'size']]
  static override where: Where = 'api'
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

/** VOLUME PATH... or paths inside mounts of the running server: (volume name, path in it) pairs. */
function targets(dir: DataDir, args: string[], mounts: MountInfo[], resolve: (p: string) => string): { volume: string; paths: string[] }[] {
  if (args.length === 0) throw new UserError('give VOLUME PATH... or paths inside a mounted volume')
  const names = new Set(dir.listVolumes().map((v) => v.name))
  if (args.length >= 2 && !args[0]!.includes('/') && names.has(args[0]!)) {
    return [{ volume: args[0]!, paths: args.slice(1).map(pinPath) }]
  }
  const byVolume = new Map<string, string[]>()
  for (const a of args) {
    const abs = resolve(a)
    const m = mounts
      .filter((x) => abs === x.mountpoint || abs.startsWith(x.mountpoint + path.sep))
      .sort((x, y) => y.mountpoint.length - x.mountpoint.length)[0]
    if (!m) {
      throw new UserError(mounts.length === 0 && !names.has(a)
        ? `${a}: not a volume, and no volume is mounted by a running server: give VOLUME PATH...`
        : `${abs} is not inside a mounted volume (${mounts.map((x) => x.mountpoint).join(', ') || 'none mounted'}): give VOLUME PATH...`)
    }
    const list = byVolume.get(m.volume) ?? []
    list.push(pinPath(path.relative(m.mountpoint, abs).split(path.sep).join('/')))
    byVolume.set(m.volume, list)
  }
  return [...byVolume].map(([volume, paths]) => ({ volume, paths }))
}

export class PinCommand extends BazilCommand {
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
  asJson = Option.Boolean('--json', false)
  args = Option.Rest()

  async run(): Promise<void> {
    if (this.list) {
      if (this.args.length > 0) throw new UserError('--list takes no paths')
      return this.listPins()
    }
    const server = this.context.server
    const lines = await this.withNode(async (node) => {
      const out: string[] = []
      for (const t of targets(node.dir, this.args, server?.mounts() ?? [], (p) => this.resolvePath(p))) {
        const vol = await node.volume(t.volume)
        const tree = vol.view()
        for (const p of t.paths) if (!tree.lookup(p)) throw new UserError(`volume ${vol.name} has no ${p}`)
        const existing = readPins(node.dir.paths.pins).filter((x) => x.volume === vol.id.toString('hex'))
        const added = addPins(node.dir.paths.pins, vol.id.toString('hex'), t.paths)
        for (const p of t.paths) {
          const under = existing.find((x) => covers(x.path, p))
          if (under) out.push(`volume ${vol.name} ${p} is pinned already${under.path !== p ? ` (under ${under.path})` : ''}`)
          else if (added.some((a) => a.path === p)) out.push(`pinned volume ${vol.name} ${p}: ${server ? 'fetching in the background (progress in the server log)' : 'fetched once `bazil server run` runs'}`)
        }
      }
      if (server) void node.pins.sync()
      return out
    })
    for (const l of lines) this.out(l)
  }

  private async listPins(): Promise<void> {
    const rows = await this.withNode(async (node) => pinRows(node, !!this.context.server))
    if (this.asJson) return this.json(rows)
    if (rows.length === 0) return this.out('no pins')
    for (const r of rows) {
      const held = r.heldBytes === null ? '' : `, ${formatBytes(r.heldBytes)} held`
      this.out(`${r.volume ?? r.volumeId}\t${r.path}\t${r.files} files, ${formatBytes(r.bytes)}${held}${r.problem ? ` (${r.problem})` : ''}`)
    }
  }
}

interface PinRow {
  volume: string | null
  volumeId: string
  path: string
  added: string
  files: number
  bytes: number
  /**
   * Bytes of the pin's files whose every object is held here: through a running server as of
   * its last pin sync; without one, looked up now in the local stores (no network).
   */
  heldBytes: number | null
  heldFiles: number | null
  problem: string | null
}

/** The files of `refs` whose every object (manifest nodes, chunks) this node holds, and their bytes: local lookups only. */
async function heldHere(cas: Cas, refs: FileRef[]): Promise<{ files: number; bytes: number }> {
  let files = 0
  let bytes = 0
  for (const ref of refs) {
    if (!(await cas.has(ref).catch(() => false))) continue
    files++
    bytes += ref.size
  }
  return { files, bytes }
}

async function pinRows(node: Node, inServer: boolean): Promise<PinRow[]> {
  const states = inServer ? node.pins.list() : []
  const volumes = node.dir.listVolumes()
  const rows: PinRow[] = []
  for (const pin of readPins(node.dir.paths.pins)) {
    const rec = volumes.find((v) => v.id === pin.volume)
    const state = states.find((s) => s.pin.volume === pin.volume && s.pin.path === pin.path)
    let files = 0
    let bytes = 0
    let problem: string | null = rec ? null : 'no volume with this id here'
    let held: { files: number; bytes: number } | null = state ? { files: state.heldFiles, bytes: state.heldBytes } : null
    if (rec && !rec.storageOnly) {
      const { toFileRef } = await import('../../volume/volume.js') // not at the top: `bazil --help` loads this module
      const vol = await node.volume(rec.name)
      const tree = vol.view()
      const refs: FileRef[] = []
      if (!tree.lookup(pin.path)) problem = 'no such path in the volume now'
      else for (const st of tree.walk(pin.path)) if (st.kind === 'file' && st.content) {
        files++
        bytes += st.content.size
        refs.push(toFileRef(st.content))
      }
      if (!inServer) held = await heldHere(vol.cas, refs)
    } else if (!inServer) held = { files: 0, bytes: 0 }
    rows.push({ volume: rec?.name ?? null, volumeId: pin.volume, path: pin.path, added: new Date(pin.added).toISOString(), files, bytes, heldBytes: held?.bytes ?? null, heldFiles: held?.files ?? null, problem })
  }
  return rows
}

export class UnpinCommand extends BazilCommand {
  static override paths = [['unpin']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Stop keeping pinned paths here',
    details: 'Their content becomes cache (evicted when the budget needs room). Paths are given as for `bazil pin`.',
    examples: [['Unpin a directory', 'bazil unpin photos /2024']]
  })
  args = Option.Rest()

  async run(): Promise<void> {
    const server = this.context.server
    const lines = await this.withNode(async (node) => {
      const out: string[] = []
      for (const t of targets(node.dir, this.args, server?.mounts() ?? [], (p) => this.resolvePath(p))) {
        const id = node.dir.volume(t.volume).id
        const pins = readPins(node.dir.paths.pins).filter((x) => x.volume === id)
        for (const p of t.paths) {
          if (pins.some((x) => x.path === p)) continue
          const under = pins.find((x) => covers(x.path, p))
          throw new UserError(under ? `volume ${t.volume} ${p} is not pinned itself: it is under the pinned ${under.path} (unpin that)` : `volume ${t.volume} ${p} is not pinned (see \`bazil pin --list\`)`)
        }
        removePins(node.dir.paths.pins, id, t.paths)
        for (const p of t.paths) out.push(`unpinned volume ${t.volume} ${p}`)
      }
      if (server) void node.pins.sync()
      return out
    })
    for (const l of lines) this.out(l)
  }
}
