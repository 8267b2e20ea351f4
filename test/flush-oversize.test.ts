// A change no op log entry can carry (over the entry's op or byte limit: spec/oplog.md) is
// refused at the flush and its edits rolled back from the view, with one line saying so;
// before, it stayed queued "for the next flush" and every later flush of the volume failed.
// Only the edits that went into it are refused: the rest of the flush is written.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { CHANGE_LIMITS } from '../src/tree/index.js'
import { EditsRefusedError } from '../src/volume/flush.js'
import type { Volume } from '../src/volume/volume.js'
import { tempDir } from './helpers.js'

/** A new node with volume `v` holding /d, flushed; the test runs in it, its data dir is removed after. */
async function inVolume(body: (root: string, node: Node, vol: Volume) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    const node = await Node.open(DataDir.create(root))
    const vol = await node.createVolume('v', 'default')
    vol.mkdir('/d')
    await vol.flush()
    await body(root, node, vol)
  } finally {
    cleanup()
  }
}

test('a change too big for any entry is refused and rolled back with its own edits only; the volume keeps writing', () => inVolume(async (root, node, vol) => {
  await vol.writeFile('/d/f', Buffer.from('x'))
  await vol.flush()
  const length = vol.log.length
  // One change (of meta) with more bytes than an entry takes, between two ordinary edits of other
  // shards. Not at the root: a name made there moves the root's mtime, which lives in meta too
  // (spec/tree.md "Times"), so it would go with the meta change (the next test).
  vol.mkdir('/d/kept')
  vol.mutate((t) => t.setRetentionText('x'.repeat(CHANGE_LIMITS.entryBytes + 1)), () => ({ op: 'retention' }))
  await vol.writeFile('/d/kept/after', Buffer.from('yz'))
  await assert.rejects(vol.flush(), (err: Error) => {
    assert.ok(err instanceof EditsRefusedError, String(err))
    assert.match(err.message, /1 edit \(retention\) not written to the op log and removed from this node's view: a change is too big for one op log entry \(change /)
    assert.equal(err.message.split('\n').length, 1)
    return true
  })
  assert.equal(vol.log.length, length + 1, 'the other edits were appended')
  assert.equal(vol.tree.retentionText(), null, 'rolled back')
  assert.ok(vol.tree.lookup('/d/kept'), 'an edit of another shard is kept')
  assert.equal(vol.tree.lookup('/d/kept/after')?.size, 2)
  assert.deepEqual(vol.refused.at(-1)?.ops.map((o) => o.op), ['retention'])
  // Not wedged: the next edit is written.
  vol.mkdir('/after')
  await vol.flush()
  assert.equal(vol.log.length, length + 2)
  await node.close()
  node = await Node.open(DataDir.open(root))
  vol = await node.volume('v')
  assert.ok(vol.tree.lookup('/after'))
  assert.equal(vol.tree.lookup('/d/kept/after')?.size, 2)
  assert.equal(vol.tree.retentionText(), null)
  await node.close()
}))

test('edits that went into the same change as the oversized one are refused with it; alone, the flush appends nothing', () => inVolume(async (_root, node, vol) => {
  const length = vol.log.length
  // The root's mode lives in meta, like the retention text: the same shard's changes go together.
  vol.setattr('/', { mode: 0o750 })
  vol.mutate((t) => t.setRetentionText('x'.repeat(CHANGE_LIMITS.entryBytes + 1)), () => ({ op: 'retention' }))
  await assert.rejects(vol.flush(), (err: Error) => {
    assert.ok(err instanceof EditsRefusedError, String(err))
    assert.match(err.message, /2 edits \(setattr \/, retention\) not written/)
    return true
  })
  assert.equal(vol.log.length, length, 'nothing appended')
  assert.equal(vol.tree.retentionText(), null)
  assert.notEqual(vol.tree.stat('/').mode & 0o777, 0o750)
  vol.mkdir('/after')
  await vol.flush()
  assert.equal(vol.log.length, length + 1)
  await node.close()
}))
