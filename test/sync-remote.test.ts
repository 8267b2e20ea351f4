// Content on demand in one process: a node reads a file whose chunks only another node's
// store holds, over plain corestore replication (the network's access rules are net.test's).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import Corestore from 'corestore'
import { ChunkStore, Cas, MissingContentError, RemoteStores, CorruptContentError } from '../src/cas/index.js'
import { decodeKey, encodeKey, randomBytes } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { PeerRegistry } from '../src/net/index.js'
import { runInProcess, tempDir } from './helpers.js'

async function openStore(dir: string, name: string): Promise<{ store: Corestore; chunks: ChunkStore }> {
  const store = new Corestore(path.join(dir, name))
  await store.ready()
  return { store, chunks: await ChunkStore.open(store) }
}

function link(a: Corestore, b: Corestore): () => void {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.pipe(s2).pipe(s1)
  return () => {
    s1.destroy()
    s2.destroy()
  }
}

test('reads fetch missing chunks from a remote store, verified, sparse, kept in the copy of it; no source: MissingContentError fast', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await openStore(dir, 'a')
  const b = await openStore(dir, 'b')
  const lines: string[] = []
  const remote = new RemoteStores(b.store, 2000)
  remote.log = (level, msg) => lines.push(`${level} ${msg}`)
  remote.serve(b.chunks)
  let unlink: (() => void) | null = null
  try {
    const sharing = randomBytes(32)
    const big = randomBytes(3 * 1024 * 1024)
    const small = Buffer.from('hello, world\n')
    const casA = new Cas(a.chunks, sharing)
    const bigRef = await casA.writeBuffer(big)
    const smallRef = await casA.writeBuffer(small)
    await a.chunks.flush()
    const casB = new Cas(b.chunks, sharing)

    // No source yet: missing, at once.
    await assert.rejects(casB.read(smallRef, 0, 100), MissingContentError)

    unlink = link(a.store, b.store)
    await remote.add('a', { cas: a.chunks.casKey, index: a.chunks.indexKey })
    assert.deepEqual(remote.list(), ['a'])
    assert.equal((await casB.read(smallRef, 0, 100)).toString(), 'hello, world\n')

    // A range in the middle of a big file: only the chunks it needs come over.
    const part = await casB.read(bigRef, 1_500_000, 1000)
    assert.ok(part.equals(big.subarray(1_500_000, 1_501_000)))
    assert.equal(await casB.has(bigRef), false, 'only the read range was fetched')
    const all: Buffer[] = []
    for await (const c of casB.readFile(bigRef)) all.push(c)
    assert.ok(Buffer.concat(all).equals(big))

    // Fetched blocks stay in B's copy of A's store, not stored again in B's own: readable
    // with A gone, from that copy.
    await b.chunks.flush()
    assert.equal((await b.chunks.stats()).chunks, 0, 'nothing put into B\'s own store')
    assert.equal(await casB.has(bigRef), true)
    unlink()
    unlink = null
    const t0 = Date.now()
    assert.ok((await casB.read(bigRef, 0, 10)).equals(big.subarray(0, 10)))
    assert.ok(Date.now() - t0 < 500, `a local read took ${Date.now() - t0} ms`)

    // Something only A has, with A disconnected: MissingContentError within the grace, and a log line.
    const lonelyRef = await casA.writeBuffer(Buffer.from('only on a'))
    await a.chunks.flush()
    await assert.rejects(casB.read(lonelyRef, 0, 100), MissingContentError)
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`)
    assert.ok(lines.some((l) => /no store that may have it is connected/.test(l)), lines.join('\n'))

    // Connected again but the wrong sharing key: other addresses, which no store holds.
    unlink = link(a.store, b.store)
    const wrong = new Cas(b.chunks, randomBytes(32))
    await assert.rejects(wrong.read(lonelyRef, 0, 100), (err: Error) => err instanceof MissingContentError || err instanceof CorruptContentError)
    assert.equal((await casB.read(lonelyRef, 0, 100)).toString(), 'only on a')
  } finally {
    if (unlink) unlink()
    await remote.close()
    await b.chunks.close()
    await a.chunks.close()
    await b.store.close()
    await a.store.close()
    cleanup()
  }
})

const run = runInProcess

test('volume storage add without a server records the peer; records without "storage" still load', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const d = DataDir.create(path.join(dir, 'd'))
    const peer = encodeKey(randomBytes(32))
    d.addVolume({ version: 1, name: 'v', id: randomBytes(32).toString('hex'), sharing: 'default', created: Date.now() })
    assert.equal(d.volume('v').storage, undefined)
    const unknown = await run(d.root, ['volume', 'storage', 'add', 'v', `peerkey:${peer}`])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /unknown peer/)
    PeerRegistry.update(d.root, (r) => r.add(decodeKey(peer, 'peer')))
    const bad = await run(d.root, ['volume', 'storage', 'add', 'v', peer])
    assert.match(bad.stderr, /give peerkey:KEY/)
    const wrongSharing = await run(d.root, ['volume', 'storage', 'add', '--sharing=friends', 'v', `peerkey:${peer}`])
    assert.match(wrongSharing.stderr, /uses sharing key "default", not "friends"/)
    const ok = await run(d.root, ['volume', 'storage', 'add', 'v', `peerkey:${peer}`])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /now reads missing content from peer .*used once the server runs/)
    assert.match((await run(d.root, ['volume', 'storage', 'add', 'v', `peerkey:${peer}`])).stdout, /already reads/)
    assert.deepEqual(d.volume('v').storage, [peer])
    assert.deepEqual(d.listVolumes().map((v) => v.name), ['v'])
    const connect = await run(d.root, ['volume', 'connect', peer, 'v'])
    assert.match(connect.stderr, /needs a running server/)
  } finally {
    cleanup()
  }
})
