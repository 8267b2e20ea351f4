/**
 * Extended attributes of a node (issue 13; spec/tree.md "Extended attributes"): one record key
 * `x.NAME` per attribute, its value Automerge bytes. A set is an assignment of the key, a
 * removal the deletion of the key; concurrent sets of one name resolve to the Automerge winner
 * on every replica. The derived index carries only whether a node has any (RawNode.xattrs):
 * values are read from the shard document, so a node's row stays small and a getxattr of a
 * node without attributes (the kernel asks for security.capability at every write) answers
 * from the index.
 */
import { TreeError } from './errors.js'
import type { Handle } from './automerge-handle.js'

/** Record key prefix of an extended attribute. */
export const XATTR_PREFIX = 'x.'
/** `meta` key prefix of an extended attribute of the root (which has no record). */
export const ROOT_XATTR_PREFIX = 'root.x.'
/** Longest name, bytes (Linux XATTR_NAME_MAX). */
export const MAX_XATTR_NAME_BYTES = 255
/** Largest value, bytes (Linux XATTR_SIZE_MAX). */
export const MAX_XATTR_VALUE_BYTES = 64 * 1024
/** Names (with their NUL) and values of one node together, bytes: past it a set is ENOSPC. */
export const MAX_XATTR_NODE_BYTES = 256 * 1024
/** The list of one node's names, NUL-terminated (Linux XATTR_LIST_MAX): past it a set is ENOSPC. */
export const MAX_XATTR_LIST_BYTES = 64 * 1024
/** setxattr(2) flags. */
export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2

/** Namespaces stored; `system.` (POSIX ACLs, and the rest) is refused with EOPNOTSUPP. */
const NAMESPACES = ['user.', 'trusted.', 'security.']

export function xattrKey(name: string): string { return XATTR_PREFIX + name }

/** The attribute name of record key `key`, or null when the key is not a valid attribute's. */
export function xattrNameOf(key: string): string | null {
  if (!key.startsWith(XATTR_PREFIX)) return null
  const name = key.slice(XATTR_PREFIX.length)
  return badXattrName(name) === null ? name : null
}

/** The attribute name of `meta` key `key`, or null when the key is not a valid root attribute's. */
export function rootXattrNameOf(key: string): string | null {
  return key.startsWith(ROOT_XATTR_PREFIX) ? xattrNameOf(key.slice('root.'.length)) : null
}

/** Why `name` cannot be an attribute's, or null. */
export function badXattrName(name: string): string | null {
  if (name.length === 0) return 'empty name'
  if (Buffer.byteLength(name) > MAX_XATTR_NAME_BYTES) return `name longer than ${MAX_XATTR_NAME_BYTES} bytes`
  if (name.includes('\0')) return 'name contains NUL'
  if (!NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) return 'namespace not supported (user., trusted., security.)'
  return null
}

/** Throws the errno Linux gives for an attribute name we do not store. */
export function checkXattrName(name: string, path: string): void {
  const bad = badXattrName(name)
  if (bad === null) return
  if (Buffer.byteLength(name) > MAX_XATTR_NAME_BYTES) throw new TreeError('ERANGE', path, `xattr ${bad}`)
  throw new TreeError(name.length === 0 ? 'EINVAL' : 'EOPNOTSUPP', path, `xattr ${JSON.stringify(name.slice(0, 64))}: ${bad}`)
}

/** A value as stored: bytes of at most MAX_XATTR_VALUE_BYTES (anything else in a record is ignored). */
export function isXattrValue(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length <= MAX_XATTR_VALUE_BYTES
}

/** Whether a record's materialized map holds an attribute (what RawNode.xattrs records). */
export function recordHasXattrs(m: Record<string, unknown>): boolean {
  for (const k in m) if (k.startsWith(XATTR_PREFIX) && xattrNameOf(k) !== null && isXattrValue(m[k])) return true
  return false
}

/** One attribute's value in record `obj` (at `heads`), or null. */
export function readXattr(h: Handle, obj: string, name: string, heads?: string[]): Buffer | null {
  const v = h.getWithType(obj, xattrKey(name), heads)
  if (!v || v[0] !== 'bytes' || !isXattrValue(v[1])) return null
  return Buffer.from(v[1] as Uint8Array)
}

/** Every attribute of record `obj` (at `heads`), by name, sorted by name. */
export function readXattrs(h: Handle, obj: string, heads?: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const k of h.keys(obj, heads)) {
    const name = xattrNameOf(k)
    if (name === null) continue
    const v = readXattr(h, obj, name, heads)
    if (v !== null) out.set(name, v)
  }
  return new Map([...out].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)))
}

/** Names of attributes set concurrently (several values; the winner shows), sorted. */
export function conflictedXattrs(h: Handle, obj: string): string[] {
  const out: string[] = []
  for (const k of h.keys(obj)) {
    const name = xattrNameOf(k)
    if (name !== null && h.getAll(obj, k).length > 1) out.push(name)
  }
  return out.sort()
}

/**
 * Checks a set of `name` to `value` with setxattr `flags` against the node's current
 * attributes `now`; throws the errno Linux gives (EEXIST, ENODATA, E2BIG, ENOSPC).
 */
export function checkSet(path: string, now: ReadonlyMap<string, Buffer>, name: string, value: Uint8Array, flags: number): void {
  checkXattrName(name, path)
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) throw new TreeError('EINVAL', path, `xattr flags 0x${flags.toString(16)}`)
  if (value.length > MAX_XATTR_VALUE_BYTES) throw new TreeError('E2BIG', path, `xattr value of ${value.length} bytes is over ${MAX_XATTR_VALUE_BYTES}`)
  const has = now.has(name)
  if (flags & XATTR_CREATE && has) throw new TreeError('EEXIST', path, `xattr ${name} exists`)
  if (flags & XATTR_REPLACE && !has) throw new TreeError('ENODATA', path, `no xattr ${name}`)
  let bytes = 0
  let list = 0
  for (const [n, v] of now) {
    if (n === name) continue
    const nb = Buffer.byteLength(n) + 1
    list += nb
    bytes += nb + v.length
  }
  const nb = Buffer.byteLength(name) + 1
  if (list + nb > MAX_XATTR_LIST_BYTES || bytes + nb + value.length > MAX_XATTR_NODE_BYTES) {
    throw new TreeError('ENOSPC', path, `no room for xattr ${name}: a node holds at most ${MAX_XATTR_NODE_BYTES} bytes of names and values`)
  }
}
