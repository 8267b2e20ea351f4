import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Corestore from 'corestore'
import { expandKey, hash, randomBytes } from '../src/crypto.js'
import {
  Cas, ChunkStore, Chunker, CorruptContentError, MissingContentError, MAX_CHUNK, MIN_CHUNK,
  ManifestBuilder, casKeys, decodeManifestNode, encodeManifestNode, openObject, sealObject, plainHash, type FileRef
} from '../src/cas/index.js'
import { CAS_CORE_NAME, CAS_INDEX_CORE_NAME, PACKS_CORE_NAME, PACK_INDEX_CORE_NAME, type ChunkStoreOptions, type StoredObject } from '../src/cas/chunk-store.js'
import { decodePackEntries, encodeIndexBlock, encodePack } from '../src/cas/pack-codec.js'
import { TABLE_FILE_NAME, decodeTableFile, encodeTableFile } from '../src/cas/table-file.js'

const MiB = 1024 * 1024

async function withStore<T>(fn: (ctx: { dir: string; store: Corestore; chunks: ChunkStore }) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-'))
  const store = new Corestore(path.join(dir, 'store'))
  const chunks = await ChunkStore.open(store)
  try {
    return await fn({ dir, store, chunks })
  } finally {
    await chunks.close()
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function readAll(cas: Cas, ref: FileRef, what?: string): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of cas.readFile(ref, what)) parts.push(part)
  return Buffer.concat(parts)
}

function writeRandomFile(file: string, size: number, prefix?: Buffer, seedData?: Buffer): Buffer {
  const data = seedData ?? randomBytes(size)
  fs.writeFileSync(file, prefix ? Buffer.concat([prefix, data]) : data)
  return data
}

test('round trip: empty, tiny, exactly at chunk boundaries, multi-MiB; random access at odd offsets', async () => {
  await withStore(async ({ dir, chunks }) => {
    const cas = new Cas(chunks, randomBytes(32))
    const big = randomBytes(5 * MiB + 12345)
    const cuts = [...new Chunker(randomBytes(32)).split(big)] // another key, just to get real sizes
    const firstTwo = new Chunker(Buffer.alloc(32)).split(big)
    const a = firstTwo.next().value as Buffer
    const b = firstTwo.next().value as Buffer
    assert.ok(cuts.length > 10)
    const cases: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['one byte', Buffer.from([7])],
      ['tiny', Buffer.from('hello, bazil')],
      ['min chunk', big.subarray(0, MIN_CHUNK)],
      ['max chunk', big.subarray(0, MAX_CHUNK)],
      ['max chunk + 1', big.subarray(0, MAX_CHUNK + 1)],
      ['zeros, 1 MiB', Buffer.alloc(MiB)],
      ['multi-MiB random', big]
    ]
    // A file ending exactly where the chunker cuts, under the Cas's own key.
    const zeroKeyCas = new Cas(chunks, Buffer.alloc(32))
    const boundary = big.subarray(0, a.length + b.length)
    const boundaryRef = await zeroKeyCas.writeBuffer(boundary)
    assert.deepEqual(await readAll(zeroKeyCas, boundaryRef), boundary)

    for (const [name, data] of cases) {
      const ref = await cas.writeBuffer(data)
      assert.equal(ref.size, data.length, name)
      assert.equal(ref.hash.length, 32, name)
      assert.deepEqual(await readAll(cas, ref, name), data, name)
      assert.ok(await cas.has(ref), name)
      const file = path.join(dir, 'input')
      fs.writeFileSync(file, data)
      const fromDisk = await cas.writeFile(file)
      assert.deepEqual(fromDisk, ref, `${name}: file on disk and buffer give the same reference`)
    }

    const ref = await cas.writeBuffer(big)
    for (const [offset, length] of [[0, 1], [1, 3], [MIN_CHUNK - 1, 2], [65537, 300001], [big.length - 7, 100], [big.length, 5], [big.length + 9, 5], [12345, 0], [3, big.length]]) {
      assert.deepEqual(await cas.read(ref, offset!, length!), big.subarray(offset!, offset! + length!), `read(${offset}, ${length})`)
    }
    for (let i = 0; i < 50; i++) {
      const offset = Math.floor(Math.random() * big.length)
      const length = Math.floor(Math.random() * 3 * MAX_CHUNK)
      assert.deepEqual(await cas.read(ref, offset, length), big.subarray(offset, offset + length))
    }
    await assert.rejects(cas.read(ref, -1, 5), /bad read offset/)
    await assert.rejects(cas.read(ref, 1.5, 5), /bad read offset/)
    await assert.rejects(cas.read({ hash: Buffer.alloc(3), size: 1 }, 0, 1), /hash must be 32 bytes/)

    // A stream source of odd-sized pieces cuts the same as the whole buffer.
    async function * pieces(): AsyncGenerator<Buffer> {
      for (let at = 0; at < big.length; at += 77777) yield big.subarray(at, at + 77777)
    }
    assert.deepEqual(await cas.writeFile(pieces()), ref)
  })
})

test('100 MiB: a one-byte insert at the start adds < 1%, re-import adds nothing; multi-level manifest reads', async () => {
  await withStore(async ({ dir, chunks }) => {
    const cas = new Cas(chunks, randomBytes(32))
    const size = 100 * MiB
    const original = path.join(dir, 'original')
    const shifted = path.join(dir, 'shifted')
    const data = writeRandomFile(original, size)
    writeRandomFile(shifted, size, Buffer.from([42]), data)

    const s0 = await chunks.stats()
    const ref = await cas.writeFile(original)
    const s1 = await chunks.stats()
    assert.ok(s1.bytes - s0.bytes >= size, 'the first import stores the whole file')
    const again = await cas.writeFile(original)
    const s2 = await chunks.stats()
    assert.deepEqual(again, ref)
    assert.equal(s2.bytes - s1.bytes, 0, 're-import adds nothing')
    const shiftedRef = await cas.writeFile(shifted)
    const s3 = await chunks.stats()
    assert.equal(shiftedRef.size, size + 1)
    assert.ok(s3.bytes - s2.bytes <= 0.01 * size, `insert added ${s3.bytes - s2.bytes} bytes`)

    // Reads across the manifest tree (this file needs several leaves).
    for (let i = 0; i < 20; i++) {
      const offset = Math.floor(Math.random() * size)
      const length = 1 + Math.floor(Math.random() * MiB)
      assert.deepEqual(await cas.read(shiftedRef, offset + 1, length), data.subarray(offset, offset + length))
    }
    const head = await cas.read(shiftedRef, 0, 10)
    assert.equal(head[0], 42)
    let at = 0
    for await (const part of cas.readFile(ref)) {
      assert.ok(part.equals(data.subarray(at, at + part.length)), `readFile at ${at}`)
      at += part.length
    }
    assert.equal(at, size)
  })
})

test('chunk boundaries are content-defined: a prefix insert changes only the first chunks', () => {
  // Deterministic bytes (a keyed BLAKE2b stream): resynchronisation after an insert usually
  // takes one chunk, rarely three, so random data made this test flaky.
  const seeded = (seed: number, n: number): Buffer => expandKey(Buffer.alloc(32, seed), n)
  const chunker = new Chunker(seeded(1, 32))
  const data = seeded(2, 8 * MiB)
  const before = [...chunker.split(data)].map((c) => plainHash(c).toString('hex'))
  const after = [...chunker.split(Buffer.concat([seeded(3, 100), data]))].map((c) => plainHash(c).toString('hex'))
  const known = new Set(before)
  const realigned = after.findIndex((h) => known.has(h))
  assert.ok(realigned >= 1 && realigned <= 2, `cuts realigned after ${realigned} chunks`)
  assert.equal(after.slice(realigned).filter((h) => !known.has(h)).length, 0, 'every chunk after the realignment is unchanged')
  for (const c of chunker.split(data)) assert.ok(c.length <= MAX_CHUNK)
  // The Gear table depends on the sharing key: another key cuts elsewhere.
  const other = [...new Chunker(seeded(4, 32)).split(data)].map((c) => c.length)
  assert.notDeepEqual(other, [...chunker.split(data)].map((c) => c.length))
})

/** How many manifest nodes a file has (a node closes at a content-defined point, so sometimes more than one). */
function manifestNodes(key: Buffer, data: Buffer): number {
  const builder = new ManifestBuilder()
  let nodes = 0
  for (const c of new Chunker(key).split(data)) nodes += builder.add({ hash: plainHash(c), size: c.length }).length
  return nodes + builder.finish().nodes.length
}

test('the same content is stored once, across files, Cas instances and concurrent writers', async () => {
  await withStore(async ({ chunks }) => {
    const key = randomBytes(32)
    const data = randomBytes(6 * MiB)
    const refs = await Promise.all([new Cas(chunks, key).writeBuffer(data), new Cas(chunks, key).writeBuffer(data), new Cas(chunks, key).writeBuffer(data)])
    assert.deepEqual(refs[1], refs[0])
    assert.deepEqual(refs[2], refs[0])
    const once = await chunks.stats()
    const blocks = [...new Chunker(key).split(data)].length
    assert.equal(once.chunks, blocks + manifestNodes(key, data), 'every chunk and manifest node once')
    // Appending a copy of the first MiB stores exactly the chunks that are new (the old tail,
    // those until the cuts realign with the copy: usually 1-3, seen up to 6) and the new
    // manifest nodes; every other chunk is shared.
    const longer = Buffer.concat([data, data.subarray(0, MiB)])
    const known = new Set([...new Chunker(key).split(data)].map((c) => plainHash(c).toString('hex')))
    const fresh = new Set([...new Chunker(key).split(longer)].map((c) => plainHash(c).toString('hex')).filter((h) => !known.has(h)))
    await new Cas(chunks, key).writeBuffer(longer)
    const added = (await chunks.stats()).chunks - once.chunks
    assert.ok(added >= fresh.size && added <= fresh.size + manifestNodes(key, longer), `${added} objects added for ${fresh.size} new chunks`)
    assert.ok(fresh.size <= 12, `${fresh.size} of ~${Math.round(longer.length / (72 * 1024))} chunks are new`)
  })
})

test('another sharing key gets other addresses and cannot read the content', async () => {
  await withStore(async ({ chunks }) => {
    const mine = new Cas(chunks, randomBytes(32))
    const otherKey = randomBytes(32)
    const theirs = new Cas(chunks, otherKey)
    const data = randomBytes(MiB)
    const ref = await mine.writeBuffer(data)
    const s1 = await chunks.stats()
    await assert.rejects(readAll(theirs, ref, 'notes.txt'), (err: Error) => err instanceof MissingContentError && /notes\.txt/.test(err.message))
    await assert.rejects(theirs.read(ref, 0, 10, 'notes.txt'), MissingContentError)
    assert.equal(await theirs.has(ref), false)
    const theirRef = await theirs.writeBuffer(data)
    assert.ok((await chunks.stats()).bytes - s1.bytes >= data.length, 'the same plaintext is stored again under its own addresses')
    assert.deepEqual(await readAll(theirs, theirRef), data)

    // At the object level: other address, and the other key's block does not open.
    const plain = Buffer.from('same plaintext')
    const a = sealObject(casKeys(randomBytes(32)), plain)
    const b = sealObject(casKeys(otherKey), plain)
    assert.deepEqual(a.hash, b.hash)
    assert.notDeepEqual(a.address, b.address)
    assert.throws(() => openObject(casKeys(otherKey), a.hash, a.block), /another address/)
    const forged = Buffer.from(a.block)
    b.address.copy(forged, 1)
    assert.throws(() => openObject(casKeys(otherKey), b.hash, forged), /decryption failed/)
  })
})

// --- corruption of the bytes on disk -------------------------------------------------------

/** Where `needle` occurs in the store's files (RocksDB keeps chunk values in .blob files after compaction). */
function findOnDisk(dir: string, needle: Buffer): { file: string; at: number } | null {
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const file = path.join(dir, name)
    if (!fs.statSync(file).isFile()) continue
    const at = fs.readFileSync(file).indexOf(needle)
    if (at >= 0) return { file, at }
  }
  return null
}

const CRC32C_TABLE = (() => {
  const t = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c
  }
  return t
})()

function crc32c(data: Buffer): number {
  let c = ~0
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** RocksDB's masked CRC, as stored in blob records. */
function maskedCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0
}

/**
 * Rewrites the CRC of the RocksDB blob record holding a value that starts at `valueAt`, so the
 * storage layer's own check passes and only bazil's verification stands between the flipped
 * byte and the reader. Record: key_len u64, value_len u64, expiration u64, header_crc u32,
 * blob_crc u32 (masked crc32c of key || value), key, value.
 */
function fixBlobCrc(file: string, valueAt: number, valueLength: number): boolean {
  const data = fs.readFileSync(file)
  for (let keyLength = 0; keyLength < 256; keyLength++) {
    const header = valueAt - keyLength - 32
    if (header < 0) break
    if (data.readBigUInt64LE(header) !== BigInt(keyLength) || data.readBigUInt64LE(header + 8) !== BigInt(valueLength)) continue
    const crc = maskedCrc(crc32c(data.subarray(header + 32, valueAt + valueLength)))
    data.writeUInt32LE(crc, header + 28)
    fs.writeFileSync(file, data)
    return true
  }
  return false
}

async function corruptionCase(fixCrc: boolean): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-corrupt-'))
  const storeDir = path.join(dir, 'store')
  const key = randomBytes(32)
  const data = randomBytes(3 * MiB)
  try {
    let store = new Corestore(storeDir)
    let chunks = await ChunkStore.open(store)
    const ref = await new Cas(chunks, key).writeBuffer(data)
    await chunks.flush()
    // The second of the file's ~3 packs (the first holds the start of the file, the last its manifest).
    const raw = store.get({ name: PACKS_CORE_NAME })
    await raw.ready()
    assert.ok(raw.length >= 3, `${raw.length} packs`)
    const block = await raw.get(1)
    await raw.close()
    assert.ok(block)
    await store.storage.compact() // moves the values out of the write-ahead log into files that stay
    await chunks.close()
    await store.close()

    const at = Math.floor(block.length / 2)
    const found = findOnDisk(storeDir, block.subarray(at, at + 32))
    assert.ok(found, 'the ciphertext is somewhere on disk')
    const bytes = fs.readFileSync(found.file)
    bytes[found.at + 7]! ^= 0x10
    fs.writeFileSync(found.file, bytes)
    if (fixCrc) assert.ok(fixBlobCrc(found.file, found.at - at, block.length), 'found the blob record header')

    store = new Corestore(storeDir)
    chunks = await ChunkStore.open(store)
    try {
      const cas = new Cas(chunks, key)
      const named = (err: Error): boolean => err instanceof CorruptContentError && err.message.startsWith('photos/cat.jpg: ') && /chunk at offset \d+/.test(err.message)
      await assert.rejects(readAll(cas, ref, 'photos/cat.jpg'), named)
      await assert.rejects(cas.read(ref, 0, data.length, 'photos/cat.jpg'), named)
      // Chunks before the damaged one still read.
      assert.deepEqual(await cas.read(ref, 0, 100, 'photos/cat.jpg'), data.subarray(0, 100))
      if (fixCrc) await assert.rejects(readAll(cas, ref, 'photos/cat.jpg'), /decryption failed/)
    } finally {
      await chunks.close()
      await store.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('a flipped byte on disk surfaces as an error naming the file (storage checksum)', async () => {
  await corruptionCase(false)
})

test('a flipped byte that passes the storage checksum is caught by decryption, naming the file', async () => {
  await corruptionCase(true)
})

test('manifest nodes: tree building, and the decoder rejects what it does not know', () => {
  const nodes = new Map<string, Buffer>()
  const builder = new ManifestBuilder()
  const keep = (list: Buffer[]): void => { for (const n of list) nodes.set(plainHash(n).toString('hex'), n) }
  let total = 0
  for (let i = 0; i < 5000; i++) {
    const size = 1 + (i % 1000)
    total += size
    keep(builder.add({ hash: randomBytes(32), size }))
  }
  const { root, nodes: rest } = builder.finish()
  keep(rest)
  assert.equal(root.size, total)
  const top = decodeManifestNode(nodes.get(root.hash.toString('hex'))!)
  assert.ok(top.level >= 1, 'a 5000-entry list becomes a tree')
  let leaves = 0
  const walk = (hash: Buffer): number => {
    const node = decodeManifestNode(nodes.get(hash.toString('hex'))!)
    if (node.level === 0) { leaves += node.entries.length; return node.size }
    return node.entries.reduce((s, e) => s + walk(e.hash), 0)
  }
  assert.equal(walk(root.hash), total)
  assert.equal(leaves, 5000)

  const good = encodeManifestNode(0, [{ hash: randomBytes(32), size: 10 }])
  assert.equal(decodeManifestNode(good).size, 10)
  const bad = (mutate: (b: Buffer) => Buffer, re: RegExp): void => assert.throws(() => decodeManifestNode(mutate(Buffer.from(good))), re)
  bad((b) => { b[4] = 2; return b }, /unknown manifest version 2/)
  bad((b) => { b[0] = 0x41; return b }, /bad magic/)
  bad((b) => b.subarray(0, b.length - 1), /does not match/)
  bad((b) => { b.writeBigUInt64LE(11n, 8); return b }, /sum to 10 bytes, header says 11/)
  bad((b) => { b.writeBigUInt64LE(BigInt(MAX_CHUNK + 1), 48); b.writeBigUInt64LE(BigInt(MAX_CHUNK + 1), 8); return b }, /exceeds/)
  bad((b) => { b[5] = 9; return b }, /level 9/)
  assert.throws(() => openObject(casKeys(randomBytes(32)), randomBytes(32), Buffer.from([2, ...randomBytes(60)])), /unknown block version 2/)
})

// ---- the pack store (spec/cas.md section 4) ----

/** Objects with a valid block header and random addresses (not openable: for the store alone). */
function syntheticObjects(n: number): StoredObject[] {
  const out: StoredObject[] = []
  for (let i = 0; i < n; i++) {
    const address = randomBytes(32)
    out.push({ address, block: Buffer.concat([Buffer.from([1]), address, randomBytes(24 + (i % 300))]) })
  }
  return out
}

/** Opens the store in `dir` (a corestore directory), runs fn, and closes it (close: false = a crash: the corestore closes, the ChunkStore never does). */
async function session<T>(dir: string, fn: (chunks: ChunkStore, store: Corestore) => Promise<T>, opts: ChunkStoreOptions & { close?: boolean } = {}): Promise<T> {
  const store = new Corestore(dir)
  let chunks: ChunkStore
  try {
    chunks = await ChunkStore.open(store, { log: () => {}, ...opts })
  } catch (err) {
    await store.close()
    throw err
  }
  try {
    return await fn(chunks, store)
  } finally {
    if (opts.close !== false) await chunks.close()
    await store.close()
  }
}

async function assertAllFound(chunks: ChunkStore, objects: StoredObject[], what: string): Promise<void> {
  for (const o of objects) {
    assert.equal(await chunks.has(o.address), true, `${what}: ${o.address.toString('hex')} found`)
    assert.deepEqual(await chunks.get(o.address), o.block, what)
  }
  for (const o of syntheticObjects(100)) {
    assert.equal(await chunks.has(o.address), false, `${what}: an absent address is absent`)
    assert.equal(await chunks.get(o.address), null, `${what}: an absent address is absent`)
  }
}

async function withStoreDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-packs-'))
  try {
    return await fn(path.join(root, 'corestore'))
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

/** A raw core of the corestore in `dir`, opened for fn (no ChunkStore running). */
async function withCore<T>(dir: string, name: string, fn: (core: Awaited<ReturnType<Corestore['get']>>) => Promise<T>): Promise<T> {
  const store = new Corestore(dir)
  const core = store.get({ name })
  await core.ready()
  try {
    return await fn(core)
  } finally {
    await core.close()
    await store.close()
  }
}

/** A small file's objects (one chunk, one manifest leaf) and its reference, sealed under `key`. */
function smallFile(key: Buffer, data: Buffer): { ref: FileRef; objects: StoredObject[] } {
  const keys = casKeys(key)
  const chunk = sealObject(keys, data)
  const builder = new ManifestBuilder()
  const nodes = builder.add({ hash: chunk.hash, size: data.length })
  const { root, nodes: rest } = builder.finish()
  const objects = [{ address: chunk.address, block: chunk.block }]
  for (const plain of [...nodes, ...rest]) {
    const sealed = sealObject(keys, plain)
    objects.push({ address: sealed.address, block: sealed.block })
  }
  return { ref: { hash: root.hash, size: root.size }, objects }
}

test('objects put together share packs of about the target size; reopening finds every object; storing again adds nothing', async () => {
  await withStoreDir(async (dir) => {
    const objects = syntheticObjects(6000)
    let packs = 0
    await session(dir, async (chunks, store) => {
      assert.deepEqual(chunks.load, { source: 'index', reason: 'no table file', indexBlocks: 0, recovered: 0, migrated: 0, ms: chunks.load.ms })
      await Promise.all([chunks.put(objects.slice(0, 2000)), chunks.put(objects.slice(2000, 4000)), chunks.put(objects.slice(4000))])
      const stats = await chunks.stats()
      assert.equal(stats.chunks, objects.length)
      assert.equal(stats.bytes, objects.reduce((n, o) => n + o.block.length, 0))
      const raw = store.get({ name: PACKS_CORE_NAME })
      await raw.ready()
      packs = raw.length
      // ~1.1 MB of objects: a few packs of at most the target, in one group.
      assert.ok(packs >= 2 && packs <= 4, `${packs} packs`)
      let inOrder: Buffer[] = []
      for (let i = 0; i < packs; i++) {
        const pack = (await raw.get(i))!
        assert.ok(pack.length <= 1024 * 1024, `pack ${i}: ${pack.length} bytes`)
        inOrder = inOrder.concat(decodePackEntries(pack).map((e) => Buffer.from(e.address)))
      }
      assert.deepEqual(inOrder, objects.map((o) => o.address), 'objects put together stay together, in order')
      await raw.close()
      await assertAllFound(chunks, objects.slice(0, 500), 'written')
    })
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.source, 'file')
      assert.equal(chunks.load.indexBlocks, 0, 'the table file covers the whole index')
      await assertAllFound(chunks, objects, 'reopened')
      const before = await chunks.stats()
      await chunks.put(objects.slice(0, 1000))
      await chunks.put([objects[5]!, objects[5]!])
      assert.deepEqual(await chunks.stats(), before)
    })
    await withCore(dir, PACK_INDEX_CORE_NAME, async (index) => assert.equal(index.length, packs, 'nothing appended by puts that added nothing'))
  })
})

test('a pack appended without its index block (a crash in between) is indexed on open from the pack itself', async () => {
  await withStoreDir(async (dir) => {
    const key = randomBytes(32)
    const data = randomBytes(100_000)
    const first = syntheticObjects(300)
    await session(dir, (chunks) => chunks.put(first))
    // What a crash after the packs append and before the index append leaves behind.
    const keys = casKeys(key)
    const blocks = [...new Chunker(key).split(data)].map((piece) => sealObject(keys, piece).block)
    await withCore(dir, PACKS_CORE_NAME, (packs) => packs.append(encodePack(blocks).pack))
    await session(dir, async (chunks, store) => {
      assert.equal(chunks.load.recovered, 1)
      const index = store.get({ name: PACK_INDEX_CORE_NAME })
      await index.ready()
      assert.equal(index.length, 2, 'the missing index block was appended')
      await index.close()
      const before = await chunks.stats()
      const ref = await new Cas(chunks, key).writeBuffer(data)
      assert.equal((await chunks.stats()).chunks - before.chunks, 1, 'only the manifest is new')
      assert.deepEqual(await readAll(new Cas(chunks, key), ref), data)
      await assertAllFound(chunks, first, 'the pack before')
    })
    await session(dir, async (chunks) => assert.equal(chunks.load.recovered, 0))
  })
})

test('a pack with one corrupt object: that object\'s file fails with an error naming it, every other object of the pack reads', async () => {
  await withStore(async ({ store, chunks }) => {
    const key = randomBytes(32)
    const files = [0, 1, 2, 3].map((i) => smallFile(key, Buffer.from(`file ${i}: ${'x'.repeat(100 * i)}`)))
    // File 2's chunk has a flipped ciphertext byte (a bad disk or a bad writer, under a valid pack).
    const bad = Buffer.from(files[2]!.objects[0]!.block)
    bad[bad.length - 20]! ^= 0x01
    files[2]!.objects[0] = { address: files[2]!.objects[0]!.address, block: bad }
    await chunks.put(files.flatMap((f) => f.objects))
    const raw = store.get({ name: PACKS_CORE_NAME })
    await raw.ready()
    assert.equal(raw.length, 1, 'one pack')
    await raw.close()
    const cas = new Cas(chunks, key)
    await assert.rejects(readAll(cas, files[2]!.ref, 'docs/two.txt'), (err: Error) => err instanceof CorruptContentError && /^docs\/two\.txt: .*decryption failed/.test(err.message))
    for (const i of [0, 1, 3]) assert.equal((await readAll(cas, files[i]!.ref, `f${i}`)).toString(), `file ${i}: ${'x'.repeat(100 * i)}`)
  })
})

test('an index entry placing an address on another object is detected, never returned as data', async () => {
  await withStoreDir(async (dir) => {
    const key = randomBytes(32)
    const file = smallFile(key, randomBytes(5000))
    const other = smallFile(key, randomBytes(5000))
    // A pack holding `other`'s chunk, indexed as the file's chunk address.
    const { pack, entries } = encodePack([other.objects[0]!.block])
    await withCore(dir, PACKS_CORE_NAME, (packs) => packs.append(pack))
    await withCore(dir, PACK_INDEX_CORE_NAME, (index) => index.append(encodeIndexBlock(0, [{ ...entries[0]!, address: file.objects[0]!.address }])))
    await session(dir, async (chunks) => {
      await chunks.put(file.objects) // the chunk counts as stored: only the manifest is added
      await assert.rejects(readAll(new Cas(chunks, key), file.ref, 'a/b'), (err: Error) => err instanceof CorruptContentError && /^a\/b: .*another address/.test(err.message))
    })
  })
})

test('a malformed pack-index block fails the open with an error naming it', async () => {
  await withStoreDir(async (dir) => {
    await session(dir, (chunks) => chunks.put(syntheticObjects(10)))
    const block = await withCore(dir, PACK_INDEX_CORE_NAME, async (index) => (await index.get(0))!)
    const foreign = Buffer.from(block)
    foreign.writeBigUInt64LE(7n, 1)
    await withCore(dir, PACKS_CORE_NAME, (packs) => packs.append(encodePack(syntheticObjects(1).map((o) => o.block)).pack))
    await withCore(dir, PACK_INDEX_CORE_NAME, (index) => index.append(foreign))
    await assert.rejects(session(dir, async () => {}), /cas store: pack-index block 1 indexes pack 7/)
    // Not with a table file saved by the failed open (it would claim to cover block 1): still refused.
    await assert.rejects(session(dir, async () => {}), /cas store: pack-index block 1 indexes pack 7/)
  })
})

// ---- the table file (spec/cas.md section 7) ----

test('the pack table file: saved at close, used at open, caught up after a crash, and any unusable file falls back to reading the index', async () => {
  await withStoreDir(async (dir) => {
    const file = path.join(dir, TABLE_FILE_NAME)
    const first = syntheticObjects(3000)
    const second = syntheticObjects(1000)
    const third = syntheticObjects(500)
    await session(dir, (chunks) => chunks.put(first))
    assert.ok(fs.existsSync(file), 'the table file is in the corestore directory')
    const saved = fs.readFileSync(file)
    // A crash: puts written (and flushed), the file not rewritten; then packs without their index blocks.
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.source, 'file')
      await chunks.put(second)
      await chunks.flush()
    }, { close: false })
    assert.ok(fs.readFileSync(file).equals(saved), 'not rewritten without a close')
    await withCore(dir, PACKS_CORE_NAME, (packs) => packs.append(encodePack(third.map((o) => o.block)).pack))
    const all = [...first, ...second, ...third]
    const bytes = all.reduce((n, o) => n + o.block.length, 0)
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.source, 'file')
      assert.equal(chunks.load.recovered, 1)
      assert.ok(chunks.load.indexBlocks >= 2, `${chunks.load.indexBlocks} index blocks caught up`)
      assert.deepEqual(await chunks.stats(), { chunks: all.length, bytes })
      await assertAllFound(chunks, all, 'caught up')
    })
    const good = fs.readFileSync(file)
    const { table, coverage } = decodeTableFile(good)
    assert.equal(coverage.objectBytes, bytes)
    await session(dir, async (chunks) => assert.equal(chunks.load.indexBlocks, 0))
    // A valid file of another store.
    const otherDir = path.join(path.dirname(dir), 'other')
    await session(otherDir, (chunks) => chunks.put(syntheticObjects(10)))
    const foreign = fs.readFileSync(path.join(otherDir, TABLE_FILE_NAME))
    const flipped = Buffer.from(good)
    flipped[200]! ^= 0x10
    const version3 = Buffer.from(good)
    version3.writeUInt32LE(3, 8)
    // A version 1 file (slots without the dropped packs' bitmap): read as absent, the index is read once.
    const v1Body = Buffer.from(good.subarray(0, good.length - 32 - 4))
    v1Body.writeUInt32LE(1, 8)
    const version1 = Buffer.concat([v1Body, hash(v1Body)])
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /not a pack table file/],
      ['garbage', randomBytes(5000), /not a pack table file/],
      ['truncated', good.subarray(0, Math.floor(good.length / 2)), /digest/],
      ['a flipped bit', flipped, /digest/],
      ['a future version', version3, /version 3/],
      ['version 1 (no dropped packs)', version1, /version 1 table file/],
      ['another store', foreign, /another store/],
      ['another history (tree hash)', encodeTableFile(table, { ...coverage, treeHash: randomBytes(32) }), /another index history/],
      ['beyond the index', encodeTableFile(table, { ...coverage, length: coverage.length + 5 }), /covers \d+ index blocks/]
    ]
    for (const [name, bytes, reason] of cases) {
      fs.writeFileSync(file, bytes)
      await session(dir, async (chunks) => {
        assert.equal(chunks.load.source, 'index', name)
        assert.match(chunks.load.reason ?? '', reason, name)
        assert.deepEqual((await chunks.stats()).chunks, all.length, name)
        await assertAllFound(chunks, all.slice(0, 300), name)
      })
      const again = decodeTableFile(fs.readFileSync(file)) // a good file again after the close
      assert.deepEqual(again.coverage, coverage, name)
      assert.equal(again.table.size, all.length, name)
    }
    // An unreadable path (a directory) doesn't fail the open.
    fs.rmSync(file)
    fs.mkdirSync(file)
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.source, 'index')
      await assertAllFound(chunks, all.slice(0, 100), 'table path is a directory')
    })
    // Not kept at all.
    await session(dir, async (chunks) => assert.equal(chunks.load.reason, 'no table file kept'), { tableFile: null })
  })
})

// ---- migration of a version 1 store (cores `cas` + hyperbee `cas-index`) ----

const V1_INDEX_VERSION = 1

function v1Value(n: number): Buffer {
  const out = Buffer.alloc(9)
  out[0] = V1_INDEX_VERSION
  out.writeBigUInt64LE(BigInt(n), 1)
  return out
}

/**
 * Writes a store exactly as format version 1 did (spec/cas.md before packs): block i of core
 * `cas` = object i; hyperbee `cas-index`: A -> 1 || u64 i, and 00 -> 1 || u64 length; plus its
 * `cas-filter` cache file.
 */
async function writeV1Store(dir: string, objects: StoredObject[]): Promise<void> {
  const { default: Hyperbee } = await import('hyperbee')
  const store = new Corestore(dir)
  const cas = store.get({ name: CAS_CORE_NAME })
  const bee = new Hyperbee<Buffer, Buffer>(store.get({ name: CAS_INDEX_CORE_NAME }), { keyEncoding: 'binary', valueEncoding: 'binary' })
  await cas.ready()
  await bee.ready()
  for (let i = 0; i < objects.length; i += 256) await cas.append(objects.slice(i, i + 256).map((o) => o.block))
  for (let i = 0; i < objects.length; i += 1024) {
    const batch = bee.batch()
    for (let j = i; j < Math.min(objects.length, i + 1024); j++) await batch.put(objects[j]!.address, v1Value(j))
    await batch.put(Buffer.from([0]), v1Value(Math.min(objects.length, i + 1024)))
    await batch.flush()
  }
  await bee.close()
  await cas.close()
  await store.close()
  fs.writeFileSync(path.join(dir, 'cas-filter'), randomBytes(100))
}

async function v1Lengths(dir: string): Promise<number[]> {
  const lengths: number[] = []
  for (const name of [CAS_CORE_NAME, CAS_INDEX_CORE_NAME]) lengths.push(await withCore(dir, name, async (core) => core.length))
  return lengths
}

test('a version 1 store is migrated into packs on open, in order; the old cores are emptied; reopening finds everything', async () => {
  await withStoreDir(async (dir) => {
    const key = randomBytes(32)
    const data = randomBytes(3 * MiB)
    // A real file's objects, as the old ChunkStore appended them (chunks, then manifest nodes).
    const keys = casKeys(key)
    const builder = new ManifestBuilder()
    const fileObjects: StoredObject[] = []
    for (const piece of new Chunker(key).split(data)) {
      const sealed = sealObject(keys, piece)
      fileObjects.push({ address: sealed.address, block: sealed.block })
      for (const node of builder.add({ hash: sealed.hash, size: piece.length })) fileObjects.push(sealObject(keys, node))
    }
    const { root, nodes } = builder.finish()
    for (const node of nodes) fileObjects.push(sealObject(keys, node))
    const ref: FileRef = { hash: root.hash, size: root.size }
    const objects = [...syntheticObjects(2000), ...fileObjects.map((o) => ({ address: o.address, block: o.block }))]
    await writeV1Store(dir, objects)
    const lines: string[] = []
    await session(dir, async (chunks, store) => {
      assert.equal(chunks.load.migrated, objects.length)
      assert.equal((await chunks.stats()).chunks, objects.length)
      await assertAllFound(chunks, objects, 'migrated')
      assert.deepEqual(await readAll(new Cas(chunks, key), ref, 'big.bin'), data)
      // Packs hold the objects in their old order.
      const raw = store.get({ name: PACKS_CORE_NAME })
      await raw.ready()
      const order: Buffer[] = []
      for (let i = 0; i < raw.length; i++) for (const e of decodePackEntries((await raw.get(i))!)) order.push(Buffer.from(e.address))
      await raw.close()
      assert.deepEqual(order, objects.map((o) => o.address))
    }, { log: (level, msg) => lines.push(`${level} ${msg}`) })
    assert.ok(lines.some((l) => /^info cas store: migrating 2\d+ objects/.test(l)), lines.join('\n'))
    assert.ok(lines.some((l) => /^info cas store: migration done/.test(l)), lines.join('\n'))
    assert.deepEqual(await v1Lengths(dir), [0, 0], 'the old cores are emptied')
    assert.equal(fs.existsSync(path.join(dir, 'cas-filter')), false, 'the old filter file is removed')
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.migrated, 0)
      await assertAllFound(chunks, objects, 'reopened')
      assert.deepEqual(await readAll(new Cas(chunks, key), ref), data)
    })
  })
})

test('a migration cut by a crash resumes where it stopped: nothing stored twice, nothing lost', async () => {
  await withStoreDir(async (dir) => {
    const objects = syntheticObjects(3000)
    await writeV1Store(dir, objects)
    // What a crash mid-way leaves: objects 0..999 in packs, indexed, and cleared from `cas`;
    // objects 1000..1199 in a pack whose index block and clear never happened.
    const first = encodePack(objects.slice(0, 1000).map((o) => o.block))
    const second = encodePack(objects.slice(1000, 1200).map((o) => o.block))
    await withCore(dir, PACKS_CORE_NAME, (packs) => packs.append([first.pack, second.pack]))
    await withCore(dir, PACK_INDEX_CORE_NAME, (index) => index.append(encodeIndexBlock(0, first.entries)))
    await withCore(dir, CAS_CORE_NAME, (cas) => cas.clear(0, 1000))
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.recovered, 1)
      assert.equal(chunks.load.migrated, 2000, 'resumed after the cleared prefix')
      assert.equal((await chunks.stats()).chunks, objects.length, 'every object once')
      assert.equal((await chunks.stats()).bytes, objects.reduce((n, o) => n + o.block.length, 0))
      await assertAllFound(chunks, objects, 'resumed')
    })
    assert.deepEqual(await v1Lengths(dir), [0, 0])
  })
})

test('a store that never had a version 1 store gets no old cores', async () => {
  await withStoreDir(async (dir) => {
    await session(dir, (chunks) => chunks.put(syntheticObjects(5)))
    const store = new Corestore(dir)
    try {
      await store.ready()
      for (const name of [CAS_CORE_NAME, CAS_INDEX_CORE_NAME]) assert.equal(await store.storage.getAlias({ name, namespace: store.ns }), null, name)
      assert.ok(await store.storage.getAlias({ name: PACKS_CORE_NAME, namespace: store.ns }))
    } finally {
      await store.close()
    }
  })
})
