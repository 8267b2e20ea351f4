// `bazil where`, `bazil volume du` and the "not yet safe" figure of `bazil status` on a small
// volume: a laptop that stores to a desktop, before and after the desktop confirmed holding
// the laptop's store. The commands run as the server runs them (its node and network).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeKey, randomBytes } from '../src/crypto.js'
import type { ServerHandle } from '../src/server/handle.js'
import { runInProcess } from './helpers.js'
import { addPeer, copyVolumeRecord, shareKey, until, type TestPeer } from './net-helpers.js'
import { link, ownPacks, withPeers } from './copies-scene.js'

function handle(p: TestPeer): ServerHandle {
  return { node: p.node, dir: p.dir, pid: process.pid, startedAt: Date.now(), log: () => {}, net: p.net, mounts: () => [], mount: async () => {}, unmount: async () => {} }
}

async function cli(p: TestPeer, argv: string[]): Promise<string> {
  const r = await runInProcess(p.root, argv, handle(p))
  assert.equal(r.code, 0, `bazil ${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

test('where and du report what a small volume is made of, what is held here and by whom, and what is not yet safe', async () => {
  await withPeers(['laptop', 'desk'], async (laptop, desk) => {
    shareKey([laptop, desk])
    const vol = await laptop.node.createVolume('docs', 'friends')
    copyVolumeRecord(laptop, desk, 'docs')
    await link(laptop, desk, vol.id.toString('hex'))
    await desk.stop() // away: nothing is confirmed yet
    const sizes = { '/d/a.txt': 100_000, '/d/b.bin': 2_500_000, '/c.bin': 1_000_000 }
    for (const [p, n] of Object.entries(sizes)) {
      vol.mkdirp(p.slice(0, p.lastIndexOf('/')) || '/')
      await vol.writeFile(p, randomBytes(n))
    }
    await vol.writeFile('/d/empty', Buffer.alloc(0))
    await vol.flush()
    assert.match(await cli(laptop, ['volume', 'storage', 'add', 'docs', `peerkey:${encodeKey(desk.key)}`]), /now reads/)

    const before = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/d'])) as Record<string, any>
    assert.equal(before.path, '/d')
    assert.equal(before.files, 3)
    assert.equal(before.logicalBytes, 2_600_000)
    assert.ok(before.storedBytes > before.logicalBytes, 'ciphertext + headers + manifests are a little larger')
    assert.ok(before.storedBytes < before.logicalBytes * 1.01)
    assert.equal(before.unknownObjects, 0)
    assert.deepEqual(before.here, { bytes: before.storedBytes, written: before.storedBytes, cached: 0, pinned: 0, notSafe: before.storedBytes })
    assert.equal(before.copies, 0)
    assert.equal(before.copiesWanted, 1)
    assert.deepEqual(before.peers, [])
    const text = await cli(laptop, ['where', 'docs', '/d/a.txt'])
    assert.match(text, /^\/d\/a\.txt: 1 file, 97\.7 KiB/)
    assert.match(text, /not yet safe: /)
    assert.match(text, /peers: none holds it/)

    const du = JSON.parse(await cli(laptop, ['volume', 'du', '--json', 'docs'])) as Record<string, number | string>
    assert.equal(du.logicalBytes, 3_600_000)
    assert.equal(du.files, 4)
    assert.equal(du.hereBytes, du.storedBytes)
    assert.equal(du.notSafeBytes, du.storedBytes)
    assert.equal(du.pinnedBytes, 0)
    const status = JSON.parse(await cli(laptop, ['status', '--json'])) as { notYetSafe: { bytes: number; packs: number; safePacks: number } }
    assert.ok(status.notYetSafe.bytes >= (du.storedBytes as number), 'the whole store is not yet safe (its writer log aside, only this volume wrote to it)')
    assert.equal(status.notYetSafe.safePacks, 0)

    // The desktop comes back, keeps the laptop's store and confirms it: all of it is safe, on the desktop.
    await desk.restart()
    await addPeer(laptop, desk, { location: desk.location() })
    const own = laptop.node.chunks.casKey
    const packs = await ownPacks(laptop)
    await until('the desktop confirms', () => laptop.node.safety.safePacks(own) === packs.length, 30_000)
    const copies = JSON.parse(await cli(laptop, ['volume', 'copies', '--json', 'docs'])) as Record<string, any>
    assert.deepEqual(copies, { volume: 'docs', copies: 1, set: false, store: { copies: 1, packs: packs.length, safePacks: packs.length, notSafeBytes: 0 }, keepers: [{ key: encodeKey(desk.key), confirmedPacks: packs.length, storesTo: true, mayRead: true }] })
    assert.match(await cli(laptop, ['volume', 'copies', 'docs']), new RegExp(`keeper ${encodeKey(desk.key)}: ${packs.length} of ${packs.length} packs confirmed\n`))
    await packs.close()
    const after = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/d'])) as Record<string, any>
    assert.equal(after.copies, 1)
    assert.equal(after.here.notSafe, 0)
    assert.deepEqual(after.peers, [{ key: encodeKey(desk.key), bytes: after.storedBytes, state: 'whole', as: 'confirmed' }])
    assert.match(await cli(laptop, ['where', 'docs', '/c.bin']), new RegExp(`peer ${encodeKey(desk.key)}: whole, confirmed keeping it`))
    const du2 = JSON.parse(await cli(laptop, ['volume', 'du', '--json', 'docs', '/d'])) as Record<string, number>
    assert.equal(du2.notSafeBytes, 0)
    assert.equal(du2.logicalBytes, 2_600_000)
    const status2 = JSON.parse(await cli(laptop, ['status', '--json'])) as { notYetSafe: { bytes: number; packs: number } }
    assert.equal(status2.notYetSafe.bytes, 0)
    assert.match(await cli(laptop, ['status']), /not yet safe: 0\.0 MiB in 0 of \d+ packs/)
    assert.match(await cli(laptop, ['volume', 'copies', 'docs']), /volume "docs": 1 \(default\) copy elsewhere/)
    assert.match(await cli(laptop, ['volume', 'copies', 'docs', '2']), /volume "docs": 2 copies elsewhere/)
    const again = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/'])) as Record<string, any>
    assert.equal(again.copiesWanted, 2)
    assert.ok(again.here.notSafe > 0, 'with 2 wanted and 1 confirmed, nothing is safe')
    // A removed peer's confirmation no longer counts.
    await cli(laptop, ['volume', 'copies', 'docs', '1'])
    assert.equal((JSON.parse(await cli(laptop, ['volume', 'du', '--json', 'docs'])) as Record<string, number>).notSafeBytes, 0)
    assert.match(await cli(laptop, ['peer', 'remove', encodeKey(desk.key)]), /its confirmations of holding this node's content no longer count/)
    const gone = JSON.parse(await cli(laptop, ['volume', 'du', '--json', 'docs'])) as Record<string, number>
    assert.equal(gone.notSafeBytes, gone.storedBytes)
    const bad = await runInProcess(laptop.root, ['volume', 'copies', 'docs', '0'], handle(laptop))
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /invalid copies "0": give an integer 1\.\.16/)
  })
})

test('where on a reader: content another writer stored is held by that writer, and here once read (cached)', async () => {
  await withPeers(['desk', 'laptop'], async (desk, laptop) => {
    shareKey([laptop, desk])
    const vol = await desk.node.createVolume('docs', 'friends')
    const id = vol.id.toString('hex')
    await vol.writeFile('/f.bin', randomBytes(1_500_000))
    await vol.writeFile('/g.bin', randomBytes(500_000))
    await vol.flush()
    copyVolumeRecord(desk, laptop, 'docs')
    laptop.dir.addVolumeStorage('docs', encodeKey(desk.key))
    await link(desk, laptop, id)
    const vl = await laptop.node.volume('docs')
    await until('the laptop sees both files', async () => (await vl.refresh(), vl.tree.lookup('/g.bin') !== null), 30_000)
    await until('the desk\'s store is a source', () => laptop.node.remoteStores.stores().length > 0, 30_000)

    const before = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/'])) as Record<string, any>
    assert.equal(before.files, 2)
    assert.equal(before.logicalBytes, 2_000_000)
    assert.equal(before.here.written, 0)
    assert.equal(before.here.notSafe, 0, 'nothing of it was written here')
    assert.deepEqual(before.peers, [{ key: encodeKey(desk.key), bytes: before.storedBytes, state: 'whole', as: 'owner' }])
    assert.equal(before.copies, 1)
    const f = vl.tree.stat('/f.bin')
    let read = 0
    const { toFileRef } = await import('../src/volume/volume.js')
    for await (const c of vl.cas.readFile(toFileRef(f.content!))) read += c.length
    assert.equal(read, 1_500_000)
    const after = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/f.bin'])) as Record<string, any>
    assert.equal(after.here.bytes, after.storedBytes, 'all of /f.bin is here now')
    assert.equal(after.here.cached, after.storedBytes)
    assert.equal(after.here.written, 0)
    assert.match(await cli(laptop, ['where', 'docs', '/f.bin']), new RegExp(`cached .*\\n[^]*peer ${encodeKey(desk.key)}: whole, its own store`))
    // Pinned: the pins' content counts as pinned here.
    await cli(laptop, ['pin', 'docs', '/f.bin'])
    await until('/f.bin counts as pinned', async () => {
      const r = JSON.parse(await cli(laptop, ['where', '--json', 'docs', '/f.bin'])) as Record<string, any>
      return r.here.pinned === r.storedBytes
    }, 20_000)
    const du = JSON.parse(await cli(laptop, ['volume', 'du', '--json', 'docs'])) as Record<string, number>
    assert.equal(du.pinnedBytes, after.storedBytes, 'only /f.bin is pinned')

    // On the desk, the laptop's copy shows (its hypercore bitfield), but it is no kept copy.
    await until('the desk sees the laptop\'s copy', async () => {
      const r = JSON.parse(await cli(desk, ['where', '--json', 'docs', '/f.bin'])) as Record<string, any>
      return r.peers.length === 1 && r.peers[0].state === 'whole'
    }, 10_000)
    const onDesk = JSON.parse(await cli(desk, ['where', '--json', 'docs', '/f.bin'])) as Record<string, any>
    assert.deepEqual(onDesk.peers, [{ key: encodeKey(laptop.key), bytes: onDesk.storedBytes, state: 'whole', as: 'copy' }])
    assert.equal(onDesk.copies, 0)
    assert.equal(onDesk.here.written, onDesk.storedBytes)
    assert.equal(onDesk.here.notSafe, onDesk.storedBytes)
    assert.match(await cli(desk, ['where', 'docs', '/f.bin']), /: whole, has a copy now \(not kept for this node\)/)
  })
})
