// Recomputes a hypercore's merkle tree hash from its blocks, so `verify` can check every local
// block against the signed tree in one pass (one signature check instead of one per block).
// Hashes as in hypercore-crypto 3 (used by hypercore 11): BLAKE2b-256 with a type byte and
// 8-byte little-endian sizes; see spec/oplog.md "Hypercore signature".
import { hash } from '../crypto.js'

interface TreeNode {
  index: number // flat-tree index
  size: number // bytes of the blocks under the node
  hash: Buffer
  leaves: number
}

const LEAF = Buffer.from([0])
const PARENT = Buffer.from([1])
const ROOT = Buffer.from([2])

function u64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}

/** Feeds blocks in order 0, 1, 2...; keeps only the current full roots (a binary counter). */
export class TreeHasher {
  private roots: TreeNode[] = []
  length = 0

  push(block: Uint8Array): void {
    const data = Buffer.from(block.buffer, block.byteOffset, block.byteLength)
    let node: TreeNode = { index: 2 * this.length, size: data.length, hash: hash([LEAF, u64(data.length), data]), leaves: 1 }
    this.length++
    while (this.roots.length > 0 && this.roots[this.roots.length - 1].leaves === node.leaves) {
      const left = this.roots.pop() as TreeNode
      const size = left.size + node.size
      node = {
        index: (left.index + node.index) / 2, // the parent sits midway between its children
        size,
        hash: hash([PARENT, u64(size), left.hash, node.hash]),
        leaves: left.leaves * 2
      }
    }
    this.roots.push(node)
  }

  /** The hash hypercore signs (with the length and fork) for the blocks pushed so far. */
  treeHash(): Buffer {
    const parts: Buffer[] = [ROOT]
    for (const r of this.roots) parts.push(r.hash, u64(r.index), u64(r.size))
    return hash(parts)
  }
}
