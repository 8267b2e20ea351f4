// What eviction (and GC) must not drop: content pins reference (PinSet, src/pins/pin-keeper.ts)
// and content a mount has open (OpenFiles: every Cas.openFile until its close()). Both answer
// with store addresses (hex); the cache maps them to packs of peers' stores.
import type { Cas, FileRef } from './cas.js'
import { walkManifest } from './reachability.js'

/** Addresses (A, hex) some content this node must keep references. */
export interface Holder {
  heldAddresses(): Promise<Set<string>>
}

/** Addresses pinned content references (`bazil pin`): never evicted. */
export interface PinSet {
  pinnedAddresses(): Promise<Set<string>>
}

/** Files whose manifest trees are walked together. */
const FILES_AT_ONCE = 16

/**
 * Adds to `out` the address of every object of these files (manifest nodes and chunks), as
 * far as their manifest trees can be loaded (a node that cannot: what is under it is not
 * held here either, so nothing of it is listed). Never throws.
 */
export async function addressesOf(cas: Cas, refs: FileRef[], out: Set<string>): Promise<void> {
  const add = (address: Buffer): boolean => {
    const hex = address.toString('hex')
    if (out.has(hex)) return false
    out.add(hex)
    return true
  }
  // A few files at a time: a walk loads a whole level of its roots at once.
  for (let i = 0; i < refs.length; i += FILES_AT_ONCE) {
    const roots = refs.slice(i, i + FILES_AT_ONCE).map((r) => ({ hash: r.hash, size: r.size }))
    await walkManifest(cas, roots, add, (entry) => cas.manifestNode(entry).catch(() => null))
  }
}

/** The files open through Cas.openFile (mounts' readers), until closed. */
export class OpenFiles implements Holder {
  private readonly open = new Map<number, { cas: Cas; ref: FileRef }>()
  private next = 0

  /** Registers an open file; call the result when it is closed. */
  add(cas: Cas, ref: FileRef): () => void {
    const id = this.next++
    this.open.set(id, { cas, ref })
    return () => {
      this.open.delete(id)
    }
  }

  get count(): number {
    return this.open.size
  }

  async heldAddresses(): Promise<Set<string>> {
    const out = new Set<string>()
    const byCas = new Map<Cas, FileRef[]>()
    for (const { cas, ref } of this.open.values()) {
      const list = byCas.get(cas) ?? []
      list.push(ref)
      byCas.set(cas, list)
    }
    for (const [cas, refs] of byCas) await addressesOf(cas, refs, out)
    return out
  }
}
