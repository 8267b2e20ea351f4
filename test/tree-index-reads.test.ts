// Reads of the on-disk index (src/tree/index-store.ts, segment-files.ts): segment files are kept
// open between bucket reads, and a commit that deletes a segment closes it (no descriptor of a
// deleted segment stays open); name lookups answered before give the same answers again, and a
// tree reopened after many commits answers as the tree in memory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Tree, canonicalDump } from '../src/tree/index.js'
import { commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'

const ACTOR = 'a1'.repeat(16)

/** The files of `dir` this process holds open, and whether each still exists. */
function openIn(dir: string): string[] {
  const out: string[] = []
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = fs.readlinkSync(path.join('/proc/self/fd', fd))
    } catch {
      continue
    }
    if (target.startsWith(dir + '/')) out.push(target)
  }
  return out
}

test('segments stay open between reads, a commit closes those it deletes, and lookups answer the same again', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 't.ckpt')
    const files = path.join(dir, 't')
    const tree = Tree.create(ACTOR)
    for (let d = 0; d < 8; d++) {
      tree.mkdir(`/d${d}`)
      for (let f = 0; f < 50; f++) tree.writeFile(`/d${d}/f${f}`, { hash: String(d * 100 + f).padStart(64, '0'), size: f })
    }
    commitTreeIndex(file, files, tree, {})
    let { tree: t } = openTreeIndex(file, files, ACTOR)
    // Every file rewritten, commit after commit: earlier segments become garbage and go.
    for (let round = 1; round <= 6; round++) {
      for (let d = 0; d < 8; d++) assert.equal(t.stat(`/d${d}/f7`).size, 7 + (round - 1) * 1000)
      const held = openIn(files)
      assert.ok(held.length > 0, 'a read keeps its segment open')
      assert.ok(held.every((p) => !p.endsWith(' (deleted)') && fs.existsSync(p)), `open segments all exist: ${held.join(', ')}`)
      for (let d = 0; d < 8; d++) for (let f = 0; f < 50; f++) t.writeFile(`/d${d}/f${f}`, { hash: String(round * 1000 + d * 100 + f).padStart(64, '0'), size: f + round * 1000 })
      commitTreeIndex(file, files, t, { round })
      assert.ok(openIn(files).every((p) => !p.endsWith(' (deleted)') && fs.existsSync(p)), 'no deleted segment stays open after a commit')
      if (round % 2 === 0) t = openTreeIndex(file, files, ACTOR).tree
      assert.equal(t.stat('/d3/f9').size, 9 + round * 1000)
      // The same lookup twice (the second from what the first found).
      assert.deepEqual(t.stat('/d5/f11'), t.stat('/d5/f11'))
      assert.throws(() => t.stat('/d5/nope'), /ENOENT/)
      assert.throws(() => t.stat('/d5/nope'), /ENOENT/)
    }
    assert.ok(fs.readdirSync(files).length < 7, 'old segments were deleted')
    const reopened = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(canonicalDump(reopened), canonicalDump(t))
  } finally {
    cleanup()
  }
})
