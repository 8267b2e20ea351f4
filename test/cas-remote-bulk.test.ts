// Bulk transfer of content from peers' pack stores (spec/cas.md section 6, "Bulk reads"), over
// real hyperswarm on a loopback testnet with real corestores: a first sync of ~110 MiB and
// 2000 files lands byte-exact with every pack downloaded once; a transfer cut halfway
// resumes without fetching again what it holds; two peers holding the same store (the
// origin and a mirror of it, as a closet keeps) both serve, and when one serves wrong bytes
// hypercore's verification catches them and the data comes from the other.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Cas, MissingContentError } from '../src/cas/index.js'
import { StoreMirrors } from '../src/net/closet.js'
import { randomBytes } from '../src/crypto.js'
import { MiB, Scene, closePeer, exportAll, goOffline, goOnline, heldCount, packsOf, tamper, until, type Watch } from './cas-remote-scene.js'

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
    // The reads' timeout only bounds how long run 1 waits once the origin is gone (no peer: a
    // read gives up after 1 s; one in flight at the cut waits it out); run 2 needs the origin,
    // just back, to answer within it: 3 s was too short at load 20-29 (a block 'not found at
    // origin (timed out after 3016 ms)').
    const { peer, remote, w, lines } = await scene.reader('reader', 20_000)
    const cas = new Cas(peer.chunks, sharing)
    // Cut the origin off once about half of its packs are here.
    let cut: Promise<void> | null = null
    w.core.on('download', () => {
      if (!cut && w.packs.length >= total / 2) cut = goOffline(scene.origin)
    })
    await assert.rejects(exportAll(remote, cas, files), MissingContentError)
    await cut
    const firstRun = w.packs.length
    const heldAtCut = new Set<number>()
    for (let i = 0; i < w.core.length; i++) if (await w.core.has(i)) heldAtCut.add(i)
    const held = heldAtCut.size
    assert.ok(held >= total / 2 && held < total, `held ${held} of ${total} packs after the cut`)
    // Back online: the rest, and only the rest.
    await goOnline(scene.origin, scene.bootstrap)
    await until('the origin to be a peer again', () => w.core.peers.length > 0)
    const before = lines.length
    await exportAll(remote, cas, files).catch((err: Error) => {
      throw new Error(`second run: ${err.message}\n${lines.slice(before).join('\n')}`)
    })
    const second = w.packs.slice(firstRun)
    console.log(`# cut at ${held} of ${total} packs held (${firstRun} downloaded); the second run downloaded ${second.length}`)
    // What was held is not fetched again, and every pack ends held: asserted on the packs, not
    // as a count of 'download' events (once 29 events for 30 packs not held at the cut, under
    // load, with every pack held at the end: a pack landed around the cut without an event).
    assert.deepEqual(second.filter((i) => heldAtCut.has(i)), [], 'the second run fetched none of the packs held')
    assert.equal(new Set(w.packs).size, w.packs.length, 'no pack downloaded twice')
    assert.equal(await heldCount(w.core), total)
  } finally {
    await scene.close()
  }
})

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
