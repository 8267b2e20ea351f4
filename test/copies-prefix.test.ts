// What a keeper confirms of a replica (HOLDS length, src/net/replica-prefix.ts): held blocks
// and packs dropped by a drop record it holds count; a missing live pack stops the prefix.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import Corestore from 'corestore'
import { ReplicaPrefix } from '../src/net/replica-prefix.js'
import { encodeDropIndex, encodeDropPack, encodeIndexBlock, encodePack } from '../src/cas/pack-codec.js'
import type { Hypercore } from 'hypercore'
import { tempDir } from './helpers.js'

/** A store's two cores, fresh, in a temporary corestore. */
async function withCores(fn: (packs: Hypercore, index: Hypercore) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('bazil-prefix-')
  const store = new Corestore(path.join(dir, 'cs'))
  try {
    const packs = store.get({ name: 'packs' })
    const index = store.get({ name: 'pack-index' })
    await packs.ready()
    await index.ready()
    await fn(packs, index)
  } finally {
    await store.close()
    cleanup()
  }
}

test('the confirmed prefix skips packs a held drop record names and stops at a missing live pack', async () => {
  await withCores(async (packs, index) => {
    // Positions 0..5 are packs; 6 is a "drop record" naming packs 1 and 2 (the test's own marker).
    for (let i = 0; i < 7; i++) {
      await packs.append(Buffer.from(i === 6 ? 'drop' : `pack ${i}`))
      await index.append(Buffer.from(i === 6 ? 'drop 1 2' : `index ${i}`))
    }
    const drops = (block: Buffer): number[] | null => (block.toString().startsWith('drop') ? block.toString().split(' ').slice(1).map(Number) : null)
    assert.equal(await new ReplicaPrefix(drops).length(packs, index), 7, 'everything held')
    await packs.clear(1, 3) // the dropped packs, cleared as a mirror does
    assert.equal(packs.contiguousLength, 1)
    assert.equal(await new ReplicaPrefix(drops).length(packs, index), 7, 'dropped packs count as kept')
    assert.equal(await new ReplicaPrefix(() => null).length(packs, index), 1, 'without the drop record they do not')
    const p = new ReplicaPrefix(drops)
    assert.equal(await p.length(packs, index), 7)
    await packs.clear(4, 5) // a live pack missing
    assert.equal(await p.length(packs, index), 4)
    await index.clear(0, 1) // an index block missing: nothing past it counts
    assert.equal(await new ReplicaPrefix(drops).length(packs, index), 0)
  })
})

test('drop records of the store format (spec/gc.md section 4) are read from the replica\'s pack-index', async () => {
  await withCores(async (packs, index) => {
    const object = (n: number): Buffer => Buffer.concat([Buffer.from([1]), Buffer.alloc(32, n), Buffer.alloc(40, n)])
    for (let i = 0; i < 4; i++) {
      const { pack, entries } = encodePack([object(i)])
      await packs.append(pack)
      await index.append(encodeIndexBlock(i, entries))
    }
    await packs.append(encodeDropPack([0, 2]))
    await index.append(encodeDropIndex(4, [0, 2]))
    await packs.clear(0, 1)
    await packs.clear(2, 3)
    assert.equal(await new ReplicaPrefix().length(packs, index), 5)
    await packs.clear(3, 4)
    assert.equal(await new ReplicaPrefix().length(packs, index), 3, 'pack 3 was not dropped')
  })
})
