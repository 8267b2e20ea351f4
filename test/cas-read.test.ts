// The read half of the content store (cas-read.ts): open files over multi-leaf manifests,
// the shared chunk cache's bound, the decrypt/verify worker pool against inline opening.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Corestore from 'corestore'
import { randomBytes } from '../src/crypto.js'
import { Cas, ChunkCache, ChunkStore, CorruptContentError, OpenPool, casKeys, chunkBuffer, gearTable, sealObject } from '../src/cas/index.js'
import { MAX_AHEAD_BYTES } from '../src/cas/cas-read.js'

const MiB = 1024 * 1024

async function withStore<T>(fn: (chunks: ChunkStore) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-read-'))
  const store = new Corestore(path.join(dir, 'store'))
  const chunks = await ChunkStore.open(store)
  try {
    return await fn(chunks)
  } finally {
    await chunks.close()
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** A seeded generator of read ranges: offsets across the file and past its end, sizes 1 B to 1 MiB. */
function ranges(size: number, count: number, seed: number): Array<[number, number]> {
  let x = seed
  const next = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n
  }
  const sizes = [1, 7, 4096, 65536, 131072, 300001, MiB]
  return Array.from({ length: count }, () => [next(size + 4096), next(3) === 0 ? 1 + next(200000) : sizes[next(sizes.length)]!])
}

test('an open file reads random ranges of a multi-leaf file, sequential runs with read-ahead, one-off reads without', async () => {
  await withStore(async (chunks) => {
    const cache = new ChunkCache(16 * MiB)
    const cas = new Cas(chunks, randomBytes(32), { cache })
    // ~1,150 chunks of ~72 KiB: more than one leaf (1024 entries) under a level-1 root.
    const data = randomBytes(80 * MiB + 333)
    const ref = await cas.writeBuffer(data)
    const file = cas.openFile(ref, 'big')
    for (const [offset, length] of ranges(data.length, 300, 11)) {
      const buf = Buffer.alloc(length)
      const n = await file.read(buf, length, offset)
      const want = data.subarray(Math.min(offset, data.length), Math.min(offset + length, data.length))
      assert.equal(n, want.length, `length at ${offset}+${length}`)
      assert.ok(buf.subarray(0, n).equals(want), `bytes at ${offset}+${length}`)
      assert.ok(cache.bytes <= cache.maxBytes, `cache holds ${cache.bytes} bytes`)
    }
    // A sequential reader in 128 KiB requests (the kernel's), crossing the leaf boundary.
    const buf = Buffer.alloc(128 * 1024)
    for (let at = 60 * MiB; at < 76 * MiB; at += buf.length) {
      assert.equal(await file.read(buf, buf.length, at), buf.length)
      assert.ok(buf.equals(data.subarray(at, at + buf.length)), `sequential at ${at}`)
      assert.ok(cache.bytes <= cache.maxBytes, `cache holds ${cache.bytes} bytes`)
    }
    file.close()
    assert.ok((await cas.read(ref, 64 * MiB - 5, 10)).equals(data.subarray(64 * MiB - 5, 64 * MiB + 5)))
    assert.equal((await cas.read(ref, data.length + 10, 10)).length, 0)
  })
})

test('the cache stays within its bytes, smaller than the read-ahead window, with concurrent readers', async () => {
  await withStore(async (chunks) => {
    const cache = new ChunkCache(MAX_AHEAD_BYTES / 8)
    const cas = new Cas(chunks, randomBytes(32), { cache })
    const data = randomBytes(12 * MiB)
    const ref = await cas.writeBuffer(data)
    const readers = Array.from({ length: 3 }, async (_, r) => {
      const file = cas.openFile(ref, `reader ${r}`)
      const buf = Buffer.alloc(128 * 1024 + r)
      for (let at = r * 1000; at < data.length; at += buf.length) {
        const n = await file.read(buf, buf.length, at)
        assert.ok(buf.subarray(0, n).equals(data.subarray(at, at + n)), `reader ${r} at ${at}`)
        assert.ok(cache.bytes <= cache.maxBytes, `cache holds ${cache.bytes} bytes`)
      }
      file.close()
    })
    await Promise.all(readers)
    assert.ok(cache.bytes <= cache.maxBytes)
  })
})

test('the worker pool and inline opening give the same bytes; a damaged chunk fails naming the file in both', async () => {
  await withStore(async (chunks) => {
    const key = randomBytes(32)
    const data = randomBytes(4 * MiB)
    const pieces = chunkBuffer(gearTable(key), data)
    const k = 3
    const start = pieces.slice(0, k).reduce((n, c) => n + c.length, 0)
    const sealed = sealObject(casKeys(key), pieces[k]!)
    const damaged = Buffer.from(sealed.block)
    damaged[damaged.length - 20]! ^= 0x40
    await chunks.put([{ address: sealed.address, block: damaged }]) // the store keeps the first block of an address
    const ref = await new Cas(chunks, key).writeBuffer(data)
    for (const workers of [0, 2]) {
      const cas = new Cas(chunks, key, { cache: new ChunkCache(), pool: new OpenPool(workers) })
      assert.ok((await cas.read(ref, 0, start)).equals(data.subarray(0, start)), `${workers} workers: before the damage`)
      const after = start + pieces[k]!.length
      assert.ok((await cas.read(ref, after, data.length)).equals(data.subarray(after)), `${workers} workers: after the damage`)
      await assert.rejects(cas.read(ref, start + 1, 10, 'dir/f'), (err: Error) =>
        err instanceof CorruptContentError && err.message.startsWith(`dir/f: corrupt content in chunk at offset ${start} (`) && /decryption failed/.test(err.message))
      const parts: Buffer[] = []
      await assert.rejects(async () => { for await (const p of cas.readFile(ref, 'dir/f')) parts.push(p) }, CorruptContentError)
      assert.ok(Buffer.concat(parts).equals(data.subarray(0, start)), `${workers} workers: readFile yields what precedes the damage`)
    }
  })
})
