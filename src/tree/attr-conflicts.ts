/**
 * Concurrent values of a node's owners and extended attributes (issue 13; spec/tree.md
 * "Conflicts of owners and attributes"). Two writers' concurrent `chown` or `setxattr` of one
 * node leave several values of the key (`uid`, `gid`, `x.NAME`; the root's: `meta` keys
 * `root.uid`, `root.gid`, `root.x.NAME`); every replica shows the same Automerge winner (the
 * value whose op id is greatest by counter, then actor), and this module lists all of them, so
 * that the user sees what was lost and can keep another (a local set of the key settles it).
 */
import type { Handle } from './automerge-handle.js'
import { MOUNTER, isOwner } from './owners.js'
import { ROOT_XATTR_PREFIX, XATTR_PREFIX, isXattrValue, xattrNameOf } from './xattrs.js'

/** The attributes whose concurrent values are listed: owners, and each extended attribute by its name. */
export type AttrName = 'uid' | 'gid' | string

/** One writer's value of a conflicted attribute. */
export interface AttrValue {
  /** The actor (writer log key, hex) whose op set this value. */
  writer: string
  /** An owner id (MOUNTER: the mounting user) or an attribute's bytes. */
  value: number | Buffer
  /** Whether this is the value every replica shows. */
  won: boolean
}

export interface AttrConflict {
  path: string
  attribute: AttrName
  /** Every concurrent value, the shown one first, then by writer. */
  values: AttrValue[]
}

/** The attribute a record key names (`uid`, `gid`, or an attribute name for `x.NAME`), or null. */
export function attrOfKey(key: string): AttrName | null {
  if (key === 'uid' || key === 'gid') return key
  return key.startsWith(XATTR_PREFIX) ? xattrNameOf(key) : null
}

/** The attribute a `meta` key of the root names, or null. */
export function attrOfRootKey(key: string): AttrName | null {
  if (key === 'root.uid' || key === 'root.gid') return key.slice('root.'.length)
  return key.startsWith(ROOT_XATTR_PREFIX) ? attrOfKey(key.slice('root.'.length)) : null
}

/** The record key of attribute `attr` (a root's: prefixed `root.`). */
export function keyOfAttr(attr: AttrName, root: boolean): string {
  const key = attr === 'uid' || attr === 'gid' ? attr : XATTR_PREFIX + attr
  return root ? 'root.' + key : key
}

/** Whether `attr` names an owner key (its values are ids, set by chown). */
export function isOwnerAttr(attr: AttrName): attr is 'uid' | 'gid' { return attr === 'uid' || attr === 'gid' }

/**
 * Whether any of `keys` of record `obj` holds several values (keys that name no attribute are
 * skipped): what keeps a node among those re-read and listed (Tree's `multi`).
 */
export function anyAttrConflicted(h: Handle, obj: string, keys: Iterable<string>): boolean {
  for (const k of keys) if (attrOfKey(k) !== null && h.getAll(obj, k).length > 1) return true
  return false
}

/**
 * Whether node `id`'s record (`obj`, found when null; `materialized`: its winners) holds several
 * values of an owner or attribute key, asking Automerge only about such keys the record has
 * (`conflicted`: of those, the ones a patch flagged as conflicted).
 */
export function recordAttrConflicted(h: Handle, id: string, obj: string | null, materialized: Record<string, unknown>, conflicted?: ReadonlySet<string>): boolean {
  const keys = (conflicted ? [...conflicted] : Object.keys(materialized)).filter((k) => attrOfKey(k) !== null)
  if (keys.length === 0) return false
  if (obj === null) {
    const top = h.getWithType('_root', id)
    if (!top || top[0] !== 'map') return false
    obj = top[1] as string
  }
  return anyAttrConflicted(h, obj, keys)
}

/** Op ids `counter@actor` in Automerge's order (counter, then actor): the greatest wins. */
function opOrder(a: string, b: string): number {
  const [ca, aa] = splitOp(a)
  const [cb, ab] = splitOp(b)
  return ca - cb || (aa < ab ? -1 : aa > ab ? 1 : 0)
}
function splitOp(id: string): [number, string] {
  const at = id.indexOf('@')
  return [Number(id.slice(0, at)), id.slice(at + 1)]
}

/**
 * The conflicted attributes of object `obj` of `h` (a record, or `meta`'s root map for the root
 * with `root`), each with its values; values that are not a valid owner or attribute are left
 * out (a reader ignores them), and an attribute left with one value is not a conflict.
 */
export function readAttrConflicts(h: Handle, obj: string, path: string, root = false): AttrConflict[] {
  const out: AttrConflict[] = []
  for (const key of h.keys(obj)) {
    const attr = root ? attrOfRootKey(key) : attrOfKey(key)
    if (attr === null) continue
    const all = h.getAll(obj, key)
    if (all.length < 2) continue
    const owner = isOwnerAttr(attr)
    const vals: { writer: string; value: number | Buffer; op: string }[] = []
    for (const v of all) {
      const op = v[v.length - 1] as string
      if (owner && (v[0] === 'int' || v[0] === 'uint' || v[0] === 'f64') && isOwner(v[1])) vals.push({ writer: splitOp(op)[1], value: v[1] as number, op })
      else if (!owner && v[0] === 'bytes' && isXattrValue(v[1])) vals.push({ writer: splitOp(op)[1], value: Buffer.from(v[1] as Uint8Array), op })
    }
    if (vals.length < 2) continue
    const top = vals.reduce((a, b) => (opOrder(a.op, b.op) >= 0 ? a : b))
    const values = vals.map((v) => ({ writer: v.writer, value: v.value, won: v === top }))
      .sort((a, b) => Number(b.won) - Number(a.won) || (a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0))
    out.push({ path, attribute: attr, values })
  }
  return out.sort((a, b) => (a.attribute < b.attribute ? -1 : a.attribute > b.attribute ? 1 : 0))
}

/** An owner value as a person reads it. */
export function showOwner(v: number): string { return v === MOUNTER ? 'the mounting user (-1)' : String(v) }
