// Replication limited to what each peer is allowed: volume logs, the content store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Hypercore } from 'hypercore'
import { tempDir } from './helpers.js'
import { encodeKey } from '../src/crypto.js'
import { addPeer, copyVolumeRecord, shareKey, startPeer, until, sleep, type TestPeer } from './net-helpers.js'

async function blocks(core: Hypercore): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (let i = 0; i < core.length; i++) out.push((await core.get(i)) as Buffer)
  return out
}

/** Behaves like a peer that learned a key it was not given: opens the core and asks `from` for it. */
async function tryToSteal(thief: TestPeer, from: TestPeer, key: Buffer): Promise<Hypercore> {
  const core = thief.node.store.get({ key })
  await core.ready()
  const mux = thief.net.muxer(from.key)
  assert.ok(mux, 'the thief is connected')
  ;(core as unknown as { replicate(m: unknown): void }).replicate(mux)
  return core
}

test('a peer allowed a volume replicates its writer logs; one not allowed gets no block of it', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  const c = await startPeer(dir, 'c', { bootstrap: [] })
  const opened: Hypercore[] = []
  try {
    shareKey([a, b, c])
    const volA = await a.node.createVolume('v', 'friends')
    await volA.writeFile('/greeting', Buffer.from('hello, world\n'))
    await volA.flush()
    assert.ok(volA.log.length >= 2)
    const volumeId = volA.id
    const idHex = volumeId.toString('hex')
    // b and c both have the volume (as `volume connect` would make it) and both trust a with it...
    copyVolumeRecord(a, b, 'v')
    copyVolumeRecord(a, c, 'v')
    const volB = await b.node.volume('v')
    await c.node.volume('v')

    const writersAtB: Buffer[] = []
    const writersAtC: Buffer[] = []
    const writersAtA: Buffer[] = []
    b.net.on('writer', (vol: Buffer, key: Buffer, from: Buffer) => {
      assert.ok(vol.equals(volumeId))
      assert.ok(from.equals(a.key))
      writersAtB.push(key)
    })
    c.net.on('writer', (_vol: Buffer, key: Buffer) => writersAtC.push(key))
    a.net.on('writer', (_vol: Buffer, key: Buffer) => writersAtA.push(key))

    // ...but a allows only b: the volume and its store (which b's volume reads from, so b
    // records a's cores as a's store: the only role under which it attaches them).
    b.dir.addVolumeStorage('v', encodeKey(a.key))
    await addPeer(a, b, { volumes: [idHex], storage: true })
    await addPeer(a, c)
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    await addPeer(c, a, { location: a.location(), volumes: [idHex] })
    await b.net.waitConnected(a.key, 20_000)
    await c.net.waitConnected(a.key, 20_000)

    // b learns a's log from a's offer, replicates it, and offers its own log back.
    await until('b hears of a\'s writer log', () => writersAtB.length > 0)
    assert.ok(writersAtB[0].equals(volA.log.key))
    const logAtB = b.node.store.get({ key: volA.log.key })
    opened.push(logAtB)
    await logAtB.ready()
    await until('b has a\'s log', async () => {
      await logAtB.update({ wait: true }).catch(() => false)
      return logAtB.length === volA.log.length
    })
    // (a may append meanwhile: it admits b's log once it sees it)
    const atB = await blocks(logAtB)
    assert.deepEqual(atB, (await blocks(volA.log.core)).slice(0, atB.length))
    await until('a hears of b\'s writer log', () => writersAtA.some((k) => k.equals(volB.log.key)))
    assert.equal(b.net.remote(a.key)?.volumes[0].name, 'v')

    // c asked nothing of a it could get: no offer, and a refuses the core when c asks by key.
    await sleep(300)
    assert.equal(writersAtC.length, 0)
    assert.deepEqual(c.net.remote(a.key), { storage: null, volumes: [] })
    const stolen = await tryToSteal(c, a, volA.log.key)
    opened.push(stolen)
    await sleep(1500)
    assert.equal(stolen.length, 0)
    await assert.rejects(stolen.get(0, { timeout: 1500 }))
    assert.equal(stolen.length, 0)

    // Storage: b was allowed a's store and reads its blocks; c was not and gets none.
    const storage = b.net.remote(a.key)?.storage
    assert.ok(storage, 'a offers its store to b')
    assert.ok(storage.cas.equals(a.node.chunks.casKey))
    const casAtA = a.node.store.get({ key: a.node.chunks.casKey })
    opened.push(casAtA)
    await casAtA.ready()
    assert.ok(casAtA.length > 0)
    const casAtB = b.node.store.get({ key: storage.cas })
    opened.push(casAtB)
    await casAtB.ready()
    await until('b sees a\'s store', async () => {
      await casAtB.update({ wait: true }).catch(() => false)
      return casAtB.length === casAtA.length
    })
    assert.deepEqual(await casAtB.get(0, { timeout: 10_000 }), await casAtA.get(0))
    const casAtC = await tryToSteal(c, a, a.node.chunks.casKey)
    opened.push(casAtC)
    await sleep(1500)
    assert.equal(casAtC.length, 0)
    await assert.rejects(casAtC.get(0, { timeout: 1500 }))

    // Denying storage takes it back: the connection restarts under the new rules.
    const { PeerRegistry } = await import('../src/net/index.js')
    PeerRegistry.update(a.root, (r) => r.setStorage(b.key, false))
    a.net.refresh()
    await a.net.settled()
    await b.net.waitConnected(a.key, 20_000)
    await until('b sees the new hello', () => b.net.remote(a.key)?.storage === null)
  } finally {
    for (const core of opened) await core.close().catch(() => {})
    await c.stop()
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('a writer log passes on: c gets a\'s log through b, and live appends arrive', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  const c = await startPeer(dir, 'c', { bootstrap: [] })
  const opened: Hypercore[] = []
  try {
    shareKey([a, b, c])
    const volA = await a.node.createVolume('v', 'friends')
    const idHex = volA.id.toString('hex')
    copyVolumeRecord(a, b, 'v')
    copyVolumeRecord(a, c, 'v')
    // a - b - c in a line: a and c never meet.
    await addPeer(a, b, { volumes: [idHex] })
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    await addPeer(b, c, { volumes: [idHex] })
    await addPeer(c, b, { location: b.location(), volumes: [idHex] })
    // b takes a's log from a (bound to a, offered by a); c knows it as a writer of v (its
    // writer set says so), so it takes it from b, which relays it: a log c did not know would
    // be a candidate, taken only from a (see the candidate tests in net-access).
    await c.node.addWriter(volA.id, volA.log.key)
    await c.net.waitConnected(b.key, 20_000)
    await b.net.waitConnected(a.key, 20_000)
    await until('c hears of a\'s log through b', () => c.net.remote(b.key)?.volumes[0]?.writers.some((k) => k.equals(volA.log.key)) ?? false)
    const logAtC = c.node.store.get({ key: volA.log.key })
    opened.push(logAtC)
    await logAtC.ready()
    logAtC.download({ start: 0, end: -1 })
    await until('c has block 0 of a\'s log', () => logAtC.contiguousLength >= 1)
    const before = logAtC.length
    const t0 = Date.now()
    await volA.writeFile('/x', Buffer.from('live\n'))
    await volA.flush()
    await until('c gets the new entry', () => logAtC.contiguousLength > before)
    process.stderr.write(`# a live append reached c (two hops) in ${Date.now() - t0} ms\n`)
  } finally {
    for (const core of opened) await core.close().catch(() => {})
    await c.stop()
    await b.stop()
    await a.stop()
    cleanup()
  }
})
