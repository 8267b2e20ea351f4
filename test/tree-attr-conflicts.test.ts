// Conflicts of owners and extended attributes (spec/tree.md "Conflicts of owners and
// attributes"): concurrent chowns and setxattrs of one node are listed by Tree.attrConflicts
// with every writer's value and the one every replica shows, and a resolveAttr settles them
// on every replica.
import { test } from 'node:test'
import assert from 'node:assert/strict'

process.env.BAZIL_TREE_CHECK_PATCHED = '1'
const { Tree } = await import('../src/tree/index.js')
type TreeT = import('../src/tree/index.js').Tree

import { W1, W2, W3, h, opts, sync } from './tree-replicas.js'

const show = (t: TreeT) => t.attrConflicts().map((c) => `${c.path} ${c.attribute}: ${c.values.map((v) => `${v.writer.slice(0, 2)}=${Buffer.isBuffer(v.value) ? v.value.toString() : v.value}${v.won ? '*' : ''}`).join(' ')}`)

test('concurrent chowns and setxattrs are listed the same on every replica, then settled', () => {
  const [a, b, c] = [W1, W2, W3].map((w, i) => Tree.create(w, opts(i + 1)))
  a.mkdir('/d')
  a.writeFile('/d/f', { hash: 'ab', size: 0 })
  a.writeFile('/d/g', { hash: 'ab', size: 0 })
  a.setattr('/d/g', { uid: 5 })
  sync(a, b, c)
  assert.deepEqual(a.attrConflicts(), [])
  // Apart: b and c chown /d/f and set user.k; a sets a gid on /d/g only (no conflict).
  b.setattr('/d/f', { uid: 1000, gid: 100 })
  c.setattr('/d/f', { uid: 2000 })
  b.setxattr('/d/f', 'user.k', Buffer.from('from b'))
  c.setxattr('/d/f', 'user.k', Buffer.from('from c'))
  a.setattr('/d/g', { gid: 7 })
  const ac = a.takeChanges().map((x) => ({ ...x, writer: W1 }))
  const bc = b.takeChanges().map((x) => ({ ...x, writer: W2 }))
  const cc = c.takeChanges().map((x) => ({ ...x, writer: W3 }))
  a.apply([...bc, ...cc])
  b.apply([...cc, ...ac])
  c.apply([...ac, ...bc])
  const listed = show(a)
  assert.equal(listed.length, 2, listed.join('\n'))
  assert.equal(listed[0].startsWith('/d/f uid: '), true)
  assert.equal(listed[1].startsWith('/d/f user.k: '), true)
  for (const t of [b, c]) assert.deepEqual(show(t), listed)
  // The listed winner is what every replica shows.
  const uidWinner = a.attrConflicts()[0].values.find((v) => v.won)!
  for (const t of [a, b, c]) assert.equal(t.stat('/d/f').uid, uidWinner.value)
  const kWinner = a.attrConflicts()[1].values.find((v) => v.won)!
  for (const t of [a, b, c]) assert.equal(t.xattrs('/d/f').get('user.k')?.toString(), (kWinner.value as Buffer).toString())
  // A rename keeps the conflict on the node, listed at its new path.
  b.rename('/d/f', '/d/h')
  sync(b, a, c)
  assert.deepEqual(show(a).map((l) => l.split(':')[0]), ['/d/h uid', '/d/h user.k'])
  // c keeps b's owner (the loser or the winner: whichever b's is), a keeps c's attribute value.
  c.resolveAttr('/d/h', 'uid', W2)
  a.resolveAttr('/d/h', 'user.k', W3)
  assert.throws(() => a.resolveAttr('/d/h', 'gid', W2), /gid has no concurrent values/)
  assert.throws(() => a.resolveAttr('/d/h', 'uid', W1), /writer aaaaaaaa set no value of uid/)
  sync(c, a, b)
  sync(a, b, c)
  for (const t of [a, b, c]) {
    assert.deepEqual(t.attrConflicts(), [])
    assert.equal(t.stat('/d/h').uid, 1000)
    assert.equal(t.stat('/d/h').gid, 100)
    assert.equal(t.xattrs('/d/h').get('user.k')?.toString(), 'from c')
  }
})

test('a chown to the mounting user (-1) concurrent with a numeric one is listed', () => {
  const [a, b] = [W1, W2].map((w, i) => Tree.create(w, opts(i + 1)))
  a.writeFile('/f', { hash: 'ab', size: 0 })
  a.setattr('/f', { uid: 9 })
  sync(a, b)
  a.setattr('/f', { uid: -1 })
  b.setattr('/f', { uid: 10 })
  sync(a, b)
  sync(b, a)
  const listed = show(a)
  assert.deepEqual(show(b), listed)
  assert.equal(listed.length, 1)
  assert.match(listed[0], /^\/f uid: (aa=-1\* bb=10|bb=10\* aa=-1)$/)
})

test('the root\'s attributes set concurrently are listed', () => {
  const [a, b] = [W1, W2].map((w, i) => Tree.create(w, opts(i + 1)))
  a.mkdir('/x')
  sync(a, b)
  a.setxattr('/', 'user.tag', Buffer.from('a'))
  b.setxattr('/', 'user.tag', Buffer.from('b'))
  sync(a, b)
  sync(b, a)
  assert.deepEqual(show(a), show(b))
  assert.match(show(a)[0], /^\/ user\.tag: /)
  b.resolveAttr('/', 'user.tag', W1)
  sync(b, a)
  assert.deepEqual(a.attrConflicts(), [])
  assert.equal(a.xattrs('/').get('user.tag')?.toString(), 'a')
})
