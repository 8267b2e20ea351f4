// Extended attributes in the tree (spec/tree.md "Extended attributes"): keys `x.NAME` of a
// record (bytes), the index's flag, the limits and errnos of setxattr, replication, concurrent
// sets (one winner on every replica), checkpoints and snapshots.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as A from '@automerge/automerge'

process.env.BAZIL_TREE_CHECK_PATCHED = '1'
const { Tree, TreeError, encodeTreeState, decodeTreeState, entryGroups, CHANGE_LIMITS } = await import('../src/tree/index.js')
const { XATTR_CREATE, XATTR_REPLACE, MAX_XATTR_VALUE_BYTES } = await import('../src/tree/xattrs.js')
type TreeT = import('../src/tree/index.js').Tree

import { W1, W2, W3, opts, sync } from './tree-replicas.js'

const code = (fn: () => unknown): string => {
  try {
    fn()
  } catch (e) {
    assert.ok(e instanceof TreeError, String(e))
    return e.code
  }
  return 'no error'
}

const text = (b: Buffer | undefined): string | undefined => b?.toString()

test('set, get, list, remove; flags and errnos as Linux gives them', () => {
  const t = Tree.create(W1, opts(1))
  t.writeFile('/f', { hash: 'ab', size: 0 })
  t.mkdir('/d')
  assert.equal(t.xattrs('/f').size, 0)
  t.setxattr('/f', 'user.b', Buffer.from('2'))
  t.setxattr('/f', 'user.a', Buffer.from('1'))
  t.setxattr('/d', 'trusted.t', Buffer.alloc(0))
  assert.deepEqual([...t.xattrs('/f').keys()], ['user.a', 'user.b'])
  assert.equal(text(t.xattrs('/f').get('user.a')), '1')
  assert.equal(t.xattrs('/d').get('trusted.t')?.length, 0)
  assert.equal(code(() => t.setxattr('/f', 'user.a', Buffer.from('x'), XATTR_CREATE)), 'EEXIST')
  assert.equal(code(() => t.setxattr('/f', 'user.c', Buffer.from('x'), XATTR_REPLACE)), 'ENODATA')
  t.setxattr('/f', 'user.a', Buffer.from('one'), XATTR_REPLACE)
  assert.equal(code(() => t.removexattr('/f', 'user.zz')), 'ENODATA')
  assert.equal(code(() => t.setxattr('/f', 'system.posix_acl_access', Buffer.from('x'))), 'EOPNOTSUPP')
  assert.equal(code(() => t.setxattr('/f', 'os2.x', Buffer.from('x'))), 'EOPNOTSUPP')
  assert.equal(code(() => t.setxattr('/f', 'user.' + 'n'.repeat(251), Buffer.from('x'))), 'ERANGE')
  assert.equal(code(() => t.setxattr('/f', 'user.big', Buffer.alloc(MAX_XATTR_VALUE_BYTES + 1))), 'E2BIG')
  // A node holds at most 256 KiB of names and values: the fifth 64 KiB value does not fit.
  for (let i = 0; i < 3; i++) t.setxattr('/d', `user.v${i}`, Buffer.alloc(MAX_XATTR_VALUE_BYTES, i))
  assert.equal(code(() => t.setxattr('/d', 'user.v3', Buffer.alloc(MAX_XATTR_VALUE_BYTES))), 'ENOSPC')
  assert.equal(code(() => t.xattrs('/nope')), 'ENOENT')
  // Flushed, then read back from the record.
  t.takeChanges()
  assert.equal(text(t.xattrs('/f').get('user.a')), 'one')
  t.removexattr('/f', 'user.a')
  t.removexattr('/f', 'user.b')
  assert.equal(t.xattrs('/f').size, 0)
  t.takeChanges()
  assert.equal(t.xattrs('/f').size, 0)
  // The root's live in the meta shard.
  t.setxattr('/', 'user.r', Buffer.from('root'))
  assert.equal(text(t.xattrs('/').get('user.r')), 'root')
  t.removexattr('/', 'user.r')
  assert.equal(t.xattrs('/').size, 0)
})

test('a set changes ctime, not mtime; one set on a new file adds one key beside c', () => {
  const t = Tree.create(W1, opts(1))
  const st = t.writeFile('/f', { hash: 'ab', size: 0 })
  const first = t.takeChanges()
  const after = t.setxattr('/f', 'user.a', Buffer.from('1'))
  assert.equal(after.mtime, st.mtime)
  assert.ok(after.ctime > st.ctime)
  // Created and set in one flush: the creation, then one edit with the value (never folded into c).
  t.writeFile('/g', { hash: 'cd', size: 1 })
  t.setxattr('/g', 'user.a', Buffer.from('v'))
  t.setxattr('/g', 'user.b', Buffer.from('w'))
  const changes = t.takeChanges()
  const keys = changes.flatMap((c) => (A.decodeChange(c.change).ops as { key?: string }[]).map((o) => o.key)).filter((k) => k?.startsWith('x.'))
  assert.deepEqual(keys, ['x.user.a', 'x.user.a', 'x.user.b'])
  const r = Tree.create(W2, opts(2))
  assert.deepEqual(r.apply([...first, ...changes].map((c) => ({ ...c, writer: W1 }))), [])
  assert.deepEqual([...r.xattrs('/g')].map(([k, v]) => [k, v.toString()]), [['user.a', 'v'], ['user.b', 'w']])
})

test('replicated; concurrent sets of one name show one winner on every replica', () => {
  const [a, b, c] = [W1, W2, W3].map((w, i) => Tree.create(w, opts(i + 1)))
  a.writeFile('/f', { hash: 'ab', size: 0 })
  a.setxattr('/f', 'user.k', Buffer.from('a'))
  sync(a, b, c)
  assert.equal(text(b.xattrs('/f').get('user.k')), 'a')
  b.setxattr('/f', 'user.k', Buffer.from('b'))
  c.setxattr('/f', 'user.k', Buffer.from('c'))
  c.setxattr('/f', 'user.only-c', Buffer.from('c'))
  a.removexattr('/f', 'user.k')
  const bc = b.takeChanges().map((x) => ({ ...x, writer: W2 }))
  const cc = c.takeChanges().map((x) => ({ ...x, writer: W3 }))
  const ac = a.takeChanges().map((x) => ({ ...x, writer: W1 }))
  a.apply([...cc, ...bc])
  b.apply([...ac, ...cc])
  c.apply([...bc, ...ac])
  const seen = [a, b, c].map((t) => [...t.xattrs('/f')].map(([k, v]) => `${k}=${v}`).join(','))
  assert.equal(new Set(seen).size, 1, seen.join(' | '))
  // Automerge's winner of the concurrent puts (a delete concurrent with puts loses to them).
  assert.equal(text(a.xattrs('/f').get('user.k')), 'c')
  assert.deepEqual(a.conflictedXattrs('/f'), ['user.k'])
  // Settled by the next set, seen everywhere.
  a.setxattr('/f', 'user.k', Buffer.from('settled'))
  sync(a, b, c)
  assert.deepEqual(b.conflictedXattrs('/f'), [])
  assert.equal(text(c.xattrs('/f').get('user.k')), 'settled')
})

test('the flag survives a checkpoint; values are read from the record', () => {
  const t = Tree.create(W1, opts(1))
  t.writeFile('/f', { hash: 'ab', size: 0 })
  t.writeFile('/g', { hash: 'ab', size: 0 })
  t.setxattr('/f', 'user.a', Buffer.from('1'))
  t.takeChanges()
  const state = decodeTreeState(encodeTreeState(t.exportState(), null)).state
  assert.deepEqual(state.nodes.filter((n) => n.xattrs).map((n) => n.loc.name), ['f'])
  const r = Tree.restore(W1, state, opts(1))
  assert.equal(text(r.xattrs('/f').get('user.a')), '1')
  assert.equal(r.xattrs('/g').size, 0)
})

test('a snapshot shows the attributes as they were', () => {
  const t = Tree.create(W1, opts(1))
  t.writeFile('/f', { hash: 'ab', size: 0 })
  t.setxattr('/f', 'user.a', Buffer.from('then'))
  t.setxattr('/', 'user.r', Buffer.from('root then'))
  t.snapshot('s1')
  t.setxattr('/f', 'user.a', Buffer.from('now'))
  t.removexattr('/', 'user.r')
  assert.equal(text(t.xattrs('/f', 's1').get('user.a')), 'then')
  assert.equal(text(t.xattrs('/', 's1').get('user.r')), 'root then')
  assert.equal(text(t.xattrs('/f').get('user.a')), 'now')
})

test('big values: changes are cut by bytes, so every entry stays inside its limits', () => {
  const t = Tree.create(W1, opts(1))
  for (let i = 0; i < 40; i++) {
    t.writeFile(`/f${i}`, { hash: 'ab', size: 0 })
    t.setxattr(`/f${i}`, 'user.big', Buffer.alloc(MAX_XATTR_VALUE_BYTES, i))
  }
  const changes = t.takeChanges()
  for (const c of changes) assert.ok(c.change.length < CHANGE_LIMITS.entryBytes, `change of ${c.change.length} bytes`)
  const groups = entryGroups(changes)
  assert.ok(groups.length >= 3, `${groups.length} entries`)
  const r = Tree.create(W2, opts(2))
  for (const g of groups) assert.deepEqual(r.apply(g.map((c) => ({ ...c, writer: W1, tag: String(groups.indexOf(g)) }))), [])
  assert.equal(r.xattrs('/f39').get('user.big')?.[0], 39)
})
