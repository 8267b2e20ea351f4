// Bulk transfer of content from peers' pack stores (spec/cas.md section 6, "Bulk reads"), over
// real hyperswarm on a loopback testnet with real corestores: a first sync of ~110 MiB and
// 2000 files lands byte-exact with every pack downloaded once; a transfer cut halfway
// resumes without fetching again what it holds; two peers holding the same store (the
// origin and a mirror of it, as a closet keeps) both serve, and when one serves wrong bytes
// hypercore's verification catches them and the data comes from the other.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import Hyperswarm from 'hyperswarm'
import DHT, { type KeyPair } from 'hyperdht'
import Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { Cas, ChunkStore, MissingContentError, RemoteStores, type FileRef } from '../src/fs/cas/index.js'
import { fetchAhead } from '../src/fs/cas/fetch-plan.js'
import { StoreMirrors } from '../src/net/closet.js'
import { Replication, discoveryKey } from '../src/net/replication.js'
import { randomBytes } from '../src/crypto.js'
import { tempDir } from './helpers.js'

const MiB = 1024 * 1024
/** Every peer's swarm key: each peer dials all the others (a test's peers all know each other). */
const everyone: Buffer[] = []
/** The cores peers replicate (the origin's store), by discovery key hex. */
const shared = new Map<string, Buffer>()

function share(keys: { cas: Buffer; index: Buffer }): void {
  for (const k of [keys.cas, keys.index]) shared.set(discoveryKey(k).toString('hex'), k)
}

interface Peer {
  name: string
  dir: string
  store: Corestore
  chunks: ChunkStore
  swarm: Hyperswarm | null
  keyPair: KeyPair
  links: Replication[]
}

type Bootstrap = { host: string; port: number }[]

async function openPeer(base: string, name: string): Promise<Peer> {
  const dir = path.join(base, name)
  const store = new Corestore(dir)
  await store.ready()
  const keyPair = DHT.keyPair()
  everyone.push(keyPair.publicKey)
  return { name, dir, store, chunks: await ChunkStore.open(store, { log: () => {} }), swarm: null, keyPair, links: [] }
}

/**
 * Listens and dials every other peer; on each connection the shared cores are replicated,
 * through bazil's Replication (which attaches only the cores it is told: here, the origin's
 * store; access rules are the net tests' business).
 */
async function goOnline(p: Peer, bootstrap: Bootstrap): Promise<void> {
  const swarm = new Hyperswarm({ bootstrap, keyPair: p.keyPair })
  swarm.on('connection', (conn) => {
    conn.on('error', () => {})
    const r = new Replication(p.store, conn, async (dk) => shared.get(dk) ?? null, () => {})
    p.links.push(r)
    for (const k of shared.values()) void r.attach(k)
  })
  p.swarm = swarm
  await swarm.listen()
  for (const k of everyone) if (!k.equals(p.keyPair.publicKey)) swarm.joinPeer(k)
}

async function goOffline(p: Peer): Promise<void> {
  const swarm = p.swarm
  p.swarm = null
  await swarm?.destroy()
  for (const r of p.links.splice(0)) await r.close()
}

async function closePeer(p: Peer): Promise<void> {
  await goOffline(p)
  await p.chunks.close()
  await p.store.close()
}

interface Stored {
  ref: FileRef
  sha: string
  size: number
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** One big random file and `small` files of 0.5-8.5 KiB, stored in `p`'s pack store. */
async function fill(p: Peer, sharing: Buffer, bigMiB: number, small: number): Promise<Stored[]> {
  const cas = new Cas(p.chunks, sharing)
  const out: Stored[] = []
  const big = randomBytes(bigMiB * MiB)
  out.push({ ref: await cas.writeBuffer(big), sha: sha(big), size: big.length })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < small) {
      next++
      const data = randomBytes(512 + Math.floor(Math.random() * 8192))
      out.push({ ref: await cas.writeBuffer(data), sha: sha(data), size: data.length })
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  await p.chunks.flush()
  return out
}

/**
 * What `volume export` does with the content: every file read (verified) and checked, 32 at a
 * time, largest first, while fetchAhead requests the packs they are made of, in one bulk.
 */
async function exportAll(remote: RemoteStores, cas: Cas, files: Stored[]): Promise<void> {
  const order = [...files].sort((a, b) => b.size - a.size)
  await remote.bulk(async () => {
    let failed = false
    const ahead = fetchAhead(cas, order.map((f) => f.ref), (a) => remote.prefetch(a), () => failed)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < order.length && !failed) {
        const f = order[next++]!
        const h = createHash('sha256')
        let n = 0
        try {
          for await (const chunk of cas.readFile(f.ref)) {
            h.update(chunk)
            n += chunk.length
          }
        } catch (err) {
          failed = true
          throw err
        }
        assert.equal(n, f.size)
        assert.equal(h.digest('hex'), f.sha, 'the content read is what was stored')
      }
    }
    const results = await Promise.allSettled(Array.from({ length: 32 }, worker))
    failed = true
    await ahead
    const bad = results.find((r) => r.status === 'rejected')
    if (bad) throw (bad as PromiseRejectedResult).reason
  })
}

/** A session on `key` in `store` that counts what is downloaded, by pack and by peer. */
async function watch(store: Corestore, key: Buffer): Promise<{ core: Hypercore; packs: number[]; bytes: number; byPeer: Map<string, number>; invalid: number }> {
  const core = store.get({ key })
  await core.ready()
  const w = { core, packs: [] as number[], bytes: 0, byPeer: new Map<string, number>(), invalid: 0 }
  core.on('download', (index: number, bytes: number, from: { remotePublicKey?: Buffer }) => {
    w.packs.push(index)
    w.bytes += bytes
    const who = from?.remotePublicKey ? Buffer.from(from.remotePublicKey).toString('hex').slice(0, 8) : '?'
    w.byPeer.set(who, (w.byPeer.get(who) ?? 0) + 1)
  })
  core.on('verification-error', () => {
    w.invalid++
  })
  return w
}

async function heldCount(core: Hypercore): Promise<number> {
  let n = 0
  for (let i = 0; i < core.length; i++) if (await core.has(i)) n++
  return n
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

type Watch = Awaited<ReturnType<typeof watch>>

/**
 * One test's world on its own DHT testnet: the origin (its store holds the files, and is what
 * every peer replicates), readers that read it through RemoteStores, and everything closed at
 * the end, whatever happened.
 */
class Scene {
  private readonly closers: (() => Promise<void>)[] = []
  keys!: { cas: Buffer; index: Buffer }

  private constructor(readonly dir: string, readonly bootstrap: Bootstrap, readonly origin: Peer) {}

  static async start(): Promise<Scene> {
    everyone.length = 0
    shared.clear()
    const { dir, cleanup } = tempDir()
    const testnet = await createTestnet(4, { host: '127.0.0.1' })
    const origin = await openPeer(dir, 'origin')
    const scene = new Scene(dir, testnet.bootstrap, origin)
    scene.closers.push(async () => {
      await testnet.destroy()
      cleanup()
    }, () => closePeer(origin))
    return scene
  }

  /** Fills the origin's store and makes it the shared store. */
  async fill(sharing: Buffer, bigMiB: number, small: number): Promise<Stored[]> {
    const files = await fill(this.origin, sharing, bigMiB, small)
    this.keys = { cas: this.origin.chunks.casKey, index: this.origin.chunks.indexKey }
    share(this.keys)
    return files
  }

  async peer(name: string): Promise<Peer> {
    const p = await openPeer(this.dir, name)
    this.closers.push(() => closePeer(p))
    return p
  }

  /** A reader online with the origin's store as its source, counting what it downloads. */
  async reader(name: string, timeoutMs: number): Promise<{ peer: Peer; remote: RemoteStores; lines: string[]; w: Watch }> {
    const peer = await this.peer(name)
    const remote = new RemoteStores(peer.store, timeoutMs)
    const lines: string[] = []
    remote.log = (level, msg) => lines.push(`${level} ${msg}`)
    remote.serve(peer.chunks)
    const w = await watch(peer.store, this.keys.cas)
    this.closers.push(async () => {
      await w.core.close()
      await remote.close()
    })
    await goOnline(peer, this.bootstrap)
    await remote.add('origin', this.keys)
    return { peer, remote, lines, w }
  }

  async close(): Promise<void> {
    for (const c of this.closers.splice(0).reverse()) await c().catch(() => {})
  }
}

/** Packs in a peer's copy of the shared store (its length as that peer knows it). */
async function packsOf(p: Peer, key: Buffer): Promise<number> {
  const core = p.store.get({ key })
  await core.ready()
  const n = core.length
  await core.close()
  return n
}

test('first sync of ~110 MiB and 2000 files from a peer\'s pack store lands byte-exact, every pack downloaded once', { timeout: 600_000 }, async () => {
  const scene = await Scene.start()
  try {
    const sharing = randomBytes(32)
    const t0 = Date.now()
    const files = await scene.fill(sharing, 100, 2000)
    const packCount = await packsOf(scene.origin, scene.keys.cas)
    const tImport = Date.now() - t0
    await goOnline(scene.origin, scene.bootstrap)
    const { peer, remote, lines, w } = await scene.reader('reader', 10_000)
    const t1 = Date.now()
    await exportAll(remote, new Cas(peer.chunks, sharing), files)
    const ms = Date.now() - t1
    const bytes = files.reduce((n, f) => n + f.size, 0)
    console.log(`# first sync: ${files.length} files, ${(bytes / MiB).toFixed(1)} MiB in ${ms} ms (${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s); ${w.packs.length} of ${packCount} packs downloaded, ${(w.bytes / MiB).toFixed(1)} MiB; import took ${tImport} ms`)
    assert.equal(new Set(w.packs).size, w.packs.length, 'no pack downloaded twice')
    assert.equal(w.packs.length, packCount, 'every pack of the origin\'s store came over (it holds only these files)')
    assert.deepEqual(lines.filter((l) => l.startsWith('warn')), [])
    await peer.chunks.flush()
    assert.equal((await peer.chunks.stats()).chunks, 0, 'fetched content stays in the copy of the origin\'s store')
  } finally {
    await scene.close()
  }
})

test('a transfer cut halfway resumes without fetching again what it holds', { timeout: 600_000 }, async () => {
  const scene = await Scene.start()
  try {
    const sharing = randomBytes(32)
    const files = await scene.fill(sharing, 40, 500)
    const total = await packsOf(scene.origin, scene.keys.cas)
    await goOnline(scene.origin, scene.bootstrap)
    const { peer, remote, w, lines } = await scene.reader('reader', 3_000)
    const cas = new Cas(peer.chunks, sharing)
    // Cut the origin off once about half of its packs are here.
    let cut: Promise<void> | null = null
    w.core.on('download', () => {
      if (!cut && w.packs.length >= total / 2) cut = goOffline(scene.origin)
    })
    await assert.rejects(exportAll(remote, cas, files), MissingContentError)
    await cut
    const firstRun = w.packs.length
    const held = await heldCount(w.core)
    assert.ok(held >= total / 2 && held < total, `held ${held} of ${total} packs after the cut`)
    // Back online: the rest, and only the rest.
    await goOnline(scene.origin, scene.bootstrap)
    await until('the origin to be a peer again', () => w.core.peers.length > 0)
    const before = lines.length
    await exportAll(remote, cas, files).catch((err: Error) => {
      throw new Error(`second run: ${err.message}\n${lines.slice(before).join('\n')}`)
    })
    const secondRun = w.packs.length - firstRun
    console.log(`# cut at ${held} of ${total} packs held (${firstRun} downloaded); the second run downloaded ${secondRun}`)
    assert.equal(secondRun, total - held, 'the second run fetched exactly the packs not held')
    assert.equal(new Set(w.packs).size, w.packs.length, 'no pack downloaded twice')
    assert.equal(await heldCount(w.core), total)
  } finally {
    await scene.close()
  }
})

/** Overwrites blocks of a core in a closed corestore's storage with altered bytes (a disk gone bad, or a peer that lies). */
async function tamper(storeDir: string, key: Buffer, blocks: number[]): Promise<void> {
  const store = new Corestore(storeDir)
  const core = store.get({ key })
  await core.ready()
  const internal = core as unknown as { core: { state: { storage: { write(): { putBlock(i: number, b: Buffer): void; flush(): Promise<void> } } } } }
  const tx = internal.core.state.storage.write()
  for (const i of blocks) {
    const block = Buffer.from((await core.get(i, { wait: false }))!)
    block[block.length - 100] ^= 0xff
    tx.putBlock(i, block)
  }
  await tx.flush()
  await core.close()
  await store.close()
}

test('two peers holding the same store both serve; one serving wrong bytes is caught and the data comes from the other', { timeout: 600_000 }, async () => {
  const scene = await Scene.start()
  const mirrors: StoreMirrors[] = []
  try {
    const sharing = randomBytes(32)
    const files = await scene.fill(sharing, 40, 300)
    const { origin, bootstrap, keys } = scene
    let mirror = await scene.peer('mirror')
    await goOnline(origin, bootstrap)
    await goOnline(mirror, bootstrap)
    // The mirror keeps a full replica of the origin's store, as a closet does (closet.ts).
    const m = new StoreMirrors(mirror.store, mirror.dir)
    mirrors.push(m)
    await m.mirror({ node: randomBytes(32), ...keys })
    const held = m.get(m.list()[0]!.node)!
    await until('the mirror to hold the whole store', () => held.cas.length > 0 && held.cas.contiguousLength === held.cas.length && held.index.contiguousLength === held.index.length && held.index.length === held.cas.length)
    const total = held.cas.length
    await goOffline(origin)

    const readFrom = async (name: string, peers = 2): Promise<{ w: Watch; ms: number; lines: string[] }> => {
      const { peer, remote, lines, w } = await scene.reader(name, 10_000)
      await until(`${peers} peers on the store`, () => w.core.peers.length >= peers)
      const t0 = Date.now()
      await exportAll(remote, new Cas(peer.chunks, sharing), files)
      const ms = Date.now() - t0
      await goOffline(peer) // it holds the store now: not a third server for the next reader
      return { w, ms, lines }
    }

    // One peer (the mirror alone), then two (origin and mirror): both serve, each pack once.
    const solo = await readFrom('solo', 1)
    await goOnline(origin, bootstrap)
    const both = await readFrom('both')
    console.log(`# one peer: ${solo.ms} ms; two peers: ${both.ms} ms; packs by peer with two: ${JSON.stringify([...both.w.byPeer])}`)
    assert.equal(new Set(both.w.packs).size, total, 'every pack came')
    // hypercore may ask a second peer for a block the first is slow with (its hotswap): a few twice at most.
    assert.ok(both.w.packs.length <= total * 1.25, `${both.w.packs.length} downloads for ${total} packs`)
    assert.equal(both.w.byPeer.size, 2, `both peers served packs: ${JSON.stringify([...both.w.byPeer])}`)

    // The mirror's copy goes bad (every other pack altered on its disk): what it serves of
    // those fails hypercore's verification, and the reader gets them from the origin.
    await m.close()
    mirrors.length = 0
    await closePeer(mirror)
    await tamper(mirror.dir, keys.cas, Array.from({ length: total }, (_, i) => i).filter((i) => i % 2 === 0))
    mirror = await scene.peer('mirror')
    const m2 = new StoreMirrors(mirror.store, mirror.dir)
    mirrors.push(m2)
    await m2.load()
    await goOnline(mirror, bootstrap)
    const lied = await readFrom('lied-to')
    console.log(`# with a lying mirror: ${lied.ms} ms; ${lied.w.invalid} blocks failed verification; packs by peer: ${JSON.stringify([...lied.w.byPeer])}`)
    assert.ok(lied.w.invalid >= 1, 'the altered packs were caught')
    assert.equal(await heldCount(lied.w.core), total, 'every pack is held, verified')
    assert.deepEqual(lied.lines.filter((l) => l.startsWith('warn')), [])
  } finally {
    for (const m of mirrors) await m.close()
    await scene.close()
  }
})
