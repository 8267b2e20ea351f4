// The tree a volume shows now, which replay, a rebuild, a checkpoint or a state may replace
// while the volume is open, with what the checkpoint and the view need to know about it.
import type { Tree } from '../tree/index.js'

export class LiveTree {
  private current: Tree
  /** Something was applied or done since the checkpoint was read or written. */
  changedSinceCheckpoint = true
  /** The tree holds edits that were refused: the next replay rebuilds it from the logs. */
  viewStale = false

  constructor(tree: Tree) {
    this.current = tree
  }

  get tree(): Tree {
    return this.current
  }

  /** Puts `tree` in place of the current one and returns that one, not freed (a joiner's filling tree, shown while it fills). */
  show(tree: Tree): Tree {
    const was = this.current
    this.current = tree
    return was
  }

  /** Puts `tree` in place of the current one, whose Automerge documents are freed. */
  replace(tree: Tree): void {
    if (tree === this.current) return
    this.current.free()
    this.current = tree
  }
}
