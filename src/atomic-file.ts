// Replacing a small file whole: write a temp file beside it, then rename it over the old one,
// so a crash leaves the old content or the new, never half of either. The one place for this
// (data-dir records, registries, checkpoints, caches).
import fs from 'node:fs'

export interface ReplaceOptions {
  /** Mode of a newly created file (default: the process's default). */
  mode?: number
  /** fsync the data before the rename (for files whose content a crash must not lose). */
  fsync?: boolean
}

function tmpOf(file: string): string {
  return `${file}.${process.pid}.tmp`
}

export function replaceFileSync(file: string, data: string | Uint8Array, opts: ReplaceOptions = {}): void {
  const tmp = tmpOf(file)
  try {
    const fd = fs.openSync(tmp, 'w', opts.mode)
    try {
      fs.writeFileSync(fd, data)
      if (opts.fsync) fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
}

export async function replaceFile(file: string, data: string | Uint8Array, opts: ReplaceOptions = {}): Promise<void> {
  const tmp = tmpOf(file)
  try {
    const fh = await fs.promises.open(tmp, 'w', opts.mode)
    try {
      await fh.writeFile(data)
      if (opts.fsync) await fh.sync()
    } finally {
      await fh.close()
    }
    await fs.promises.rename(tmp, file)
  } catch (err) {
    await fs.promises.rm(tmp, { force: true })
    throw err
  }
}
