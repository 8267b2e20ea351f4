// The derived index on disk (src/tree/index-store.ts): a tree read from it gives the same
// answers as one held in memory, across commits and reopenings; a volume migrates an older
// checkpoint to it; a deleted, damaged or unknown index is rebuilt from the logs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { hash } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { Tree, TreeError, canonicalDump, encodeTreeState, type ShardChange } from '../src/tree/index.js'
import { INDEX_VERSION, IndexDamagedError, IndexFiles, commitTreeIndex, openTreeIndex } from '../src/tree/index-store.js'
import { checkpointPath, indexFilesPath } from '../src/volume/checkpoint-file.js'
import { tempDir } from './helpers.js'
import { damageBucket } from './manifest-edit.js'
import { randomOp, rng } from './tree-random.js'

const ACTORS = ['a1'.repeat(16), 'b2'.repeat(16), 'c3'.repeat(16), 'd4'.repeat(16)]

const view = (t: Tree) => ({ dump: canonicalDump(t), conflicts: t.conflicts(), audit: t.audit(), size: [...t.view.nodes()].length })

test('a tree read from its on-disk index answers as the same tree in memory, across commits, merges and reopenings', () => {
  const { dir, cleanup } = tempDir()
  try {
    for (const seed of [1, 2, 3]) {
      const r = rng(seed)
      const file = path.join(dir, `t${seed}.ckpt`)
      const files = path.join(dir, `t${seed}`)
      // Writers 0-2 edit and exchange changes; writer 3 only receives (the reference, in memory).
      let trees = ACTORS.slice(0, 3).map((a) => Tree.create(a))
      const ref = Tree.create(ACTORS[3])
      const log: ShardChange[][] = [[], [], []]
      const seen = [0, 0, 0].map(() => [0, 0, 0])
      let n = 0
      const snaps = new Map<string, string[]>()
      for (let round = 0; round < 30; round++) {
        for (let w = 0; w < 3; w++) {
          for (let i = 0; i < 8; i++) randomOp(trees[w], r, n++)
          log[w].push(...trees[w].takeChanges())
        }
        // Partial exchanges: concurrent moves, names and versions conflict.
        for (let w = 0; w < 3; w++) {
          const from = Math.floor(r() * 3)
          if (from === w) continue
          trees[w].applyChanges(log[from].slice(seen[w][from]))
          seen[w][from] = log[from].length
        }
        // Writer 0's tree goes to disk now and then (after a snapshot: its view is saved too), and is now and then reopened from it.
        if (r() < 0.4) {
          if (r() < 0.5) {
            trees[0].snapshot(`s${round}`)
            log[0].push(...trees[0].takeChanges())
            snaps.set(`s${round}`, canonicalDump(trees[0]))
          }
          commitTreeIndex(file, files, trees[0], { round })
          assert.ok(trees[0].view.diskBase instanceof IndexFiles)
          assert.equal(trees[0].view.changedIds().size, 0)
          if (r() < 0.5) {
            const before = view(trees[0])
            const { tree, extra, legacy } = openTreeIndex(file, files, ACTORS[0])
            assert.deepEqual(extra, { round })
            assert.equal(legacy, false)
            trees[0].free()
            trees[0] = tree
            assert.deepEqual(view(tree), before, `seed ${seed} round ${round}: reopened`)
          }
        }
      }
      // Everyone gets everything: the disk-backed tree shows what the in-memory ones do.
      for (const t of [...trees, ref]) for (let w = 0; w < 3; w++) if (t !== trees[w]) t.applyChanges(log[w])
      const want = view(ref)
      assert.deepEqual(want.audit, [])
      for (const [w, t] of trees.entries()) assert.deepEqual(view(t), want, `seed ${seed}: writer ${w}`)
      commitTreeIndex(file, files, trees[0], null)
      // Every path looked up in a fresh open (no listing first: name lookups in the pages).
      const fresh = openTreeIndex(file, files, ACTORS[0]).tree
      for (const st of ref.walk('/')) assert.deepEqual(fresh.lookup(st.path), ref.lookup(st.path), `seed ${seed}: ${st.path}`)
      fresh.free()
      const back = openTreeIndex(file, files, ACTORS[0]).tree
      assert.deepEqual(view(back), want)
      // Snapshot views read from disk: what the tree showed when each was taken, and what a
      // view built from the shards at its heads shows.
      assert.ok(snaps.size > 0)
      for (const [name, dump] of snaps) {
        assert.deepEqual(canonicalDump(back.at(name)), dump, `seed ${seed}: snapshot ${name}`)
        assert.deepEqual(canonicalDump(ref.at(name)), dump, `seed ${seed}: snapshot ${name} built`)
      }
      assert.equal(back.shardStats.hot, 0, 'snapshot views read from the index load no shard')
      // Only the segments the manifest names stay.
      const named = Object.keys((back.view.diskBase as IndexFiles).manifest.segments).sort()
      assert.deepEqual(fs.readdirSync(files).sort(), named)
      for (const t of [...trees, ref, back]) t.free()
      trees = []
    }
  } finally {
    cleanup()
  }
})

test('a commit writes only the buckets that changed; a read loads only what it needs', () => {
  const { dir, cleanup } = tempDir()
  try {
    const t = Tree.create(ACTORS[0])
    for (let d = 0; d < 20; d++) {
      t.mkdir(`/d${d}`)
      for (let f = 0; f < 50; f++) t.writeFile(`/d${d}/f${f}`, { hash: (d * 100 + f + 1).toString(16).padStart(64, '0'), size: f })
    }
    const file = path.join(dir, 'x.ckpt')
    const files = path.join(dir, 'x')
    const all = commitTreeIndex(file, files, t, null)
    t.writeFile('/d3/f3', { hash: 'ff'.repeat(32), size: 9 })
    const one = commitTreeIndex(file, files, t, null)
    // ~0.2 of everything at this size: the fixed part (meta, manifest) weighs on a 1,000-file tree.
    assert.ok(one < all / 4, `a one-file change wrote ${one} bytes of ${all}`)
    const { tree } = openTreeIndex(file, files, ACTORS[0])
    const base = tree.view.diskBase as IndexFiles
    assert.ok(base.reads <= 1, 'opening reads no bucket but meta')
    const atOpen = base.reads
    assert.equal(tree.readdir('/d7').length, 50)
    assert.ok(base.reads - atOpen <= 4, `ls read ${base.reads - atOpen} buckets`)
    assert.equal(tree.stat('/d3/f3').content!.hash, 'ff'.repeat(32))
    assert.equal(tree.shardStats.hot, 0)
    tree.free()
    t.free()
  } finally {
    cleanup()
  }
})

async function volumeWithFiles(root: string): Promise<{ id: string; dump: string[] }> {
  const node = await Node.open(DataDir.create(root))
  const vol = await node.createVolume('v', 'default')
  for (let d = 0; d < 5; d++) {
    vol.mkdir(`/d${d}`)
    for (let f = 0; f < 40; f++) vol.mutate((t) => t.writeFile(`/d${d}/f${f}`, { hash: (d * 100 + f + 1).toString(16).padStart(64, '0'), size: f }), () => ({ op: 'write' }))
    await vol.flush()
  }
  await vol.rename('/d1/f1', '/d2/moved')
  const dump = canonicalDump(vol.tree)
  const id = vol.record.id
  await node.close()
  return { id, dump }
}

async function reopen(root: string): Promise<{ dump: string[]; fromCheckpoint: boolean; ls: number }> {
  const node = await Node.open(DataDir.open(root))
  try {
    const vol = await node.volume('v')
    return { dump: canonicalDump(vol.tree), fromCheckpoint: vol.opened.fromCheckpoint, ls: vol.tree.readdir('/d2').length }
  } finally {
    await node.close()
  }
}

test('a volume with a checkpoint of the previous version opens from it and writes its index', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    const { id, dump } = await volumeWithFiles(root)
    const file = checkpointPath(root, id)
    // What the previous version left: a whole-file checkpoint (version 2), no index files.
    const { tree, extra } = openTreeIndex(file, indexFilesPath(root, id), 'ee'.repeat(16))
    fs.writeFileSync(file, encodeTreeState(tree.exportState(), extra))
    tree.free()
    fs.rmSync(indexFilesPath(root, id), { recursive: true })
    assert.equal(fs.readFileSync(file)[4], 2)
    const first = await reopen(root)
    assert.deepEqual(first.dump, dump)
    assert.equal(first.fromCheckpoint, true)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION, 'closing wrote the index')
    assert.ok(fs.readdirSync(indexFilesPath(root, id)).length > 0)
    const written = fs.statSync(file).mtimeMs
    const segments = fs.readdirSync(indexFilesPath(root, id))
    const second = await reopen(root)
    assert.deepEqual(second.dump, dump)
    assert.equal(second.fromCheckpoint, true)
    assert.equal(second.ls, 41)
    // A process that only read (a cold `volume ls`) leaves the index as it found it: no commit at close.
    assert.equal(fs.statSync(file).mtimeMs, written, 'the manifest was not rewritten')
    assert.deepEqual(fs.readdirSync(indexFilesPath(root, id)), segments)
    // An index of version 7 (before the id buckets named the entries): a process that only
    // read closes with the index rewritten in the current version, the same tree shown.
    const buf = fs.readFileSync(file)
    const v7 = Buffer.from(buf.subarray(0, buf.length - 32))
    v7[4] = 7
    fs.writeFileSync(file, Buffer.concat([v7, hash(v7)]))
    const third = await reopen(root)
    assert.deepEqual(third.dump, dump)
    assert.equal(third.fromCheckpoint, true)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION, 'closing rewrote the index of version 7')
    assert.notDeepEqual(fs.readdirSync(indexFilesPath(root, id)), segments)
    assert.deepEqual((await reopen(root)).dump, dump)
  } finally {
    cleanup()
  }
})

test('a snapshot taken on a volume is listed from the index on disk after reopening, not rebuilt from the shards', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    await volumeWithFiles(root)
    let node = await Node.open(DataDir.open(root))
    let vol = await node.volume('v')
    const before = canonicalDump(vol.tree)
    await vol.snapshot('s1')
    vol.rename('/d2', '/d2-renamed')
    vol.mutate((t) => t.writeFile('/d0/new', { hash: 'ab'.repeat(32), size: 3 }), () => ({ op: 'write' }))
    await vol.flush()
    assert.deepEqual(canonicalDump(vol.tree.at('s1')), before)
    await node.close()
    node = await Node.open(DataDir.open(root))
    try {
      vol = await node.volume('v')
      assert.equal(vol.opened.fromCheckpoint, true)
      assert.deepEqual(canonicalDump(vol.tree.at('s1')), before)
      assert.equal(vol.tree.at('s1').readdir('/d2').length, 41)
      assert.equal(vol.tree.shardStats.hot, 0, 'no shard loaded to list the snapshot')
      assert.notDeepEqual(canonicalDump(vol.tree), before)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})

test('a deleted, damaged or unknown index is rebuilt from the logs, and nothing is lost', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    const { id, dump } = await volumeWithFiles(root)
    const file = checkpointPath(root, id)
    const files = indexFilesPath(root, id)
    const check = async (what: string): Promise<void> => {
      const r = await reopen(root)
      assert.deepEqual(r.dump, dump, what)
      assert.equal(r.fromCheckpoint, false, `${what}: replayed from the logs`)
      const again = await reopen(root)
      assert.deepEqual(again.dump, dump, `${what}: reopened`)
      assert.equal(again.fromCheckpoint, true, `${what}: the rebuilt index is used`)
    }
    // Bucket files deleted.
    fs.rmSync(files, { recursive: true })
    await check('index files deleted')
    // The manifest deleted.
    fs.rmSync(file)
    await check('manifest deleted')
    // The manifest damaged, or of an unknown version.
    const m = fs.readFileSync(file)
    m[m.length - 40] ^= 1
    fs.writeFileSync(file, m)
    await check('manifest damaged')
    const u = fs.readFileSync(file)
    u[4] = INDEX_VERSION + 1
    fs.writeFileSync(file, u)
    await check('unknown version')
    // A bucket damaged: found when read; the read fails naming the index, the next open rebuilds.
    const opened = openTreeIndex(file, files, 'ee'.repeat(16))
    const pages = Object.values((opened.tree.view.diskBase as IndexFiles).manifest.pages)
    opened.tree.free()
    for (const ref of pages) damageBucket(files, ref)
    const node = await Node.open(DataDir.open(root))
    try {
      const vol = await node.volume('v')
      assert.throws(() => vol.tree.readdir('/d2'), (e: Error) => e instanceof IndexDamagedError && /is damaged .*rebuilt from the logs/.test(e.message))
    } finally {
      await node.close().catch(() => {})
    }
    await check('bucket damaged')
  } finally {
    cleanup()
  }
})
