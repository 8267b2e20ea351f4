/**
 * A tree's extended attributes as operations (spec/tree.md "Extended attributes"; the record
 * format is xattrs.ts): reading them now or in a snapshot, setting and removing them (ctime
 * set), and the names set concurrently.
 */
import * as A from '@automerge/automerge'
import { TreeError } from './errors.js'
import { MAX_SHARD_DIGITS, META_SHARD, ROOT_CTIME_KEY, ROOT_ID, homeOf, putTime, recordObj, type RawNode } from './model.js'
import { splitPath } from './paths.js'
import { nodeIdOf } from './links.js'
import type { TreeCore } from './tree-core.js'
import type { TreeSnapshots } from './tree-snapshots.js'
import type { Stat } from './view.js'
import { ROOT_XATTR_PREFIX, checkSet, checkXattrName, conflictedXattrs, isXattrValue, readXattrs, rootXattrNameOf, xattrKey } from './xattrs.js'

export class TreeXattrs {
  /**
   * `edits`: every attribute of the nodes whose attributes were set or removed since the last
   * flush (their records do not show it yet); the tree's, which clears it at each flush.
   */
  constructor(private readonly core: Pick<TreeCore, 'shards' | 'index' | 'clock' | 'flush' | 'edit' | 'changeMeta' | 'readRootAttrs' | 'writable' | 'unfold'>,
    private readonly snapshots: TreeSnapshots, private readonly edits: Map<string, Map<string, Buffer>>) {}

  /** Every extended attribute of the node at `path` (or of a snapshot's node), sorted by name. */
  list(path: string, snapshot?: string): ReadonlyMap<string, Buffer> {
    if (snapshot !== undefined) return this.at(snapshot, path)
    const names = splitPath(path)
    if (names.length === 0) return rootXattrs(this.core.shards.meta())
    const now = this.of(nodeIdOf(this.core.index().resolve(names, path).id))
    return new Map([...now].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)))
  }

  /** The node's attributes now: as edited since the last flush, else read from its record when the index says it has any. */
  private of(id: string): Map<string, Buffer> {
    const edited = this.edits.get(id)
    if (edited) return edited
    const n = this.core.index().node(id)
    if (!n?.xattrs) return new Map()
    const h = this.core.shards.node(homeOf(n))
    return readXattrs(h, recordObj(h, id))
  }

  private at(snapshot: string, path: string): Map<string, Buffer> {
    const st = this.snapshots.at(snapshot).stat(path)
    const heads = this.snapshots.headsOf(snapshot) ?? {}
    const shards = this.core.shards
    if (st.id === ROOT_ID) return heads[META_SHARD] ? rootXattrs(A.view(shards.meta(), heads[META_SHARD]) as Record<string, unknown>) : new Map()
    const id = st.id.split(':')[0]
    // The shallowest shard on the id's path that held its record then.
    for (let len = 2; len <= MAX_SHARD_DIGITS; len++) {
      const hs = heads[id.slice(0, len)]
      if (!hs) continue
      const h = shards.node(id.slice(0, len))
      const top = h.getWithType('_root', id, hs)
      if (top && top[0] === 'map') return readXattrs(h, top[1] as string, hs)
    }
    return new Map()
  }

  /** Sets attribute `name` (value: a Buffer) or removes it (null; ENODATA when there is none of that name); sets ctime. */
  change(path: string, name: string, flags: number, value: Buffer | null): Stat {
    const { index, clock } = this.core
    const names = splitPath(path)
    const root = names.length === 0
    const e = root ? null : index().resolve(names, path)
    if (e) this.core.writable(e, path)
    const now = root ? rootXattrs(this.core.shards.meta()) : this.of(nodeIdOf(e!.id))
    if (value !== null) checkSet(path, now, name, value, flags)
    else {
      checkXattrName(name, path)
      if (!now.has(name)) throw new TreeError('ENODATA', path, `no xattr ${JSON.stringify(name.slice(0, 64))}`)
    }
    const ctime = clock()
    if (root) {
      this.core.changeMeta((m) => {
        if (value !== null) (m as Record<string, unknown>)[ROOT_XATTR_PREFIX + name] = new Uint8Array(value)
        else delete m[ROOT_XATTR_PREFIX + name]
        m[ROOT_CTIME_KEY] = ctime
      })
      this.core.readRootAttrs()
      return index().stat('/')
    }
    const id = nodeIdOf(e!.id)
    const next = new Map(now)
    if (value !== null) next.set(name, value)
    else next.delete(name)
    const old = index().node(id)!
    const raw: RawNode = { ...old, ctime }
    if (next.size > 0) raw.xattrs = true
    else delete raw.xattrs
    // Never folded into a creation written from the node's state: the values are not in it.
    this.core.unfold(id)
    const key = xattrKey(name)
    this.core.edit([[raw, (h, obj) => {
      if (value !== null) h.put(obj, key, new Uint8Array(value), 'bytes')
      else h.delete(obj, key)
      putTime(h, obj, 'ctime', ctime)
    }, (value?.length ?? 0) + key.length + 64]])
    this.edits.set(id, next)
    return index().statId(e!.id)!
  }

  /** Names of the node's attributes set concurrently by several writers (every replica shows the same winner). */
  conflicted(path: string): string[] {
    const names = splitPath(path)
    if (names.length === 0) return []
    this.core.flush()
    const index = this.core.index()
    const n = index.node(index.resolve(names, path).id)
    if (!n?.xattrs) return []
    const h = this.core.shards.node(homeOf(n))
    return conflictedXattrs(h, recordObj(h, n.id))
  }
}

/** The root's attributes, from `meta` (now or at a snapshot's heads), sorted by name. */
function rootXattrs(meta: Record<string, unknown>): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const k of Object.keys(meta).sort()) {
    const name = rootXattrNameOf(k)
    const v = meta[k]
    if (name !== null && isXattrValue(v)) out.set(name, Buffer.from(v))
  }
  return out
}
