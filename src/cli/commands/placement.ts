// volume copies|du, where: the copy rule and where a volume's content lives (src/placement/placement.ts,
// src/placement/where.ts; spec/protocol.md KEEP/HOLDS).
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(1)} ${units[u]}`
}

export class VolumeCopiesCommand extends BazilCommand {
  static override paths = [['volume', 'copies']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Show or set the copies needed elsewhere',
    details: 'How many storage peers must confirm holding content written here before it counts as safe. The rule is replicated with the volume.',
    examples: [['Keep two copies elsewhere', 'bazil volume copies myfiles 2']]
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })
  copies = Option.String({ required: false })

  async run(): Promise<void> {
    // The op checks the range; a count that is no integer stops here.
    if (this.copies !== undefined && !/^[0-9]{1,6}$/.test(this.copies)) throw new UserError(`invalid copies "${this.copies}": give an integer`)
    const r = await this.call('volume.copies', { volume: this.volume, ...(this.copies !== undefined ? { copies: Number(this.copies) } : {}) })
    if (this.asJson) return this.json(r)
    const store = r.store
    this.out(`volume "${r.volume}": ${r.copies} ${r.set ? '' : '(default) '}cop${r.copies === 1 ? 'y' : 'ies'} elsewhere${store.copies !== r.copies ? ` (this node's store needs ${store.copies}: the largest rule of its volumes)` : ''}`)
    this.out(`this node's store: ${store.safePacks} of ${store.packs} packs safe; ${size(store.notSafeBytes)} not yet safe`)
    if (r.keepers.length === 0) this.out(`no peer keeps this node's store: add one with \`bazil volume storage add ${r.volume} peerkey:KEY\` (and \`bazil peer storage allow KEY local\`)`)
    for (const k of r.keepers) {
      const why = !k.mayRead ? ` (it may not read this node's store: \`bazil peer storage allow ${k.key} local\`)` : !k.storesTo ? ' (not a storage peer of this volume)' : ''
      this.out(`keeper ${k.key}: ${k.confirmedPacks} of ${store.packs} packs confirmed${why}`)
    }
  }
}

/** Where a path's content lives (src/placement/where.ts): `where` shows it all, `volume du` sums it up. */
abstract class ContentReportCommand extends BazilCommand {
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })
}

export class WhereCommand extends ContentReportCommand {
  static override paths = [['where']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Show which peers hold a file or tree',
    details: 'For the content of a file or tree: which peers hold it, how many copies, and whether (and why) this node holds it.',
    examples: [['Where a file is held', 'bazil where photos /2024/beach.jpg']]
  })
  target = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('where', { volume: this.volume, path: this.target })
    if (this.asJson) return this.json(r)
    this.out(`${r.path}: ${r.files} file${r.files === 1 ? '' : 's'}, ${size(r.logicalBytes)} (${r.objects} objects, ${size(r.storedBytes)} stored)`)
    this.out(`copies: ${r.copies} elsewhere for all of it (wanted: ${r.copiesWanted})`)
    const parts = [`${size(r.here.bytes)} of ${size(r.storedBytes)}`]
    if (r.here.written) parts.push(`written here ${size(r.here.written)}`)
    if (r.here.cached) parts.push(`cached ${size(r.here.cached)}`)
    if (r.here.pinned) parts.push(`pinned ${size(r.here.pinned)}`)
    this.out(`this node: ${parts.join(', ')}`)
    if (r.here.notSafe) this.out(`not yet safe: ${size(r.here.notSafe)} written here is held by fewer than ${r.copiesWanted} confirmed peer${r.copiesWanted === 1 ? '' : 's'} (pushed in the background to the peers this node stores to)`)
    if (r.unknownObjects) this.out(`unknown: ${r.unknownObjects} objects are in no store known here`)
    if (r.unreadManifests) this.out(`incomplete: ${r.unreadManifests} manifest nodes could not be read here or from a peer: the content under them is not counted`)
    if (r.peers.length === 0) this.out('peers: none holds it')
    for (const p of r.peers) this.out(`peer ${p.key}: ${p.state}${p.state === 'partly' ? ` (${size(p.bytes)} of ${size(r.storedBytes)})` : ''}, ${p.as === 'confirmed' ? 'confirmed keeping it' : p.as === 'owner' ? 'its own store' : 'has a copy now (not kept for this node)'}`)
  }
}

export class VolumeDuCommand extends ContentReportCommand {
  static override paths = [['volume', 'du']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: 'Show how much of a volume is held here',
    details: 'The logical size of a volume (or a path in it), the bytes held here, pinned, and not yet safely elsewhere.',
    examples: [['Sizes of a directory', 'bazil volume du photos /2024']]
  })
  target = Option.String({ required: false })

  async run(): Promise<void> {
    const du = await this.call('volume.du', { volume: this.volume, ...(this.target !== undefined ? { path: this.target } : {}) })
    if (this.asJson) return this.json(du)
    this.out(`${du.path}: ${size(du.logicalBytes)} in ${du.files} file${du.files === 1 ? '' : 's'}; here ${size(du.hereBytes)}; pinned ${size(du.pinnedBytes)}; not yet safe ${size(du.notSafeBytes)}`)
  }
}

export class VolumeStorageRmCommand extends BazilCommand {
  static override paths = [['volume', 'storage', 'rm']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: "Stop storing a volume's content to a peer",
    details: "Also stops reading missing content from it: undoes `volume storage add`. Once no volume stores to the peer, its confirmations stop counting toward the copy rule, and the server tells it to stop keeping this node's store (it drops its replica and its disk space comes back) as soon as it is connected and content written here that only it held is back here. An older bazil there is not told: remove the replica there by hand.",
    examples: [['Stop storing to a desktop', 'bazil volume storage rm myfiles peerkey:KEY']]
  })
  volume = Option.String({ required: true })
  store = Option.String({ required: true })

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('volume.storage.rm', { volume: this.volume, store: this.store })
    if (this.asJson) return this.json(r)
    this.out(`volume "${r.volume}" no longer stores to peer ${r.peer}${r.stillUsed ? ' (another volume here still does)' : `: it will be told to stop keeping this node's store ${r.server ? 'once connected' : 'once `bazil server run` runs and it is connected'}`}`)
  }
}
