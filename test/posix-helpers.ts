// What the posix-* tests share: a node with one volume mounted in a temp dir, and a shell in it.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { VolumeMount, type MountOptions } from '../src/mount/index.js'
import { tempDir } from './helpers.js'

const run = promisify(execFile)
export const haveFuse = fs.existsSync('/dev/fuse')

/** Runs a bash script in `dir` (a child process: this process answers the mount's requests). */
export async function sh(dir: string, script: string): Promise<string> {
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', `cd ${JSON.stringify(dir)}\n${script}`])
  return stdout
}

/** Volume `v` of a new node, mounted at `mnt`; `reopen` closes and opens it all again. */
export class MountedVolume {
  node!: Node
  vol!: Volume
  mount!: VolumeMount
  readonly mnt: string
  private readonly tmp: { dir: string; cleanup: () => void }

  private opts: Partial<MountOptions> = {}

  private constructor(prefix: string) {
    this.tmp = tempDir(prefix)
    this.mnt = path.join(this.tmp.dir, 'mnt')
    fs.mkdirSync(this.mnt)
  }

  /** `opts`: more mount options (allowOther). */
  static async open(prefix: string, opts: Partial<MountOptions> = {}): Promise<MountedVolume> {
    const m = new MountedVolume(prefix)
    m.opts = opts
    m.node = await Node.open(DataDir.create(path.join(m.tmp.dir, 'data')))
    m.vol = await m.node.createVolume('v', 'default')
    await m.mountIt()
    return m
  }

  private async mountIt(): Promise<void> {
    this.mount = new VolumeMount(this.vol, this.mnt, { ...this.opts, spoolDir: path.join(this.tmp.dir, 'spool') })
    await this.mount.mount()
  }

  async reopen(): Promise<void> {
    await this.mount.unmount()
    await this.node.close()
    this.node = await Node.open(DataDir.open(path.join(this.tmp.dir, 'data')))
    this.vol = await this.node.volume('v')
    await this.mountIt()
  }

  async close(): Promise<void> {
    await this.mount?.unmount().catch(() => {})
    await this.node?.close().catch(() => {})
    this.tmp.cleanup()
  }
}
