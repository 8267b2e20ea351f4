// Content written here leaves the disk only through the copy rule (src/cas/own-eviction.ts):
// with copies 2 and a tiny cache budget, a laptop's file stays until two keepers confirmed it,
// then its packs are cleared, and it reads back from the keepers, also after a GC.
// BAZIL_FULL=1 (`npm run lifecycle-full`): 64 MiB written instead of 3.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { collectGarbage } from '../src/gc.js'
import { addPeer, heldBlocks, until } from './net-helpers.js'
import { readWhole, storingTo, withPeers, writeOwnFile } from './copies-scene.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const WRITTEN = (process.env.BAZIL_FULL === '1' ? 64 : 3) * 1024 * 1024

test(`with copies 2, ${WRITTEN >> 20} MiB of own content is not evicted until two keepers confirm it; then it is, and reads back from them (also after gc)`, async () => {
  await withPeers(['laptop', 'desk1', 'desk2'], async (laptop, d1, d2) => {
    const vol = await storingTo(laptop, [d1, d2])
    await laptop.node.cache.setBudget({ bytes: 4096 }) // nothing written here fits: all of it goes once safe
    await d2.stop() // away before it could confirm anything
    vol.setCopies(2)
    const { data, own, core } = await writeOwnFile(laptop, vol, WRITTEN)
    const held = (): Promise<number> => heldBlocks(core)
    try {
      const n = core.length
      await until('desk1 confirms every pack', () => laptop.node.placement.confirmations().some((c) => c.packs === n), 30_000 + WRITTEN / 10_000)
      assert.deepEqual(await laptop.node.ownEviction.run(), { packs: 0, bytes: 0 }, 'one confirmed copy of two: nothing leaves')
      assert.equal(await held(), n)

      await d2.restart()
      await addPeer(laptop, d2, { location: d2.location() })
      await until('both confirm', () => laptop.node.safety.safePacks(own) === n, 30_000 + WRITTEN / 10_000)
      await laptop.node.ownEviction.run()
      assert.ok((await held()) < n / 2, `most packs evicted (${await held()} of ${n} held)`)
      const { where } = await import('../src/placement/where.js')
      const r = await where(laptop.node, vol, '/a.bin')
      assert.ok(r.here.bytes < r.storedBytes / 2, 'where: most of it is not here')
      assert.equal(r.here.notSafe, 0)
      assert.equal(r.copies, 2)

      // Read back: from the keepers' replicas, verified.
      const read = (): Promise<Buffer> => readWhole(vol, '/a.bin')
      const before = await held()
      assert.equal(sha(await read()), sha(data))
      assert.ok((await held()) > before, 'the packs came back from the keepers')

      // Evicted again, then a collection: the file's content is referenced, kept, and still reads.
      await laptop.node.ownEviction.run()
      const report = await collectGarbage(laptop.node, { graceMs: 0 })
      assert.equal(report.dryRun, false)
      assert.equal(sha(await read()), sha(data))
    } finally {
      await core.close()
    }
  })
})
