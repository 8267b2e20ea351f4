// A node shard in the index on disk (src/tree/index-store.ts, spec/tree.md "Checkpoints"): a
// commit appends the changes of a shard since the manifest in place to its save instead of
// saving it whole, while they stay few and small; a reader loads the save and its appended
// changes together, also after a reopening, a merge, a segment compaction; a damaged appended
// bucket is found when the shard loads; a manifest of version 8 (no appended changes) is read.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import * as A from '@automerge/automerge'
import { hash } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { INDEX_VERSION, IndexDamagedError, IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { checkpointPath, indexFilesPath } from '../src/volume/checkpoint-file.js'
import { tempDir } from './helpers.js'
import { damageBucket, editManifest } from './manifest-edit.js'

const ACTORS = ['a1'.repeat(16), 'b2'.repeat(16)]

type Ref = [string, number, number, string]
type Row = [string, string[], Ref, Ref[]?]

function manifest(file: string): { shards: Row[]; segments: Record<string, number> } {
  const buf = fs.readFileSync(file)
  return JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as { shards: Row[]; segments: Record<string, number> }
}

const content = (n: number) => ({ hash: n.toString(16).padStart(64, '0'), size: n })

/** A tree with one directory of `files` files: their records share one shard (spec/tree.md "Shard layout"), the biggest. */
function treeWithDir(actor: string, files: number, changes: ShardChange[] = []): Tree {
  const t = Tree.create(actor)
  t.mkdir('/d')
  // Batches under 256 new files: they go to the directory's top-level shard ("Bulk creation").
  for (let i = 0; i < files; i++) {
    t.writeFile(`/d/f${i}`, content(i + 1))
    if (i % 100 === 99) changes.push(...t.takeChanges())
  }
  changes.push(...t.takeChanges())
  return t
}

/**
 * Runs `body` over a tree of one 300-file directory committed once to a fresh index in a
 * temporary directory (`name`: its biggest shard, the directory's; `changes`: the tree's).
 */
function withIndex(body: (x: { file: string; files: string; t: Tree; name: string; changes: ShardChange[] }) => void): void {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 't.ckpt'), files = path.join(dir, 't')
    const changes: ShardChange[] = []
    const t = treeWithDir(ACTORS[0], 300, changes)
    commitTreeIndex(file, files, t, null)
    body({ file, files, t, name: biggest(file)[0], changes })
  } finally {
    cleanup()
  }
}

/** The row of the shard with the biggest save. */
function biggest(file: string): Row {
  return manifest(file).shards.reduce((a, b) => (b[2][2] > a[2][2] ? b : a))
}

function rowOf(file: string, name: string): Row {
  return manifest(file).shards.find((r) => r[0] === name)!
}

/** The shard as the index on disk holds it (its save and appended changes), loaded: its heads and records. */
function loaded(file: string, files: string, name: string): { heads: string[]; records: unknown } {
  const { tree } = openTreeIndex(file, files, ACTORS[0])
  const row = rowOf(file, name)
  const bytes = (tree.view.diskBase as IndexFiles).shardBytes(name, row[1])
  tree.free()
  const doc = A.load(bytes)
  const out = { heads: [...A.getHeads(doc)].sort(), records: A.toJS(doc) }
  assert.deepEqual(out.heads, [...row[1]].sort(), `shard ${name} loads at its row's heads`)
  return out
}

/** The shard as a tree holds it in memory. */
function inMemory(t: Tree, name: string): { heads: string[]; records: unknown } {
  const doc = A.load(t.shardBytes(name))
  return { heads: [...A.getHeads(doc)].sort(), records: A.toJS(doc) }
}

test('a changed shard is stored as its save plus appended changes, reopens the same, and is saved whole again past the bound', () => {
  withIndex(({ file, files, t: first, name }) => {
    let t = first
    assert.equal(rowOf(file, name).length, 3, 'a first commit saves every shard whole')
    let base = rowOf(file, name)[2]
    const counts: number[] = []
    for (let i = 0; i < 40; i++) {
      t.writeFile(`/d/f${i}`, content(1000 + i))
      t.takeChanges()
      commitTreeIndex(file, files, t, null)
      const row = rowOf(file, name)
      counts.push(row[3]?.length ?? 0)
      if (row[3]) {
        // Appended to the same save, within the bound.
        assert.equal(row[2][3], base[3], `commit ${i}: the save is the first one`)
        assert.ok(row[3].length <= 16)
        assert.ok(row[3].reduce((n, r) => n + r[2], 0) <= row[2][2] / 2)
      } else base = row[2]
      assert.deepEqual(loaded(file, files, name), inMemory(t, name), `commit ${i}`)
      // Now and then the tree continues from the disk (the shard loaded from its save and appended changes).
      if (i % 7 === 3) {
        const want = canonicalDump(t)
        t.free()
        t = openTreeIndex(file, files, ACTORS[0]).tree
        assert.deepEqual(canonicalDump(t), want, `commit ${i}: reopened`)
      }
    }
    assert.deepEqual(counts.slice(0, 3), [1, 2, 3], 'each commit appends one bucket of changes')
    const whole = counts.indexOf(0)
    assert.ok(whole > 0 && whole <= 16, `saved whole again at commit ${whole}: ${counts}`)
    assert.ok(counts.slice(whole + 1).some((n) => n > 0), `appends again after the whole save: ${counts}`)
    // Changes that outgrow half the save: saved whole.
    assert.ok(rowOf(file, name)[3] !== undefined)
    for (let i = 0; i < 300; i++) t.writeFile(`/d/f${i}`, content(20_000 + i))
    t.takeChanges()
    commitTreeIndex(file, files, t, null)
    assert.equal(rowOf(file, name).length, 3, 'a big change is saved whole')
    assert.deepEqual(loaded(file, files, name), inMemory(t, name))
    t.free()
  })
})

test('a reopened tree merges another writer\'s changes into a shard stored with appended changes', () => {
  withIndex(({ file, files, t, name, changes }) => {
    let a = t
    const b = Tree.create(ACTORS[1])
    b.applyChanges(changes)
    for (let round = 0; round < 12; round++) {
      a.writeFile(`/d/f${round}`, content(5000 + round))
      const fromA = a.takeChanges()
      b.writeFile(`/d/f${100 + round}`, content(7000 + round))
      b.rename(`/d/f${200 + round}`, `/d/g${round}`)
      const fromB = b.takeChanges()
      commitTreeIndex(file, files, a, null)
      // a continues from the disk, then merges b's changes into the shard (loaded from its save and appended changes).
      a.free()
      a = openTreeIndex(file, files, ACTORS[0]).tree
      a.applyChanges(fromB)
      b.applyChanges(fromA)
      commitTreeIndex(file, files, a, null)
      assert.deepEqual(loaded(file, files, name), inMemory(a, name), `round ${round}`)
      assert.deepEqual(canonicalDump(a), canonicalDump(b), `round ${round}: a as b`)
    }
    assert.ok(manifest(file).shards.some((r) => r[3] !== undefined), 'some shard has appended changes')
    const back = openTreeIndex(file, files, ACTORS[0]).tree
    assert.deepEqual(canonicalDump(back), canonicalDump(b))
    assert.deepEqual(back.heads(), b.heads())
    back.free()
    a.free()
    b.free()
  })
})

test('a segment compaction copies a shard\'s appended changes with its save: the shard stays readable', () => {
  withIndex(({ file, files, t, name }) => {
    // Where each appended bucket (by digest) was first written; seen elsewhere later: copied.
    const first = new Map<string, string>()
    let copied = 0
    for (let i = 0; i < 12; i++) {
      t.writeFile(`/d/f${i}`, content(3000 + i))
      t.takeChanges()
      commitTreeIndex(file, files, t, null)
      const m = manifest(file)
      const row = m.shards.find((r) => r[0] === name)!
      for (const r of row[3] ?? []) {
        const at = first.get(r[3])
        if (at === undefined) first.set(r[3], r[0])
        else if (at !== r[0]) copied++
        assert.ok(m.segments[r[0]] !== undefined, 'an appended bucket lies in a segment the manifest names')
        assert.ok(fs.existsSync(path.join(files, r[0])))
      }
      assert.deepEqual(loaded(file, files, name), inMemory(t, name), `commit ${i}`)
    }
    assert.ok(copied > 0, 'appended buckets were copied out of segments mostly garbage')
    const back = openTreeIndex(file, files, ACTORS[0]).tree
    assert.deepEqual(canonicalDump(back), canonicalDump(t))
    back.free()
    t.free()
  })
})

test('a manifest of version 8 is read; the next commit writes version 9 with appended changes; a fourth element in a row of 8 is rejected', () => {
  withIndex(({ file, files, t, name }) => {
    const want = canonicalDump(t)
    t.free()
    // What version 8 wrote: the same (its shard rows have three elements).
    const buf = fs.readFileSync(file)
    assert.equal(buf[4], INDEX_VERSION)
    const v8 = Buffer.from(buf.subarray(0, buf.length - 32))
    v8[4] = 8
    fs.writeFileSync(file, Buffer.concat([v8, hash(v8)]))
    const opened = openTreeIndex(file, files, ACTORS[0])
    assert.equal(opened.rewrite, false, 'the buckets of 8 are kept')
    const a = opened.tree
    assert.deepEqual(canonicalDump(a), want)
    a.writeFile('/d/f1', content(9999))
    a.takeChanges()
    commitTreeIndex(file, files, a, null)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION)
    assert.equal(rowOf(file, name)[3]?.length, 1, 'the shard of the 8 manifest got its changes appended')
    assert.deepEqual(loaded(file, files, name), inMemory(a, name))
    const after = canonicalDump(a)
    a.free()
    const back = openTreeIndex(file, files, ACTORS[0]).tree
    assert.deepEqual(canonicalDump(back), after)
    back.free()
    // A row with appended changes in a manifest that says 8: rejected (a reader of 8 would load the save alone).
    const nine = fs.readFileSync(file)
    const as8 = Buffer.from(nine.subarray(0, nine.length - 32))
    as8[4] = 8
    fs.writeFileSync(file, Buffer.concat([as8, hash(as8)]))
    assert.throws(() => openTreeIndex(file, files, ACTORS[0]), /changes of shard|a page ref/)
    // And rows that are not rows.
    fs.writeFileSync(file, nine)
    editManifest(file, (m) => { m.shards = [['x', [], 'nope']] })
    assert.throws(() => openTreeIndex(file, files, ACTORS[0]), /bad index manifest \(shards\)/)
  })
})

test('a damaged appended bucket of a shard is found when the shard loads; the volume then replays from its logs', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    let node = await Node.open(DataDir.create(root))
    const vol = await node.createVolume('v', 'default')
    vol.mkdir('/d')
    for (let i = 0; i < 200; i++) vol.mutate((t) => t.writeFile(`/d/f${i}`, content(i + 1)), () => ({ op: 'write' }))
    await vol.flush()
    await vol.checkpoint()
    const id = vol.record.id
    for (let i = 0; i < 3; i++) {
      vol.mutate((t) => t.writeFile(`/d/f${i}`, content(500 + i)), () => ({ op: 'write' }))
      await vol.flush()
      await vol.checkpoint()
    }
    const dump = canonicalDump(vol.tree)
    await node.close()
    const file = checkpointPath(root, id), files = indexFilesPath(root, id)
    const row = manifest(file).shards.find((r) => r[3] !== undefined)
    assert.ok(row, 'a shard has appended changes')
    damageBucket(files, row[3]![row[3]!.length - 1])
    // The open reads no shard; loading this one (a write into it) finds the damage and names it.
    const { tree } = openTreeIndex(file, files, 'ee'.repeat(16))
    assert.deepEqual(canonicalDump(tree), dump)
    tree.writeFile('/d/f7', content(77))
    assert.throws(() => tree.takeChanges(), (e: Error) => e instanceof IndexDamagedError && new RegExp(`shard ${row[0]}'s appended changes .*rebuilt from the logs`).test(e.message))
    tree.free()
    assert.equal(fs.existsSync(file), false, 'the manifest is removed')
    node = await Node.open(DataDir.open(root))
    try {
      const again = await node.volume('v')
      assert.equal(again.opened.fromCheckpoint, false, 'replayed from the logs')
      assert.deepEqual(canonicalDump(again.tree), dump)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})

test('a shard that lacks the heads of the manifest in place, or is unloaded at other heads, has no changes to append (saved whole)', () => {
  const t = treeWithDir(ACTORS[0], 50)
  const [name, heads] = [...t.shardHeads()].reduce((a, b) => (b[1].length > 0 && a[1].length === 0 ? b : a))
  assert.deepEqual(t.shardSince(name, heads, 1e9)?.length, 0, 'nothing since its own heads')
  assert.equal(t.shardSince(name, ['ab'.repeat(32)], 1e9), null, 'heads it lacks')
  t.writeFile('/d/f1', content(4242))
  t.takeChanges()
  assert.equal(t.shardSince(name, heads, 0), null, 'more than the room')
  assert.ok(t.shardSince(name, heads, 1e9)!.length > 0)
  // Unloaded (saved and freed) at heads other than those asked about: its saved bytes are written whole.
  t.evict()
  assert.equal(t.shardSince(name, heads, 1e9), null)
  assert.equal(t.shardSince(name, t.shardHeads().get(name)!, 1e9)?.length, 0)
  t.free()
})
