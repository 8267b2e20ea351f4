// An import commits the derived index every so many changed entries (Volume.checkpoint at a
// flush between directories) instead of holding the whole import's index in memory until the
// close: the in-memory part stays bounded, and what was committed is the same tree.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { checkpointPath } from '../src/volume/checkpoint-file.js'
import { tempDir } from './helpers.js'

test('an import commits the index as it goes: its in-memory part stays bounded, every file is there after a reopen', async () => {
  const { dir, cleanup } = tempDir('bazil-import-commit-')
  try {
    const src = path.join(dir, 'src')
    const dirs = 8, files = 70
    for (let d = 0; d < dirs; d++) {
      fs.mkdirSync(path.join(src, `d${d}`, 'sub'), { recursive: true })
      for (let f = 0; f < files; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}`)
      fs.writeFileSync(path.join(src, `d${d}`, 'sub', 'deep'), `deep ${d}`)
    }
    const root = path.join(dir, 'data')
    let node = await Node.open(DataDir.create(root))
    let vol = await node.createVolume('v', 'default')
    const commitEntries = 100
    let most = 0
    let committed = false
    const summary = await importDir(vol, src, '/', () => {
      most = Math.max(most, vol.tree.view.changedCount)
      committed ||= vol.tree.view.diskBase !== null
    }, { flushOps: 16, commitEntries })
    assert.equal(summary.files, dirs * (files + 1))
    assert.ok(committed, 'the index was committed during the import')
    assert.ok(fs.existsSync(checkpointPath(root, vol.record.id)))
    // A commit comes at the next directory once the overlay holds commitEntries: at most one directory's files more.
    assert.ok(most <= commitEntries + 2 * (files + 1), `in-memory index entries peaked at ${most}`)
    // What the import's commits and the close wrote is the tree: read back after a reopen, without replay.
    await node.close()
    node = await Node.open(DataDir.open(root))
    vol = await node.volume('v')
    assert.equal(vol.opened.fromCheckpoint, true)
    assert.equal(vol.opened.replayedEntries, 0)
    for (let d = 0; d < dirs; d++) {
      assert.equal(vol.tree.readdir(`/d${d}`).length, files + 1)
      assert.equal(vol.tree.lookup(`/d${d}/f${files - 1}`)?.size, `file ${d}/${files - 1}`.length)
      assert.equal(vol.tree.lookup(`/d${d}/sub/deep`)?.size, `deep ${d}`.length)
    }
    const listing = [...vol.tree.walk('/')].map((s) => `${s.path} ${s.size}`).sort()
    await node.close()
    // The same tree as a replay of the logs gives (the index is a cache of them).
    fs.rmSync(checkpointPath(root, vol.record.id))
    node = await Node.open(DataDir.open(root))
    const replayed = await node.volume('v')
    assert.equal(replayed.opened.fromCheckpoint, false)
    assert.deepEqual([...replayed.tree.walk('/')].map((s) => `${s.path} ${s.size}`).sort(), listing)
    await node.close()
  } finally {
    cleanup()
  }
})
