// Local copies of peers' stores follow their owners' drop records (spec/gc.md section 5): a
// pack the owner dropped (its compaction moved the live objects to new packs) that this node's
// copy still holds is cleared, through the cache's clear (clearBlocks: no Merkle tree node peers
// need goes), and leaves the cache's ledger. A dropped pack holding an object that a pin or an
// open file needs stays until that object is held where the owner moved it (requested here;
// reads use the dropped pack meanwhile: remote-store.ts localBlock), so a pinned file stays
// readable offline across its owner's compaction.
import type { RemoteStores } from './remote-store.js'
import { KEY_BYTES } from './pack-table.js'

export interface DropFollowing {
  /** Packs cleared, and dropped packs still held: waiting for moved objects to arrive, or left by clearBlocks. */
  cleared: number
  waiting: number
  left: number
}

/**
 * One pass over the dropped packs the copies hold. `needed`: addresses (hex, full or 16-byte
 * prefixes) pins and open files reference. `cleared(packsKey, pack)` is told each pack cleared.
 * `kept`: stores this node keeps whole for their owner (not cache: they follow drop records in
 * src/net/mirror-drops.ts, once the moved objects are held).
 */
export async function followDrops(remote: RemoteStores, needed: Set<string>, cleared: (packsKey: Buffer, pack: number) => void, kept: (packsKey: Buffer) => boolean = () => false): Promise<DropFollowing> {
  const out: DropFollowing = { cleared: 0, waiting: 0, left: 0 }
  const list = (await remote.droppedHeld()).filter((d) => !kept(d.packsKey)) // kept whole for their owner: mirror-drops.ts
  if (list.length === 0) return out
  const prefixes = new Set<string>()
  for (const a of needed) prefixes.add(a.slice(0, 2 * KEY_BYTES))
  const ready = new Map<string, { packsKey: Buffer; packs: number[] }>()
  for (const d of list) {
    const missing: Buffer[] = []
    for (const k of d.keys) if (prefixes.has(k.toString('hex')) && !(await remote.heldWhereItIs(k))) missing.push(k)
    if (missing.length > 0) {
      out.waiting++
      await remote.prefetch(missing).catch(() => 0) // from where the owner moved them
      continue
    }
    const hex = d.packsKey.toString('hex')
    let r = ready.get(hex)
    if (!r) ready.set(hex, (r = { packsKey: d.packsKey, packs: [] }))
    r.packs.push(d.pack)
  }
  for (const { packsKey, packs } of ready.values()) {
    packs.sort((a, b) => a - b)
    // Runs of consecutive packs at once: clearBlocks clears a run from its even start.
    for (let i = 0; i < packs.length;) {
      let j = i + 1
      while (j < packs.length && packs[j] === packs[j - 1]! + 1) j++
      const start = packs[i]!
      const end = packs[j - 1]! + 1
      const done = await remote.clearPack(packsKey, start, end)
      if (done === 'busy' || done === null) out.waiting += j - i
      else {
        const held = await remote.holdsPacks(packsKey, start, end)
        for (let p = start; p < end; p++) {
          if (held.has(p)) {
            // clearBlocks left it (tree nodes peers need): an ordinary cached pack now (the
            // cache's eviction takes it once it can), no longer read for moved objects.
            out.left++
            remote.forgetRetired(packsKey, p)
          } else {
            out.cleared++
            cleared(packsKey, p)
          }
        }
      }
      i = j
    }
  }
  return out
}
