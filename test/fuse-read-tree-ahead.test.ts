// The mount's request-ahead for a directory's files read one after another (tree-ahead.ts):
// which files are asked for, given the opens (no network here: the requests are recorded).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TreeAhead, TREE_AHEAD_FILES, type ListedEntry } from '../src/mount/tree-ahead.js'
import type { FileRef } from '../src/cas/index.js'

function ref(i: number): FileRef {
  const hash = Buffer.alloc(32)
  hash.writeUInt32BE(i)
  return { hash, size: 100 + i }
}

/** /d with `n` files f0..f(n-1) (every tenth an empty file: nothing to fetch), and /e with two. */
function world(n: number): { ahead: TreeAhead; asked: number[][]; listed: string[] } {
  const dirs: Record<string, ListedEntry[]> = {
    '/d': Array.from({ length: n }, (_, i) => ({ name: `f${i}`, ref: i % 10 === 9 ? null : ref(i) })),
    '/e': [{ name: 'a', ref: ref(1000) }, { name: 'b', ref: ref(1001) }],
  }
  const asked: number[][] = []
  const listed: string[] = []
  const ahead = new TreeAhead(
    (dir) => {
      listed.push(dir)
      const l = dirs[dir]
      if (!l) throw new Error(`no directory ${dir}`)
      return l
    },
    (refs) => asked.push(refs.map((r) => r.hash.readUInt32BE(0))),
    () => true
  )
  return { ahead, asked, listed }
}

test('files opened in listing order: the next ones are requested ahead, in batches, never twice', () => {
  const { ahead, asked, listed } = world(1000)
  ahead.opened('/d/f0')
  assert.deepEqual(asked, [], 'one open is not a walk')
  ahead.opened('/d/f1')
  assert.equal(asked.length, 1)
  assert.deepEqual(asked[0], Array.from({ length: TREE_AHEAD_FILES }, (_, i) => i + 2).filter((i) => i % 10 !== 9), 'the next files, empty ones left out')
  for (let i = 2; i < TREE_AHEAD_FILES / 2; i++) ahead.opened(`/d/f${i}`)
  assert.equal(asked.length, 1, 'nothing more while half the batch is ahead of the reader')
  for (let i = TREE_AHEAD_FILES / 2; i < 1000; i++) ahead.opened(`/d/f${i}`)
  const all = asked.flat()
  assert.equal(new Set(all).size, all.length, 'no file requested twice')
  assert.deepEqual([...all].sort((a, b) => a - b), Array.from({ length: 998 }, (_, i) => i + 2).filter((i) => i % 10 !== 9), 'every file after the first two, once')
  assert.deepEqual(listed, ['/d'], 'the directory is listed once')
})

test('opens out of listing order, or in another directory, request nothing until a new run', () => {
  const { ahead, asked } = world(100)
  for (const f of ['f50', 'f10', 'f70', 'f3']) ahead.opened(`/d/${f}`)
  assert.deepEqual(asked, [], 'random opens are not a walk')
  ahead.opened('/e/a')
  ahead.opened('/d/f5')
  assert.deepEqual(asked, [])
  ahead.opened('/d/f6')
  assert.equal(asked.length, 1, 'two in order in one directory start a walk')
  assert.equal(asked[0]![0], 7)
  ahead.opened('/nowhere/x')
  ahead.opened('/d/missing')
  assert.equal(asked.length, 1, 'an unknown directory or name requests nothing')
})
