// Compaction of the own pack store (spec/gc.md, "Compaction"): live objects move to new packs,
// a drop record forgets the rest, the old packs are cleared; a crash at any step loses nothing;
// the table file and a rebuild from the index agree; a dropped object put again is stored again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import Corestore from 'corestore'
import { ChunkStore, PACKS_CORE_NAME, PACK_INDEX_CORE_NAME, type StoredObject } from '../src/cas/chunk-store.js'
import { TABLE_FILE_NAME } from '../src/cas/table-file.js'
import { decodeIndexRecord } from '../src/cas/pack-codec.js'

function objects(n: number, size = 20_000): StoredObject[] {
  const out: StoredObject[] = []
  for (let i = 0; i < n; i++) {
    const address = randomBytes(32)
    out.push({ address, block: Buffer.concat([Buffer.from([1]), address, randomBytes(size + (i % 97))]) })
  }
  return out
}

/** n objects of which every `every`-th stays live. */
function fixture(n: number, every: number): { all: StoredObject[]; live: StoredObject[]; liveSet: Set<string>; dead: StoredObject[]; isLive: (a: Buffer) => boolean } {
  const all = objects(n)
  const live = all.filter((_, i) => i % every === 0)
  const liveSet = new Set(live.map((o) => o.address.toString('hex')))
  const dead = all.filter((o) => !liveSet.has(o.address.toString('hex')))
  return { all, live, liveSet, dead, isLive: (a) => liveSet.has(a.toString('hex')) }
}

async function session<T>(dir: string, fn: (chunks: ChunkStore, store: Corestore) => Promise<T>, opts: { close?: boolean } = {}): Promise<T> {
  const store = new Corestore(dir)
  const chunks = await ChunkStore.open(store, { log: () => {} })
  try {
    return await fn(chunks, store)
  } finally {
    if (opts.close !== false) await chunks.close()
    await store.close()
  }
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-gc-store-'))
  try {
    return await fn(path.join(root, 'corestore'))
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

async function assertState(chunks: ChunkStore, live: StoredObject[], dead: StoredObject[], what: string): Promise<void> {
  for (const o of live) assert.deepEqual(await chunks.get(o.address), o.block, `${what}: live object reads`)
  for (const o of dead) assert.equal(await chunks.get(o.address), null, `${what}: dropped object is gone`)
  const stats = await chunks.stats()
  assert.equal(stats.chunks, live.length, `${what}: the table holds the live objects only`)
  assert.equal(stats.bytes, live.reduce((n, o) => n + o.block.length, 0), `${what}: stats().bytes`)
}

/** Packs (0..count-1) held, by position. */
async function held(chunks: ChunkStore): Promise<boolean[]> {
  const out: boolean[] = []
  for (let p = 0; p < chunks.packCount; p++) out.push(await chunks.holdsPack(p))
  return out
}

test('compaction moves live objects to new packs, drops the rest, clears the old packs; reopening from the table file or the index agrees', async () => {
  await withDir(async (dir) => {
    const { all, live, dead, isLive } = fixture(400, 10) // ~8 MB: ~8 packs
    let victims: number[] = []
    await session(dir, async (chunks) => {
      await chunks.put(all)
      await chunks.flush()
      victims = [...Array(chunks.packCount).keys()]
      const r = await chunks.rewritePacks(victims, isLive)
      assert.equal(r.packs, victims.length)
      assert.equal(r.movedObjects, live.length)
      assert.equal(r.droppedObjects, dead.length)
      assert.deepEqual((await held(chunks)).slice(0, victims.length), victims.map(() => false), 'old packs cleared')
      await assertState(chunks, live, dead, 'after compaction')
    })
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.source, 'file')
      await assertState(chunks, live, dead, 'reopened from the table file')
    })
    fs.rmSync(path.join(dir, TABLE_FILE_NAME))
    await session(dir, async (chunks, store) => {
      assert.equal(chunks.load.source, 'index')
      await assertState(chunks, live, dead, 'reopened from the index')
      const index = store.get({ name: PACK_INDEX_CORE_NAME })
      await index.ready()
      const last = decodeIndexRecord((await index.get(index.length - 1))!)
      assert.deepEqual(last, { kind: 'drop', position: index.length - 1, packs: victims })
      await index.close()
      // A dropped object put again is stored again (the dedupe check forgot it).
      await chunks.put([dead[0]!])
      assert.deepEqual(await chunks.get(dead[0]!.address), dead[0]!.block)
    })
  })
})

for (const crashAfter of ['moved', 'record'] as const) {
  test(`a compaction cut by a crash (after ${crashAfter === 'moved' ? 'moving the live objects' : 'the drop record'}) loses nothing, and the next one finishes it`, async () => {
    await withDir(async (dir) => {
      const { all, live, dead, isLive } = fixture(300, 4)
      let victims: number[] = []
      await session(dir, async (chunks) => {
        await chunks.put(all)
        await chunks.flush()
        victims = [...Array(chunks.packCount).keys()]
        await assert.rejects(chunks.rewritePacks(victims, isLive, { crashAfter }), /stopped after/)
      }, { close: false })
      await session(dir, async (chunks) => {
        for (const o of live) assert.deepEqual(await chunks.get(o.address), o.block, 'live objects read after the crash')
        if (crashAfter === 'moved') for (const o of dead) assert.deepEqual(await chunks.get(o.address), o.block, 'nothing dropped before the record')
        else for (const o of dead) assert.equal(await chunks.get(o.address), null, 'the record was written: dropped')
        // The old packs are still held; a second compaction of them clears them.
        assert.equal((await held(chunks)).slice(0, victims.length).every(Boolean), true)
        await chunks.rewritePacks(victims, isLive)
        assert.deepEqual((await held(chunks)).slice(0, victims.length), victims.map(() => false))
        await assertState(chunks, live, dead, 'after the second compaction')
      })
      fs.rmSync(path.join(dir, TABLE_FILE_NAME))
      await session(dir, (chunks) => assertState(chunks, live, dead, 'reopened from the index'))
    })
  })
}

test('a crash between the drop record in `packs` and its index block: open indexes the record from the pack block', async () => {
  await withDir(async (dir) => {
    const all = objects(100)
    await session(dir, async (chunks) => {
      await chunks.put(all)
    })
    // What a crash between the two appends leaves: a drop record in packs, its index block missing.
    const store = new Corestore(dir)
    const packs = store.get({ name: PACKS_CORE_NAME })
    await packs.ready()
    const { encodeDropPack } = await import('../src/cas/pack-codec.js')
    await packs.append(encodeDropPack([0]))
    await packs.close()
    await store.close()
    await session(dir, async (chunks) => {
      assert.equal(chunks.load.recovered, 1)
      const inPack0 = (await chunks.stats()).chunks
      assert.ok(inPack0 < all.length, 'the objects of pack 0 are forgotten')
    })
  })
})

test('puts while a collection runs are kept (the guard), even when deduplicated against a dead object', async () => {
  await withDir(async (dir) => {
    const all = objects(50)
    await session(dir, async (chunks) => {
      await chunks.put(all)
      await chunks.flush()
      chunks.beginGuard()
      await chunks.put([all[3]!]) // a new file reusing dead content: deduplicated, remembered
      const r = await chunks.rewritePacks([...Array(chunks.packCount).keys()], (a) => chunks.wasTouched(a))
      chunks.endGuard()
      assert.equal(r.movedObjects, 1)
      assert.deepEqual(await chunks.get(all[3]!.address), all[3]!.block)
      assert.equal(await chunks.get(all[4]!.address), null)
    })
  })
})

test('a victim pack not held here (evicted once safe elsewhere) is dropped only when nothing live is located in it', async () => {
  await withDir(async (dir) => {
    const all = objects(40) // one pack... or two
    await session(dir, async (chunks, store) => {
      await chunks.put(all)
      await chunks.flush()
      const packs = store.get({ name: PACKS_CORE_NAME })
      await packs.ready()
      await packs.clear(0)
      await packs.close()
      const inPack0 = all.filter((o) => chunks.inTable(o.address)).slice(0, 1)
      const keep = new Set(inPack0.map((o) => o.address.toString('hex')))
      const r1 = await chunks.rewritePacks([0], (a) => keep.has(a.toString('hex')))
      assert.equal(r1.packs, 0, 'a live object is located in it: kept')
      assert.equal(r1.droppedObjects, 0)
      const r2 = await chunks.rewritePacks([0], () => false)
      assert.equal(r2.packs, 1, 'nothing live: dropped')
      assert.ok(r2.droppedObjects > 0)
    })
  })
})

test('a dropped pack whose clear would delete tree nodes peers need stays held, remembered as dropped (table file and index), and is cleared once a neighbour\'s clear allows it', async () => {
  await withDir(async (dir) => {
    const all = objects(400) // ~8 packs
    let records = 0
    await session(dir, async (chunks, store) => {
      await chunks.put(all)
      await chunks.flush()
      assert.ok(chunks.packCount >= 6, `${chunks.packCount} packs`)
      // Pack 3: its left neighbour (2) is held, so clearing it alone would delete pack 2's tree nodes.
      const r = await chunks.rewritePacks([3], () => false)
      assert.equal(r.packs, 1)
      assert.equal(r.left, 1, 'its block stays held')
      assert.equal(await chunks.holdsPack(3), true)
      assert.equal(chunks.isDropped(3), true)
      assert.equal(chunks.isDropped(2), false)
      const index = store.get({ name: PACK_INDEX_CORE_NAME })
      await index.ready()
      records = index.length
      await index.close()
    })
    for (const from of ['file', 'index'] as const) {
      if (from === 'index') fs.rmSync(path.join(dir, TABLE_FILE_NAME))
      await session(dir, async (chunks) => {
        assert.equal(chunks.load.source, from)
        assert.equal(chunks.isDropped(3), true, `remembered as dropped (${from})`)
        assert.deepEqual(await chunks.clearDropped(), { cleared: 0, left: 1 }, 'still not clearable')
        assert.equal(chunks.packCount, records, 'no new drop record')
      })
    }
    await session(dir, async (chunks) => {
      // Pack 2 dropped and cleared (its right neighbour 3 is held): now 3 can go too.
      const r = await chunks.rewritePacks([2], () => false)
      assert.deepEqual([r.packs, r.left], [1, 0])
      assert.deepEqual(await chunks.clearDropped(), { cleared: 1, left: 0 })
      assert.deepEqual([await chunks.holdsPack(2), await chunks.holdsPack(3)], [false, false])
      assert.equal(await chunks.holdsPack(4), true)
    })
  })
})
