// Access control on the network, attacked: a registered peer names cores it was never given
// (in HELLO as its store, in STORES as a replica, by raw discovery key) and must get no
// block of them, before and after a restart; and it cannot feed us a core under a false role.
// Every attack runs through real corestores and real hyperdht connections on loopback.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir } from './helpers.js'
import { addPeer, copyVolumeRecord, heldBlocks, shareKey, sleep, startPeer, startRogue, until } from './net-helpers.js'
import { PeerRegistry } from '../src/net/index.js'
import { encodeKey, generateKeyPair, randomBytes } from '../src/crypto.js'
import type Corestore from 'corestore'
import type { NetHost } from '../src/net/index.js'
import { encodeBinding } from '../src/logs/binding.js'

test('finding 1a: a peer denied a volume gets no entry of it by offering the log key as its store', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  try {
    shareKey([a, b])
    const volA = await a.node.createVolume('v', 'friends')
    await volA.writeFile('/before', Buffer.from('allowed\n'))
    await volA.flush()
    const idHex = volA.id.toString('hex')
    copyVolumeRecord(a, b, 'v')
    await b.node.volume('v')
    await addPeer(a, b, { volumes: [idHex], storage: true })
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    a.node.dir.addVolumeStorage('v', encodeKey(b.key))
    await b.net.waitConnected(a.key, 20_000)
    // Denied: from now on b gets nothing of v.
    PeerRegistry.update(a.root, (r) => r.setVolume(b.key, idHex, false))
    a.net.refresh()
    await a.net.settled()
    await b.stop()
    const lengthAtDeny = volA.log.length
    await volA.writeFile('/after-deny', Buffer.from('secret\n'))
    await volA.flush()
    const rogue = await startRogue(dir, 'b-again', b.dir.identity)
    try {
      const link = await rogue.connect(a)
      link.send({ type: 'hello', storage: { cas: volA.log.key, index: randomBytes(32) }, volumes: [] })
      const stolen = await link.steal(volA.log.key)
      stolen.download({ start: 0, end: -1 })
      await sleep(2000)
      const got = await heldBlocks(stolen)
      assert.equal(got, 0, `b got ${got} blocks of a's log (length ${volA.log.length}, ${lengthAtDeny} at the deny)`)
    } finally {
      await rogue.close()
    }
  } finally {
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('finding 1b: a peer denied a volume cannot feed us its log by offering it as its index core (after a restart too)', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  try {
    shareKey([a, b])
    const volA = await a.node.createVolume('v', 'friends')
    const idHex = volA.id.toString('hex')
    copyVolumeRecord(a, b, 'v')
    const volB = await b.node.volume('v')
    await a.node.addWriter(volA.id, volB.log.key) // b is a writer of v
    await addPeer(a, b, { volumes: [idHex] })
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    await b.net.waitConnected(a.key, 20_000)
    await a.node.admitWriter('v', b.key) // what `peer volume allow` records: b may write
    await until('b is admitted', async () => (await volB.refresh(), volB.canWrite))
    await volB.writeFile('/w1', Buffer.from('allowed\n'))
    await volB.flush()
    await until('a applies b\'s first write', async () => (await a.node.volume('v')).tree.lookup('/w1') !== null)
    PeerRegistry.update(a.root, (r) => r.setVolume(b.key, idHex, false))
    a.net.refresh()
    await a.net.settled()
    await b.net.stop()
    for (const restart of [false, true]) {
      if (restart) await a.restart()
      const path = `/w2-${restart ? 'restarted' : 'running'}`
      await volB.writeFile(path, Buffer.from('after the deny\n'))
      await volB.flush()
      const volAtA = await a.node.volume('v')
      const rogue = await startRogue(dir, `b-rogue-${restart}`, b.dir.identity, b.node.store)
      try {
        const link = await rogue.connect(a)
        link.send({ type: 'hello', storage: { cas: b.node.chunks.casKey, index: volB.log.key }, volumes: [] })
        await link.steal(volB.log.key)
        await sleep(2000)
        assert.equal(volAtA.tree.lookup(path), null, `a applied ${path}, written by b after the deny (restart: ${restart})`)
      } finally {
        await rogue.close()
      }
    }
  } finally {
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('finding 1c: a closet, restarted, gives a registered peer none of the logs it holds', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const closet = await startPeer(dir, 'closet', { bootstrap: [] })
  try {
    const volA = await a.node.createVolume('v', 'default')
    await volA.writeFile('/x', Buffer.from('held by the closet\n'))
    await volA.flush()
    const idHex = volA.id.toString('hex')
    closet.dir.addVolume({ version: 1, name: 'v', id: idHex, storageOnly: true, created: Date.now() })
    await closet.node.addWriter(volA.id, volA.log.key)
    await addPeer(a, closet, { volumes: [idHex] })
    await addPeer(closet, a, { location: a.location(), volumes: [idHex] })
    const held = await closet.node.heldVolume('v')
    await until('the closet holds a\'s log', () => (held.core(volA.log.key)?.contiguousLength ?? 0) === volA.log.length)
    const rogue = await startRogue(dir, 'stranger')
    PeerRegistry.update(closet.root, (r) => r.add(rogue.key))
    await closet.restart()
    try {
      const link = await rogue.connect(closet)
      link.send({ type: 'hello', storage: { cas: volA.log.key, index: randomBytes(32) }, volumes: [] })
      const stolen = await link.steal(volA.log.key)
      stolen.download({ start: 0, end: -1 })
      await sleep(2000)
      assert.equal(await heldBlocks(stolen), 0, 'the stranger read a log the closet holds')
    } finally {
      await rogue.close()
    }
  } finally {
    await closet.stop()
    await a.stop()
    cleanup()
  }
})


/** A node side that records the candidates it is handed and admits none (a writer set that says no). */
function refusingHost(seen: { volumeId: Buffer; key: Buffer; from: Buffer }[]) {
  return (node: import('../src/node.js').Node): NetHost => ({
    writerKeys: (name) => node.writerKeys(name),
    async candidateWriter(volumeId, key, from) {
      seen.push({ volumeId, key, from })
    },
    async storesOffered() {}
  })
}

/** A log in `store` bound to `identity` for the volume (block 0 only), as any node's first log. */
async function boundLog(store: Corestore, name: string, volumeId: Buffer, identity: { publicKey: Buffer; secretKey: Buffer }): Promise<Buffer> {
  const core = store.get({ name })
  await core.ready()
  await core.append(encodeBinding(volumeId, core.key, identity))
  return core.key
}

test('writer candidates: taken only from the node the binding names, at most 4 at a time, never relayed to a third peer', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const seen: { volumeId: Buffer; key: Buffer; from: Buffer }[] = []
  const a = await startPeer(dir, 'a', { bootstrap: [], host: refusingHost(seen) })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  const rogue = await startRogue(dir, 'r')
  try {
    shareKey([a, b])
    const volA = await a.node.createVolume('v', 'friends')
    const id = volA.id
    const idHex = id.toString('hex')
    copyVolumeRecord(a, b, 'v')
    await b.node.volume('v')
    await addPeer(a, b, { volumes: [idHex] })
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    PeerRegistry.update(a.root, (r) => {
      r.add(rogue.key)
      r.setVolume(rogue.key, idHex, true)
    })
    a.net.refresh()
    await a.net.settled()
    await b.net.waitConnected(a.key, 20_000)

    // r's own log (bound to r), a log bound to another node x, and 6 logs it never serves.
    const own = await boundLog(rogue.store, 'own', id, rogue.identity)
    const x = generateKeyPair()
    const foreign = await boundLog(rogue.store, 'foreign', id, x)
    const ghosts = Array.from({ length: 6 }, () => randomBytes(32))
    const link = await rogue.connect(a)
    await until('a says hello to r', () => link.received.some((m) => m.type === 'hello'))
    link.send({ type: 'hello', storage: null, volumes: [{ id, name: 'v' }] })
    await link.steal(own)
    await link.steal(foreign)
    link.send({ type: 'writers', volumeId: id, writers: [own, foreign, ...ghosts] })
    await until('a hands r\'s own log to the node', () => seen.some((s) => s.key.equals(own)), 10_000)
    assert.ok(seen.find((s) => s.key.equals(own))!.from.equals(rogue.key))
    await until('a checked the foreign log\'s binding', () => a.lines.some((l) => l.includes('it is bound to node')), 10_000)
    assert.ok(!seen.some((s) => s.key.equals(foreign)), 'a took up a log bound to another node from r')
    const over = a.lines.filter((l) => l.includes('candidate logs of the volume pending already')).length
    assert.ok(over >= 4, `a should refuse candidates over 4 per peer and volume (refused ${over})`)

    // The node did not admit r's log: b is never offered it and gets no block of it.
    await sleep(500)
    assert.ok(!b.net.remote(a.key)?.volumes[0]?.writers.some((k) => k.equals(own)), 'a relayed a candidate to b')
    const bLink = await startRogue(dir, 'b-thief', b.dir.identity)
    await b.net.stop()
    const thief = await bLink.connect(a)
    const stolen = await thief.steal(own)
    stolen.download({ start: 0, end: -1 })
    await sleep(1500)
    assert.equal(await heldBlocks(stolen), 0, 'b read a candidate log through a')
    await bLink.close()
  } finally {
    await rogue.close()
    await b.stop()
    await a.stop()
    cleanup()
  }
})
