// A laptop's copy of a desktop's store follows the desktop's drop records (spec/gc.md section 5,
// src/cas/cache-drops.ts): after the desktop deletes files and collects, the packs it
// dropped leave the laptop's disk and cache ledger; a pinned file whose objects the
// compaction moved to new packs is fetched from there before its old pack is cleared, and
// reads offline. Real servers on a loopback DHT testnet, the CLI.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { PeerCluster, eventually } from './peer-setup.js'
import { summaryOf, tempDir } from './helpers.js'

const VOL = 'docs'
const KiB = 1024
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

interface Status { heldBytes: number; pinnedBytes: number; packs: number }

test('a laptop clears the packs of a desktop\'s store the desktop dropped, after fetching a pinned file\'s moved objects', { timeout: 300_000 }, async () => {
  const src = tempDir('bazil-cache-drops-')
  const c = await PeerCluster.create(['desktop', 'laptop'])
  try {
    // One import, one directory: the pinned file's objects share packs with files deleted later.
    const data = { '1g.bin': randomBytes(500 * KiB), '2k.bin': randomBytes(300 * KiB), '3g.bin': randomBytes(500 * KiB) }
    fs.mkdirSync(path.join(src.dir, 'd'))
    for (const [name, bytes] of Object.entries(data)) fs.writeFileSync(path.join(src.dir, 'd', name), bytes)
    await c.start('desktop', 'laptop')
    await c.run('desktop', ['volume', 'create', '--sharing=friends', VOL])
    await c.run('desktop', ['volume', 'import', VOL, src.dir])
    await c.readFrom('laptop', 'desktop', VOL) // the laptop's copy of the desktop's store is a cache
    const l = c.get('laptop')
    await eventually('the volume on the laptop', async () => (await c.run('laptop', ['volume', 'ls', '--json', VOL, '/d']).then((r) => (JSON.parse(r.stdout) as unknown[]).length, () => 0)) === 3, 60_000, 250)

    await c.run('laptop', ['pin', VOL, '/d/2k.bin'])
    await eventually('the pinned file held', async () => {
      const list = JSON.parse((await c.run('laptop', ['pin', '--list', '--json'])).stdout) as { bytes: number; heldBytes: number | null }[]
      return list.length === 1 && list[0]!.heldBytes === list[0]!.bytes
    }, 60_000, 250)
    /** The laptop's export of the volume: file name -> sha256. */
    let exports = 0
    const exported = async (): Promise<Map<string, string>> => {
      const dest = path.join(src.dir, `export-${exports++}`)
      await c.run('laptop', ['volume', 'export', VOL, dest])
      return new Map(fs.readdirSync(path.join(dest, 'd')).map((n) => [n, sha(fs.readFileSync(path.join(dest, 'd', n)))]))
    }
    const first = await exported()
    for (const [name, bytes] of Object.entries(data)) assert.equal(first.get(name), sha(bytes), `${name} read on the laptop`)
    const status = async (): Promise<Status> => JSON.parse((await c.run('laptop', ['cache', 'size', '--json'])).stdout) as Status
    const before = await status()
    assert.ok(before.heldBytes >= 1000 * KiB, `the laptop caches the files read: ${before.heldBytes}`)

    // The desktop deletes the two other files and collects: the shared packs are rewritten.
    await c.run('desktop', ['volume', 'rm', VOL, '/d/1g.bin'])
    await c.run('desktop', ['volume', 'rm', VOL, '/d/3g.bin'])
    const gc = summaryOf((await c.run('desktop', ['volume', 'gc', '--json', '--grace=0', VOL])).stdout) as { packs: { rewritten: number }; moved: { objects: number } }
    assert.ok(gc.packs.rewritten > 0 && gc.moved.objects > 0, `the desktop rewrote packs and moved the pinned file's objects: ${JSON.stringify(gc)}`)

    // The laptop sees the drop record, fetches the moved objects, clears the dropped packs.
    await eventually('the laptop clears the dropped packs', async () => /cache: cleared \d+ packs .* their owners dropped/.test(l.log()), 90_000, 500)
    const after = await status()
    assert.ok(after.heldBytes <= before.heldBytes - 900 * KiB, `the deleted files' bytes left the laptop's ledger: ${before.heldBytes} -> ${after.heldBytes}`)
    const w = JSON.parse((await c.run('laptop', ['where', '--json', VOL, '/d/2k.bin'])).stdout) as { storedBytes: number; here: { bytes: number } }
    assert.equal(w.here.bytes, w.storedBytes, 'the pinned file is held where its objects moved')

    // Offline: the pinned file reads from the laptop's disk alone.
    await c.stop('desktop')
    await c.stop('laptop')
    await c.start('laptop')
    assert.deepEqual([...(await exported())], [['2k.bin', sha(data['2k.bin'])]], 'the pinned file reads offline')
  } finally {
    await c.close()
    src.cleanup()
  }
})
