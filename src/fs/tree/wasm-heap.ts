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

/**
 * The zero bytes handed to Automerge, kept: a fresh buffer of this size each time cost ~3x the
 * reservation itself (an import reserves tens of MiB at every flush). Its pages are only
 * read, so they cost no memory.
 */
let zeros: Uint8Array | null = null

/** Makes sure Automerge's heap has about `bytes` free in one block (clamped to 16..256 MiB). */
export function reserveAutomergeHeap(bytes: number): void {
  const n = Math.min(MAX_RESERVE, Math.max(MIN_RESERVE, Math.ceil(bytes)))
  if (zeros === null || zeros.length < n) zeros = new Uint8Array(Math.min(MAX_RESERVE, Math.max(n, 2 * (zeros?.length ?? 0))))
  try {
    // Copies n zero bytes into a block malloc'd in the wasm heap, fails at once (no document
    // header), and frees the block.
    A.load(zeros.subarray(0, n))
  } catch {
    // expected
  }
}

/** Expected growth from which an apply reserves first: a few 64 KiB grows already cost a full GC each. */
const MIN_GROWTH = 256 * 2 ** 10

/**
 * Heap a bulk apply may need: measured growth was ~40x the changes' bytes, plus shards
 * loaded from their saved bytes (~4x). Null below the size where per-grow GCs matter. A
 * server's replay applies batches of a few hundred small entries (~100 KiB of changes): each
 * grew the heap a few MiB, 64 KiB at a time, and in a process holding a volume's index every
 * grow's full GC cost tens of ms: 10k + 10k one-op entries took 15-28 s to apply there against
 * 2.5 s for the tree alone. So any apply expected to grow the heap reserves at least MIN_RESERVE.
 */
export function heapNeeded(changeBytes: number, coldShardBytes: number): number | null {
  const need = 40 * changeBytes + 4 * coldShardBytes
  return need >= MIN_GROWTH ? Math.max(need, MIN_RESERVE) : null
}
