/**
 * A tree's conflicts listed and settled (spec/tree.md "Conflicts", "Conflicts of owners and
 * attributes"): owners and extended attributes set concurrently (attr-conflicts.ts reads them),
 * and files with concurrent content versions. A settlement is a local edit that writes the kept
 * value again, superseding every value this writer has seen.
 */
import * as A from '@automerge/automerge'
import { type AttrConflict, isOwnerAttr, readAttrConflicts } from './attr-conflicts.js'
import { TreeError } from './errors.js'
import { encodeVersion, homeOf, recordObj, type Version } from './model.js'
import { nodeIdOf } from './links.js'
import { splitPath } from './paths.js'
import type { TreeCore } from './tree-core.js'
import type { Stat } from './view.js'

export class TreeConflicts {
  /**
   * `multi`: the nodes with several content values or tombstones, or several values of an
   * owner or attribute key, by shard (the tree keeps it as it applies changes).
   */
  constructor(private readonly core: Pick<TreeCore, 'actor' | 'shards' | 'index' | 'clock' | 'random' | 'flush' | 'edit' | 'createFile' | 'setattr' | 'setxattr'>,
    private readonly multi: ReadonlyMap<string, ReadonlySet<string>>) {}

  /**
   * Owners and extended attributes set concurrently by several writers (attr-conflicts.ts),
   * sorted by path then attribute: the root's from `meta`, the others' from the nodes in `multi`
   * (every node whose record holds such values is there), so this costs the conflicts, not the tree.
   */
  attrConflicts(): AttrConflict[] {
    this.core.flush()
    const index = this.core.index()
    const out = readAttrConflicts(A.getBackend(this.core.shards.meta()), '_root', '/', true)
    for (const set of this.multi.values()) {
      for (const id of set) {
        const n = index.node(id)
        const st = n ? index.statId(id) : null
        if (!n || !st) continue
        const h = this.core.shards.node(homeOf(n))
        out.push(...readAttrConflicts(h, recordObj(h, id), st.path))
      }
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.attribute < b.attribute ? -1 : a.attribute > b.attribute ? 1 : 0))
  }

  /**
   * Settles the conflict of owner or attribute `attribute` of the node at `path` by setting it
   * again to the value `writer` (actor hex) set: a local chown or setxattr, which supersedes
   * every value this writer has seen. EINVAL when the attribute has no conflict or no value of
   * that writer.
   */
  resolveAttr(path: string, attribute: string, writer: string): Stat {
    const index = this.core.index()
    const names = splitPath(path)
    const shown = names.length === 0 ? '/' : index.statId(index.resolve(names, path).id)?.path ?? path
    const c = this.attrConflicts().find((x) => x.path === shown && x.attribute === attribute)
    if (!c) throw new TreeError('EINVAL', path, `attribute ${attribute} has no concurrent values`)
    const v = c.values.find((x) => x.writer === writer)
    if (!v) throw new TreeError('EINVAL', path, `writer ${writer.slice(0, 8)} set no value of ${attribute}`)
    if (isOwnerAttr(attribute)) return this.core.setattr(path, { [attribute]: v.value as number })
    return this.core.setxattr(path, attribute, v.value as Buffer)
  }

  /**
   * Settles the content conflict of the file at `path` (its own path or a copy's). `keep`:
   * mine = keep this writer's latest version; theirs = keep the other writers' version (an
   * error when they wrote several different ones); both = keep mine (else the winner) under the
   * name and turn every other version into a new file named as its copy was shown; or the
   * content hash (or a prefix of 8+ hex digits) of the version to keep, as `conflicts()` shows
   * it. The kept value is written again, which supersedes every version this writer has seen;
   * versions made concurrently stay conflicts.
   */
  resolve(path: string, keep: string): { kept: Stat; created: Stat[] } {
    const { actor, clock, random } = this.core
    const index = this.core.index()
    const names = splitPath(path)
    if (names.length === 0) throw new TreeError('EINVAL', path, 'the root has no versions')
    const e = index.resolve(names, path)
    const node = index.node(nodeIdOf(e.id))
    if (!node || node.kind !== 'file' || node.versions.length < 2) throw new TreeError('EINVAL', path, 'not a file in conflict')
    const mine = node.versions.filter((v) => v.writer === actor).sort((a, b) => b.time - a.time || (a.ver < b.ver ? -1 : a.ver > b.ver ? 1 : 0))[0]
    const others = node.versions.filter((v) => v.writer !== actor)
    let chosen: Version
    if (keep === 'mine') {
      if (!mine) throw new TreeError('EINVAL', path, 'no version of this conflict is this writer\'s: use --keep=theirs or --keep=both')
      chosen = mine
    } else if (keep === 'theirs') {
      if (others.length === 0) throw new TreeError('EINVAL', path, 'every version of this conflict is this writer\'s: use --keep=mine or --keep=both')
      if (new Set(others.map((v) => v.hash)).size > 1) throw new TreeError('EINVAL', path, `other writers made ${others.length} different versions: name the one to keep by its hash (--keep=HASH, see volume conflicts) or use --keep=both`)
      chosen = others[0]
    } else if (keep === 'both') chosen = mine ?? node.versions[0]
    else if (/^[0-9a-f]{8,}$/.test(keep)) {
      const match = node.versions.filter((v) => v.hash.startsWith(keep))
      if (match.length === 0) throw new TreeError('EINVAL', path, `no version of this conflict has a hash starting with ${keep}`)
      if (new Set(match.map((v) => v.hash)).size > 1) throw new TreeError('EINVAL', path, `several versions have a hash starting with ${keep}: give more digits`)
      chosen = match[0]
    } else throw new TreeError('EINVAL', path, `keep must be mine, theirs, both or a version's hash, got ${JSON.stringify(keep)}`)
    const conflict = index.conflicts().find((c) => c.versions.some((v) => v.path === index.pathOf(e.id)))
    const copyPaths = new Map<string, string>()
    node.versions.slice(1).forEach((v, i) => copyPaths.set(v.ver, conflict?.versions[i + 1]?.path ?? ''))
    // The kept version again (same ver, hash, size, time), written by this writer.
    const kept = { ...chosen, writer: actor }
    const text = encodeVersion(kept)
    this.core.edit([[{ ...node, versions: [kept] }, (h, obj) => h.put(obj, 'content', text, 'str')]])
    const created: Stat[] = []
    if (keep === 'both') {
      const parent = index.effectiveParent(e.id)!
      for (const v of node.versions) {
        if (v.ver === chosen.ver) continue
        const base = (copyPaths.get(v.ver) || index.pathOf(e.id) + '.conflict-' + v.writer.slice(0, 8)).split('/').pop()!
        let name = base
        for (let k = 2; index.entryOf(parent, name); k++) name = `${base}~${k}`
        const version = { hash: v.hash, size: v.size, writer: actor, time: clock(), ver: random(8) }
        created.push(this.core.createFile(parent, name, { mode: node.mode, mtime: v.time }, path, version))
      }
    }
    return { kept: index.statId(e.id)!, created }
  }
}
