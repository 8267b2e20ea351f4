/**
 * Where a new node's record goes (spec/tree.md "Shard layout", "Placement"). The shard is the
 * shallowest on the id's path with room (Tree.placeOf); the id itself is chosen here so that
 * one directory's records share a few shards: a file or symlink takes the first NEAR_DIGITS
 * hex digits of its directory's id, the rest random; a directory gets a random id (which
 * spreads directories, and so their files, over every shard). A merge of changes to one
 * directory then loads the shards on that prefix's path and below it, not every shard of the
 * volume (random ids scattered a directory over all of them). A creator's choice only: readers
 * accept any node id and find its record on its path.
 */
import type { Kind } from './model.js'

/**
 * Hex digits a file's id shares with its directory's: 65,536 prefixes, and below one of them
 * 16^4 shards of SPLIT_AT records (~33M) before the deepest shard stops splitting.
 */
export const NEAR_DIGITS = 4

/** A new node id (32 hex chars) for a node of `kind` created in directory `parent`, from `random` (bytes -> hex). */
export function nodeIdNear(parent: string, kind: Kind, random: (bytes: number) => string): string {
  const r = random(16)
  return kind === 'dir' ? r : parent.slice(0, NEAR_DIGITS) + r.slice(NEAR_DIGITS)
}
