import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Corestore from 'corestore'
import { randomBytes } from '../src/crypto.js'
import {
  Cas, ChunkStore, Chunker, CorruptContentError, MissingContentError, MAX_CHUNK, MIN_CHUNK,
  ManifestBuilder, casKeys, decodeManifestNode, encodeManifestNode, openObject, sealObject, plainHash, type FileRef
} from '../src/fs/cas/index.js'
import { CAS_CORE_NAME, FILTER_FILE_NAME, type ChunkStoreOptions, type StoredObject } from '../src/fs/cas/chunk-store.js'
import { AddressFilter, decodeFilterFile, encodeFilterFile } from '../src/fs/cas/saved-filter.js'

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
  const chunker = new Chunker(randomBytes(32))
  const data = randomBytes(8 * MiB)
  const before = [...chunker.split(data)].map((c) => plainHash(c).toString('hex'))
  const after = [...chunker.split(Buffer.concat([randomBytes(100), data]))].map((c) => plainHash(c).toString('hex'))
  const known = new Set(before)
  const changed = after.filter((h) => !known.has(h)).length
  assert.ok(changed >= 1 && changed <= 2, `${changed} chunks changed`)
  for (const c of chunker.split(data)) assert.ok(c.length <= MAX_CHUNK)
  // The Gear table depends on the sharing key: another key cuts elsewhere.
  const other = [...new Chunker(randomBytes(32)).split(data)].map((c) => c.length)
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
    const raw = store.get({ name: 'cas' })
    await raw.ready()
    const block = await raw.get(5)
    await raw.close()
    assert.ok(block)
    await store.storage.compact() // moves the values out of the write-ahead log into files that stay
    await chunks.close()
    await store.close()

    const found = findOnDisk(storeDir, block.subarray(1000, 1032))
    assert.ok(found, 'the ciphertext is somewhere on disk')
    const bytes = fs.readFileSync(found.file)
    bytes[found.at + 7]! ^= 0x10
    fs.writeFileSync(found.file, bytes)
    if (fixCrc) assert.ok(fixBlobCrc(found.file, found.at - 1000, block.length), 'found the blob record header')

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

test('an index pointing at the wrong block is detected, never returned as data', async () => {
  await withStore(async ({ store, chunks }) => {
    const key = randomBytes(32)
    const cas = new Cas(chunks, key)
    const ref = await cas.writeBuffer(randomBytes(MiB))
    await chunks.flush() // index entries are written behind the appends
    // Repoint the index entry of block 0's address to block 1, through hyperbee itself.
    const { default: Hyperbee } = await import('hyperbee')
    const bee = new Hyperbee<Buffer, Buffer>(store.get({ name: 'cas-index' }), { keyEncoding: 'binary', valueEncoding: 'binary' })
    await bee.ready()
    const raw = store.get({ name: 'cas' })
    await raw.ready()
    const first = (await raw.get(0))!
    const address = first.subarray(1, 33)
    const value = (await bee.get(address))!.value
    const wrong = Buffer.from(value)
    wrong.writeBigUInt64LE(1n, 1)
    await bee.put(Buffer.from(address), wrong)
    await raw.close()
    await bee.close()
    // A store opened afresh: the one that wrote still remembers where it put the block.
    const reopened = await ChunkStore.open(store)
    try {
      await assert.rejects(readAll(new Cas(reopened, key), ref, 'a/b'), (err: Error) => err instanceof CorruptContentError && /^a\/b: .*another address/.test(err.message))
    } finally {
      await reopened.close()
    }
  })
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

test('blocks appended without their index entries (a crash in between) are indexed on open', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-recover-'))
  try {
    const key = randomBytes(32)
    const data = randomBytes(100_000)
    let store = new Corestore(dir)
    let chunks = await ChunkStore.open(store)
    await chunks.close()
    // What a crash after the append and before the index flush leaves behind.
    const raw = store.get({ name: 'cas' })
    await raw.ready()
    const keys = casKeys(key)
    for (const piece of new Chunker(key).split(data)) await raw.append(sealObject(keys, piece).block)
    await raw.close()
    await store.close()

    store = new Corestore(dir)
    chunks = await ChunkStore.open(store)
    try {
      const before = await chunks.stats()
      const ref = await new Cas(chunks, key).writeBuffer(data)
      assert.equal((await chunks.stats()).chunks - before.chunks, 1, 'only the manifest is new')
      assert.deepEqual(await readAll(new Cas(chunks, key), ref), data)
    } finally {
      await chunks.close()
      await store.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

// ---- the saved address filter (spec/cas.md, "The address filter file") ----

/** Objects with a valid block header (what recover() reads) and random addresses. */
function syntheticObjects(n: number): StoredObject[] {
  const out: StoredObject[] = []
  for (let i = 0; i < n; i++) {
    const address = randomBytes(32)
    out.push({ address, block: Buffer.concat([Buffer.from([1]), address, randomBytes(24)]) })
  }
  return out
}

/** Opens the store in `dir` (a corestore directory), runs fn, and closes it (close: false = a crash: the corestore closes, the ChunkStore never does). */
async function session<T>(dir: string, fn: (chunks: ChunkStore) => Promise<T>, opts: ChunkStoreOptions & { close?: boolean } = {}): Promise<T> {
  const store = new Corestore(dir)
  const chunks = await ChunkStore.open(store, opts)
  try {
    return await fn(chunks)
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
  for (const o of syntheticObjects(100)) assert.equal(await chunks.has(o.address), false, `${what}: an absent address is absent`)
}

async function withStoreDir<T>(fn: (dir: string, filterFile: string) => Promise<T>): Promise<T> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-filter-'))
  try {
    return await fn(path.join(root, 'corestore'), path.join(root, 'corestore', FILTER_FILE_NAME))
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

test('the address filter is saved at close, and reopening uses it (no index scan) and finds every object', async () => {
  await withStoreDir(async (dir, filterFile) => {
    const objects = syntheticObjects(4000)
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'scan')
      assert.equal(chunks.filterLoad.reason, 'no filter file')
      for (let i = 0; i < objects.length; i += 500) await chunks.put(objects.slice(i, i + 500))
    })
    assert.ok(fs.existsSync(filterFile), 'the filter file is in the corestore directory')
    const saved = fs.readFileSync(filterFile)
    await session(dir, async (chunks) => {
      assert.deepEqual(chunks.filterLoad.source, 'file')
      assert.equal(chunks.filterLoad.entries, 0, 'nothing to catch up')
      await assertAllFound(chunks, objects, 'reopened')
      // Storing them again adds nothing.
      const before = await chunks.stats()
      await chunks.put(objects.slice(0, 1000))
      assert.equal((await chunks.stats()).chunks, before.chunks)
    })
    assert.ok(fs.readFileSync(filterFile).equals(saved), 'a session that added nothing does not rewrite the file')
  })
})

test('objects indexed after the filter was saved are caught up from the index history', async () => {
  await withStoreDir(async (dir) => {
    const first = syntheticObjects(1500)
    const second = syntheticObjects(1000)
    await session(dir, (chunks) => chunks.put(first))
    // A session that keeps no filter file: its entries come after the saved file's coverage.
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'scan')
      await chunks.put(second)
    }, { filterFile: null })
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'file')
      assert.ok(chunks.filterLoad.entries >= second.length, `${chunks.filterLoad.entries} index entries caught up`)
      await assertAllFound(chunks, [...first, ...second], 'caught up')
    })
    // That open saved the caught-up filter at close: nothing to catch up now.
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'file')
      assert.equal(chunks.filterLoad.entries, 0)
    })
  })
})

test('a crash without a save: the next open catches up from the last saved filter; saves also happen while running', async () => {
  await withStoreDir(async (dir, filterFile) => {
    const first = syntheticObjects(1000)
    const second = syntheticObjects(800)
    const third = syntheticObjects(500)
    await session(dir, (chunks) => chunks.put(first))
    // Crash after the index is written: the file is the one of the first session.
    await session(dir, async (chunks) => {
      await chunks.put(second)
      await chunks.flush()
    }, { close: false })
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'file')
      assert.ok(chunks.filterLoad.entries >= second.length)
      await assertAllFound(chunks, [...first, ...second], 'after a crash')
    }, { close: false })
    // A crash with appended blocks whose index entries were never written (recover() adds them).
    const store = new Corestore(dir)
    const raw = store.get({ name: CAS_CORE_NAME })
    await raw.ready()
    await raw.append(third.map((o) => o.block))
    await raw.close()
    await store.close()
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'file')
      await assertAllFound(chunks, [...first, ...second, ...third], 'recovered blocks')
    }, { close: false })

    // The background save: written shortly after new entries, without a close.
    const fourth = syntheticObjects(300)
    const savedAt = fs.statSync(filterFile).mtimeMs
    await session(dir, async (chunks) => {
      await chunks.put(fourth)
      await chunks.flush()
      const deadline = Date.now() + 5000
      while (fs.statSync(filterFile).mtimeMs === savedAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      assert.notEqual(fs.statSync(filterFile).mtimeMs, savedAt, 'saved in the background')
      await new Promise((r) => setTimeout(r, 100)) // let the rename settle
    }, { close: false, filterSaveDelayMs: 50 })
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'file')
      assert.equal(chunks.filterLoad.entries, 0, 'the background save covered everything')
      await assertAllFound(chunks, [...first, ...second, ...third, ...fourth], 'after a background save')
    })
  })
})

test('a corrupt, truncated, foreign or mismatched filter file falls back to the index scan with the same answers', async () => {
  await withStoreDir(async (dir, filterFile) => {
    const objects = syntheticObjects(1000)
    await session(dir, (chunks) => chunks.put(objects))
    const good = fs.readFileSync(filterFile)
    const { filter, coverage } = decodeFilterFile(good)
    // A valid file of another store (its own index key).
    const otherRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-cas-filter-other-'))
    let foreign: Buffer
    try {
      await session(path.join(otherRoot, 'cs'), (chunks) => chunks.put(syntheticObjects(10)))
      foreign = fs.readFileSync(path.join(otherRoot, 'cs', FILTER_FILE_NAME))
    } finally {
      fs.rmSync(otherRoot, { recursive: true, force: true })
    }
    const flipped = Buffer.from(good)
    flipped[200]! ^= 0x10
    const version2 = Buffer.from(good)
    version2.writeUInt32LE(2, 8)
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /not a filter file/],
      ['garbage', randomBytes(5000), /not a filter file/],
      ['truncated', good.subarray(0, Math.floor(good.length / 2)), /digest/],
      ['a flipped bit', flipped, /digest/],
      ['a future version', version2, /version 2/],
      ['another store', foreign, /another store/],
      ['another history (tree hash)', encodeFilterFile(filter.snapshot(), { ...coverage, treeHash: randomBytes(32) }), /another index history/],
      ['beyond the index', encodeFilterFile(filter.snapshot(), { ...coverage, length: coverage.length + 5 }), /covers \d+ index blocks/]
    ]
    for (const [name, bytes, reason] of cases) {
      fs.writeFileSync(filterFile, bytes)
      await session(dir, async (chunks) => {
        assert.equal(chunks.filterLoad.source, 'scan', name)
        assert.match(chunks.filterLoad.reason ?? '', reason, name)
        assert.equal(chunks.filterLoad.entries, objects.length, `${name}: the whole index was scanned`)
        await assertAllFound(chunks, objects, name)
      })
      // The scan's filter was saved at close, and is good again.
      const again = decodeFilterFile(fs.readFileSync(filterFile))
      assert.ok(again.coverage.indexKey.equals(coverage.indexKey), name)
    }
    // An unreadable path (a directory) is a scan too, and doesn't fail the open.
    fs.rmSync(filterFile)
    fs.mkdirSync(filterFile)
    await session(dir, async (chunks) => {
      assert.equal(chunks.filterLoad.source, 'scan')
      await assertAllFound(chunks, objects.slice(0, 100), 'filter path is a directory')
    })
  })
})

test('filter file encoding round-trips and rejects layers add() would never make', () => {
  const f = new AddressFilter()
  const addrs = syntheticObjects(70_000).map((o) => o.address)
  for (const a of addrs) f.add(a)
  const coverage = { indexKey: randomBytes(32), length: 12345, treeHash: randomBytes(32) }
  const file = encodeFilterFile(f.snapshot(), coverage)
  const back = decodeFilterFile(file)
  assert.equal(back.filter.count, addrs.length)
  assert.deepEqual(back.coverage, coverage)
  for (const a of addrs) assert.ok(back.filter.mayHold(a))
  let falsePositives = 0
  for (const o of syntheticObjects(20_000)) if (back.filter.mayHold(o.address)) falsePositives++
  assert.ok(falsePositives < 20_000 * 0.03, `${falsePositives} false positives of 20000`)
  // A layer count or capacity that doesn't follow the growth rule, even with a valid digest.
  const layers = f.snapshot()
  assert.throws(() => decodeFilterFile(encodeFilterFile([layers[1]!], coverage)), /capacity/)
  assert.throws(() => decodeFilterFile(encodeFilterFile([{ ...layers[0]!, count: 5 }, layers[1]!], coverage)), /entries/)
})
