import { TreeError } from './errors.js'

export const MAX_NAME_BYTES = 255

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether `s` is well-formed Unicode (no lone surrogate): only such strings have one UTF-8 form. */
export function isWellFormed(s: string): boolean { return !LONE_SURROGATE.test(s) }

/** Why `name` cannot be a directory entry name, or null if it can. */
export function badName(name: string): string | null {
  if (name === '') return 'empty name'
  if (name === '.' || name === '..') return `name "${name}" is reserved`
  if (name.includes('/')) return 'name contains "/"'
  if (name.includes('\0')) return 'name contains NUL'
  // Lone surrogates all become U+FFFD in UTF-8: two such names would be one name on disk.
  if (!isWellFormed(name)) return 'name is not well-formed Unicode (lone surrogate)'
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `name longer than ${MAX_NAME_BYTES} bytes`
  return null
}

/**
 * Splits a volume path into its names. A leading and a single trailing '/' are allowed;
 * '' or '/' is the root (no names). Anything else malformed is EINVAL naming the path.
 */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw new TreeError('EINVAL', String(path), 'path is not a string')
  let p = path.startsWith('/') ? path.slice(1) : path
  if (p.endsWith('/')) p = p.slice(0, -1)
  if (p === '') return []
  const names = p.split('/')
  for (const name of names) {
    const bad = badName(name)
    if (bad !== null) throw new TreeError('EINVAL', path, bad)
  }
  return names
}

/** The canonical form of a path: leading '/', no trailing '/', root is '/'. */
export function joinPath(names: readonly string[]): string {
  return '/' + names.join('/')
}

export function childPath(parentPath: string, name: string): string {
  return parentPath === '/' ? '/' + name : parentPath + '/' + name
}
