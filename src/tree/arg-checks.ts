/** Checks of the arguments of local operations: a bad one is EINVAL naming the path, before anything is edited. */
import { TreeError } from './errors.js'
import { isHex } from './model.js'
import type { ContentRef } from './view.js'

/** A mode as stored (its permission bits), or undefined when not given. */
export function checkMode(mode: number | undefined, path: string): number | undefined {
  if (mode === undefined) return undefined
  if (!Number.isInteger(mode) || mode < 0) throw new TreeError('EINVAL', path, `bad mode ${mode}`)
  return mode & 0o7777
}

export function checkTime(t: number | undefined, path: string): number | undefined {
  if (t === undefined) return undefined
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new TreeError('EINVAL', path, `bad time ${t}`)
  return t
}

export function checkContent(c: ContentRef, path: string): void {
  if (!c || typeof c.hash !== 'string' || !isHex(c.hash) || c.hash.length > 128) throw new TreeError('EINVAL', path, 'content hash must be lowercase hex')
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new TreeError('EINVAL', path, `bad content size ${c.size}`)
}
