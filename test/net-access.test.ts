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

type Grant = 'none' | 'volume' | 'storage' | 'both'
const GRANTS: Grant[] = ['none', 'volume', 'storage', 'both']

test('access matrix: for every grant, role and restart, a peer asking for every core it could know or guess gets blocks only of what a grant covers', { timeout: 120_000 }, async () => {
  const t0 = Date.now()
  const { dir, cleanup } = tempDir()
  // a: a full peer with volumes v (x writes to it too) and w; it reads x's store (a cached store).
  // closet: holds v storage-only (a's and x's logs) and a replica of a's store.
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const x = await startPeer(dir, 'x', { bootstrap: [] })
  const closet = await startPeer(dir, 'closet', { bootstrap: [] })
  const rogues: Awaited<ReturnType<typeof startRogue>>[] = []
  try {
    shareKey([a, x])
    const v = await a.node.createVolume('v', 'friends')
    const w = await a.node.createVolume('w', 'friends')
    for (const [vol, text] of [[v, 'in v'], [w, 'in w']] as const) {
      await vol.writeFile('/f', Buffer.from(`${text}\n`.repeat(100)))
      await vol.flush()
    }
    const vHex = v.id.toString('hex')
    copyVolumeRecord(a, x, 'v')
    const vx = await x.node.volume('v')
    await a.node.addWriter(v.id, vx.log.key)
    a.dir.addVolumeStorage('v', encodeKey(x.key))
    closet.dir.addVolume({ version: 1, name: 'v', id: vHex, storageOnly: true, created: Date.now() })
    await addPeer(x, a, { volumes: [vHex], storage: true })
    await addPeer(a, x, { location: x.location(), volumes: [vHex] })
    await addPeer(a, closet, { volumes: [vHex], storage: true })
    await addPeer(closet, a, { location: a.location(), volumes: [vHex] })
    await addPeer(closet, x, { location: x.location(), volumes: [vHex] })
    await addPeer(x, closet, { volumes: [vHex] })
    await closet.node.addWriter(v.id, v.log.key)
    await closet.node.addWriter(v.id, vx.log.key)
    await a.net.waitConnected(x.key, 20_000)
    await closet.net.waitConnected(a.key, 20_000)
    // x writes to v: a admits it (what `peer volume allow` records).
    await a.node.admitWriter('v', x.key)
    await until('x is admitted', async () => (await vx.refresh(), vx.canWrite))
    await vx.writeFile('/from-x', Buffer.from('x was here\n'.repeat(100)))
    await vx.flush()
    const held = await closet.node.heldVolume('v')
    await until('the closet holds both logs and a replica of a\'s store', () =>
      held.core(v.log.key)?.contiguousLength === v.log.length && held.core(vx.log.key)?.contiguousLength === vx.log.length &&
      (closet.node.mirrors.get(a.key)?.cas.contiguousLength ?? 0) > 0)
    // a reads x's store: it has x's blocks cached.
    await until('a holds x\'s store as a source', () => a.node.remoteStores.stores().some((s) => s.cas.equals(x.node.chunks.casKey)))
    const xCasAtA = a.node.store.get({ key: x.node.chunks.casKey })
    await xCasAtA.ready()
    await xCasAtA.get(0, { timeout: 10_000 })
    await xCasAtA.close()

    // Every core a peer could know or guess, by name.
    const keys: Record<string, Buffer> = {
      'a log v': v.log.key, 'a log w': w.log.key, 'x log v': vx.log.key,
      'a cas': a.node.chunks.casKey, 'a index': a.node.chunks.indexKey,
      'x cas (cached at a)': x.node.chunks.casKey, 'x index (cached at a)': x.node.chunks.indexKey,
      'closet cas': closet.node.chunks.casKey, 'closet index': closet.node.chunks.indexKey,
      guess: randomBytes(32)
    }
    // What each grant covers, per target (the closet's replica of a's store is a's cas/index).
    const covered = (target: 'a' | 'closet', g: Grant): Set<string> => {
      const s = new Set<string>()
      if (g === 'volume' || g === 'both') {
        s.add('a log v').add('x log v')
        // The replicas rule, both ways: the closet serves its replica of a's store to a peer of
        // v; a peer of v that offers a replica of x (a peer of v a reads from) may read a's copy of it.
        if (target === 'closet') s.add('a cas').add('a index')
        else s.add('x cas (cached at a)').add('x index (cached at a)')
      }
      if (g === 'storage' || g === 'both') {
        if (target === 'a') s.add('a cas').add('a index')
        else s.add('closet cas').add('closet index')
      }
      return s
    }
    const identities = GRANTS.map(() => generateKeyPair())
    for (const [target, node] of [['a', a], ['closet', closet]] as const) {
      PeerRegistry.update(node.root, (r) => {
        GRANTS.forEach((g, i) => {
          const k = identities[i].publicKey
          r.add(k)
          if (g === 'volume' || g === 'both') r.setVolume(k, vHex, true)
          if (g === 'storage' || g === 'both') r.setStorage(k, true)
        })
      })
      node.net.refresh()
      await node.net.settled()
      void target
    }
    const names = Object.keys(keys)
    const leaks: string[] = []
    const counts: string[] = []
    for (const restart of [false, true]) {
      if (restart) {
        await a.restart()
        await closet.restart()
      }
      await Promise.all(GRANTS.flatMap((g, i) => (['a', 'closet'] as const).map(async (target) => {
        const to = target === 'a' ? a : closet
        const rogue = await startRogue(dir, `r-${g}-${target}-${restart}`, identities[i])
        rogues.push(rogue)
        const link = await rogue.connect(to)
        await until(`${target} says hello to the ${g} peer`, () => link.received.some((m) => m.type === 'hello'))
        // Every message that can name a core, naming every key.
        for (let j = 0; j < names.length; j++) {
          link.send({ type: 'hello', storage: { cas: keys[names[j]], index: keys[names[(j + 1) % names.length]] }, volumes: [{ id: v.id, name: 'v' }] })
        }
        link.send({ type: 'stores', stores: [{ node: x.key, cas: keys['x cas (cached at a)'], index: keys['x index (cached at a)'] }, { node: a.key, cas: keys['a log v'], index: keys['a log w'] }] })
        link.send({ type: 'writers', volumeId: v.id, writers: names.map((n) => keys[n]) })
        const stolen = await Promise.all(names.map((n) => link.steal(keys[n])))
        for (const core of stolen) core.download({ start: 0, end: -1 })
        await sleep(2000)
        const cover = covered(target, g)
        for (let j = 0; j < names.length; j++) {
          const got = await heldBlocks(stolen[j])
          if (got > 0 && !cover.has(names[j])) leaks.push(`${target}${restart ? ' (restarted)' : ''}, grant ${g}: ${got} blocks of ${names[j]}`)
          if (got > 0) counts.push(`${target}${restart ? '*' : ''}/${g}/${names[j]}=${got}`)
        }
        // The probe works: a covered log does arrive.
        if (g === 'volume' || g === 'both') assert.ok((await heldBlocks(stolen[names.indexOf('a log v')])) > 0, `${target}, grant ${g}: a covered log did not arrive`)
        await link.close()
      })))
    }
    process.stderr.write(`# access matrix: ${GRANTS.length} grants x 2 roles x 2 (restart) in ${Date.now() - t0} ms; blocks received: ${counts.join(' ')}\n`)
    assert.deepEqual(leaks, [])
  } finally {
    for (const r of rogues) await r.close()
    await closet.stop()
    await x.stop()
    await a.stop()
    cleanup()
  }
})
