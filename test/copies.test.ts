// The copy rule and confirmations (issue 11): a laptop stores to two desktops (`volume storage
// add`), asks them to keep its store (KEEP), and counts what each confirms it holds (HOLDS).
// Real nodes and PeerNetworks on a loopback DHT testnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import createTestnet from '@hyperswarm/testnet'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { Placement, DEFAULT_COPIES } from '../src/fs/placement.js'
import { ProtocolError, decodeMessage, encodeMessage, type Message } from '../src/net/protocol.js'
import { tempDir } from './helpers.js'
import { addPeer, copyVolumeRecord, shareKey, startPeer, until, type TestPeer } from './net-helpers.js'

test('KEEP and HOLDS round-trip; the decoder rejects a body on KEEP, truncation and non-canonical lengths', () => {
  const holds: Message = { type: 'holds', packs: Buffer.alloc(32, 7), length: 300 }
  for (const m of [holds, { type: 'keep' } as Message]) assert.deepEqual(decodeMessage(encodeMessage(m)), m)
  const reject = (buf: Buffer, re: RegExp): void => assert.throws(() => decodeMessage(buf), (err: Error) => err instanceof ProtocolError && re.test(err.message))
  reject(Buffer.from([1, 4, 0]), /trailing/)
  const enc = encodeMessage(holds)
  reject(enc.subarray(0, enc.length - 1), /malformed/)
  reject(Buffer.concat([enc.subarray(0, 34), Buffer.from([0xfd, 5, 0])]), /canonical/)
})

test('the copy rule is replicated with the volume; the own store needs the largest rule', async () => {
  const { dir, cleanup } = tempDir('bazil-copies-rule-')
  const testnet = await createTestnet(4)
  const peers: TestPeer[] = []
  try {
    const a = await startPeer(dir, 'a', { bootstrap: testnet.bootstrap })
    const b = await startPeer(dir, 'b', { bootstrap: testnet.bootstrap })
    peers.push(a, b)
    shareKey([a, b])
    const va = await a.node.createVolume('docs', 'friends')
    copyVolumeRecord(a, b, 'docs')
    const id = va.id.toString('hex')
    await addPeer(a, b, { location: b.location(), volumes: [id] })
    await addPeer(b, a, { location: a.location(), volumes: [id] })
    assert.equal(va.copies, null)
    assert.equal(a.node.placement.copies(), DEFAULT_COPIES)
    va.setCopies(3)
    await va.flush()
    assert.throws(() => va.setCopies(0), /copies must be an integer 1\.\.16/)
    const vb = await b.node.volume('docs')
    await until('the rule replicates to b', async () => (await vb.refresh(), vb.copies === 3))
    assert.equal(b.node.placement.copies(), 3)
  } finally {
    for (const p of peers) await p.stop()
    await testnet.destroy()
    cleanup()
  }
})

test('with copies 2, written content is safe only once two storage peers confirmed holding it; confirmations survive a restart', async () => {
  const { dir, cleanup } = tempDir('bazil-copies-')
  const testnet = await createTestnet(4)
  const peers: TestPeer[] = []
  try {
    const laptop = await startPeer(dir, 'laptop', { bootstrap: testnet.bootstrap })
    const d1 = await startPeer(dir, 'desk1', { bootstrap: testnet.bootstrap })
    const d2 = await startPeer(dir, 'desk2', { bootstrap: testnet.bootstrap })
    peers.push(laptop, d1, d2)
    shareKey([laptop, d1, d2])
    const vol = await laptop.node.createVolume('docs', 'friends')
    const id = vol.id.toString('hex')
    for (const d of [d1, d2]) {
      copyVolumeRecord(laptop, d, 'docs')
      // The laptop lets each desktop read its store and stores to it; each desktop shares the volume.
      await addPeer(laptop, d, { location: d.location(), storage: true, volumes: [id] })
      await addPeer(d, laptop, { location: laptop.location(), volumes: [id] })
      laptop.dir.addVolumeStorage('docs', encodeKey(d.key))
    }
    await d2.stop() // away before it could confirm anything
    vol.setCopies(2)
    await vol.writeFile('/a.bin', randomBytes(3 * 1024 * 1024))
    await vol.flush()
    await laptop.node.chunks.flush()
    const own = laptop.node.chunks.casKey
    const core = laptop.node.store.get({ key: own })
    await core.ready()
    let packsCore = core
    const packs = (): number => packsCore.length
    assert.ok(packs() >= 3, `the file takes ${packs()} packs`)
    const held = (p: TestPeer): number => laptop.node.placement.confirmations().find((c) => c.node === encodeKey(p.key))?.packs ?? 0
    await until('desk1 confirms every pack', () => held(d1) === packs(), 30_000)
    assert.equal(laptop.node.safety.safePacks(own), 0, 'one confirmed copy is not two')
    assert.equal(laptop.node.safety.safePacks(Buffer.alloc(32)), 0, 'another store: nothing known')
    assert.deepEqual(laptop.node.placement.holders(0), [encodeKey(d1.key)])
    // desk1's replica is a kept one (mirrors.json), fully downloaded.
    const m = d1.node.mirrors.get(laptop.key)
    assert.ok(m && m.cas.contiguousLength === packs())

    // A restart of the laptop while desk1 is away too: the confirmation is still known, still not safe.
    await d1.stop()
    const n = packs()
    await core.close()
    await laptop.stop()
    const p = new Placement(laptop.dir.holdingsPath, own)
    assert.deepEqual(p.confirmations().map((c) => [c.node, c.packs]), [[encodeKey(d1.key), n]])
    assert.equal(p.copies(), 2, 'the rule of a volume not open now is the one last seen')
    assert.equal(p.safePacks(own), 0)
    await laptop.restart()
    assert.equal(held(d1), n, 'the confirmation survived the restart')
    assert.equal(laptop.node.safety.safePacks(own), 0)

    // desk2 comes back: it takes the replica, confirms, and the content is safe.
    await d2.restart()
    await addPeer(laptop, d2, { location: d2.location() })
    await until('desk2 confirms every pack', () => held(d2) === n, 30_000)
    assert.equal(laptop.node.safety.safePacks(own), n)

    // New content is pushed in the background: not safe until both confirm it again.
    const core2 = laptop.node.store.get({ key: own })
    await core2.ready()
    packsCore = core2
    const v2 = await laptop.node.volume('docs')
    await v2.writeFile('/b.bin', randomBytes(1024 * 1024))
    await v2.flush()
    await laptop.node.chunks.flush()
    const before = laptop.node.safety.safePacks(own)
    assert.ok(before < packs(), 'the new packs are not safe yet')
    await d1.restart()
    await addPeer(laptop, d1, { location: d1.location() })
    await until('both desktops confirm the new packs', () => laptop.node.safety.safePacks(own) === packs(), 30_000)
    await core2.close()
  } finally {
    for (const p of peers) await p.stop()
    await testnet.destroy()
    cleanup()
  }
})
