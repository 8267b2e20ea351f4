// What a volume references (spec/gc.md, "Reachability"): every object address that the live
// tree (each file's every version, conflict copies included), and every kept snapshot, needs:
// each file's manifest nodes and the chunks they name. GC keeps exactly these; pins and
// `where`/`du` use the same walk for a path.
import type { Cas } from './cas.js'
import type { ManifestNode } from './manifest.js'
import { PackTable, type PackLocation } from './pack-table.js'
import type { ReadTree, Stat } from '../tree/view.js'

const PRESENT: PackLocation = { pack: 0, offset: 0, length: 1 }
/** Files walked at once (their manifest loads overlap). */
const FILES_AT_ONCE = 16

/** A set of object addresses, keyed like the pack table (16-byte prefix; ~37-75 bytes per address). */
export class AddressSet {
  private readonly table = new PackTable()

  /** Adds an address; false when it was there already. */
  add(address: Buffer): boolean {
    return this.table.add(address, PRESENT)
  }

  has(address: Buffer): boolean {
    return this.table.has(address)
  }

  get size(): number {
    return this.table.size
  }
}

/** What a walk found. */
export interface References {
  /** Addresses of every manifest node and chunk referenced. */
  addresses: AddressSet
  /** File versions walked (a file with a conflict copy counts twice; a version in several trees once per tree). */
  files: number
  /** Bytes of file content referenced (sum over the versions walked). */
  logicalBytes: number
  /** Manifest nodes that were not held here, so what they name was not walked (only with `held`). */
  missingManifests: number
}

export interface WalkOptions {
  /**
   * Whether this node holds an object, without the network (ChunkStore.has). Given, a manifest
   * node not held is counted in missingManifests and not walked; not given, manifests are
   * loaded as reads load them (from peers if need be).
   */
  held?: (address: Buffer) => Promise<boolean>
  /**
   * With `held`: a manifest node not held here that must be walked all the same (e.g. this
   * node's own store lists it, its pack evicted: its chunks may still be here). It is loaded
   * as reads load it (from peers); failing that, the walk fails.
   */
  mustWalk?: (address: Buffer) => boolean
  /** Walk only these paths of each tree (default: the whole tree). A missing path is skipped. */
  paths?: string[]
  /** Called for each file version walked (after its objects were added). */
  onFile?: (file: Stat) => void
}

export function emptyReferences(): References {
  return { addresses: new AddressSet(), files: 0, logicalBytes: 0, missingManifests: 0 }
}

/**
 * Adds to `into` every object the files of `trees` reference (under `opts.paths`): each file's
 * manifest tree, node by node, and the chunks its leaves name (parsed by cas-read, never
 * re-encoded). A manifest node already in the set is not walked again (its subtree is).
 */
export async function addReferences(cas: Cas, trees: Iterable<ReadTree>, into: References = emptyReferences(), opts: WalkOptions = {}): Promise<References> {
  const pending: Promise<void>[] = []
  for (const tree of trees) {
    for (const root of opts.paths ?? ['/']) {
      if (opts.paths && tree.lookup(root) === null) continue
      for (const s of tree.walk(root)) {
        if (s.kind !== 'file' || !s.content) continue
        into.files++
        into.logicalBytes += s.content.size
        pending.push(walkFile(cas, Buffer.from(s.content.hash, 'hex'), s.content.size, into, opts).then(() => opts.onFile?.(s)))
        if (pending.length >= FILES_AT_ONCE) await pending.shift()
      }
    }
  }
  await Promise.all(pending)
  return into
}

async function walkFile(cas: Cas, hash: Buffer, size: number, into: References, opts: WalkOptions): Promise<void> {
  await walkManifest(cas, [{ hash, size }], (address) => into.addresses.add(address), async (entry, address) => {
    if (opts.held && !(await opts.held(address)) && !opts.mustWalk?.(address)) {
      into.missingManifests++
      return null
    }
    return cas.manifestNode(entry, 'gc walk')
  })
}

/**
 * The one walk of manifest trees (spec/cas.md section 3), level by level with the loads of a
 * level overlapping: `add` is told every object address (manifest nodes and the chunks their
 * leaves name) and answers whether it is new; a node is loaded (by `load`, which may answer
 * null: not walked) only the first time its address is added.
 */
export async function walkManifest(
  cas: Cas,
  roots: { hash: Buffer; size: number }[],
  add: (address: Buffer) => boolean,
  load: (entry: { hash: Buffer; size: number }, address: Buffer) => Promise<ManifestNode | null>
): Promise<void> {
  let level = roots
  while (level.length > 0) {
    const next: { hash: Buffer; size: number }[] = []
    const nodes: (ManifestNode | null)[] = await Promise.all(level.map(async (entry) => {
      const address = cas.objectAddress(entry.hash)
      if (!add(address)) return null // walked already (or being walked)
      return load(entry, address)
    }))
    for (const node of nodes) {
      if (!node) continue
      if (node.level === 0) for (const e of node.entries) add(cas.objectAddress(e.hash))
      else for (const e of node.entries) next.push(e)
    }
    level = next
  }
}

/** A volume's trees that GC keeps: the live one first, then every kept snapshot. */
export interface VolumeTrees {
  tree: ReadTree & { snapshots(): { name: string }[]; at(name: string): ReadTree }
}

export function volumeTrees(vol: VolumeTrees): ReadTree[] {
  const trees: ReadTree[] = [vol.tree]
  for (const s of vol.tree.snapshots()) trees.push(vol.tree.at(s.name))
  return trees
}
