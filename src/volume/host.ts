// What a volume needs of the node that holds it: the data dir, the store its logs live in, the
// content store of its sharing key, and the node's writer policy. A narrow context instead of
// the whole Node, so that volume/ sits below node.ts (node.ts opens volumes; nothing here
// imports it back).
import type Corestore from 'corestore'
import type { DataDir } from '../datadir.js'
import type { Cas } from '../cas/index.js'
import type { StoreSync } from '../store-sync.js'
import type { SpaceGuard } from '../space-guard.js'

export interface VolumeHost {
  readonly dir: DataDir
  readonly store: Corestore
  /** Shares fdatasyncs of the store between concurrent syncs (what fsync through the mount waits for). */
  readonly storeSync: StoreSync
  /** Refuses writes that would leave too little disk for the store (a full disk: ENOSPC). */
  readonly space: SpaceGuard
  /** The content store of a sharing key. */
  cas(sharing: string): Cas
  /** Whether this node lets `node` write to the volume (`peer volume allow`). */
  allowsWriter(volumeId: Buffer, node: Buffer): boolean
  /** Told when the writer set of a volume changed (the server points the network at it). */
  writersChanged(volumeId: Buffer): void
}
