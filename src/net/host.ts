// The small interface between the network and the node it serves: what the network asks the
// node, and what it hands it. The node's side of writer admission lives in the node; the
// network only asks and tells (spec/protocol.md, "Writer logs").
import type { Node, StoreOffers } from '../node.js'

export interface NetHost {
  /**
   * The writer logs of a local volume (by local name) to serve and relay: the node's writer set
   * (own log included). Nothing else is ever served as a log of that volume.
   */
  writerKeys(volumeName: string): Promise<Buffer[]>
  /**
   * A peer offered a log of a local volume that is not in its writer set, and the log's binding
   * (block 0, checked) names that peer's node: the node decides whether it becomes a writer.
   * When the writer set changes, the node calls PeerNetwork.writersChanged(volumeId).
   */
  candidateWriter(volumeId: Buffer, logKey: Buffer, from: Buffer): Promise<void>
  /** Stores a connected peer offers (its own, replicas of others') that the access rules let this node read. */
  storesOffered(peer: Buffer, offers: StoreOffers): Promise<void>
  /**
   * Whether the volume's writer set admits `node` by node (admit-node, spec/oplog.md): a
   * candidate log bound to it may be taken up from any peer allowed the volume (a relay),
   * not only from that node.
   */
  admitsNode?(volumeId: Buffer, node: Buffer): Promise<boolean>
  /**
   * This node's state of a local volume it reads (not storage-only), sealed under the volume's
   * state key (spec/tree.md "Starting from a state"), for a joiner that asked (STATE_GET,
   * after access.stateRefused said yes). Throws saying why there is none.
   */
  volumeState?(volumeId: Buffer): Promise<Buffer>
}

/** The network's entry point for writer-set changes, which the node calls. */
export interface WritersSink {
  writersChanged(volumeId: Buffer): void
}

/**
 * The host a Node gives the network: writerKeys from the node's writer set, a candidate handed
 * to Node.addWriter (which decides; until writer sets land it takes every log bound to the
 * peer that offered it), stores to Node.useRemoteStorage.
 */
export function nodeHost(node: Node, sink: WritersSink): NetHost {
  return {
    writerKeys: (name) => node.writerKeys(name),
    async candidateWriter(volumeId, logKey) {
      if (await node.addWriter(volumeId, logKey)) sink.writersChanged(volumeId)
    },
    async storesOffered(peer, offers) {
      await node.useRemoteStorage(peer, offers)
    },
    admitsNode: (volumeId, n) => node.admitsNode(volumeId, n),
    volumeState: (volumeId) => node.sealedVolumeState(volumeId)
  }
}
