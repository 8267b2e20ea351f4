// FUSE (and its native addon) loads only when a server first needs it, not for every CLI call.
const fuse = () => import('../mount/index.js')

// The server's mounts: which volumes are mounted where, kept in the data dir so that a
// restarted server (after a clean stop or a crash) cleans up dead mounts, recovers spooled
// data and mounts the same volumes again.
import fs from 'node:fs'
import path from 'node:path'
import { UserError } from '../datadir.js'
import type { Node } from '../node.js'
import type { VolumeMount } from '../mount/index.js'
import { mountOpts, type MountInfo, type MountOpts } from './handle.js'
import type { Log } from '../log.js'
import { replaceFileSync } from '../atomic-file.js'

interface MountsFile {
  version: 1
  mounts: MountInfo[]
}

export class MountManager {
  private readonly active = new Map<string, { info: MountInfo; mount: VolumeMount }>()
  private readonly file: string

  constructor(
    private readonly node: Node,
    private readonly log: Log
  ) {
    this.file = node.dir.paths.mounts
  }

  /** Where a volume's dirty file data is spooled (per volume id: stable across renames). */
  private spoolDir(volumeName: string): string {
    return this.node.dir.paths.spool(this.node.dir.volume(volumeName).id)
  }

  /** The mounts wanted at the next start; a damaged file is an error naming it and what to do. */
  private readWanted(): MountInfo[] {
    let text: string
    try {
      text = fs.readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new UserError(`cannot read ${this.file}: ${(err as Error).message}`)
    }
    const damaged = (why: string): UserError =>
      new UserError(`${this.file} is damaged (${why}): mounts are not restored from it; fix it or delete it, then mount the volumes again with \`bazil volume mount\``)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw damaged(`not JSON: ${(err as Error).message}`)
    }
    const f = parsed as Partial<MountsFile> | null
    if (!f || typeof f !== 'object') throw damaged('not an object')
    if (f.version !== 1) throw damaged(`unknown version ${JSON.stringify(f.version)}`)
    if (!Array.isArray(f.mounts)) throw damaged('no "mounts" list')
    for (const m of f.mounts) {
      if (!m || typeof m !== 'object' || typeof m.volume !== 'string' || typeof m.mountpoint !== 'string' || (m.allowOther !== undefined && typeof m.allowOther !== 'boolean') || (m.atime !== undefined && typeof m.atime !== 'boolean')) throw damaged(`bad entry ${JSON.stringify(m)}`)
    }
    return f.mounts
  }

  private writeWanted(mounts: MountInfo[]): void {
    replaceFileSync(this.file, JSON.stringify({ version: 1, mounts } satisfies MountsFile, null, 2) + '\n')
  }

  list(): MountInfo[] {
    return [...this.active.values()].map((m) => m.info)
  }

  /**
   * At start: commit spooled data that was fsynced before a crash, clear dead mounts the
   * last run left, and mount again what was mounted.
   */
  async restore(): Promise<void> {
    for (const rec of this.node.dir.listVolumes()) {
      const spool = this.node.dir.paths.spool(rec.id)
      if (!fs.existsSync(spool)) continue
      try {
        const vol = await this.node.volume(rec.name)
        const { recovered } = await (await fuse()).recoverSpool(vol, spool)
        for (const p of recovered) this.log('warn', `volume ${rec.name}: recovered fsynced data of ${p} from the spool`)
      } catch (err) {
        this.log('error', `volume ${rec.name}: spool recovery failed: ${(err as Error).message}`)
      }
    }
    let wanted: MountInfo[]
    try {
      wanted = this.readWanted()
    } catch (err) {
      // The server goes on serving everything else; the message says what to do.
      this.log('error', (err as Error).message)
      wanted = []
    }
    for (const m of wanted) {
      try {
        await (await fuse()).cleanupStaleMount(m.mountpoint)
        await this.mount(m.volume, m.mountpoint, mountOpts(m))
        this.log('info', `remounted volume ${m.volume} at ${m.mountpoint}`)
      } catch (err) {
        this.log('error', `could not remount volume ${m.volume} at ${m.mountpoint}: ${(err as Error).message}`)
      }
    }
  }

  async mount(volume: string, mountpoint: string, opts: MountOpts = {}): Promise<void> {
    const mp = path.resolve(mountpoint)
    if (this.active.has(mp)) throw new UserError(`${mp} is already a bazil mount (volume ${this.active.get(mp)?.info.volume})`)
    const st = fs.statSync(mp, { throwIfNoEntry: false })
    if (!st) throw new UserError(`mount point ${mp} does not exist: create it with mkdir`)
    if (!st.isDirectory()) throw new UserError(`mount point ${mp} is not a directory`)
    const wanted = this.readWanted() // a damaged mounts.json fails the mount before anything is mounted
    const vol = await this.node.volume(volume)
    const spoolDir = this.spoolDir(volume)
    fs.mkdirSync(spoolDir, { recursive: true, mode: 0o700 })
    const { VolumeMount } = await fuse()
    const m = new VolumeMount(vol, mp, { spoolDir, log: this.log, ...mountOpts(opts) })
    await m.mount()
    const info: MountInfo = { volume, mountpoint: mp, ...mountOpts(opts) }
    this.active.set(mp, { info, mount: m })
    this.writeWanted([...wanted.filter((w) => w.mountpoint !== mp), info])
    this.log('info', `mounted volume ${volume} at ${mp}`)
  }

  async unmount(mountpoint: string): Promise<void> {
    const mp = path.resolve(mountpoint)
    const m = this.active.get(mp)
    if (!m) throw new UserError(`${mp} is not a bazil mount of this server: see \`bazil status\``)
    await m.mount.unmount()
    this.active.delete(mp)
    try {
      this.writeWanted(this.readWanted().filter((w) => w.mountpoint !== mp))
    } catch (err) {
      this.log('error', (err as Error).message)
    }
    this.log('info', `unmounted ${mp}`)
  }

  /** On shutdown: commit open files and unmount, keeping the record so the next start remounts. */
  async closeAll(): Promise<void> {
    for (const [mp, m] of this.active) {
      try {
        await m.mount.flushAll()
        await m.mount.unmount()
        this.log('info', `unmounted ${mp}`)
      } catch (err) {
        this.log('error', `unmounting ${mp} failed: ${(err as Error).message}`)
      }
    }
    this.active.clear()
  }
}
