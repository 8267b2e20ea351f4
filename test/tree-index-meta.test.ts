// The `meta` shard of a tree opened from its on-disk index stays unloaded until something reads
// it (spec/tree.md "The index on disk", Manifest): a listing or a stat (of the root too) never
// loads it; a snapshot's read or take does. A manifest written before it kept meta's heads and
// the root's attributes loads meta at open, as it did.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { Tree, canonicalDump } from '../src/tree/index.js'
import { commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'
import { editManifest } from './manifest-edit.js'

const ACTOR = 'a1'.repeat(16)
const ref = { hash: 'a'.repeat(64), size: 1 }

/** The manifest as written before meta's heads were kept: the same without `metaHeads` and `root`. */
function stripMetaHeads(file: string): void {
  editManifest(file, (m) => {
    assert.ok(Array.isArray(m.metaHeads) && m.root, 'the manifest keeps meta heads and root attributes')
    delete m.metaHeads
    delete m.root
  })
}

test('meta is loaded only when read: listings and stats (the root\'s too) never load it, snapshots do', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 't.ckpt'), files = path.join(dir, 't')
    const t = Tree.create(ACTOR)
    t.mkdir('/d')
    t.writeFile('/d/f', ref)
    t.setattr('/', { mode: 0o700, mtime: 1_000_000, atime: 2_000_000 })
    t.snapshot('s1')
    t.writeFile('/d/g', ref)
    t.takeChanges()
    const want = { dump: canonicalDump(t), root: t.stat('/'), snaps: t.snapshots(), inS1: t.at('s1').readdir('/d').map((e) => e.name) }
    commitTreeIndex(file, files, t, null)

    const a = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(a.stat('/'), want.root)
    assert.deepEqual(a.readdir('/d').map((e) => e.name), ['f', 'g'])
    assert.equal(a.stat('/d/f').kind, 'file')
    assert.deepEqual(a.heads(), t.heads(), 'heads without loading meta')
    assert.equal(a.shardStats.metaLoads, 0, 'listing, stat and heads leave meta unloaded')
    // A commit with meta unloaded keeps its bytes and heads.
    a.writeFile('/d/h', ref)
    a.takeChanges()
    commitTreeIndex(file, files, a, null)
    assert.equal(a.shardStats.metaLoads, 0)
    a.free()

    const b = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(b.stat('/'), want.root)
    assert.deepEqual(b.snapshots(), want.snaps)
    assert.equal(b.shardStats.metaLoads, 1, 'listing the snapshots loads meta once')
    assert.deepEqual(b.at('s1').readdir('/d').map((e) => e.name), want.inS1)
    b.snapshot('s2')
    b.takeChanges()
    commitTreeIndex(file, files, b, null)
    assert.equal(b.shardStats.metaLoads, 1)
    const heads = b.heads()
    b.free()

    // A snapshot taken first thing after an open (meta loaded by the take).
    const c = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(c.heads(), heads)
    c.snapshot('s3')
    c.takeChanges()
    assert.deepEqual(c.snapshots().map((s) => s.name), ['s1', 's2', 's3'])
    commitTreeIndex(file, files, c, null)
    c.free()

    // A manifest of before: meta loaded at open, the same answers.
    stripMetaHeads(file)
    const d = openTreeIndex(file, files, ACTOR).tree
    assert.equal(d.shardStats.metaLoads, 1)
    assert.deepEqual(d.stat('/'), want.root)
    assert.deepEqual(d.snapshots().map((s) => s.name), ['s1', 's2', 's3'])
    assert.deepEqual(d.at('s1').readdir('/d').map((e) => e.name), want.inS1)
    d.free()
  } finally {
    cleanup()
  }
})
