/**
 * The snapshots as the index on disk names them (spec/tree.md "The index on disk", snapshot
 * views): each snapshot's name, record key, time and the root's attributes at its heads, so
 * that reading a snapshot that has a saved view (or listing the snapshots) never loads `meta`,
 * whose snapshot heads parts are ~2 MB of Automerge at 1M files.
 *
 * The list is written by a commit from `meta` as it is then (or, while `meta` is unread since
 * the open, copied from the manifest it was restored with): while `meta` stays unread, it is
 * exactly `meta`'s snapshots.
 */
import { hash } from '../crypto.js'
import type { Handle, Heads } from './automerge-handle.js'
import type { IndexBase } from './index-layers.js'
import { isRootAttrKey } from './times.js'
import type { IndexMemo } from './view.js'

/** One snapshot not removed: `root` is null when it has no saved view (then `meta` is read for it). */
export interface NamedSnapshot { name: string; key: string; time: number; root: Record<string, unknown> | null }

/** What a tree reads snapshots from without `meta`: the named list and the saved views by key. */
export interface SavedSnapshots {
  /** Null: the manifest names none (written before 2026-12-06, or `meta` unknown when it was). */
  named: NamedSnapshot[] | null
  view(key: string): { base: IndexBase; memo: IndexMemo } | null
}

/** The key of a snapshot record: BLAKE2b-256 hex of its text. */
export function snapshotKey(text: string): string {
  return hash(Buffer.from(text)).toString('hex')
}

/** The root's attributes in `meta` at `heads` (keys and values as `meta` holds them), without materializing the document. */
export function rootAttrsAt(meta: Handle, heads: Heads): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of meta.keys('_root', heads)) {
    if (!isRootAttrKey(k)) continue
    const v = meta.get('_root', k, heads)
    if (typeof v === 'number') out[k] = v
  }
  return out
}

/** The `named` list of a manifest as stored: `[[name, key, time, root | null]…]`. */
export type NamedRow = [string, string, number, Record<string, unknown> | null]

export function namedRows(list: NamedSnapshot[]): NamedRow[] {
  return list.map((n) => [n.name, n.key, n.time, n.root])
}

/** Decodes a manifest's `named` rows; throws on anything else. */
export function decodeNamed(rows: unknown): NamedSnapshot[] {
  if (!Array.isArray(rows)) throw new Error('bad index manifest (named snapshots)')
  return rows.map((r) => {
    if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string' || typeof r[1] !== 'string' || !/^[0-9a-f]{64}$/.test(r[1]) || typeof r[2] !== 'number' ||
      !(r[3] === null || (typeof r[3] === 'object' && !Array.isArray(r[3])))) {
      throw new Error('bad index manifest (named snapshots)')
    }
    return { name: r[0], key: r[1], time: r[2], root: r[3] as Record<string, unknown> | null }
  })
}
