// A joiner's tree fills from a state while readers use it (spec/tree.md "Starting from a state",
// issue 12: the mount usable while a first sync runs): Tree.fromSaved hands out the tree before
// its first shard and puts each shard in only once its heads are checked, so a reader sees a
// growing set of checked records and never an unchecked one; a mismatch at a late shard frees
// the tree. Its first index commit may run in slices (commitTreeIndexSliced) and writes what the
// one-piece commit writes (its page buckets encoded on worker threads).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { StateMismatchError, Tree, canonicalDump } from '../src/tree/index.js'
import { commitTreeIndex, commitTreeIndexSliced, openTreeIndex } from '../src/tree/index-store.js'
import { tempDir } from './helpers.js'

const A = 'a1'.repeat(16)
const B = 'b2'.repeat(16)

/** A source tree whose records spread over many shards (small split size), and its saved shards. */
function source(): { tree: Tree; shards: Map<string, { bytes: Uint8Array; heads: string[] }>; meta: { bytes: Uint8Array; heads: string[] } | null } {
  const tree = Tree.create(A, { splitAt: 8 })
  for (let d = 0; d < 12; d++) {
    tree.mkdir(`/d${d}`)
    for (let f = 0; f < 20; f++) tree.writeFile(`/d${d}/f${f}`, { hash: (d * 100 + f + 1).toString(16).padStart(64, '0'), size: f })
  }
  tree.takeChanges()
  const shards = new Map<string, { bytes: Uint8Array; heads: string[] }>()
  for (const [name, heads] of tree.shardHeads()) if (heads.length > 0) shards.set(name, { bytes: tree.shardBytes(name), heads })
  const parts = tree.parts()
  const metaHeads = tree.heads().meta
  return { tree, shards, meta: parts.meta && metaHeads ? { bytes: parts.meta, heads: metaHeads } : null }
}

test('a joiner\'s tree fills shard by shard: readers see only checked records, growing, and at the end the source view', async () => {
  const src = source()
  assert.ok(src.shards.size >= 8, `records spread over ${src.shards.size} shards`)
  let seen: Tree | null = null
  const sizes: number[] = []
  const t = await Tree.fromSaved(B, src.shards, src.meta, [], {}, {
    onTree: (x) => { seen = x },
    sliceMs: 0,
    onShard: async () => {
      // A reader in the middle: every path it lists is one the source has, with the same attributes.
      const now = canonicalDump(seen!)
      const want = new Set(canonicalDump(src.tree))
      for (const line of now) assert.ok(want.has(line) || line.startsWith('/\t'), `not in the source: ${line}`)
      sizes.push(now.length)
      await new Promise((r) => setTimeout(r, 1))
    },
  })
  assert.equal(seen, t, 'the tree handed out first is the one that fills')
  assert.deepEqual(canonicalDump(t), canonicalDump(src.tree))
  assert.equal(sizes.length, src.shards.size, 'a slice per shard')
  assert.ok(sizes[0]! < sizes[sizes.length - 1]! && sizes.every((n, i) => i === 0 || n >= sizes[i - 1]!), `growing: ${sizes.join(' ')}`)
  t.free()
  src.tree.free()
})

test('a shard not at the heads the logs give, late in the fill: StateMismatchError; what readers saw before was the source\'s', async () => {
  const src = source()
  const names = [...src.shards.keys()].sort((a, b) => a.length - b.length || (a < b ? -1 : 1))
  const last = names[names.length - 1]!
  // The last shard's save swapped for another shard's: it loads, but to other heads.
  const other = src.shards.get(names[0]!)!
  const bad = new Map(src.shards)
  bad.set(last, { bytes: other.bytes, heads: src.shards.get(last)!.heads })
  let seen: Tree | null = null
  let calls = 0
  const want = new Set(canonicalDump(src.tree))
  const onShard = (): void => {
    calls++
    for (const line of canonicalDump(seen!)) assert.ok(want.has(line) || line.startsWith('/\t'), `not in the source: ${line}`)
  }
  await assert.rejects(Tree.fromSaved(B, bad, src.meta, [], {}, { onTree: (x) => { seen = x }, sliceMs: 0, onShard }), (e: unknown) => e instanceof StateMismatchError && new RegExp(`shard ${last} is not at the heads`).test(e.message))
  assert.equal(calls, names.length - 1, 'every shard before it was shown')
  src.tree.free()
})

test('the index committed in slices (pages encoded on worker threads) is the one committed at once, byte for byte', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const src = source()
    const one = await Tree.fromSaved(B, src.shards, src.meta, [], {})
    const two = await Tree.fromSaved(B, src.shards, src.meta, [], {})
    const n1 = commitTreeIndex(path.join(dir, 'one.ckpt'), path.join(dir, 'one'), one, { x: 1 })
    // A slice of 0 ms: the event loop runs at every step.
    let turns = 0
    const tick = setInterval(() => { turns++ }, 0)
    const n2 = await commitTreeIndexSliced(path.join(dir, 'two.ckpt'), path.join(dir, 'two'), two, { x: 1 }, 0)
    clearInterval(tick)
    assert.equal(n2, n1)
    assert.ok(turns > 0, 'the event loop ran during the sliced commit')
    // Its page buckets were encoded on worker threads, put in the same order: the same bytes.
    const segs = (d: string): Buffer[] => fs.readdirSync(path.join(dir, d)).sort().map((f) => fs.readFileSync(path.join(dir, d, f)))
    assert.deepEqual(segs('two'), segs('one'), 'the same segment bytes')
    for (const name of ['one', 'two']) {
      const back = openTreeIndex(path.join(dir, `${name}.ckpt`), path.join(dir, name), B)
      assert.deepEqual(back.extra, { x: 1 })
      assert.deepEqual(canonicalDump(back.tree), canonicalDump(src.tree))
      back.tree.free()
    }
    // What the trees read after the commit (their new base) is the same too.
    assert.deepEqual(canonicalDump(two), canonicalDump(one))
    one.free()
    two.free()
    src.tree.free()
  } finally {
    cleanup()
  }
})
