/**
 * Hard links (issue 13; spec/tree.md "Hard links" and rule 1 "Names of a linked node"): a node
 * that is not a directory may have several names. Its first name is its record's `loc`; each
 * further name is a key `ln.<lid>` holding a loc, and a name's removal is a key `lx.<nid>`
 * (`nid`: `loc` or a lid). The view places each name as an entry of its own: the first under
 * the node id, a further one under `<node id>+<lid>` holding the node's record.
 */
import { FIRST_NAME as FIRST, NAME_PREFIX, REMOVAL_PREFIX, isAlive, type Loc, type NodeName, type RawNode, type Removal } from './model.js'

/** Separates a node id from a lid in the id of a further name's index entry. */
const SEP = '+'

/** The index entry id of name `nid` of node `id`. */
export function entryId(id: string, nid: string): string {
  return nid === FIRST ? id : `${id}${SEP}${nid}`
}

/** The node id of an index entry id (a node id, or `<node id>+<lid>`), and conflict copy ids (`<entry>:<ver>`) too. */
export function nodeIdOf(entry: string): string {
  const colon = entry.indexOf(':')
  const e = colon < 0 ? entry : entry.slice(0, colon)
  const plus = e.indexOf(SEP)
  return plus < 0 ? e : e.slice(0, plus)
}

/** The name id an index entry places: `loc` for a node id, the lid of `<node id>+<lid>`. */
export function nameIdOf(entry: string): string {
  const plus = entry.indexOf(SEP)
  return plus < 0 ? FIRST : entry.slice(plus + 1)
}

/** Whether `entry` is a further name's entry (not a node's own). */
export function isNameEntry(entry: string): boolean { return entry.includes(SEP) }

/** The loc of the name that index entry `r` places (r.id: node id or `<node id>+<lid>`). */
export function locOf(r: RawNode): Loc {
  if (!r.links || !isNameEntry(r.id)) return r.loc
  const lid = nameIdOf(r.id)
  return r.links.find((n) => n.lid === lid)?.loc ?? r.loc
}

/** Every name of a node: its first, then its further ones in lid order. */
export function namesOf(n: RawNode): { nid: string; loc: Loc; gone: Removal | null }[] {
  const out = [{ nid: FIRST, loc: n.loc, gone: n.gone ?? null }]
  for (const l of n.links ?? []) out.push({ nid: l.lid, loc: l.loc, gone: l.gone })
  return out
}

/**
 * The names of node `n` that are alive (rule 1): none if the node is not; else those not
 * removed, or, when every name is removed, the one whose removal is latest by (time, writer,
 * name id; `loc` first).
 */
export function aliveNames(n: RawNode): string[] {
  if (!isAlive(n)) return []
  const names = namesOf(n)
  const kept = names.filter((x) => x.gone === null).map((x) => x.nid)
  if (kept.length > 0) return kept
  // Latest removal by (time, writer, name id), the first name's id sorting before every lid.
  const rank = (x: { nid: string; gone: Removal | null }): [number, string, string] => [x.gone!.time, x.gone!.writer, x.nid === FIRST ? '' : x.nid]
  let best = names[0]
  for (const x of names.slice(1)) {
    const a = rank(x), b = rank(best)
    if (a[0] > b[0] || (a[0] === b[0] && (a[1] > b[1] || (a[1] === b[1] && a[2] > b[2])))) best = x
  }
  return [best.nid]
}

/** Whether index entry `r` (a node's own, or a further name's) is alive: its name is among the node's alive names. */
export function entryAlive(r: RawNode): boolean {
  if (!r.links && r.gone === undefined) return isAlive(r)
  return aliveNames(r).includes(nameIdOf(r.id))
}

/** The node's link count: its alive names (at least 1 for a shown node). */
export function nlinkOf(n: RawNode): number {
  if (!n.links && n.gone === undefined) return 1
  return Math.max(1, aliveNames(n).length)
}

/** The latest time among a node's names' locs and removals (link and unlink change ctime). */
export function namesTime(n: RawNode): number {
  let t = n.loc.time
  if (n.gone) t = Math.max(t, n.gone.time)
  for (const l of n.links ?? []) t = Math.max(t, l.loc.time, l.gone?.time ?? 0)
  return t
}

/** The index entry ids of a node's further names (its own entry is its id). */
export function nameEntries(n: RawNode | null | undefined): string[] {
  return n?.links ? n.links.map((l) => entryId(n.id, l.lid)) : []
}

/** A record state with name `nid` moved to `loc`. */
export function withLoc(n: RawNode, nid: string, loc: Loc): RawNode {
  if (nid === FIRST) return { ...n, loc }
  return { ...n, links: n.links!.map((l) => (l.lid === nid ? { ...l, loc } : l)) }
}

/** A record state with name `nid` removed. */
export function withRemoval(n: RawNode, nid: string, gone: Removal): RawNode {
  if (nid === FIRST) return { ...n, gone }
  return { ...n, links: n.links!.map((l) => (l.lid === nid ? { ...l, gone } : l)) }
}

/** A record state with a further name added. */
export function withName(n: RawNode, name: NodeName): RawNode {
  return { ...n, links: [...(n.links ?? []), name].sort((a, b) => (a.lid < b.lid ? -1 : a.lid > b.lid ? 1 : 0)) }
}

/** The record key of name `nid`'s loc. */
export function nameKey(nid: string): string { return nid === FIRST ? 'loc' : NAME_PREFIX + nid }
/** The record key of name `nid`'s removal. */
export function removalKey(nid: string): string { return REMOVAL_PREFIX + nid }
