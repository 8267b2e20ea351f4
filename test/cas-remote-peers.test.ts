// A large file read on demand through an open file (the mount's read path: cas-read.ts
// OpenFile, 128 KiB requests a few at a time as the kernel sends them) from a store two peers
// hold: the origin and a mirror of it, as a closet keeps (spec/cas.md section 6). What is
// measured is who served what (hypercore's download events, by peer), never time: both peers
// serve part of the read, each pack comes about once, and the read survives one of them
// leaving part way.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Cas, type FileRef, type OpenFile } from '../src/cas/index.js'
import { StoreMirrors } from '../src/net/closet.js'
import { randomBytes } from '../src/crypto.js'
import { MiB, Scene, goOffline, goOnline, heldCount, sha, until, type Stored } from './cas-remote-scene.js'

/** Requests the kernel keeps in flight on one file, and their size (libfuse 2.9's cap). */
const KERNEL_INFLIGHT = 4
const KERNEL_READ = 128 * 1024

/** Reads [from, to) of an open file into `out` as the kernel does: sequential 128 KiB requests, a few in flight. */
async function readLikeTheKernel(file: OpenFile, out: Buffer, from: number, to: number): Promise<void> {
  let next = from
  const worker = async (): Promise<void> => {
    while (next < to) {
      const pos = next
      next += KERNEL_READ
      const len = Math.min(KERNEL_READ, to - pos)
      const n = await file.read(out.subarray(pos, pos + len), len, pos)
      assert.equal(n, len)
    }
  }
  await Promise.all(Array.from({ length: KERNEL_INFLIGHT }, worker))
}

/** The whole file read through one OpenFile (opened as the mount opens it); its sha256. */
async function readWhole(cas: Cas, ref: FileRef): Promise<string> {
  const file = cas.openFile(ref, 'big')
  file.prefetchStart()
  const out = Buffer.alloc(ref.size)
  try {
    await readLikeTheKernel(file, out, 0, ref.size)
  } finally {
    file.close()
  }
  return sha(out)
}

/**
 * A scene where the origin holds one big random file of `mib` MiB and a mirror a full replica
 * of its store (both online), and a reader with both as peers of the store runs `fn`.
 */
async function withTwoHolders(mib: number, fn: (x: { scene: Scene; sharing: Buffer; big: Stored; total: number; reader: Awaited<ReturnType<Scene['reader']>> }) => Promise<void>): Promise<void> {
  const scene = await Scene.start()
  let mirrors: StoreMirrors | null = null
  try {
    const sharing = randomBytes(32)
    const [big] = await scene.fill(sharing, mib, 0)
    const mirror = await scene.peer('mirror')
    await goOnline(scene.origin, scene.bootstrap)
    await goOnline(mirror, scene.bootstrap)
    mirrors = new StoreMirrors(mirror.store, mirror.dir)
    await mirrors.mirror({ node: randomBytes(32), ...scene.keys })
    const held = mirrors.get(mirrors.list()[0]!.node)!
    await until('the mirror to hold the whole store', () => held.cas.length > 0 && held.cas.contiguousLength === held.cas.length && held.index.contiguousLength === held.index.length && held.index.length === held.cas.length)
    const reader = await scene.reader('reader', 10_000)
    await until('both holders to be peers of the store', () => reader.w.core.peers.length >= 2)
    await fn({ scene, sharing, big: big!, total: held.cas.length, reader })
  } finally {
    await mirrors?.close()
    await scene.close()
  }
}

test('a large file read through an open file from two peers holding its store: both serve part of it, each pack about once', { timeout: 600_000 }, async () => {
  await withTwoHolders(64, async ({ sharing, big, total, reader: { peer, w, lines } }) => {
    // The first 16 MiB, then the reader pauses: what it will reach next is requested ahead as
    // whole packs (at least half a window of 8 x 16 MiB: to 48 MiB of 64; the chunk loads in
    // flight reach 8 MiB past the reader at most), so it arrives while the reader waits.
    const file = new Cas(peer.chunks, sharing).openFile(big.ref, 'big')
    file.prefetchStart()
    const out = Buffer.alloc(big.size)
    await readLikeTheKernel(file, out, 0, 16 * MiB)
    await until('the packs requested ahead of the reader to arrive', async () => (await heldCount(w.core)) >= total * 0.6)
    await readLikeTheKernel(file, out, 16 * MiB, big.size)
    file.close()
    assert.equal(sha(out), big.sha, 'the content read is what was stored')
    const byPeer = [...w.byPeer.values()]
    console.log(`# ${total} packs; downloads by peer: ${JSON.stringify([...w.byPeer])} (${w.packs.length} in all)`)
    assert.equal(w.byPeer.size, 2, `both peers served packs: ${JSON.stringify([...w.byPeer])}`)
    for (const n of byPeer) assert.ok(n >= total / 10, `each peer served a real part of the read: ${JSON.stringify([...w.byPeer])} of ${total} packs`)
    // Requested ahead as ranges, each peer kept busy with its own packs: hypercore asks a
    // second peer for a block in flight at the first (its hotswap) only when it has too few.
    assert.ok(w.packs.length <= total * 1.25, `${w.packs.length} downloads for ${total} packs`)
    assert.deepEqual(lines.filter((l) => l.startsWith('warn')), [])
  })
})

test('a peer that goes away part way through a large read does not fail it when another holds the data', { timeout: 600_000 }, async () => {
  await withTwoHolders(48, async ({ scene, sharing, big, total, reader: { peer, w, lines } }) => {
    // The origin leaves once a third of the packs are here; the mirror holds everything.
    let left: Promise<void> | null = null
    let at = 0
    w.core.on('download', () => {
      if (!left && w.packs.length >= total / 3) {
        at = w.packs.length
        left = goOffline(scene.origin)
      }
    })
    const got = await readWhole(new Cas(peer.chunks, sharing), big.ref)
    await left
    console.log(`# the origin left after ${at} of ${total} packs; downloads by peer: ${JSON.stringify([...w.byPeer])}`)
    assert.ok(left !== null && at < total, 'the origin left before the read was done')
    assert.equal(got, big.sha, 'the content read is what was stored')
    assert.equal(await heldCount(w.core), total)
    assert.deepEqual(lines.filter((l) => l.startsWith('warn')), [])
  })
})
