// fallocate(2) on a mounted file (spec/fuse.md "fallocate"). Bazil stores content by hash and
// cannot reserve disk blocks for a file: the default mode makes the file at least
// offset + length long (zeros, like truncate up; the spool holds them sparse), checking that the
// disk has room for the growth now; FALLOC_FL_KEEP_SIZE alone changes nothing. Punching holes,
// zeroing, collapsing and inserting ranges are refused (EOPNOTSUPP), as on file systems without them.
import { FsError } from './errno.js'

export const FALLOC_FL_KEEP_SIZE = 0x01

/** The size the file must grow to (null: unchanged), or throws for a mode or range we refuse. */
export function fallocateSize(p: string, mode: number, offset: number, length: number, size: number): number | null {
  if ((mode & ~FALLOC_FL_KEEP_SIZE) !== 0) throw new FsError('EOPNOTSUPP', `${p}: fallocate mode 0x${mode.toString(16)} is not supported (only the default mode and KEEP_SIZE)`)
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) throw new FsError('EINVAL', `${p}: fallocate of ${length} bytes at ${offset}`)
  const end = offset + length
  if (!Number.isSafeInteger(end)) throw new FsError('EFBIG', `${p}: fallocate past the largest file size`)
  if (mode & FALLOC_FL_KEEP_SIZE || end <= size) return null
  return end
}
