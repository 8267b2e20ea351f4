// Stop keeping (issue 11, spec/protocol.md RELEASE): a node that no longer stores to a keeper
// (`volume storage rm`) tells it to stop keeping its store, after fetching back what it
// evicted relying on that keeper; the keeper drops its replica and the disk space comes back.
// A peer whose channel handshake does not announce RELEASE (an older bazil) is never sent it.
// Real nodes and PeerNetworks on a loopback DHT testnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { encodeKey } from '../src/crypto.js'
import { diskUsage } from '../src/gc.js'
import { FEATURE_RELEASE, LOCAL_FEATURES, ProtocolError, decodeHandshake, decodeMessage, encodeHandshake, encodeMessage, type Message } from '../src/net/protocol.js'
import { PeerRegistry } from '../src/net/index.js'
import { DataPaths } from '../src/data-paths.js'
import { heldBlocks, startPeer, startRogue, until } from './net-helpers.js'
import { readWhole, storingTo, withPeers, writeOwnFile } from './copies-scene.js'
import { tempDir } from './helpers.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

test('RELEASE round-trips; the channel handshake carries feature bits, empty for older nodes', () => {
  const m: Message = { type: 'release', packs: Buffer.alloc(32, 9) }
  assert.deepEqual(decodeMessage(encodeMessage(m)), m)
  assert.throws(() => decodeMessage(Buffer.concat([encodeMessage(m), Buffer.from([0])])), (err: Error) => err instanceof ProtocolError && /trailing/.test(err.message))
  assert.throws(() => decodeMessage(encodeMessage(m).subarray(0, 20)), ProtocolError)
  assert.equal(decodeHandshake(null), 0, 'an older node sends no handshake')
  assert.equal(decodeHandshake(Buffer.alloc(0)), 0)
  assert.equal(decodeHandshake(encodeHandshake(LOCAL_FEATURES)) & FEATURE_RELEASE, FEATURE_RELEASE)
  assert.equal(decodeHandshake(Buffer.concat([encodeHandshake(3), Buffer.from([7, 7])])), 3, 'later fields are ignored')
  assert.throws(() => decodeHandshake(Buffer.from([0xfd, 1, 0])), /canonical/)
})

test('volume storage rm: the keeper is told to stop keeping the store once what was evicted relying on it is back; it drops the replica', async () => {
  await withPeers(['laptop', 'desk'], async (laptop, desk) => {
    const vol = await storingTo(laptop, [desk])
    await laptop.node.cache.setBudget({ bytes: 4096 }) // whatever is safe leaves the laptop
    const { data, own, core } = await writeOwnFile(laptop, vol, 3 * 1024 * 1024)
    const held = (c = core): Promise<number> => heldBlocks(c)
    try {
      const n = core.length
      await until('desk confirms every pack', () => laptop.node.safety.safePacks(own) === n, 30_000)
      await laptop.node.ownEviction.run()
      assert.ok((await held()) < n / 2, `most of the laptop's packs evicted (${await held()} of ${n} held)`)
      const replica = desk.node.mirrors.get(laptop.key)!
      assert.equal(await held(replica.cas), n)
      const duBefore = diskUsage(desk.root)

      // The laptop stops storing to the desk: the desk's confirmation stops counting at once...
      assert.equal(laptop.dir.removeVolumeStorage('docs', encodeKey(desk.key)), true)
      assert.equal(laptop.node.safety.safePacks(own), 0)
      // ...the evicted packs come back from it, then it is told to let go.
      await until('the desk dropped its replica of the laptop\'s store', () => desk.lines.some((l) => /no longer stores to this node: dropped the replica of its store/.test(l)), 60_000)
      assert.equal(desk.node.mirrors.get(laptop.key), null)
      assert.equal(await held(), n, 'every pack is back on the laptop before the release')
      assert.equal(laptop.node.placement.confirmationOf(encodeKey(desk.key)), null, 'its confirmation is forgotten')
      const rec = JSON.parse(fs.readFileSync(new DataPaths(desk.root).mirrors, 'utf8')) as { stores: { node: string }[] }
      assert.deepEqual(rec.stores, [], 'mirrors.json lists no replica')
      assert.ok(laptop.lines.some((l) => /told peer \S+ to stop keeping this node's store/.test(l)))
      const deskCopy = desk.node.store.get({ key: own })
      await deskCopy.ready()
      assert.ok((await held(deskCopy)) <= 1, `the desk's copy holds ${await held(deskCopy)} packs`)
      await deskCopy.close()
      await desk.node.mirrors.compactNow()
      const duAfter = diskUsage(desk.root)
      assert.ok(duBefore - duAfter >= data.length * 0.8, `desk du ${duBefore} -> ${duAfter}`)

      // The file is whole on the laptop with the desk gone.
      await desk.stop()
      assert.equal(sha(await readWhole(vol, '/a.bin')), sha(data))
    } finally {
      await core.close()
    }
  })
})

test('a keeper whose handshake does not announce RELEASE (an older bazil) is never sent it; one that does is', async () => {
  const { dir, cleanup } = tempDir('bazil-release-rogue-')
  const laptop = await startPeer(dir, 'laptop', { bootstrap: [] }) // the rogues dial its socket directly
  {
    const old = await startRogue(dir, 'old')
    const fresh = await startRogue(dir, 'fresh')
    try {
      PeerRegistry.update(laptop.root, (r) => {
        r.add(old.key)
        r.add(fresh.key)
      })
      laptop.net.refresh()
      await laptop.net.settled()
      const own = laptop.node.chunks.casKey
      const links = [await old.connect(laptop), await fresh.connect(laptop, { handshake: encodeHandshake(FEATURE_RELEASE) })]
      for (const [i, l] of links.entries()) {
        l.send({ type: 'hello', storage: null, volumes: [] })
        l.send({ type: 'holds', packs: own, length: 0 }) // as a keeper it says it keeps our store
        await until(`confirmation ${i} recorded`, () => laptop.node.placement.confirmationOf(encodeKey([old, fresh][i]!.key)) !== null, 20_000)
      }
      // Neither is in a storage list: the one that can take RELEASE gets it; the older one never.
      await until('the fresh keeper is released', () => links[1]!.received.some((m) => m.type === 'release'), 20_000)
      assert.deepEqual((links[1]!.received.find((m) => m.type === 'release') as { packs: Buffer }).packs, own)
      assert.equal(laptop.node.placement.confirmationOf(encodeKey(fresh.key)), null)
      await until('a few more sweeps', () => laptop.lines.filter((l) => /told peer/.test(l)).length >= 1, 5000)
      await new Promise((r) => setTimeout(r, 2500)) // > 2 sweeps (1 s each): absence is what is checked
      assert.equal(links[0]!.received.some((m) => m.type === 'release'), false, 'the older keeper got no RELEASE')
      assert.equal(laptop.net.connected(old.key), true, 'and is still connected')
      assert.notEqual(laptop.node.placement.confirmationOf(encodeKey(old.key)), null, 'its confirmation stays')
    } finally {
      await old.close()
      await fresh.close()
      await laptop.stop()
      cleanup()
    }
  }
})
