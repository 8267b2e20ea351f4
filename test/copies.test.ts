// The copy rule and confirmations (issue 11): a laptop stores to two desktops (`volume storage
// add`), asks them to keep its store (KEEP), and counts what each confirms it holds (HOLDS).
// Real nodes and PeerNetworks on a loopback DHT testnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { Placement, DEFAULT_COPIES } from '../src/placement/placement.js'
import type { Volume } from '../src/volume/volume.js'
import { ProtocolError, decodeMessage, encodeMessage, type Message } from '../src/net/protocol.js'
import { addPeer, copyVolumeRecord, shareKey, until, type TestPeer } from './net-helpers.js'
import { link, ownPacks, storingTo, withPeers } from './copies-scene.js'

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
  await withPeers(['a', 'b'], async (a, b) => {
    shareKey([a, b])
    const va = await a.node.createVolume('docs', 'friends')
    copyVolumeRecord(a, b, 'docs')
    await link(a, b, va.id.toString('hex'), { ownerStorage: false })
    assert.equal(va.copies, null)
    assert.equal(a.node.placement.copies(), DEFAULT_COPIES)
    va.setCopies(3)
    await va.flush()
    assert.throws(() => va.setCopies(0), /copies must be an integer 1\.\.16/)
    const vb = await b.node.volume('docs')
    await until('the rule replicates to b', async () => (await vb.refresh(), vb.copies === 3))
    assert.equal(b.node.placement.copies(), 3)
  })
})

/** Sets the copy rule and writes /a.bin of `bytes` random bytes into the node's own store; returns the store's packs key. */
async function writeWithCopies(p: TestPeer, vol: Volume, copies: number, bytes: number): Promise<Buffer> {
  vol.setCopies(copies)
  await vol.writeFile('/a.bin', randomBytes(bytes))
  await vol.flush()
  await p.node.chunks.flush()
  return p.node.chunks.casKey
}

/** The packs the peer confirmed holding of the laptop's store (0: none). */
function confirmed(laptop: TestPeer, p: TestPeer): number {
  return laptop.node.placement.confirmations().find((c) => c.node === encodeKey(p.key))?.packs ?? 0
}

test('with copies 2, written content is safe only once two storage peers confirmed holding it; confirmations survive a restart', async () => {
  await withPeers(['laptop', 'desk1', 'desk2'], async (laptop, d1, d2) => {
    const vol = await storingTo(laptop, [d1, d2])
    await d2.stop() // away before it could confirm anything
    const own = await writeWithCopies(laptop, vol, 2, 3 * 1024 * 1024)
    let packs = await ownPacks(laptop)
    const n = packs.length
    assert.ok(n >= 3, `the file takes ${n} packs`)
    await until('desk1 confirms every pack', () => confirmed(laptop, d1) === n, 30_000)
    assert.equal(laptop.node.safety.safePacks(own), 0, 'one confirmed copy is not two')
    assert.equal(laptop.node.safety.safePacks(Buffer.alloc(32)), 0, 'another store: nothing known')
    assert.deepEqual(laptop.node.placement.holders(0), [encodeKey(d1.key)])
    // desk1's replica is a kept one (mirrors.json), fully downloaded.
    assert.equal(d1.node.mirrors.get(laptop.key)?.cas.contiguousLength, n)

    // A restart of the laptop while desk1 is away too: the confirmation is still known, still not safe.
    await d1.stop()
    await packs.close()
    await laptop.stop()
    const p = new Placement(laptop.dir.paths.holdings, own)
    assert.deepEqual(p.confirmations().map((c) => [c.node, c.packs]), [[encodeKey(d1.key), n]])
    assert.equal(p.copies(), 2, 'the rule of a volume not open now is the one last seen')
    assert.equal(p.safePacks(own), 0)
    await laptop.restart()
    assert.equal(confirmed(laptop, d1), n, 'the confirmation survived the restart')
    assert.equal(laptop.node.safety.safePacks(own), 0)

    // desk2 comes back: it takes the replica, confirms, and the content is safe.
    await d2.restart()
    await addPeer(laptop, d2, { location: d2.location() })
    await until('desk2 confirms every pack', () => confirmed(laptop, d2) === n, 30_000)
    assert.equal(laptop.node.safety.safePacks(own), n)

    // New content is pushed in the background: not safe until both confirm it again.
    packs = await ownPacks(laptop)
    const v2 = await laptop.node.volume('docs')
    await v2.writeFile('/b.bin', randomBytes(1024 * 1024))
    await v2.flush()
    await laptop.node.chunks.flush()
    assert.ok(laptop.node.safety.safePacks(own) < packs.length, 'the new packs are not safe yet')
    await d1.restart()
    await addPeer(laptop, d1, { location: d1.location() })
    await until('both desktops confirm the new packs', () => laptop.node.safety.safePacks(own) === packs.length, 30_000)
    await packs.close()
  })
})

test('a storage-only closet confirms the store it keeps; with copies 2 a closet and a desktop make content safe', async () => {
  await withPeers(['laptop', 'closet', 'desk'], async (laptop, closet, desk) => {
    shareKey([laptop, desk]) // the closet has no sharing key
    const vol = await laptop.node.createVolume('docs', 'friends')
    const id = vol.id.toString('hex')
    copyVolumeRecord(laptop, desk, 'docs')
    closet.dir.addVolume({ version: 1, name: 'docs', id, storageOnly: true, created: Date.now() })
    await closet.node.heldVolume('docs')
    for (const k of [closet, desk]) await link(laptop, k, id, { volume: 'docs' })
    const own = await writeWithCopies(laptop, vol, 2, 2 * 1024 * 1024)
    const packs = await ownPacks(laptop)
    try {
      await until('the closet and the desktop confirm every pack', () => laptop.node.safety.safePacks(own) === packs.length, 30_000)
      assert.deepEqual(laptop.node.placement.confirmations().map((c) => c.node).sort(), [encodeKey(closet.key), encodeKey(desk.key)].sort())
      assert.equal(closet.node.mirrors.get(laptop.key)?.cas.contiguousLength, packs.length)
    } finally {
      await packs.close()
    }
  })
})
