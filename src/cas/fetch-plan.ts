// Requesting ahead what many files are made of (an export, a first sync): the files' manifest
// trees are walked level by level, and each level's objects are handed to `prefetch` in large
// batches (remote-store.ts turns them into ranges of packs, many in flight), so content
// arrives as whole packs instead of object after object behind each reader. Nothing here
// reads content or decides anything about trust: the files' own reads verify every object,
// and report every error (a node that can't be loaded here is skipped).
import type { FileRef } from './cas.js'
import type { ManifestEntry, ManifestNode } from './manifest.js'

/** What the walk needs from Cas. */
export interface PlanReader {
  objectAddress(hash: Buffer): Buffer
  manifestNode(entry: ManifestEntry): Promise<ManifestNode>
}

/** Requests objects ahead; resolves once they are requested (not arrived). */
export type Prefetch = (addresses: Buffer[]) => Promise<unknown>

/** Files whose trees are walked together (bounds the memory of one round). */
const FILES_PER_ROUND = 4096
/** Manifest nodes loaded at once (each may wait for its pack). */
const NODES_IN_FLIGHT = 32
/** Chunk addresses per prefetch call. */
const ADDRESSES_PER_REQUEST = 8192

/**
 * Walks the manifest trees of `refs` (in their order: put the file to be read first first)
 * and requests every manifest node and chunk ahead, one tree level at a time. Never throws.
 */
export async function fetchAhead(reader: PlanReader, refs: FileRef[], prefetch: Prefetch, stopped: () => boolean = () => false): Promise<void> {
  const seen = new Set<string>()
  const unique = refs.filter((r) => {
    const hex = r.hash.toString('hex')
    if (seen.has(hex)) return false
    seen.add(hex)
    return true
  })
  try {
    for (let i = 0; i < unique.length && !stopped(); i += FILES_PER_ROUND) {
      let wave: ManifestEntry[] = unique.slice(i, i + FILES_PER_ROUND).map((r) => ({ hash: r.hash, size: r.size }))
      while (wave.length > 0 && !stopped()) {
        await prefetch(wave.map((e) => reader.objectAddress(e.hash)))
        const next: ManifestEntry[] = []
        const requests: Promise<unknown>[] = []
        let chunks: Buffer[] = []
        let at = 0
        const load = async (): Promise<void> => {
          while (at < wave.length && !stopped()) {
            const entry = wave[at++]!
            let node: ManifestNode
            try {
              node = await reader.manifestNode(entry)
            } catch {
              continue // the file's own read reports it
            }
            if (node.level > 0) {
              next.push(...node.entries)
              continue
            }
            for (const c of node.entries) chunks.push(reader.objectAddress(c.hash))
            if (chunks.length >= ADDRESSES_PER_REQUEST) {
              requests.push(prefetch(chunks).catch(() => {}))
              chunks = []
            }
          }
        }
        await Promise.all(Array.from({ length: Math.min(NODES_IN_FLIGHT, wave.length) }, load))
        if (chunks.length > 0) requests.push(prefetch(chunks).catch(() => {}))
        await Promise.all(requests)
        wave = next
      }
    }
  } catch {
    // Requests ahead are an optimisation: the reads fetch what they need anyway.
  }
}
