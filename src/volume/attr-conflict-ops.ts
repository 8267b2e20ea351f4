// Conflicts of owners and extended attributes (spec/tree.md "Conflicts of owners and
// attributes"), as volume operations: the listing names each value's writer as the node its log
// is bound to, and a resolution is a logged op (audit op `resolve`: path, kind `attr`, the
// attribute's name as `target`) that replicates like any chown or setxattr.
import { encodeKey } from '../crypto.js'
import type { AttrValue } from '../tree/attr-conflicts.js'
import { TreeError } from '../tree/errors.js'
import type { Stat } from '../tree/index.js'
import type { Volume } from './volume.js'

export interface AttrValueInfo {
  /** The node the writer's log is bound to (z-base-32), null while its binding block is not local. */
  node: string | null
  /** The writer log key (z-base-32). */
  log: string
  /** Writer log key, hex (the tree's actor). */
  writer: string
  mine: boolean
  value: number | Buffer
  won: boolean
}
export interface VolumeAttrConflict { path: string; attribute: string; values: AttrValueInfo[] }

async function valueInfo(volume: Volume, v: AttrValue): Promise<AttrValueInfo> {
  const log = volume.writers.get(v.writer)
  const node = log ? await log.node().catch(() => null) : null
  return { node: node ? encodeKey(node) : null, log: encodeKey(Buffer.from(v.writer, 'hex')), writer: v.writer, mine: v.writer === volume.log.key.toString('hex'), value: v.value, won: v.won }
}

/** Every owner and attribute set concurrently, sorted by path then attribute, the shown value first. */
export async function attrConflicts(volume: Volume): Promise<VolumeAttrConflict[]> {
  const out: VolumeAttrConflict[] = []
  for (const c of volume.tree.attrConflicts()) {
    const values: AttrValueInfo[] = []
    for (const v of c.values) values.push(await valueInfo(volume, v))
    out.push({ path: c.path, attribute: c.attribute, values })
  }
  return out
}

/**
 * Which writer's value `keep` names among `values`: `mine`, `theirs` (the one other writer's,
 * EINVAL when others set different values), or a prefix (8+ characters) of a writer's node key
 * or log key as the listing shows them.
 */
export function pickValue(values: readonly AttrValueInfo[], keep: string, path: string, attribute: string): AttrValueInfo {
  const fail = (msg: string): TreeError => new TreeError('EINVAL', path, `${attribute}: ${msg}`)
  if (keep === 'mine') {
    const v = values.find((x) => x.mine)
    if (!v) throw fail('this node set no value (use theirs or a writer)')
    return v
  }
  if (keep === 'theirs') {
    const others = values.filter((x) => !x.mine)
    if (others.length === 0) throw fail('no other writer set a value')
    if (new Set(others.map((x) => JSON.stringify(jsonValue(x.value)))).size > 1) throw fail(`${others.length} other writers set different values: name the one to keep by its writer (see volume conflicts)`)
    return others[0]
  }
  if (keep.length < 8) throw fail(`--keep must be mine, theirs or 8+ characters of a writer's node or log key, got "${keep}"`)
  const hits = values.filter((x) => x.node?.startsWith(keep) || x.log.startsWith(keep))
  if (hits.length === 0) throw fail(`no value set by a writer "${keep}…"`)
  if (hits.length > 1) throw fail(`"${keep}" names ${hits.length} writers: give more characters`)
  return hits[0]
}

/** Settles the conflict of `attribute` (uid, gid or an extended attribute's name) of the node at `path`: keeps the value `keep` names (pickValue). */
export async function resolveAttr(volume: Volume, path: string, attribute: string, keep: string): Promise<Stat> {
  const shown = volume.tree.stat(path).path
  const c = (await attrConflicts(volume)).find((x) => x.path === shown && x.attribute === attribute)
  if (!c) throw new TreeError('EINVAL', path, `${attribute} has no concurrent values (see volume conflicts)`)
  const v = pickValue(c.values, keep, path, attribute)
  return volume.mutate(
    (t) => t.resolveAttr(path, attribute, v.writer),
    (st) => ({ op: 'resolve', path: st.path, kind: 'attr', target: attribute })
  )
}

/** A value in `--json`: an owner id as a number, an attribute's bytes as base64 (and as text when valid UTF-8). */
export function jsonValue(v: number | Buffer): number | { base64: string; text?: string } {
  if (typeof v === 'number') return v
  const text = v.toString('utf8')
  return Buffer.from(text, 'utf8').equals(v) ? { base64: v.toString('base64'), text } : { base64: v.toString('base64') }
}
