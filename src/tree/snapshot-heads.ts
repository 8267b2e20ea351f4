/**
 * A snapshot's heads stored apart, in parts (spec/tree.md "Snapshots"): a volume of 1M files has
 * ~21k shards, whose heads (~1.6 MB of text) fit neither one meta change nor one log entry.
 *
 * The heads are cut into parts by the first two characters of the shard name (`meta` its own
 * part), each part the canonical JSON of its shards' heads, stored in `meta` under
 * `snapheads.<BLAKE2b-256 hex of the text>`; the snapshot record (format 2) names the parts by
 * digest. A part that did not change since an earlier snapshot has the same digest: it is
 * already in `meta` and not written again, so a snapshot writes what changed since the others,
 * not the volume's size. A reader takes, among the values of a part's key, one whose digest is
 * the key's (any writer may write any key: a value that does not hash to it is ignored).
 */
import * as A from '@automerge/automerge'
import { hash } from '../crypto.js'
import { Invalid, META_SHARD, isShard, strOf, type MetaDoc } from './model.js'

export const HEADS_PREFIX = 'snapheads.'
/** A snapshot whose record would be longer than this stores its heads in parts (format 2). */
export const INLINE_BYTES = 64 * 1024
/** Parts written by one meta change, at most (a change must fit one log entry: 1 MiB). */
export const PART_BATCH_BYTES = 256 * 1024

export interface HeadsPart { digest: string; text: string }

/** The parts of `heads`, by shard name prefix. */
export function headsParts(heads: Record<string, string[]>): HeadsPart[] {
  const groups = new Map<string, string[]>()
  for (const shard of Object.keys(heads).sort()) {
    const g = shard === META_SHARD ? META_SHARD : shard.slice(0, 2)
    let l = groups.get(g)
    if (!l) groups.set(g, (l = []))
    l.push(shard)
  }
  return [...groups.values()].map((shards) => {
    const o: Record<string, string[]> = {}
    for (const s of shards) o[s] = [...heads[s]!].sort()
    const text = JSON.stringify(o)
    return { digest: hash(Buffer.from(text)).toString('hex'), text }
  })
}

/** The parts not yet in `meta` (a value of the key that hashes to it), in batches of at most PART_BATCH_BYTES. */
export function partsToWrite(meta: MetaDoc, parts: HeadsPart[]): HeadsPart[][] {
  const batches: HeadsPart[][] = []
  let bytes = PART_BATCH_BYTES
  for (const p of parts) {
    if (partText(meta, p.digest) !== null) continue
    if (bytes + p.text.length > PART_BATCH_BYTES) {
      batches.push([])
      bytes = 0
    }
    batches[batches.length - 1]!.push(p)
    bytes += p.text.length
  }
  return batches
}

/** The text of part `digest` in `meta`, or null if no value of its key hashes to it. */
function partText(meta: MetaDoc, digest: string): string | null {
  const key = HEADS_PREFIX + digest
  const v = meta[key]
  if (v === undefined) return null
  const first = strOf(v)
  if (first !== null && hash(Buffer.from(first)).toString('hex') === digest) return first
  for (const c of Object.values(A.getConflicts(meta, key) ?? {})) {
    const t = strOf(c)
    if (t !== null && hash(Buffer.from(t)).toString('hex') === digest) return t
  }
  return null
}

/** The heads the parts name, read from `meta`; Invalid if one is missing or does not decode. */
export function readParts(meta: MetaDoc, digests: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const d of digests) {
    const text = partText(meta, d)
    if (text === null) throw new Invalid(`snapshot: heads part ${d.slice(0, 16)}… is not here`)
    let o: unknown
    try { o = JSON.parse(text) } catch { throw new Invalid('snapshot: a heads part is not JSON') }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Invalid('snapshot: bad heads part')
    for (const [shard, hs] of Object.entries(o)) {
      if (!isShard(shard)) throw new Invalid(`snapshot: bad shard name ${JSON.stringify(shard)}`)
      if (out[shard] !== undefined) throw new Invalid(`snapshot: shard ${shard} in two heads parts`)
      if (!Array.isArray(hs) || !hs.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))) throw new Invalid(`snapshot: bad heads of shard ${shard}`)
      out[shard] = hs as string[]
    }
  }
  return out
}
