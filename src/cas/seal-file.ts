// Sealing whole files held in memory, many at once: every chunk and manifest node of each
// file as stored blocks, packed into two buffers (chunks, nodes) so that a batch crosses
// between threads as a few transferable buffers. Used by the seal workers (seal-worker.ts)
// for small files; the objects of a file are its chunks, then its manifest nodes.
import { cutAll, type GearTable } from './chunker.js'
import { blockBytes, sealObjectInto, type CasKeys } from './convergent.js'
import { ManifestBuilder } from './manifest.js'
import { HASH_BYTES } from '../crypto.js'

export interface SealedFiles {
  /** Per file: the plaintext hash of its root manifest node (HASH_BYTES each). */
  roots: Buffer
  /** Per file: its length in bytes. */
  sizes: Float64Array
  /** Per file: how many chunks, then how many manifest nodes it stored. */
  chunks: Uint32Array
  nodes: Uint32Array
  /** Per object (files in order, each file's chunks then its nodes): its address A (HASH_BYTES each). */
  addresses: Buffer
  /** Per object: its block's length. */
  lengths: Uint32Array
  /** The chunk blocks, back to back, then the node blocks. */
  chunkBlocks: Buffer
  nodeBlocks: Buffer
}

export function sealFiles(keys: CasKeys, gear: GearTable, files: Buffer[]): SealedFiles {
  const cuts = files.map((f) => cutAll(gear, f, true))
  let chunkBytes = 0
  let chunkCount = 0
  for (const lengths of cuts) for (const n of lengths) { chunkBytes += blockBytes(n); chunkCount++ }
  const chunkBlocks = Buffer.allocUnsafeSlow(chunkBytes)
  const chunks = new Uint32Array(files.length)
  const nodes = new Uint32Array(files.length)
  const roots = Buffer.allocUnsafeSlow(files.length * HASH_BYTES)
  const sizes = new Float64Array(files.length)
  const chunkAddresses: Buffer[] = []
  const nodePlains: Buffer[][] = []
  let at = 0
  for (let i = 0; i < files.length; i++) {
    const data = files[i]!
    const builder = new ManifestBuilder()
    const plains: Buffer[] = []
    let start = 0
    for (const n of cuts[i]!) {
      const { hash, address } = sealObjectInto(keys, data.subarray(start, start + n), chunkBlocks, at)
      chunkAddresses.push(address)
      at += blockBytes(n)
      start += n
      for (const node of builder.add({ hash, size: n })) plains.push(node)
    }
    const { root, nodes: rest } = builder.finish()
    for (const node of rest) plains.push(node)
    nodePlains.push(plains)
    root.hash.copy(roots, i * HASH_BYTES)
    sizes[i] = data.length
    chunks[i] = cuts[i]!.length
    nodes[i] = plains.length
  }
  let nodeBytes = 0
  let nodeCount = 0
  for (const plains of nodePlains) for (const p of plains) { nodeBytes += blockBytes(p.length); nodeCount++ }
  const nodeBlocks = Buffer.allocUnsafeSlow(nodeBytes)
  const addresses = Buffer.allocUnsafeSlow((chunkCount + nodeCount) * HASH_BYTES)
  const lengths = new Uint32Array(chunkCount + nodeCount)
  let object = 0
  let chunk = 0
  let nodeAt = 0
  for (let i = 0; i < files.length; i++) {
    for (let k = 0; k < chunks[i]!; k++, chunk++, object++) {
      chunkAddresses[chunk]!.copy(addresses, object * HASH_BYTES)
    }
    for (const p of nodePlains[i]!) {
      const { address } = sealObjectInto(keys, p, nodeBlocks, nodeAt)
      address.copy(addresses, object * HASH_BYTES)
      lengths[object++] = blockBytes(p.length)
      nodeAt += blockBytes(p.length)
    }
  }
  // Chunk lengths, in the same object order.
  object = 0
  for (let i = 0; i < files.length; i++) {
    for (const n of cuts[i]!) lengths[object++] = blockBytes(n)
    object += nodes[i]!
  }
  return { roots, sizes, chunks, nodes, addresses, lengths, chunkBlocks, nodeBlocks }
}

/** Splits a SealedFiles back into each file's root, size and stored objects (views, no copies). */
export function unpackFiles(s: SealedFiles): { hash: Buffer; size: number; objects: { address: Buffer; block: Buffer }[] }[] {
  const out: { hash: Buffer; size: number; objects: { address: Buffer; block: Buffer }[] }[] = []
  let object = 0
  let chunkAt = 0
  let nodeAt = 0
  for (let i = 0; i < s.sizes.length; i++) {
    const objects: { address: Buffer; block: Buffer }[] = []
    for (let k = 0; k < s.chunks[i]! + s.nodes[i]!; k++, object++) {
      const n = s.lengths[object]!
      const isChunk = k < s.chunks[i]!
      const from = isChunk ? chunkAt : nodeAt
      const block = (isChunk ? s.chunkBlocks : s.nodeBlocks).subarray(from, from + n)
      if (isChunk) chunkAt += n
      else nodeAt += n
      objects.push({ address: s.addresses.subarray(object * HASH_BYTES, (object + 1) * HASH_BYTES), block })
    }
    out.push({ hash: s.roots.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES), size: s.sizes[i]!, objects })
  }
  return out
}
