// The cache budget against a filling disk (src/cas/cache-headroom.ts): a laptop whose data dir
// is on a small disk (a 192 MiB tmpfs) caches a desktop's files under a budget larger than the
// disk; once another program fills the disk below the reserve, the cache gives space back
// (effective budget = min(set, cached + free - reserve)) and the reserve is free again; with the
// space back, the set budget holds again. Real nodes and PeerNetworks on a loopback testnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
import createTestnet from '@hyperswarm/testnet'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { toFileRef, type Volume } from '../src/volume/volume.js'
import { freeBytes } from '../src/space-guard.js'
import { reserveBytes } from '../src/cas/cache-headroom.js'
import { addPeer, copyVolumeRecord, shareKey, startPeer, until, type TestPeer } from './net-helpers.js'
import { mountTmpfs, smallFsUnavailable } from './small-fs.js'
import { tempDir } from './helpers.js'

const MiB = 1024 * 1024
const why = smallFsUnavailable('tmpfs')

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function read(vol: Volume, p: string): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of vol.cas.readFile(toFileRef(vol.tree.stat(p).content!), p)) parts.push(c)
  return Buffer.concat(parts)
}

test('the cache shrinks as the disk fills (a free-space reserve stays) and grows back to the set budget', { skip: why ?? false, timeout: 240_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-headroom-')
  const disk = await mountTmpfs(path.join(dir, 'disk'), 192)
  const testnet = await createTestnet(4)
  const peers: TestPeer[] = []
  try {
    const desk = await startPeer(dir, 'desk', { bootstrap: testnet.bootstrap })
    peers.push(desk)
    const laptop = await startPeer(disk.dir, 'laptop', { bootstrap: testnet.bootstrap })
    peers.push(laptop)
    shareKey([desk, laptop])
    const dv = await desk.node.createVolume('docs', 'friends')
    const files = new Map<string, string>()
    for (let i = 0; i < 24; i++) {
      const data = randomBytes(2 * MiB)
      await dv.writeFile(`/f${i}`, data)
      files.set(`/f${i}`, sha(data))
    }
    await dv.flush()
    await desk.node.chunks.flush()
    const id = dv.id.toString('hex')
    copyVolumeRecord(desk, laptop, 'docs')
    await addPeer(desk, laptop, { location: laptop.location(), storage: true, volumes: [id] })
    await addPeer(laptop, desk, { location: desk.location(), storage: true, volumes: [id] })
    laptop.dir.addVolumeStorage('docs', encodeKey(desk.key)) // reads what it lacks from the desk
    const cache = laptop.node.cache
    await cache.setBudget({ bytes: 100 * MiB }) // more than is read: at first only the set budget bounds it
    const lv = await laptop.node.volume('docs')
    await until('the laptop sees every file', async () => (await lv.refresh(), files.size === [...files.keys()].filter((p) => lv.tree.lookup(p)).length), 30_000)
    for (const [p, h] of files) assert.equal(sha(await read(lv, p)), h, `${p} reads`)
    const full = await cache.status()
    assert.ok(full.cachedBytes >= 40 * MiB, `cached ${full.cachedBytes}`)
    assert.equal(full.effectiveBudgetBytes, full.budgetBytes, 'with room on the disk the set budget holds')

    // Another program fills the disk to 4 MiB below the reserve.
    const reserve = reserveBytes(disk.dir)
    const filler = path.join(disk.dir, 'filler')
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(disk.dir) - reserve + 4 * MiB)))
    assert.ok(freeBytes(disk.dir) < reserve)
    await until('the reserve is free again', async () => (await cache.status(), freeBytes(disk.dir) >= reserve - MiB), 60_000, 500)
    const after = await cache.status()
    assert.ok(after.cachedBytes <= after.effectiveBudgetBytes, `cached ${after.cachedBytes} within the effective budget ${after.effectiveBudgetBytes}`)
    assert.ok(after.cachedBytes < full.cachedBytes - 4 * MiB, `cached ${full.cachedBytes} -> ${after.cachedBytes}`)
    assert.ok(after.evictedBytes >= 4 * MiB && after.lastEviction !== null, `evicted ${after.evictedBytes} bytes`)

    // The space comes back: the set budget again, and what was evicted reads (from the desk).
    fs.rmSync(filler)
    const roomy = await cache.status()
    assert.equal(roomy.effectiveBudgetBytes, roomy.budgetBytes)
    for (const [p, h] of [...files].slice(0, 4)) {
      // (a fetch that times out on this loaded machine is an EIO a reader retries)
      await until(`${p} reads again`, async () => sha(await read(lv, p).catch(() => Buffer.alloc(0))) === h, 60_000, 500)
    }
  } finally {
    for (const p of peers.reverse()) await p.stop().catch(() => {})
    await testnet.destroy()
    await disk.destroy()
    cleanup()
  }
})
