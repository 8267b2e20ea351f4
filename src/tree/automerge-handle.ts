// The Automerge types the tree's modules share: a document's low-level handle (what the
// record readers take) and a set of heads. Apart from shards.ts so that a reader of records
// does not import the shard store that holds them.
import type * as A from '@automerge/automerge'

export type Handle = ReturnType<typeof A.getBackend>
export type Heads = string[]
