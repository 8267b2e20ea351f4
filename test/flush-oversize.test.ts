// A change no op log entry can carry (over the entry's op or byte limit: spec/oplog.md) is
// refused at the flush and its edits rolled back from the view, with one line saying so;
// before, it stayed queued "for the next flush" and every later flush of the volume failed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { CHANGE_LIMITS } from '../src/tree/index.js'
import { EditsRefusedError } from '../src/volume/flush.js'
import { tempDir } from './helpers.js'

test('a change too big for any entry is refused and rolled back; the volume keeps writing', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    let node = await Node.open(DataDir.create(root))
    let vol = await node.createVolume('v', 'default')
    vol.mkdir('/d')
    await vol.writeFile('/d/f', Buffer.from('x'))
    await vol.flush()
    const length = vol.log.length
    // One change (of meta) with more bytes than an entry takes, beside an ordinary edit.
    vol.mkdir('/lost')
    vol.mutate((t) => t.setRetentionText('x'.repeat(CHANGE_LIMITS.entryBytes + 1)), () => ({ op: 'retention' }))
    await assert.rejects(vol.flush(), (err: Error) => {
      assert.ok(err instanceof EditsRefusedError, String(err))
      assert.match(err.message, /2 edits \(mkdir \/lost, retention\) not written to the op log and removed from this node's view: a change is too big for one op log entry \(change /)
      assert.equal(err.message.split('\n').length, 1)
      return true
    })
    assert.equal(vol.log.length, length, 'nothing appended')
    assert.equal(vol.tree.lookup('/lost'), null, 'rolled back')
    assert.equal(vol.tree.retentionText(), null, 'rolled back')
    // Not wedged: the next edit is written.
    vol.mkdir('/after')
    await vol.flush()
    assert.equal(vol.log.length, length + 1)
    await node.close()
    node = await Node.open(DataDir.open(root))
    vol = await node.volume('v')
    assert.ok(vol.tree.lookup('/after'))
    assert.equal(vol.tree.lookup('/lost'), null)
    assert.equal(vol.tree.retentionText(), null)
    await node.close()
  } finally {
    cleanup()
  }
})
