// Small real file systems for durability tests and the torture suite: a tmpfs with a size
// limit (fills up for full-disk tests) and an ext4 on a loop device whose backing image can
// be copied while mounted (a crash image: what the disk holds at that instant, without what
// only the page cache holds). Both need root; callers skip loudly where they cannot be made.
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

function hasCommand(cmd: string): boolean {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => fs.existsSync(`${d}/${cmd}`))
}

/** Why small file systems cannot be made here (null: they can). */
export function smallFsUnavailable(kind: 'tmpfs' | 'loop'): string | null {
  if (process.getuid?.() !== 0) return 'not root'
  if (kind === 'loop') {
    for (const c of ['losetup', 'mkfs.ext4', 'mount', 'umount']) if (!hasCommand(c)) return `${c} is missing`
    if (!fs.existsSync('/dev/loop-control')) return '/dev/loop-control is missing'
  }
  return null
}

export interface SmallFs {
  dir: string
  /** Unmounts (and detaches the loop device); idempotent. */
  destroy(): Promise<void>
}

/** A tmpfs of `mib` MiB mounted at `dir` (created). */
export async function mountTmpfs(dir: string, mib: number): Promise<SmallFs> {
  fs.mkdirSync(dir, { recursive: true })
  await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, 'tmpfs', dir])
  let done = false
  return {
    dir,
    async destroy() {
      if (done) return
      done = true
      await run('umount', ['-l', dir]).catch(() => {})
    },
  }
}

export interface LoopFs extends SmallFs {
  image: string
  /** Copies the backing image as it is on the "disk" now (what survives an OS crash now). */
  crashImage(to: string): Promise<void>
}

/** Mounts an image file (ext4) through a loop device at `dir`. */
export async function mountImage(image: string, dir: string): Promise<LoopFs> {
  fs.mkdirSync(dir, { recursive: true })
  const { stdout } = await run('losetup', ['-f', '--show', image])
  const dev = stdout.trim()
  try {
    await run('mount', ['-t', 'ext4', dev, dir])
  } catch (err) {
    await run('losetup', ['-d', dev]).catch(() => {})
    throw err
  }
  let done = false
  return {
    dir,
    image,
    async crashImage(to: string) {
      await run('cp', ['--sparse=always', image, to])
    },
    async destroy() {
      if (done) return
      done = true
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]).catch(() => {}))
      await run('losetup', ['-d', dev]).catch(() => {})
    },
  }
}

/** A fresh ext4 of `mib` MiB in `image`, mounted at `dir`. */
export async function makeLoopFs(image: string, dir: string, mib: number): Promise<LoopFs> {
  await run('truncate', ['-s', `${mib}M`, image])
  await run('mkfs.ext4', ['-q', '-F', image])
  return mountImage(image, dir)
}

/** Writes `files` files of `bytes` random bytes (f0, f1, ...) into `dir`; returns name -> sha256 hex. */
export function writeRandomFiles(dir: string, files: number, bytes: number): Map<string, string> {
  fs.mkdirSync(dir, { recursive: true })
  const sums = new Map<string, string>()
  for (let i = 0; i < files; i++) {
    const data = crypto.randomBytes(bytes)
    fs.writeFileSync(path.join(dir, `f${i}`), data)
    sums.set(`f${i}`, crypto.createHash('sha256').update(data).digest('hex'))
  }
  return sums
}
