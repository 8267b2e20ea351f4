// Tree.writeFiles (an import's batch, Volume.writeRefs): the new files of a batch enter the
// index in one edit; the outcome is what writeFile one file after another gives: the same
// records (ids, times, versions), placed in the same shards as shards fill and split, except
// that a batch passes over top-level shards holding changes (spec/tree.md "Bulk creation").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Tree, canonicalDump, nodeIdNear, type ContentRef } from '../src/tree/index.js'

const A = 'aa'.repeat(32)
/** A tree whose clock and random bytes are deterministic, so two trees given the same edits make the same ids. */
function tree(splitAt: number): Tree {
  let r = 0
  let now = 1_700_000_000_000
  const random = (n: number): string => createHash('sha256').update(String(r++)).digest('hex').slice(0, 2 * n)
  return Tree.create(A, { splitAt, random, clock: () => now++, nodeId: (parent, kind) => nodeIdNear(parent, kind, random) })
}
const content = (i: number): ContentRef => ({ hash: createHash('sha256').update(`c${i}`).digest('hex'), size: i })
/** Every node's record, with the shard it went into. */
const records = (t: Tree): string => JSON.stringify(t.exportState().nodes.map((n) => [n.id, n.shard ?? null, n.loc, n.versions, n.mode, n.mtime]).sort())

test('writeFiles gives what writeFile one by one gives: same records, same shards across splits; a new version and a repeated path take the one-file path', () => {
  const one = tree(4)
  const many = tree(4)
  for (const t of [one, many]) {
    t.mkdir('/d')
    t.writeFile('/d/old', content(0))
  }
  const batch: { path: string; content: ContentRef; attrs: { mode?: number; mtime?: number } }[] = Array.from({ length: 40 }, (_, i) => ({ path: `/d/f${i}`, content: content(i + 1), attrs: { mode: 0o600, mtime: 1000 + i } }))
  batch.splice(10, 0, { path: '/d/old', content: content(99), attrs: {} }) // a new version of an existing file
  batch.splice(20, 0, { path: '/d/f3', content: content(98), attrs: {} }) // a path earlier in the batch
  for (const f of batch) one.writeFile(f.path, f.content, f.attrs)
  const { stats, error } = many.writeFiles(batch)
  assert.equal(error, null)
  assert.deepEqual(stats.map((s) => s.path), batch.map((f) => f.path))
  assert.equal(records(many), records(one))
  assert.deepEqual(canonicalDump(many), canonicalDump(one))
  assert.equal(many.lookup('/d/f3')?.content?.hash, content(98).hash)
  assert.ok(new Set(many.exportState().nodes.map((n) => n.shard ?? n.id.slice(0, 2))).size > 3, 'the batch spread over split shards')
  // Flushed and replayed into a third tree: the same.
  const other = Tree.create('bb'.repeat(32))
  other.applyChanges(many.takeChanges())
  assert.deepEqual(canonicalDump(other), canonicalDump(one))
})

test('writeFiles stops at the first file that fails: the files before it are written, their stats returned with the error', () => {
  const t = tree(512)
  t.mkdir('/d')
  const { stats, error } = t.writeFiles([
    { path: '/d/a', content: content(1) },
    { path: '/d/b', content: content(2) },
    { path: '/nodir/c', content: content(3) },
    { path: '/d/e', content: content(4) },
  ])
  assert.equal((error as NodeJS.ErrnoException | null)?.code, 'ENOENT')
  assert.deepEqual(stats.map((s) => s.path), ['/d/a', '/d/b'])
  assert.deepEqual(t.readdir('/d').map((s) => s.name).sort(), ['a', 'b'])
})

test('writeFiles of half a shard or more into one directory passes over a top-level shard that already holds changes: its records go one digit deeper, and every replica reads the same tree', () => {
  const one = tree(64)
  const many = tree(64)
  const other = Tree.create('bb'.repeat(32))
  for (const t of [one, many]) {
    t.mkdir('/d')
    other.applyChanges(t === many ? t.takeChanges() : [])
    t.takeChanges() // the directory's record is in its top-level shard, which now holds a change
  }
  const batch = Array.from({ length: 40 }, (_, i) => ({ path: `/d/f${i}`, content: content(i + 1) }))
  for (const f of batch) one.writeFile(f.path, f.content)
  assert.equal(many.writeFiles(batch).error, null)
  const top = many.lookup('/d')!.id.slice(0, 2)
  const shardsOf = (t: Tree): string[] => t.exportState().nodes.filter((n) => n.kind === 'file').map((n) => n.shard ?? n.id.slice(0, 2))
  assert.ok(shardsOf(one).every((s) => s === top), 'one by one: the top-level shard, which has room')
  assert.ok(shardsOf(many).every((s) => s.length === 3 && s.startsWith(top)), `a batch: one digit deeper (${[...new Set(shardsOf(many))]})`)
  assert.deepEqual(canonicalDump(many), canonicalDump(one))
  other.applyChanges(many.takeChanges())
  assert.deepEqual(canonicalDump(other), canonicalDump(one))
  // A batch under half a shard for the directory keeps to the top-level shard, which has room.
  const few = Array.from({ length: 10 }, (_, i) => ({ path: `/d/g${i}`, content: content(i + 50) }))
  assert.equal(many.writeFiles(few).error, null)
  assert.ok(few.every((f) => { const n = many.exportState().nodes.find((x) => x.id === many.lookup(f.path)!.id)!; return (n.shard ?? n.id.slice(0, 2)) === top }))
})
