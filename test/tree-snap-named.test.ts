// The index manifest names each snapshot with its saved view (spec/tree.md "The index on disk",
// snapshot views): after an open, listing the snapshots and reading one never load `meta`; the
// root's attributes of the snapshot are its own. A manifest without the names (written before
// 2026-12-06) loads `meta` to read a snapshot, and the next commit names them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { hash } from '../src/crypto.js'
import { Tree } from '../src/tree/index.js'
import { TreeError } from '../src/tree/errors.js'
import { INDEX_VERSION, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'
import { editManifest } from './manifest-edit.js'

const ACTOR = 'a1'.repeat(16)
const ref = { hash: 'a'.repeat(64), size: 1 }

const names = (t: { readdir(p: string): { name: string }[] }, p: string): string[] => t.readdir(p).map((e) => e.name)

test('snapshots are listed and read from the names in the manifest, without loading meta', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 't.ckpt'), files = path.join(dir, 't')
    const t = Tree.create(ACTOR)
    t.mkdir('/d')
    t.writeFile('/d/f', ref)
    t.setattr('/', { mode: 0o750, mtime: 1_000_000 })
    t.takeChanges()
    commitTreeIndex(file, files, t, null)
    t.snapshot('s1', 5_000)
    t.takeChanges()
    commitTreeIndex(file, files, t, null) // s1's state: its view is this index
    const root1 = t.at('s1').stat('/')
    t.writeFile('/d/g', ref)
    t.setattr('/', { mode: 0o700, mtime: 2_000_000 })
    t.snapshot('s2', 6_000) // more changes before the commit after it: its view is derived
    t.writeFile('/d/h', ref)
    t.takeChanges()
    const want = { snaps: t.snapshots(), s1: names(t.at('s1'), '/d'), s2: names(t.at('s2'), '/d'), root2: t.at('s2').stat('/'), live: t.stat('/') }
    commitTreeIndex(file, files, t, null)
    t.free()
    assert.deepEqual(want.s1, ['f'])
    assert.deepEqual(want.s2, ['f', 'g'])
    assert.equal(root1.mode & 0o777, 0o750)

    const a = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(a.snapshots(), want.snaps)
    assert.deepEqual(names(a.at('s1'), '/d'), want.s1)
    assert.deepEqual(a.at('s1').stat('/'), root1, "the snapshot's root attributes, not the live root's")
    assert.deepEqual(names(a.at('s2'), '/d'), want.s2)
    assert.deepEqual(a.at('s2').stat('/'), want.root2)
    assert.deepEqual(a.stat('/'), want.live)
    assert.equal(a.shardStats.metaLoads, 0, 'listing and reading snapshots leave meta unloaded')
    // A commit while meta is unread keeps the names; a view held across it is read again.
    const s1 = a.at('s1')
    a.writeFile('/d/i', ref)
    a.takeChanges()
    commitTreeIndex(file, files, a, null)
    assert.deepEqual(names(s1, '/d'), want.s1)
    assert.throws(() => a.at('nope'), (e: unknown) => e instanceof TreeError && e.code === 'ENOENT')
    assert.equal(a.shardStats.metaLoads, 1, 'a name the manifest does not hold is looked up in meta')
    a.free()

    const b = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(names(b.at('s1'), '/d'), want.s1)
    assert.deepEqual(b.snapshots(), want.snaps)
    assert.equal(b.shardStats.metaLoads, 0)
    // A removal: no longer listed nor readable, from the names of the next commit.
    b.removeSnapshot('s1')
    b.takeChanges()
    assert.throws(() => b.at('s1'), (e: unknown) => e instanceof TreeError && e.code === 'ENOENT')
    commitTreeIndex(file, files, b, null)
    b.free()

    const c = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(c.snapshots().map((s) => s.name), ['s2'])
    assert.deepEqual(names(c.at('s2'), '/d'), want.s2)
    assert.equal(c.shardStats.metaLoads, 0)
    c.free()

    // A manifest of before (no names): meta is loaded to read a snapshot; the next commit names them.
    editManifest(file, (m) => {
      assert.ok(Array.isArray(m.named))
      delete m.named
    })
    const d = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(names(d.at('s2'), '/d'), want.s2)
    assert.deepEqual(d.at('s2').stat('/'), want.root2)
    assert.equal(d.shardStats.metaLoads, 1)
    d.writeFile('/d/j', ref)
    d.takeChanges()
    commitTreeIndex(file, files, d, null)
    d.free()
    const e = openTreeIndex(file, files, ACTOR).tree
    assert.deepEqual(e.at('s2').stat('/'), want.root2)
    assert.deepEqual(e.snapshots().map((s) => s.name), ['s2'])
    assert.equal(e.shardStats.metaLoads, 0)
    e.free()

    // Names that do not decode: the manifest is rejected (the caller rebuilds from the logs).
    editManifest(file, (m) => { m.named = [['s2', 'not a key', 1, null]] })
    assert.throws(() => openTreeIndex(file, files, ACTOR), /named snapshots/)
  } finally {
    cleanup()
  }
})

test("a commit appends meta's new changes to its save; a reader loads both; a whole save again once they pile up", () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 't.ckpt'), files = path.join(dir, 't')
    const manifest = (): Record<string, unknown> => {
      const buf = fs.readFileSync(file)
      return JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as Record<string, unknown>
    }
    const t = Tree.create(ACTOR)
    t.mkdir('/d')
    for (let i = 0; i < 50; i++) t.writeFile(`/d/f${i}`, ref)
    // A `meta` big enough that a few small changes stay under half its save.
    for (let i = 0; i < 40; i++) t.snapshot(`base${i}`, 1_000 + i)
    t.takeChanges()
    commitTreeIndex(file, files, t, null)
    const base = manifest().meta as unknown[]
    assert.equal(manifest().metaMore, undefined)
    // A manifest of version 6 (no appended changes) is read as it is.
    const buf = fs.readFileSync(file)
    assert.equal(buf[4], INDEX_VERSION)
    const v6 = Buffer.from(buf.subarray(0, buf.length - 32))
    v6[4] = 6
    fs.writeFileSync(file, Buffer.concat([v6, hash(v6)]))
    const old = openTreeIndex(file, files, ACTOR).tree
    assert.equal(old.snapshots().length, 40)
    old.free()
    let tree = t
    const seen: number[] = []
    for (let i = 0; i < 20; i++) {
      tree.snapshot(`s${i}`, 10_000 + i)
      tree.takeChanges()
      commitTreeIndex(file, files, tree, null)
      const m = manifest()
      seen.push((m.metaMore as unknown[] | undefined)?.length ?? 0)
      if (i < 3) assert.deepEqual(m.meta, base, 'the save stays; the changes are appended')
      tree.free()
      tree = openTreeIndex(file, files, ACTOR).tree
      assert.deepEqual(tree.snapshots().map((s) => s.name).filter((n) => n.startsWith('s')), Array.from({ length: i + 1 }, (_, k) => `s${k}`))
      assert.deepEqual(tree.heads().meta, JSON.parse(JSON.stringify(m.metaHeads)))
    }
    assert.deepEqual(seen.slice(0, 3), [1, 2, 3])
    assert.ok(seen.some((n, k) => k > 0 && n < seen[k - 1]!), `a whole save again (${seen.join(',')})`)
    // Unchanged `meta` (a listing read it): nothing of it written again.
    const before = manifest()
    tree.writeFile('/d/x', ref)
    tree.takeChanges()
    commitTreeIndex(file, files, tree, null)
    assert.deepEqual([manifest().meta, manifest().metaMore], [before.meta, before.metaMore])
    tree.free()
  } finally {
    cleanup()
  }
})
