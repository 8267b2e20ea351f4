// Clearing blocks must leave every block still held servable (src/core-clear.ts): hypercore
// 11.37.1's clear() deletes the Merkle tree nodes of a held LEFT neighbour subtree, after
// which serving one of those blocks destroys the connection ("Expected tree node N from
// storage, got (nil)"), on every reconnect. Found by test/lifecycle-property.test.ts: a peer
// that evicted a pack (cache, own-store eviction, compaction drops) could no longer serve its
// neighbours, so a connected peer could not read content that peer held; and a peer whose copy
// stopped at an older length never upgraded from an owner that cleared the packs around it.
// Real corestores replicating over a stream pair (as hypercore replicates on a connection).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import { clearBlocks } from '../src/core-clear.js'
import { heldBlocks, tempDir } from './helpers.js'

const BLOCKS = 16

/** Replicates two corestores; what destroyed the stream, if anything, is kept. */
function link(a: Corestore, b: Corestore): { errors: string[]; destroy(): void } {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  const errors: string[] = []
  s1.on('error', (err: Error) => errors.push(err.message))
  s2.on('error', (err: Error) => errors.push(err.message))
  s1.pipe(s2).pipe(s1)
  return { errors, destroy: () => { s1.destroy(); s2.destroy() } }
}

/** A reader that reaches only `server` gets every one of `held` from it, and the connection is never destroyed. */
async function assertServes(server: Corestore, reader: Corestore, key: Buffer, held: number[], who: string): Promise<void> {
  const down = link(server, reader)
  try {
    const theirs = reader.get({ key })
    await theirs.ready()
    await theirs.update({ wait: true })
    for (const i of held) {
      const block = await theirs.get(i, { timeout: 10_000 }).catch((err: Error) => assert.fail(`pack ${i}, held by the ${who}: ${err.message} (stream: ${down.errors.join('; ') || 'open'})`))
      assert.equal(block?.toString(), `pack ${i}`)
    }
    assert.deepEqual(down.errors, [], `the ${who} never destroyed the connection`)
  } finally {
    down.destroy()
  }
}

/** An origin store of BLOCKS packs, and a copy of it in `copyStore` holding `blocks` (then the origin goes away). */
async function originAndCopy(origin: Corestore, copyStore: Corestore, blocks: number[]): Promise<{ packs: Hypercore; copy: Hypercore }> {
  const packs = origin.get({ name: 'packs' })
  await packs.ready()
  for (let i = 0; i < BLOCKS; i++) await packs.append(Buffer.from(`pack ${i}`))
  const up = link(origin, copyStore)
  const copy = copyStore.get({ key: packs.key })
  await copy.ready()
  await copy.update({ wait: true })
  await copy.download({ blocks }).done()
  up.destroy()
  return { packs, copy }
}

test('a keeper that clears packs keeps serving the packs it still holds (no tree node of a held block is cleared)', async () => {
  const { dir, cleanup } = tempDir('bazil-core-clear-')
  const origin = new Corestore(path.join(dir, 'origin'))
  const keeper = new Corestore(path.join(dir, 'keeper'))
  const reader = new Corestore(path.join(dir, 'reader'))
  try {
    // The origin's store: 16 packs. The keeper holds all of it, then the origin goes away.
    const { packs, copy } = await originAndCopy(origin, keeper, [...Array(BLOCKS).keys()])

    // The keeper clears odd packs whose left neighbour is held (the case hypercore gets wrong),
    // an even one, and a range starting at an odd pack (a compaction's dropped packs).
    for (const p of [11, 5, 1, 14]) await clearBlocks(copy, p)
    const left = await clearBlocks(copy, 7, 10)
    const held = await heldBlocks(copy)
    assert.ok(held.length < BLOCKS, `the keeper cleared some packs (holds ${held.join(',')})`)
    assert.ok(!held.includes(14), 'an even pack whose right neighbour is held is cleared')
    assert.ok(left <= 1, 'a range loses at most its first block to the rule')

    // A reader that only reaches the keeper gets every pack the keeper still holds.
    await assertServes(keeper, reader, packs.key, held, 'keeper')
  } finally {
    await reader.close()
    await keeper.close()
    await origin.close()
    cleanup()
  }
})

test("an owner that evicts its oldest packs still upgrades a peer whose copy stopped at an older length", async () => {
  const { dir, cleanup } = tempDir('bazil-core-clear-')
  const origin = new Corestore(path.join(dir, 'origin'))
  const reader = new Corestore(path.join(dir, 'reader'))
  try {
    const packs = origin.get({ name: 'packs' })
    await packs.ready()
    for (let i = 0; i < 5; i++) await packs.append(Buffer.from(`pack ${i}`))
    // The reader saw the store at 5 packs, then went away.
    const first = link(origin, reader)
    const theirs = reader.get({ key: packs.key })
    await theirs.ready()
    await theirs.update({ wait: true })
    assert.equal(theirs.length, 5)
    first.destroy()
    // Meanwhile the owner wrote more and evicted its oldest packs, one at a time (own-eviction.ts).
    for (let i = 5; i < 23; i++) await packs.append(Buffer.from(`pack ${i}`))
    for (let p = 0; p < 8; p++) await clearBlocks(packs, p)
    assert.ok(!(await packs.has(5)), 'the oldest packs were cleared')
    const second = link(origin, reader)
    await theirs.update({ wait: true })
    assert.equal(theirs.length, 23, `the reader's copy reaches the owner's length (stream: ${second.errors.join('; ') || 'open'})`)
    const block = await theirs.get(20, { timeout: 10_000 })
    assert.equal(block?.toString(), 'pack 20')
    second.destroy()
  } finally {
    await reader.close()
    await origin.close()
    cleanup()
  }
})

test('a cache\'s copy (sparse) clears what it can without deleting a tree node, and still serves every pack it holds', async () => {
  const { dir, cleanup } = tempDir('bazil-core-clear-')
  const origin = new Corestore(path.join(dir, 'origin'))
  const cache = new Corestore(path.join(dir, 'cache'))
  const reader = new Corestore(path.join(dir, 'reader'))
  try {
    // The cache read some packs (a sparse copy), then the origin went away.
    const { packs, copy } = await originAndCopy(origin, cache, [4, 6, 7, 8, 9, 10, 13])
    // 4 and 10: lone even packs (their right neighbour is not held): they stay.
    assert.equal(await clearBlocks(copy, 4), 1)
    assert.equal(await clearBlocks(copy, 10), 1)
    // 6-7: from an even start whose neighbour is held; 13: odd, its left neighbour not held.
    assert.equal(await clearBlocks(copy, 6, 8), 0)
    assert.equal(await clearBlocks(copy, 13), 0)
    const held = await heldBlocks(copy)
    assert.deepEqual(held, [4, 8, 9, 10])
    await assertServes(cache, reader, packs.key, held, 'cache')
  } finally {
    await reader.close()
    await cache.close()
    await origin.close()
    cleanup()
  }
})
