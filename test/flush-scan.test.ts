// A flush appends no control entry, so it advances the control scan past what it appends
// (4c1fe37): the first open after an import must not read every block of it back looking
// for control entries, nor rewrite the checkpoint because that scan moved. A control entry
// appended between flushes is still found and kept across the reopen.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { checkpointPath } from '../src/volume/checkpoint-file.js'
import { tempDir } from './helpers.js'

test('the first open after an import scans none of its entries and leaves the checkpoint as it was', async () => {
  const { dir, cleanup } = tempDir('bazil-scan-')
  try {
    const src = path.join(dir, 'src')
    for (let d = 0; d < 4; d++) {
      fs.mkdirSync(path.join(src, `d${d}`), { recursive: true })
      for (let f = 0; f < 70; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}`)
    }
    const root = path.join(dir, 'data')
    let node = await Node.open(DataDir.create(root))
    let vol = await node.createVolume('v', 'default')
    // A control entry between the import's flushes: the scan reads it, the flushes after it skip themselves.
    const other = crypto.randomBytes(32)
    await importDir(vol, path.join(src, 'd0'), '/a', undefined, { flushOps: 16 })
    const beforeControl = vol.log.length
    assert.equal(await vol.admitNode(other), true)
    assert.equal(vol.log.length, beforeControl + 1, 'one control entry appended')
    await importDir(vol, src, '/b', undefined, { flushOps: 16 })
    const entries = vol.log.length
    assert.ok(entries >= beforeControl + 5, `the import after the control entry flushed several times (${entries - beforeControl - 1} entries)`)
    const file = checkpointPath(root, vol.record.id)
    await node.close()
    const written = fs.readFileSync(file)

    node = await Node.open(DataDir.open(root))
    vol = await node.volume('v')
    assert.equal(vol.opened.fromCheckpoint, true)
    assert.equal(vol.opened.replayedEntries, 0)
    assert.equal(vol.tree.lookup('/b/d3/f69')?.size, 'file 3/69'.length)
    // The control entry is still known: allowing the node again records nothing.
    assert.equal(await vol.admitNode(other), true)
    assert.equal(vol.log.length, entries, 'admit-node was found in the log, not written again')
    await node.close()
    // Nothing was scanned at the open (nor applied, nor edited): the close did not rewrite the checkpoint.
    assert.ok(fs.readFileSync(file).equals(written), 'checkpoint rewritten by an open that found nothing new')
  } finally {
    cleanup()
  }
})
