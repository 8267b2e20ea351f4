// The world of the remote-read tests (spec/cas.md section 6): peers with real corestores and
// pack stores on a loopback hyperswarm testnet, each replicating the origin's store through
// bazil's Replication; readers that read it through RemoteStores, counting what each peer
// serves them. Shared by test/cas-remote-bulk.test.ts and test/cas-remote-peers.test.ts.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import Hyperswarm from 'hyperswarm'
import DHT, { type KeyPair } from 'hyperdht'
import Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { Cas, ChunkStore, RemoteStores, type FileRef } from '../src/cas/index.js'
import { fetchAhead } from '../src/cas/fetch-plan.js'
import { Replication, discoveryKey } from '../src/net/replication.js'
import { randomBytes } from '../src/crypto.js'
import { tempDir } from './helpers.js'

export const MiB = 1024 * 1024
/** Every peer's swarm key: each peer dials all the others (a test's peers all know each other). */
const everyone: Buffer[] = []
/** The cores peers replicate (the origin's store), by discovery key hex. */
export const shared = new Map<string, Buffer>()

export function share(keys: { cas: Buffer; index: Buffer }): void {
  for (const k of [keys.cas, keys.index]) shared.set(discoveryKey(k).toString('hex'), k)
}

export interface Peer {
  name: string
  dir: string
  store: Corestore
  chunks: ChunkStore
  swarm: Hyperswarm | null
  keyPair: KeyPair
  links: Replication[]
}

export type Bootstrap = { host: string; port: number }[]

export async function openPeer(base: string, name: string): Promise<Peer> {
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
export async function goOnline(p: Peer, bootstrap: Bootstrap): Promise<void> {
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

export async function goOffline(p: Peer): Promise<void> {
  const swarm = p.swarm
  p.swarm = null
  await swarm?.destroy()
  for (const r of p.links.splice(0)) await r.close()
}

export async function closePeer(p: Peer): Promise<void> {
  await goOffline(p)
  await p.chunks.close()
  await p.store.close()
}

export interface Stored {
  ref: FileRef
  sha: string
  size: number
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** One big random file and `small` files of 0.5-8.5 KiB, stored in `p`'s pack store. */
export async function fill(p: Peer, sharing: Buffer, bigMiB: number, small: number): Promise<Stored[]> {
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
export async function exportAll(remote: RemoteStores, cas: Cas, files: Stored[]): Promise<void> {
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
export async function watch(store: Corestore, key: Buffer): Promise<{ core: Hypercore; packs: number[]; bytes: number; byPeer: Map<string, number>; invalid: number }> {
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

export async function heldCount(core: Hypercore): Promise<number> {
  let n = 0
  for (let i = 0; i < core.length; i++) if (await core.has(i)) n++
  return n
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export type Watch = Awaited<ReturnType<typeof watch>>

/**
 * One test's world on its own DHT testnet: the origin (its store holds the files, and is what
 * every peer replicates), readers that read it through RemoteStores, and everything closed at
 * the end, whatever happened.
 */
export class Scene {
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
export async function packsOf(p: Peer, key: Buffer): Promise<number> {
  const core = p.store.get({ key })
  await core.ready()
  const n = core.length
  await core.close()
  return n
}

/** Overwrites blocks of a core in a closed corestore's storage with altered bytes (a disk gone bad, or a peer that lies). */
export async function tamper(storeDir: string, key: Buffer, blocks: number[]): Promise<void> {
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
