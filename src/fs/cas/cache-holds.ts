// What eviction (and GC) must not drop: content pins reference (PinSet, src/fs/cas/cache-pins.ts)
// and content a mount has open (OpenFiles: every Cas.openFile until its close()). Both answer
// with store addresses (hex); the cache maps them to packs of peers' stores.
import type { Cas, FileRef } from './cas.js'
import type { ManifestEntry } from './manifest.js'

/** Addresses (A, hex) some content this node must keep references. */
export interface Holder {
  heldAddresses(): Promise<Set<string>>
}

/** Addresses pinned content references (`bazil pin`): never evicted. */
export interface PinSet {
  pinnedAddresses(): Promise<Set<string>>
}

/** Manifest nodes loaded at once by addressesOf. */
const NODES_IN_FLIGHT = 16

/**
 * Adds to `out` the address of every object of these files (manifest nodes and chunks), as
 * far as their manifest trees can be loaded (a node that cannot: what is under it is not
 * held here either, so nothing of it is listed). Never throws.
 */
export async function addressesOf(cas: Cas, refs: FileRef[], out: Set<string>): Promise<void> {
  let wave: ManifestEntry[] = refs.map((r) => ({ hash: r.hash, size: r.size }))
  while (wave.length > 0) {
    const next: ManifestEntry[] = []
    let at = 0
    const load = async (): Promise<void> => {
      while (at < wave.length) {
        const entry = wave[at++]!
        out.add(cas.objectAddress(entry.hash).toString('hex'))
        try {
          const node = await cas.manifestNode(entry)
          if (node.level > 0) next.push(...node.entries)
          else for (const c of node.entries) out.add(cas.objectAddress(c.hash).toString('hex'))
        } catch {
          // not loadable here: nothing under it is held
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(NODES_IN_FLIGHT, wave.length) }, load))
    wave = next
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
