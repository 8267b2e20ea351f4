// A commit of the on-disk index in slices (src/tree/index-store.ts commitTreeIndexSliced) while
// the tree goes on changing between its steps, as a server's does (the mount's edits, replay
// of other writers' entries): the index on disk holds the state of when the commit began, the
// tree in memory loses nothing of what changed meanwhile, and the next commit writes that.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import { IndexFiles, commitTreeIndex, commitTreeIndexSliced, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'
import { randomOp, rng } from './tree-random.js'

const ACTORS = ['a1'.repeat(16), 'b2'.repeat(16), 'c3'.repeat(16)]

const view = (t: Tree) => ({ dump: canonicalDump(t), conflicts: t.conflicts(), audit: t.audit(), size: [...t.view.nodes()].length })

test('a sliced commit writes the tree as it was when it began; what changes between its steps stays for the next commit', async () => {
  const { dir, cleanup } = tempDir()
  try {
    for (const seed of [1, 2, 3, 4]) {
      const r = rng(seed)
      const file = path.join(dir, `t${seed}.ckpt`)
      const files = path.join(dir, `t${seed}`)
      // `t` is committed; `other` is a second writer whose changes reach `t` as replay's would;
      // `ref` gets every change and stays in memory (what `t` must show).
      let t = Tree.create(ACTORS[0])
      const other = Tree.create(ACTORS[1])
      const ref = Tree.create(ACTORS[2])
      const mine: ShardChange[] = []
      const theirs: ShardChange[] = []
      let n = 0
      const step = (): void => {
        if (r() < 0.3) {
          for (let i = 0; i < 3; i++) randomOp(other, r, n++)
          const c = other.takeChanges()
          theirs.push(...c)
          t.applyChanges(c)
          ref.applyChanges(c)
        } else {
          randomOp(t, r, n++)
          const c = t.takeChanges()
          mine.push(...c)
          ref.applyChanges(c)
        }
      }
      // Enough entries that the commit has many steps (pages, id buckets).
      for (let i = 0; i < 400; i++) step()
      commitTreeIndex(file, files, t, { k: 0 })
      let during = 0
      for (let round = 1; round <= 4; round++) {
        for (let i = 0; i < 150; i++) step()
        if (round === 2) {
          t.snapshot(`s${round}`)
          const c = t.takeChanges()
          mine.push(...c)
          ref.applyChanges(c)
        }
        // What the disk must hold once the commit is done: the tree as it is now.
        const atStart = view(t)
        const written = commitTreeIndexSliced(file, files, t, { k: round }, 0, 0)
        // Right after it began (before it reads any entry to write): the commit must still write the entries as they were.
        step()
        during++
        let settled = false
        written.then(() => { settled = true }, () => { settled = true })
        // A few changes, spread over the commit's steps (each of which lets the event loop run).
        for (let k = 0; !settled; k++) {
          await new Promise((resolve) => setImmediate(resolve))
          if (settled || k % 8 !== 0 || k > 400) continue
          step()
          during++
        }
        await written
        assert.ok(t.view.diskBase instanceof IndexFiles)
        // In memory: everything, the changes made while the commit ran included.
        assert.deepEqual(view(t), view(ref), `seed ${seed} round ${round}: the tree after the commit`)
        // On disk: the state the commit began with.
        const back = openTreeIndex(file, files, ACTORS[0])
        assert.deepEqual(back.extra, { k: round })
        assert.deepEqual(view(back.tree), atStart, `seed ${seed} round ${round}: the index on disk`)
        back.tree.free()
        // Now and then the tree is reopened from disk and given what it missed (a restart replays the logs).
        if (round === 3) {
          const re = openTreeIndex(file, files, ACTORS[0]).tree
          re.applyChanges(mine)
          re.applyChanges(theirs)
          assert.deepEqual(view(re), view(ref), `seed ${seed} round ${round}: reopened and replayed`)
          t.free()
          t = re
        }
      }
      // The next commit writes what changed while the last one ran.
      commitTreeIndex(file, files, t, null)
      assert.equal(t.view.changedIds().size, 0)
      const last = openTreeIndex(file, files, ACTORS[0]).tree
      assert.deepEqual(view(last), view(ref), `seed ${seed}: the last commit`)
      assert.deepEqual(canonicalDump(last.at('s2')), canonicalDump(ref.at('s2')), `seed ${seed}: the snapshot`)
      assert.ok(during > 0, 'changes were made between the steps of a commit')
      for (const x of [t, other, ref, last]) x.free()
    }
  } finally {
    cleanup()
  }
})

test('a sliced commit that fails (here: its manifest cannot be put in place) leaves the tree whole, and the next commit writes everything', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const r = rng(7)
    const file = path.join(dir, 'x.ckpt')
    const files = path.join(dir, 'x')
    const t = Tree.create(ACTORS[0])
    for (let i = 0; i < 200; i++) randomOp(t, r, i)
    commitTreeIndex(file, files, t, { k: 0 })
    for (let i = 200; i < 300; i++) randomOp(t, r, i)
    const want = view(t)
    const changed = t.view.changedIds().size
    assert.ok(changed > 0)
    // A directory where the manifest goes: the rename over it fails after the segment is written.
    fs.renameSync(file, `${file}.away`)
    fs.mkdirSync(file)
    fs.writeFileSync(path.join(file, 'x'), '')
    await assert.rejects(commitTreeIndexSliced(file, files, t, { k: 1 }, 0, 0))
    assert.deepEqual(view(t), want)
    assert.equal(t.view.changedIds().size, changed, 'the overlay still holds every change')
    fs.rmSync(file, { recursive: true })
    fs.renameSync(`${file}.away`, file)
    await commitTreeIndexSliced(file, files, t, { k: 2 }, 0, 0)
    assert.equal(t.view.changedIds().size, 0)
    const back = openTreeIndex(file, files, ACTORS[0])
    assert.deepEqual(back.extra, { k: 2 })
    assert.deepEqual(view(back.tree), want)
    back.tree.free()
    t.free()
  } finally {
    cleanup()
  }
})
