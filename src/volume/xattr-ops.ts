// Extended attributes of a volume's nodes (the tree's: spec/tree.md "Extended attributes"), as
// volume operations with their audit ops (`setxattr`/`removexattr`: path, the attribute's
// name as `target`, a set's value length as `size`; never the value).
import type { Stat } from '../tree/index.js'
import type { Volume } from './volume.js'

/** Every attribute of the node at `path` (of snapshot `snapshot` when given), sorted by name. */
export function xattrsOf(volume: Volume, path: string, snapshot?: string): ReadonlyMap<string, Buffer> {
  return volume.tree.xattrs(path, snapshot)
}

/** Sets attribute `name` (flags: XATTR_CREATE, XATTR_REPLACE as setxattr(2)). */
export function setXattr(volume: Volume, path: string, name: string, value: Uint8Array, flags = 0): Stat {
  return volume.mutate(
    (t) => t.setxattr(path, name, value, flags),
    (st) => ({ op: 'setxattr', path: st.path, target: name, size: value.length })
  )
}

export function removeXattr(volume: Volume, path: string, name: string): Stat {
  return volume.mutate(
    (t) => t.removexattr(path, name),
    (st) => ({ op: 'removexattr', path: st.path, target: name })
  )
}
