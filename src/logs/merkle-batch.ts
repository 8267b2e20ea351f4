/**
 * One storage read for hypercore's "how many merkle nodes am I missing" question.
 *
 * Before each block request, hypercore's replicator asks `MerkleTree.missingNodes` how many
 * tree nodes above the block it lacks (they come back with the block). hypercore 11 answers by
 * walking up from the block, one RocksDB read batch per level until it finds a node it holds
 * (its source says "TODO: we could prop use a read batch here"). While a log downloads, little
 * above a block is held yet: a merge of 2,000 + 2,000 one-op entries made ~16,000 of these read
 * batches, 57% of all the storage read batches of the replication (counted per caller), and the
 * read batch's flush is the largest single item of a server's profile during a converge.
 *
 * Here the same walk reads every level up to the log's head in one read batch and counts the
 * levels below the first node held: the same answer, one storage round trip. Installed once
 * per process (every core's replicator calls the same static method), by WriterLog.open.
 */
import { createRequire } from 'node:module'

interface FlatIterator { index: number; factor: number; contains(index: number): boolean; parent(): number }
interface ReadBatch { hasTreeNode(index: number): Promise<boolean>; tryFlush(): void }
interface Session { storage: { read(): ReadBatch } }
interface MerkleTreeClass { missingNodes(session: Session, index: number, length: number): Promise<number>; batchedMissingNodes?: true }

/** Levels at most (a tree of 2^64 blocks has 64): what hypercore's own walk asserts against. */
const MAX_LEVELS = 1024

let installed = false

/** Makes hypercore's MerkleTree.missingNodes read all the levels it checks in one read batch (idempotent). */
export function batchMissingNodes(): void {
  if (installed) return
  installed = true
  const require = createRequire(import.meta.url)
  const merklePath = require.resolve('hypercore/lib/merkle-tree.js')
  const { MerkleTree } = require(merklePath) as { MerkleTree: MerkleTreeClass }
  // hypercore's own flat-tree, resolved from hypercore's directory (not a dependency of ours).
  const flat = createRequire(merklePath)('flat-tree') as { iterator(index: number): FlatIterator }
  if (typeof MerkleTree?.missingNodes !== 'function' || MerkleTree.batchedMissingNodes) return
  MerkleTree.batchedMissingNodes = true
  MerkleTree.missingNodes = async function missingNodes(session: Session, index: number, length: number): Promise<number> {
    const head = 2 * length
    const ite = flat.iterator(index)
    // As hypercore: a block past the tree's current span has no known count.
    if (ite.index + ite.factor / 2 - 1 >= head) return 0
    const levels: number[] = []
    while (!ite.contains(head)) {
      levels.push(ite.index)
      if (levels.length >= MAX_LEVELS) throw new Error(`ASSERTION: Bad arguments to missingNodes index=${index} at length=${length}`)
      ite.parent()
    }
    if (levels.length === 0) return 0
    const rx = session.storage.read()
    const held = levels.map((i) => rx.hasTreeNode(i))
    rx.tryFlush()
    const has = await Promise.all(held)
    let missing = 0
    while (missing < has.length && !has[missing]) missing++
    return missing
  }
}
