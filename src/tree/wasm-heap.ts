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
// A spread merge at 1M files needs ~400 MiB per writer in one apply (16 x 20 MiB of cold
// shards + 40 x 3 MiB of changes); clamped to 256 MiB it grew the rest 64 KiB at a time (34 s
// CPU, 1,450 scavenges + 227 mark-compacts; 9 s with 1 GiB). wasm32 memory tops out at 4 GiB.
const MAX_RESERVE = 2 ** 30

/**
 * What the last reserve has left for the work that follows, by the callers' own estimates. A
 * reserve copies its size into the heap (16 MiB: ~5-10 ms here); a server applying a log in
 * many small batches reserved before each one and spent 11% of its time copying zeros. So a
 * call within what the last reserve left only takes its part of it.
 */
let credit = 0

/** Makes sure Automerge's heap has about `bytes` free in one block (clamped to 16..256 MiB). */
export function reserveAutomergeHeap(bytes: number): void {
  if (bytes <= credit) {
    credit -= bytes
    return
  }
  const n = Math.min(MAX_RESERVE, Math.max(MIN_RESERVE, Math.ceil(bytes)))
  try {
    // Copies n zero bytes into a block malloc'd in the wasm heap, fails at once (no document
    // header), and frees the block.
    // A fresh buffer each time: with one zero buffer kept and handed over again, V8 (node 20)
    // aborted in its deoptimizer (DoComputeBuiltinContinuation) in three runs (the 100k merge
    // bench twice, a test once); the same bench without it ran through twice (cause not
    // proven). The credit above keeps these calls rare.
    A.load(new Uint8Array(n))
  } catch {
    // expected
  }
  credit = Math.max(0, n - bytes)
}

/** Expected growth from which an apply reserves first: a few 64 KiB grows already cost a full GC each. */
const MIN_GROWTH = 256 * 2 ** 10

/**
 * Heap a bulk apply may need: measured growth was ~40x the changes' bytes, plus shards
 * loaded from their saved bytes (~16x: a 1M-file spread merge loaded 20 MiB of saved shards
 * per writer and needed ~400 MiB; 4x or 12x left it short and it grew 64 KiB at a time). Null
 * below the size where per-grow GCs matter. A server's replay applies batches of a few hundred
 * small entries (~100 KiB of changes): each grew the heap a few MiB, 64 KiB at a time, and in a
 * process holding a volume's index every grow's full GC cost tens of ms: 10k + 10k one-op
 * entries took 15-28 s to apply there against 2.5 s for the tree alone. So any apply expected
 * to grow the heap reserves at least MIN_RESERVE.
 */
export function heapNeeded(changeBytes: number, coldShardBytes: number): number | null {
  const need = 40 * changeBytes + 16 * coldShardBytes
  return need >= MIN_GROWTH ? Math.max(need, MIN_RESERVE) : null
}
