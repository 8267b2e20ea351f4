// A reader whose copy of a peer's index is stale: while it was away the owner compacted its
// store (spec/gc.md section 3: live objects moved to new packs, a drop record, the old packs
// cleared). The reader's table still places objects in packs nobody serves any more; reading
// them must catch the index up and fetch them where they are now, not time out.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Cas } from '../src/cas/index.js'
import { randomBytes } from '../src/crypto.js'
import { Scene, exportAll, goOffline, goOnline, until } from './cas-remote-scene.js'

test('objects the owner moved while a reader was away are read from their new packs', { timeout: 300_000 }, async () => {
  const scene = await Scene.start()
  try {
    const sharing = randomBytes(32)
    const files = await scene.fill(sharing, 2, 40)
    await goOnline(scene.origin, scene.bootstrap)
    const reader = await scene.reader('reader', 5_000)
    const cas = new Cas(reader.peer.chunks, sharing)
    // One small file read: the reader's table of the origin's index is loaded.
    await exportAll(reader.remote, cas, files.slice(1, 2))
    await goOffline(reader.peer)

    // The owner moves every object (each pack a victim, everything live) and drops the old packs.
    const before = scene.origin.chunks.packCount
    const moved = await scene.origin.chunks.rewritePacks(Array.from({ length: before }, (_, i) => i), () => true)
    assert.ok(moved.packs >= 2 && moved.movedObjects > 40, `moved ${JSON.stringify(moved)}`)

    await goOnline(reader.peer, scene.bootstrap)
    await until('the reader to see the origin again', () => reader.w.core.peers.length > 0)
    await exportAll(reader.remote, cas, files)
    assert.ok(!reader.lines.some((l) => /timed out/.test(l)), reader.lines.join('\n'))
  } finally {
    await scene.close()
  }
})
