// volume create|list|import|export|ls|cat|rm|mv|mkdir|snapshot: volumes without a mount.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import type { CopyResult, EntryInfo } from '../../control/requests.js'

export class VolumeCreateCommand extends BazilCommand {
  static override paths = [['volume', 'create']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Create a volume',
    details: 'The volume is encrypted with a sharing key (--sharing, default `default`): the nodes that have the key can read it.',
    examples: [
      ['Create a volume', 'bazil volume create notes'],
      ['One for the "friends" sharing key', 'bazil volume create --sharing=friends photos']
    ]
  })
  sharing = Option.String('--sharing', 'default', { description: 'Sharing key name (default: default)' })
  name = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('volume.create', { name: this.name, sharing: this.sharing })
    this.out(`created volume "${r.name}" (sharing key "${r.sharing}")`)
  }
}

export class VolumeListCommand extends BazilCommand {
  static override paths = [['volume', 'list']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'List volumes'
  })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const { volumes } = await this.call('volume.list', {})
    // A storage-only volume (held for others, no sharing key) shows as such.
    if (this.asJson) this.json(volumes)
    else for (const v of volumes) this.out(v.storageOnly ? `${v.name}\tstorage-only` : `${v.name}\tsharing=${v.sharing}`)
  }
}

/** The final line of an import or export. */
function copied(verb: string, s: CopyResult): string {
  return `${verb} ${s.files} files, ${s.dirs} directories, ${s.symlinks} symlinks, ${s.links} hard links, ${s.special} fifos/devices, ${s.bytes} bytes`
}

export class VolumeImportCommand extends BazilCommand {
  static override paths = [['volume', 'import']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Copy a local directory into a volume',
    details: 'Recursively, keeping modes, mtimes, symlinks, hard links, fifos and devices; owners become root.',
    examples: [['Import a folder under /2024', 'bazil volume import --to=/2024 photos ~/Pictures/2024']]
  })
  to = Option.String('--to', '/', { description: 'Directory in the volume to import into (created if missing)' })
  asJson = Option.Boolean('--json', false, { description: 'Progress as JSON lines (message_type status), then a summary object' })
  volume = Option.String({ required: true })
  src = Option.String({ required: true })

  async run(): Promise<void> {
    const { result: s, view } = await this.callWithProgress('volume.import', { volume: this.volume, src: this.resolvePath(this.src), to: this.to }, this.asJson)
    view.finish({ volume: this.volume, ...s })
    if (!this.asJson) this.out(copied('imported', s))
  }
}

export class VolumeExportCommand extends BazilCommand {
  static override paths = [['volume', 'export']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Copy a volume into a new local directory',
    details: 'The live volume, or with --snapshot a snapshot of it.',
    examples: [['Export a snapshot', 'bazil volume export --snapshot=before-trip photos /tmp/photos']]
  })
  snapshot = Option.String('--snapshot', { description: 'Export this snapshot instead of the live volume' })
  asJson = Option.Boolean('--json', false, { description: 'Progress as JSON lines (message_type status), then a summary object' })
  volume = Option.String({ required: true })
  dest = Option.String({ required: true })

  async run(): Promise<number> {
    const { result: s, view } = await this.callWithProgress('volume.export', { volume: this.volume, dest: this.resolvePath(this.dest), snapshot: this.snapshot }, this.asJson)
    view.finish({ volume: this.volume, ...s })
    if (!this.asJson) {
      for (const x of s.skipped) this.context.stderr.write(`bazil: not exported: ${JSON.stringify(x.path)}: ${x.reason}\n`)
      this.out(`${copied('exported', s)}${s.skipped.length > 0 ? `; ${s.skipped.length} entries not exported (see above)` : ''}`)
    }
    return s.skipped.length > 0 ? 1 : 0
  }
}

/** `ls -l`'s type letter of each kind. */
const TYPE_CHAR: Record<EntryInfo['kind'], string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' }

function modeString(e: EntryInfo): string {
  const type = TYPE_CHAR[e.kind]
  let s = ''
  for (let i = 8; i >= 0; i--) s += e.mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-'
  return type + s
}

export class VolumeLsCommand extends BazilCommand {
  static override paths = [['volume', 'ls']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'List a directory of a volume',
    details: 'Or one file. Works without mounting, and with no server running.',
    examples: [['Long listing of the root', 'bazil volume ls -l photos /']]
  })
  long = Option.Boolean('-l', false, { description: 'Long listing: mode, size, mtime' })
  asJson = Option.Boolean('--json', false)
  snapshot = Option.String('--snapshot', { description: 'List this snapshot instead of the live volume' })
  volume = Option.String({ required: true })
  target = Option.String({ required: false })

  async run(): Promise<void> {
    const { entries } = await this.call('volume.ls', { volume: this.volume, path: this.target, snapshot: this.snapshot })
    if (this.asJson) return this.json(entries)
    for (const e of entries) {
      const name = e.kind === 'dir' && !this.long ? `${e.name}/` : e.name
      if (!this.long) this.out(name)
      else {
        const link = e.kind === 'symlink' ? ` -> ${e.target}` : ''
        this.out(`${modeString(e)} ${String(e.size).padStart(12)} ${e.mtime} ${name}${link}`)
      }
    }
  }
}

export class VolumeCatCommand extends BazilCommand {
  static override paths = [['volume', 'cat']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Write a file of a volume to stdout',
    examples: [['Print a file', 'bazil volume cat notes /todo.txt']]
  })
  snapshot = Option.String('--snapshot', { description: 'Read from this snapshot' })
  volume = Option.String({ required: true })
  target = Option.String({ required: true })

  async run(): Promise<void> {
    await this.call('volume.cat', { volume: this.volume, path: this.target, snapshot: this.snapshot }, { onOutput: (chunk) => this.outBytes(chunk) })
  }
}

export class VolumeMkdirCommand extends BazilCommand {
  static override paths = [['volume', 'mkdir']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Make a directory in a volume',
    examples: [['Make a directory and its parents', 'bazil volume mkdir -p notes /2024/trips']]
  })
  parents = Option.Boolean('-p,--parents', false, { description: 'Make missing parents; no error if it exists' })
  volume = Option.String({ required: true })
  target = Option.String({ required: true })

  async run(): Promise<void> {
    await this.call('volume.mkdir', { volume: this.volume, path: this.target, parents: this.parents })
  }
}

export class VolumeRmCommand extends BazilCommand {
  static override paths = [['volume', 'rm']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Remove a file or (with -r) a tree',
    details: 'Removes a file, symlink or (with -r) a directory tree from a volume.',
    examples: [['Remove a directory tree', 'bazil volume rm -r notes /old']]
  })
  recursive = Option.Boolean('-r,--recursive', false, { description: 'Remove directories and their contents' })
  volume = Option.String({ required: true })
  target = Option.String({ required: true })

  async run(): Promise<void> {
    await this.call('volume.rm', { volume: this.volume, path: this.target, recursive: this.recursive })
  }
}

export class VolumeMvCommand extends BazilCommand {
  static override paths = [['volume', 'mv']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Rename or move within a volume',
    examples: [['Rename a file', 'bazil volume mv notes /todo.txt /done.txt']]
  })
  force = Option.Boolean('-f,--force', false, { description: 'Replace an existing target (as rename(2) does)' })
  volume = Option.String({ required: true })
  from = Option.String({ required: true })
  to = Option.String({ required: true })

  async run(): Promise<void> {
    await this.call('volume.mv', { volume: this.volume, from: this.from, to: this.to, force: this.force })
  }
}

export class VolumeSnapshotCreateCommand extends BazilCommand {
  static override paths = [['volume', 'snapshot', 'create']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: 'Take a named, read-only snapshot',
    details: 'Browse it with `volume ls --snapshot=NAME`, copy it out with `volume export --snapshot=NAME`.',
    examples: [['Take a snapshot', 'bazil volume snapshot create photos before-trip']]
  })
  volume = Option.String({ required: true })
  name = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('volume.snapshot.create', { volume: this.volume, name: this.name })
    this.out(`snapshot "${r.name}" of volume "${this.volume}" taken`)
  }
}

export class VolumeSnapshotListCommand extends BazilCommand {
  static override paths = [['volume', 'snapshot', 'list']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: "List a volume's snapshots"
  })
  asJson = Option.Boolean('--json', false)
  volume = Option.String({ required: true })

  async run(): Promise<void> {
    const { snapshots } = await this.call('volume.snapshot.list', { volume: this.volume })
    if (this.asJson) this.json(snapshots)
    else for (const s of snapshots) this.out(`${s.name}\t${s.time}`)
  }
}
