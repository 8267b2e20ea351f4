// Fetching content from peers' stores (spec/cas.md, "Remote reads"), against real corestores
// replicating over in-memory streams: many objects at once (bursts, bulk index download), a
// corrupted block, and a source that doesn't answer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import Corestore from 'corestore'
import Hyperbee from 'hyperbee'
import { ChunkStore, Cas, MissingContentError, RemoteStores, CorruptContentError, PACKS_CORE_NAME, type FileRef } from '../src/cas/index.js'
import { decodePackEntries } from '../src/cas/pack-codec.js'
import { randomBytes } from '../src/crypto.js'
import { tempDir } from './helpers.js'

interface Store { store: Corestore; chunks: ChunkStore }

async function openStore(dir: string, name: string): Promise<Store> {
  const store = new Corestore(path.join(dir, name))
  await store.ready()
  return { store, chunks: await ChunkStore.open(store, { log: () => {} }) }
}

async function closeStore(s: Store): Promise<void> {
  await s.chunks.close()
  await s.store.close()
}

/** Replicates a and b over an in-memory pipe; `stall()` silently drops everything from then on. */
function link(a: Corestore, b: Corestore): { unlink: () => void; stall: () => void } {
  let stalled = false
  const gate = (): Transform => new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (stalled) cb()
      else cb(null, chunk)
    }
  })
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.pipe(gate()).pipe(s2).pipe(gate()).pipe(s1)
  return {
    unlink: () => {
      s1.destroy()
      s2.destroy()
    },
    stall: () => {
      stalled = true
    }
  }
}

/** After a test, whatever happened: the link cut, the sources closed, the stores closed, the temp dir gone. */
async function teardown(l: { unlink: () => void } | null, remote: RemoteStores, stores: Store[], cleanup: () => void): Promise<void> {
  l?.unlink()
  await remote.close()
  for (const s of stores) await closeStore(s)
  cleanup()
}

async function readAll(cas: Cas, ref: FileRef): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of cas.readFile(ref)) parts.push(c)
  return Buffer.concat(parts)
}

test('many objects fetched at once: all verified and right; the index comes whole, packs as needed', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await openStore(dir, 'a')
  const b = await openStore(dir, 'b')
  const remote = new RemoteStores(b.store, 10_000)
  const lines: string[] = []
  remote.log = (level, msg) => lines.push(`${level} ${msg}`)
  remote.serve(b.chunks)
  let l: ReturnType<typeof link> | null = null
  try {
    const sharing = randomBytes(32)
    const casA = new Cas(a.chunks, sharing)
    const files: { ref: FileRef; data: Buffer }[] = []
    for (let i = 0; i < 400; i++) {
      const data = randomBytes(500 + (i * 37) % 8000)
      files.push({ ref: await casA.writeBuffer(data), data })
    }
    const big = randomBytes(6 * 1024 * 1024)
    files.push({ ref: await casA.writeBuffer(big), data: big })
    await a.chunks.flush()

    l = link(a.store, b.store)
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    const casB = new Cas(b.chunks, sharing)

    // A few reads: the index comes whole (it is small), the packs only as reads need them.
    for (const f of files.slice(0, 5)) assert.ok((await readAll(casB, f.ref)).equals(f.data))
    const bIndex = b.store.get({ key: a.chunks.indexKey })
    await bIndex.ready()
    const bPacks = b.store.get({ key: a.chunks.casKey })
    await bPacks.ready()
    assert.equal(await bIndex.has(0, bIndex.length), true, 'the index is downloaded whole')
    assert.equal(await bPacks.has(0, bPacks.length), false, 'packs are fetched as needed')
    await bPacks.close()

    // Everything at once, in a bulk (an export): every file right, the peer's index local.
    const t0 = Date.now()
    await remote.bulk(async () => {
      let next = 5
      const worker = async (): Promise<void> => {
        while (next < files.length) {
          const f = files[next++]!
          assert.ok((await readAll(casB, f.ref)).equals(f.data), 'content fetched from a is what a stored')
        }
      }
      await Promise.all(Array.from({ length: 16 }, worker))
    })
    const ms = Date.now() - t0
    await bIndex.close()
    assert.ok(ms < 60_000, `took ${ms} ms`)
    assert.deepEqual(lines.filter((x) => x.startsWith('warn')), [])
    // Kept in B's copy of A's store, not stored again in B's own: readable with A gone.
    await b.chunks.flush()
    assert.equal((await b.chunks.stats()).chunks, 0, 'nothing put into B\'s own store')
    l.unlink()
    l = null
    for (const f of [files[0]!, files[200]!, files[files.length - 1]!]) {
      assert.equal(await casB.has(f.ref), true)
      assert.ok((await readAll(casB, f.ref)).equals(f.data))
    }
  } finally {
    await teardown(l, remote, [b, a], cleanup)
  }
})

test('a corrupted block from a peer is refused (CorruptContentError), never returned nor stored', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const x = await openStore(dir, 'x')
  const a = await openStore(dir, 'a')
  const b = await openStore(dir, 'b')
  const remote = new RemoteStores(b.store, 5_000)
  remote.serve(b.chunks)
  let l: ReturnType<typeof link> | null = null
  try {
    const sharing = randomBytes(32)
    // X stores the file honestly; A copies X's blocks but flips a byte of the chunk's
    // ciphertext (a peer that signs bad data: hypercore's tree verifies, the content doesn't).
    const data = Buffer.from('the real content, which a will not serve\n')
    const ref = await new Cas(x.chunks, sharing).writeBuffer(data)
    await x.chunks.flush()
    const xPacks = x.store.get({ name: PACKS_CORE_NAME })
    await xPacks.ready()
    const objects = []
    for (let i = 0; i < xPacks.length; i++) {
      const pack = (await xPacks.get(i))!
      for (const e of decodePackEntries(pack)) objects.push({ address: Buffer.from(e.address), block: Buffer.from(pack.subarray(e.offset, e.offset + e.length)) })
    }
    await xPacks.close()
    assert.equal(objects.length, 2, 'one chunk, then its manifest node')
    objects[0]!.block[objects[0]!.block.length - 20] ^= 0x01
    await a.chunks.put(objects)
    await a.chunks.flush()

    l = link(a.store, b.store)
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    const casB = new Cas(b.chunks, sharing)
    await remote.bulk(async () => {
      await assert.rejects(casB.read(ref, 0, 100), (err: Error) => err instanceof CorruptContentError && /decryption failed/.test(err.message))
    })
    // The bad block stays in B's copy of A's core (hypercore verified A's signature on it) but
    // is never returned as content: every read of it fails the same way, locally.
    await b.chunks.flush()
    assert.equal((await b.chunks.stats()).chunks, 0, 'nothing put into B\'s own store')
    l.unlink()
    l = null
    await assert.rejects(casB.read(ref, 0, 100), (err: Error) => err instanceof CorruptContentError && /decryption failed/.test(err.message))
  } finally {
    await teardown(l, remote, [b, a, x], cleanup)
  }
})

test('no source answers: MissingContentError (EIO) within the timeout, with a log line', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await openStore(dir, 'a')
  const b = await openStore(dir, 'b')
  const timeoutMs = 1500
  const remote = new RemoteStores(b.store, timeoutMs)
  const lines: string[] = []
  remote.log = (level, msg) => lines.push(`${level} ${msg}`)
  remote.serve(b.chunks)
  let l: ReturnType<typeof link> | null = null
  try {
    const sharing = randomBytes(32)
    const casA = new Cas(a.chunks, sharing)
    const casB = new Cas(b.chunks, sharing)
    const first = await casA.writeBuffer(randomBytes(1000))
    await a.chunks.flush()

    // A source that isn't connected: refused after the short grace, not the timeout.
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    let t0 = Date.now()
    await assert.rejects(casB.read(first, 0, 10), MissingContentError)
    assert.ok(Date.now() - t0 < timeoutMs + 500, `took ${Date.now() - t0} ms`)
    assert.ok(lines.some((x) => /no store that may have it is connected/.test(x)), lines.join('\n'))

    // Connected, reads work; then the peer stops answering (the connection stays up): reads
    // of what isn't held here fail within the timeout, in a bulk and outside one, many at once.
    l = link(a.store, b.store)
    assert.equal((await casB.read(first, 0, 10)).length, 10)
    const later: FileRef[] = []
    for (let i = 0; i < 20; i++) later.push(await casA.writeBuffer(randomBytes(3000)))
    await a.chunks.flush()
    l.stall()
    t0 = Date.now()
    const results = await remote.bulk(() => Promise.allSettled(later.map((ref) => casB.read(ref, 0, 10))))
    const ms = Date.now() - t0
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof MissingContentError), JSON.stringify(results.map((r) => r.status)))
    assert.ok(ms >= timeoutMs - 100 && ms < timeoutMs * 3, `took ${ms} ms`)
    assert.ok(lines.some((x) => /timed out after/.test(x)), lines.join('\n'))
  } finally {
    await teardown(l, remote, [b, a], cleanup)
  }
})

test('after a restart, content fetched earlier is read from the copy of the peer\'s store with the peer gone', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await openStore(dir, 'a')
  let b = await openStore(dir, 'b')
  let remote = new RemoteStores(b.store, 1500)
  remote.serve(b.chunks)
  let l: ReturnType<typeof link> | null = null
  try {
    const sharing = randomBytes(32)
    const casA = new Cas(a.chunks, sharing)
    const data = randomBytes(700_000)
    const ref = await casA.writeBuffer(data)
    const lonely = await casA.writeBuffer(Buffer.from('never read by b'))
    await a.chunks.flush()
    l = link(a.store, b.store)
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    assert.ok((await readAll(new Cas(b.chunks, sharing), ref)).equals(data))
    l.unlink()
    l = null

    // B restarts (A stays away): the sources file names A's store, whose copy holds the content.
    await remote.close()
    await closeStore(b)
    b = await openStore(dir, 'b')
    remote = new RemoteStores(b.store, 1500)
    const lines: string[] = []
    remote.log = (level, msg) => lines.push(`${level} ${msg}`)
    remote.serve(b.chunks)
    await remote.load()
    assert.deepEqual(remote.list(), [], 'listed sources are not asked over the network until added again')
    const casB = new Cas(b.chunks, sharing)
    const t0 = Date.now()
    assert.ok((await readAll(casB, ref)).equals(data))
    assert.equal(await casB.has(ref), true)
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`)
    // What the copy doesn't hold is missing, at once (no source is asked).
    await assert.rejects(casB.read(lonely, 0, 10), MissingContentError)
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`)
    assert.equal((await b.chunks.stats()).chunks, 0)

    // A damaged sources file is reported and ignored; so is one of version 1 (copies of old-format stores).
    await remote.close()
    fs.writeFileSync(path.join(dir, 'b', 'cas-sources'), '{"version": 1, "sources": []}')
    remote = new RemoteStores(b.store, 1500)
    remote.log = (level, msg) => lines.push(`${level} ${msg}`)
    await remote.load()
    assert.ok(lines.some((x) => /lists copies of stores in the old format/.test(x)), lines.join('\n'))
    await remote.close()
    fs.writeFileSync(path.join(dir, 'b', 'cas-sources'), '{"version": 2, "sources": [{"name": 3}]}')
    remote = new RemoteStores(b.store, 1500)
    remote.log = (level, msg) => lines.push(`${level} ${msg}`)
    remote.serve(b.chunks)
    await remote.load()
    assert.ok(lines.some((x) => /cas-sources: bad source record/.test(x)), lines.join('\n'))
    await assert.rejects(casB.read(ref, 0, 10), MissingContentError)
  } finally {
    await teardown(l, remote, [b, a], cleanup)
  }
})

test('a node that relays (a third peer reads its store) also stores fetched blocks in its own store, verified', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await openStore(dir, 'a')
  const b = await openStore(dir, 'b')
  const remote = new RemoteStores(b.store, 5_000)
  remote.serve(b.chunks)
  let relay = false
  b.chunks.relayFetched = () => relay
  let l: ReturnType<typeof link> | null = null
  try {
    const sharing = randomBytes(32)
    const casA = new Cas(a.chunks, sharing)
    const first = randomBytes(300_000)
    const second = randomBytes(300_000)
    const [r1, r2] = [await casA.writeBuffer(first), await casA.writeBuffer(second)]
    await a.chunks.flush()
    l = link(a.store, b.store)
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    const casB = new Cas(b.chunks, sharing)
    assert.ok((await readAll(casB, r1)).equals(first))
    await b.chunks.flush()
    assert.equal((await b.chunks.stats()).chunks, 0, 'not relaying: nothing stored again')
    relay = true
    assert.ok((await readAll(casB, r2)).equals(second))
    await b.chunks.flush()
    const stored = (await b.chunks.stats()).chunks
    assert.ok(stored >= 2, `relaying: the fetched objects are in B's own store (${stored})`)
    b.chunks.replica = null
    assert.equal(await casB.has(r2), true, 'in the own store, without the copy of A\'s')
    assert.equal(await casB.has(r1), false, 'what was read before relaying stays in the copy only')
  } finally {
    await teardown(l, remote, [b, a], cleanup)
  }
})

test('a peer offering a store in the old format (a cas-index hyperbee) gets one clear log line, reads fail as missing', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const old = new Corestore(path.join(dir, 'old'))
  const b = await openStore(dir, 'b')
  const remote = new RemoteStores(b.store, 2_000)
  const lines: string[] = []
  remote.log = (level, msg) => lines.push(`${level} ${msg}`)
  remote.serve(b.chunks)
  let l: ReturnType<typeof link> | null = null
  try {
    // What a bazil before packs offers: a `cas` core of sealed blocks and a `cas-index` hyperbee.
    const cas = old.get({ name: 'cas' })
    const bee = new Hyperbee<Buffer, Buffer>(old.get({ name: 'cas-index' }), { keyEncoding: 'binary', valueEncoding: 'binary' })
    await cas.ready()
    await bee.ready()
    await cas.append(randomBytes(100))
    await bee.put(randomBytes(32), Buffer.alloc(9, 1))
    l = link(old, b.store)
    await remote.add('oldpeer', { cas: cas.key, index: bee.core.key })
    const casB = new Cas(b.chunks, randomBytes(32))
    const ref = { hash: randomBytes(32), size: 1 }
    await assert.rejects(casB.read(ref, 0, 1), MissingContentError)
    await assert.rejects(casB.read(ref, 0, 1), MissingContentError)
    const said = lines.filter((x) => /not reading the store of oldpeer: it is a store in the old format/.test(x))
    assert.equal(said.length, 1, lines.join('\n'))
    await bee.close()
    await cas.close()
  } finally {
    l?.unlink()
    await remote.close()
    await closeStore(b)
    await old.close()
    cleanup()
  }
})

test('a node that moved to a new store (new keys): its old copy is forgotten, the sources file names the new one', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a1 = await openStore(dir, 'a1')
  const a2 = await openStore(dir, 'a2')
  const b = await openStore(dir, 'b')
  let remote = new RemoteStores(b.store, 2_000)
  const lines: string[] = []
  remote.log = (level, msg) => lines.push(`${level} ${msg}`)
  try {
    const owner = 'ownerkey'
    await remote.add(owner, { cas: a1.chunks.casKey, index: a1.chunks.indexKey }, owner)
    // A replica of the same node's store that a closet offers is another record, kept.
    await remote.add(`${owner} (replica at closet)`, { cas: a1.chunks.casKey, index: a1.chunks.indexKey }, owner)
    assert.equal(remote.stores().length, 1)
    await remote.add(owner, { cas: a2.chunks.casKey, index: a2.chunks.indexKey }, owner)
    assert.deepEqual(remote.stores().map((s) => s.cas.toString('hex')), [a2.chunks.casKey.toString('hex')])
    assert.ok(lines.some((x) => /offers a new store: forgetting the copy of its old one/.test(x)), lines.join('\n'))
    await remote.close()
    const file = JSON.parse(fs.readFileSync(path.join(dir, 'b', 'cas-sources'), 'utf8')) as { version: number; sources: { owner: string; packs: string; index: string }[] }
    assert.equal(file.version, 2)
    assert.deepEqual(file.sources.map((s) => [s.owner, s.packs, s.index]), [[owner, a2.chunks.casKey.toString('hex'), a2.chunks.indexKey.toString('hex')]])
    remote = new RemoteStores(b.store, 2_000)
    await remote.load()
    assert.deepEqual(remote.stores().map((s) => s.index.toString('hex')), [a2.chunks.indexKey.toString('hex')])
  } finally {
    await remote.close()
    for (const s of [b, a2, a1]) await closeStore(s)
    cleanup()
  }
})
