/**
 * What Tree hands the modules that hold its extended attributes (tree-xattrs.ts), conflicts
 * (tree-conflicts.ts) and snapshots (tree-snapshots.ts): its state and its edit primitives,
 * through closures, so that its fields stay private to it and those modules never import it
 * (test/layers.test.ts: no cycles).
 */
import type { MetaDoc, RawNode, Version } from './model.js'
import type { Handle, Shards } from './shards.js'
import type { Entry, Stat, TreeIndex } from './view.js'

/** A local edit: the node's new decoded state, what to do to its record (null: a new record, written from that state), and its bytes when big. */
export type Edit = [RawNode, ((h: Handle, obj: string) => void) | null, number?]

export interface TreeCore {
  /** The writer's id, hex (Automerge actor). */
  readonly actor: string
  readonly shards: Shards
  /** The derived index now (a tree opened from disk replaces the empty one it started with). */
  index(): TreeIndex
  clock(): number
  random(bytes: number): string
  /** Turns buffered local edits into Automerge changes (before reading a shard document directly). */
  flush(): void
  /** Applies local edits to the index and buffers them for Automerge. */
  edit(edits: Edit[]): void
  /** A local change of `meta` (the root's attributes, snapshots, volume settings). */
  changeMeta(fn: (m: MetaDoc) => void): void
  /** Reads the root's attributes from `meta` into the index again (after a change of them). */
  readRootAttrs(): void
  /** Throws EPERM for a conflict copy (read-only). */
  writable(e: Entry, path: string): void
  /** Node `id`'s buffered creation can no longer absorb its later edits (they carry values its state lacks). */
  unfold(id: string): void
  /** Creates a file (as Tree.writeFile of a new name does). */
  createFile(parent: string, name: string, attrs: { mode?: number; mtime?: number }, path: string, version: Version): Stat
  setattr(path: string, attrs: { uid?: number; gid?: number }): Stat
  setxattr(path: string, name: string, value: Uint8Array): Stat
}
