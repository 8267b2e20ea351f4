/**
 * Headroom in Automerge's WebAssembly heap before bulk work.
 *
 * Automerge runs in one WebAssembly instance whose allocator (dlmalloc) grows linear memory
 * 64 KiB at a time. Every memory.grow makes V8 replace the memory's ArrayBuffer and count its
 * whole new size as fresh external memory, which forces a full mark-compact GC (its cost grows
 * with the live JS heap: our index). A merge that grew the heap by ~40 MiB ran hundreds of
 * GCs and spent most of its time in them: 10k+10k ops over 20k files merged in 12 s, and in
 * 1.2 s with the heap reserved first. So before bulk work the allocator is made to take one
 * big block and give it back: it keeps that memory (wasm memory never shrinks, dlmalloc reuses
 * it), and the work that follows allocates from it with no grow. When the heap already has
 * that much free in one piece, nothing grows and nothing is added to RSS.
 */
import * as A from '@automerge/automerge'

const MIN_RESERVE = 16 * 2 ** 20
const MAX_RESERVE = 256 * 2 ** 20

/** Makes sure Automerge's heap has about `bytes` free in one block (clamped to 16..256 MiB). */
export function reserveAutomergeHeap(bytes: number): void {
  const n = Math.min(MAX_RESERVE, Math.max(MIN_RESERVE, Math.ceil(bytes)))
  try {
    // Copies n zero bytes into a block malloc'd in the wasm heap, fails at once (no document
    // header), and frees the block.
    A.load(new Uint8Array(n))
  } catch {
    // expected
  }
}

/**
 * Heap a bulk apply may need: measured growth was ~40x the changes' bytes, plus shards
 * loaded from their saved bytes (~4x). Null below the size where per-grow GCs matter.
 */
export function heapNeeded(changeBytes: number, coldShardBytes: number): number | null {
  const need = 40 * changeBytes + 4 * coldShardBytes
  return need >= MIN_RESERVE ? need : null
}
