// Replacing a small file whole: write a temp file beside it, fsync it, rename it over the old
// one, fsync the directory. A crash (of the process or of the OS) leaves the old content or
// the new, never half of either, and once the call returns the new content survives an OS
// crash. The one place for this (data-dir records, registries, checkpoints, caches).
import fs from 'node:fs'
import path from 'node:path'

export interface ReplaceOptions {
  /** Mode of a newly created file (default: the process's default). */
  mode?: number
}

function tmpOf(file: string): string {
  return `${file}.${process.pid}.tmp`
}

/** Makes a directory entry change (create, rename, unlink) in `dir` durable. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export function replaceFileSync(file: string, data: string | Uint8Array, opts: ReplaceOptions = {}): void {
  const tmp = tmpOf(file)
  try {
    const fd = fs.openSync(tmp, 'w', opts.mode)
    try {
      fs.writeFileSync(fd, data)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
  fsyncDirSync(path.dirname(file))
}

export async function replaceFile(file: string, data: string | Uint8Array, opts: ReplaceOptions = {}): Promise<void> {
  const tmp = tmpOf(file)
  try {
    const fh = await fs.promises.open(tmp, 'w', opts.mode)
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await fs.promises.rename(tmp, file)
  } catch (err) {
    await fs.promises.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(path.dirname(file))
}
