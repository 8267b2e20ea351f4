// A mirror of a peer's store (a closet: no sharing key) follows the owner's drop records
// (spec/gc.md section 5): it clears the dropped packs only once it holds the packs the live
// objects moved to, and its disk space comes back. Real corestores, real hypercore replication.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { ChunkStore, PACKS_CORE_NAME, PACK_INDEX_CORE_NAME, type StoredObject } from '../src/cas/chunk-store.js'
import { StoreMirrors } from '../src/net/closet.js'
import { decodeIndexRecord } from '../src/cas/pack-codec.js'
import { PackTable, applyIndexRecord } from '../src/cas/pack-table.js'
import { diskUsage } from '../src/gc.js'
import { tempDir } from './helpers.js'
import { until } from './net-helpers.js'

function objects(n: number): StoredObject[] {
  const out: StoredObject[] = []
  for (let i = 0; i < n; i++) {
    const address = randomBytes(32)
    out.push({ address, block: Buffer.concat([Buffer.from([1]), address, randomBytes(20_000 + (i % 97))]) })
  }
  return out
}

/** Replicates one core between two corestores; returns the function that cuts the link. */
function link(a: Hypercore, b: Hypercore): () => void {
  const s1 = a.replicate(true) as unknown as NodeJS.ReadWriteStream & { destroy(): void }
  const s2 = b.replicate(false) as unknown as NodeJS.ReadWriteStream & { destroy(): void }
  s1.pipe(s2).pipe(s1)
  return () => {
    s1.destroy()
    s2.destroy()
  }
}

async function heldAll(core: Hypercore, length: number): Promise<boolean> {
  if (core.length < length) return false
  for (let i = 0; i < length; i++) if (!(await core.has(i))) return false
  return true
}

test('a mirror clears the packs the owner dropped only after it holds the packs their live objects moved to; its disk space comes back', async () => {
  const { dir, cleanup } = tempDir()
  const originStore = new Corestore(path.join(dir, 'origin'))
  const mirrorStore = new Corestore(path.join(dir, 'mirror', 'corestore'))
  const chunks = await ChunkStore.open(originStore, { log: () => {} })
  const mirrors = new StoreMirrors(mirrorStore, path.join(dir, 'mirror'))
  const cuts: (() => void)[] = []
  try {
    const all = objects(600) // ~12 MB: ~12 packs
    await chunks.put(all)
    await chunks.flush()
    const packs = originStore.get({ name: PACKS_CORE_NAME })
    const index = originStore.get({ name: PACK_INDEX_CORE_NAME })
    await packs.ready()
    await index.ready()
    const node = randomBytes(32)
    await mirrors.mirror({ node, cas: packs.key, index: index.key })
    const m = mirrors.get(node)!
    cuts.push(link(packs, m.cas), link(index, m.index))
    await until('the mirror holds every pack', () => heldAll(m.cas, packs.length), 30_000)
    await until('the mirror holds every index block', () => heldAll(m.index, index.length), 30_000)
    for (const cut of cuts.splice(0)) cut()

    // The owner compacts: every 5th object lives on.
    const victims = [...Array(packs.length).keys()]
    const live = all.filter((_, i) => i % 5 === 0)
    const liveSet = new Set(live.map((o) => o.address.toString('hex')))
    const r = await chunks.rewritePacks(victims, (a) => liveSet.has(a.toString('hex')))
    assert.equal(r.packs, victims.length)
    const droppedBytes = r.droppedBytes

    // Only the index reaches the mirror: it sees the drop record but not the moved objects' packs.
    cuts.push(link(index, m.index))
    await until('the mirror holds the drop record', () => heldAll(m.index, index.length), 30_000)
    assert.equal(await mirrors.followDrops(node), 0, 'nothing cleared without the new packs')
    for (const p of victims) assert.equal(await m.cas.has(p), true, `pack ${p} kept`)

    // The packs arrive: the dropped ones are cleared, the live objects read from the new packs.
    cuts.push(link(packs, m.cas))
    await until('the mirror cleared the dropped packs', async () => (await mirrors.followDrops(node)) === victims.length, 30_000)
    for (const p of victims) assert.equal(await m.cas.has(p), false, `pack ${p} cleared`)
    const table = new PackTable()
    for (let i = 0; i < m.index.length; i++) applyIndexRecord(table, i, decodeIndexRecord((await m.index.get(i, { wait: false }))!))
    assert.equal(table.size, live.length)
    for (const o of live) {
      const loc = table.get(o.address)!
      const pack = await m.cas.get(loc.pack, { wait: false })
      assert.ok(pack, `the new pack ${loc.pack} is held by the mirror`)
      assert.deepEqual(pack.subarray(loc.offset, loc.offset + loc.length), o.block)
    }
    const before = diskUsage(path.join(dir, 'mirror'))
    await mirrors.compactNow()
    const after = diskUsage(path.join(dir, 'mirror'))
    assert.ok(before - after >= droppedBytes * 0.9, `mirror du ${before} -> ${after}, ${droppedBytes} bytes dropped`)
    await packs.close()
    await index.close()
  } finally {
    for (const cut of cuts) cut()
    await mirrors.close()
    await chunks.close()
    await originStore.close()
    await mirrorStore.close()
    cleanup()
  }
})
