/** A canonical text form of a tree, for comparing replicas (Tree.audit() checks the view's invariants). */
import type { ReadTree } from './view.js'

/** One line per visible entry, depth first: path, kind, mode (octal), size, content hash or symlink target. */
export function canonicalDump(t: ReadTree): string[] {
  return [...t.walk('/')].map((s) => `${s.path}\t${s.kind}\t${s.mode.toString(8)}\t${s.size}\t${s.content?.hash ?? s.target ?? ''}`)
}

