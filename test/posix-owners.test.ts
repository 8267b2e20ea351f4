// Owners (issue 13): uid/gid per node, stored as numeric ids with MOUNTER for "the mounting
// user"; chown through the tree (replicated, concurrent chowns converging), the index rows, and
// a real mount with --allow-other where the kernel enforces the modes for a second user, root's
// chown and chgrp work, new nodes belong to their creator and tar x as root keeps owners.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { MOUNTER, Tree } from '../src/tree/index.js'
import { row, unrow, ActorTable } from '../src/tree/checkpoint.js'
import { decodeCreation } from '../src/tree/model.js'
import { Owners } from '../src/mount/owners.js'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'
import { tempDir } from './helpers.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const ref = { hash: '11'.repeat(32), size: 3 }
const owners = (t: Tree, p: string): [number, number] => ((s) => [s.uid, s.gid])(t.stat(p))

test('owners are stored per node, replicated, and concurrent chowns converge on one winner', () => {
  let clock = 1_000
  const a = Tree.create(A, { clock: () => clock })
  const b = Tree.create(B, { clock: () => clock })
  try {
    a.mkdir('/d', { uid: 1000, gid: 100 })
    a.writeFile('/d/f', ref, { uid: 1000, gid: 100 })
    a.symlink('/d/l', 'f', { uid: 7, gid: 8 })
    a.mkdir('/mine')
    // The creation's initial values carry the owners (no extra op); the mounting user is no key.
    assert.deepEqual(owners(a, '/d/f'), [1000, 100])
    assert.deepEqual(owners(a, '/mine'), [MOUNTER, MOUNTER])
    const all: ReturnType<Tree['takeChanges']> = []
    const take = (t: Tree) => {
      const c = t.takeChanges()
      all.push(...c)
      return c
    }
    b.applyChanges(take(a))
    assert.deepEqual([owners(b, '/d'), owners(b, '/d/f'), owners(b, '/d/l'), owners(b, '/mine')], [[1000, 100], [1000, 100], [7, 8], [MOUNTER, MOUNTER]])
    // chown, chgrp alone, and back to the mounting user.
    clock = 2_000
    b.setattr('/d/f', { uid: 0 })
    b.setattr('/mine', { gid: 50 })
    b.setattr('/d', { uid: MOUNTER, gid: MOUNTER })
    assert.equal(b.stat('/d/f').ctime, 2_000, 'a chown is a metadata change')
    a.applyChanges(take(b))
    assert.deepEqual([owners(a, '/d/f'), owners(a, '/mine'), owners(a, '/d')], [[0, 100], [MOUNTER, 50], [MOUNTER, MOUNTER]])
    // Concurrent chowns (the offline merge): both peers end with the same owner, one of the two.
    clock = 3_000
    a.setattr('/d/f', { uid: 11, gid: 12 })
    b.setattr('/d/f', { uid: 21, gid: 22 })
    const ca = take(a)
    const cb = take(b)
    a.applyChanges(cb)
    b.applyChanges(ca)
    assert.deepEqual(owners(a, '/d/f'), owners(b, '/d/f'))
    assert.ok([[11, 12], [21, 22]].some((o) => o[0] === owners(a, '/d/f')[0] && o[1] === owners(a, '/d/f')[1]), `one writer's chown wins whole: ${owners(a, '/d/f')}`)
    // A fresh replica from every change, and one restored from the derived state: the same owners.
    const c = Tree.create('cc'.repeat(16), { clock: () => clock })
    const r = Tree.restore('dd'.repeat(16), a.exportState())
    try {
      c.applyChanges(all)
      for (const t of [c, r]) {
        assert.deepEqual(owners(t, '/d/f'), owners(a, '/d/f'))
        assert.deepEqual([owners(t, '/d/l'), owners(t, '/mine'), owners(t, '/d')], [[7, 8], [MOUNTER, 50], [MOUNTER, MOUNTER]])
      }
    } finally {
      c.free()
      r.free()
    }
    assert.throws(() => a.setattr('/d/f', { uid: -2 }), /bad owner id/)
    assert.throws(() => a.setattr('/d/f', { uid: 2 ** 32 }), /bad owner id/)
    // The root's owner: meta keys root.uid/root.gid, replicated, and back to the mounting user.
    assert.deepEqual(owners(a, '/'), [MOUNTER, MOUNTER])
    clock = 4_000
    a.setattr('/', { uid: 5 })
    a.setattr('/', { gid: 6 })
    assert.deepEqual(owners(a, '/'), [5, 6])
    assert.equal(a.stat('/').ctime, 4_000, 'a chown of the root is a metadata change')
    assert.throws(() => a.setattr('/', { uid: -2 }), /bad owner id/)
    b.applyChanges(take(a))
    assert.deepEqual(owners(b, '/'), [5, 6])
    const r2 = Tree.restore('ee'.repeat(16), b.exportState())
    try {
      assert.deepEqual(owners(r2, '/'), [5, 6])
    } finally {
      r2.free()
    }
    b.setattr('/', { uid: MOUNTER })
    a.applyChanges(take(b))
    assert.deepEqual(owners(a, '/'), [MOUNTER, 6])
  } finally {
    a.free()
    b.free()
  }
})

test('records: owners in the creation and as keys; a record without them is the mounting user\'s; bad values are refused', () => {
  assert.equal(decodeCreation(JSON.stringify([2, 'file', A, 5, { loc: ['0'.repeat(32), 'f'], mode: 0o644, mtime: 5, uid: 1000, gid: 100 }])).uid, 1000)
  assert.equal(decodeCreation(JSON.stringify([2, 'file', A, 5, { loc: ['0'.repeat(32), 'f'], mode: 0o644, mtime: 5 }])).uid, undefined)
  assert.throws(() => decodeCreation(JSON.stringify([2, 'file', A, 5, { loc: ['0'.repeat(32), 'f'], mode: 0o644, mtime: 5, uid: 'root' }])), (e: Error) => /bad uid/.test(e.message))
  assert.throws(() => decodeCreation(JSON.stringify([2, 'file', A, 5, { loc: ['0'.repeat(32), 'f'], mode: 0o644, mtime: 5, gid: 1.5 }])), (e: Error) => /bad gid/.test(e.message))
})

test('index rows carry owners; rows without them read as the mounting user\'s', () => {
  const t = Tree.create(A, { clock: () => 42 })
  try {
    t.writeFile('/f', ref, { uid: 3, gid: 4 })
    t.takeChanges()
    const n = t.exportState().nodes.find((x) => x.loc.name === 'f')!
    const actors = new ActorTable()
    const r = row(n, actors)
    assert.equal(r.length, 11)
    assert.deepEqual(unrow(JSON.parse(JSON.stringify(r)), actors.list, 3), n)
    const plain = { ...n }
    delete plain.uid
    delete plain.gid
    assert.equal(row(plain, actors).length, 9)
    assert.throws(() => unrow([...r.slice(0, 10), { u: -1 }] as never, actors.list, 3), /bad uid/)
  } finally {
    t.free()
  }
})

test('the mount maps its own ids to the mounting user and back; chown -1 leaves an id alone; setgid directories pass their group on', () => {
  const o = new Owners(1000, 1000)
  assert.deepEqual(o.shown({ uid: MOUNTER, gid: 5 }), { uid: 1000, gid: 5 })
  assert.deepEqual(o.chown(1000, 0xffffffff), { uid: MOUNTER })
  assert.deepEqual(o.chown(0xffffffff, 7), { gid: 7 })
  assert.deepEqual(o.ofNew({ uid: 7, gid: 8 }, null, 0o644, false), { uid: 7, gid: 8, mode: 0o644 })
  assert.deepEqual(o.ofNew({ uid: 1000, gid: 1000 }, null, 0o644, false), { uid: MOUNTER, gid: MOUNTER, mode: 0o644 })
  const setgid = { mode: 0o2775, gid: 50 } as Parameters<Owners['ofNew']>[1]
  assert.deepEqual(o.ofNew({ uid: 7, gid: 8 }, setgid, 0o755, true), { uid: 7, gid: 50, mode: 0o2755 })
  assert.deepEqual(o.ofNew({ uid: 7, gid: 8 }, setgid, 0o644, false), { uid: 7, gid: 50, mode: 0o644 })
  assert.deepEqual(o.ofNew(null, null, 0o644, false), { uid: MOUNTER, gid: MOUNTER, mode: 0o644 })
})

const asRoot = process.getuid?.() === 0
describe('owners through a mount with --allow-other', { skip: !haveFuse || !asRoot ? 'needs /dev/fuse and root' : false }, () => {
  let m: MountedVolume
  let withCaller = false
  before(async () => {
    m = await MountedVolume.open('bazil-posix-owners-', { allowOther: true })
    fs.chmodSync(path.dirname(m.mnt), 0o755) // the temp dir: let the second user reach the mount
    withCaller = typeof (m.mount as unknown as { native: { caller?: unknown } }).native.caller === 'function'
    if (!withCaller) console.warn('posix-owners: fuse-native lacks the caller fix (run node scripts/build-fuse-native.mjs): new nodes of a second user not checked')
  })
  after(async () => { await m?.close() })
  const nobody = (script: string): Promise<string> => sh(m.mnt, `setpriv --reuid=65534 --regid=65534 --clear-groups bash -euo pipefail -c ${JSON.stringify(script)}`)
  const fails = async (p: Promise<unknown>, re: RegExp): Promise<void> => { await assert.rejects(p, re) }

  test('a second user gets in, the modes decide what it may do, and what it makes is its own', async () => {
    await sh(m.mnt, 'mkdir pub && chmod 777 pub && echo secret > private && chmod 600 private && echo hi > public && chmod 644 public')
    assert.equal((await nobody('cat public')).trim(), 'hi')
    await fails(nobody('cat private'), /Permission denied/)
    await fails(nobody('echo x > public'), /Permission denied/)
    await fails(nobody('touch newfile'), /Permission denied/) // the root is 755, the mounting user's
    if (withCaller) {
      await nobody('touch pub/mine && mkdir pub/dir && ln -s mine pub/link && echo data > pub/dir/f')
      assert.equal((await sh(m.mnt, 'stat -c "%u:%g" pub/mine pub/dir pub/dir/f pub/link')).trim(), '65534:65534\n65534:65534\n65534:65534\n65534:65534')
      assert.deepEqual(owners(m.vol.tree, '/pub/mine'), [65534, 65534])
      // Not its own: no chown, no chmod of root's file; its own: chmod yes, chown away no.
      await fails(nobody('chown 65534 public'), /Operation not permitted/)
      await fails(nobody('chmod 666 public'), /Operation not permitted/)
      await nobody('chmod 600 pub/mine')
      await fails(nobody('chown 0 pub/mine'), /Operation not permitted/)
    }
    // What root makes is the mounting user's: no key, shown as this machine's mounting user.
    assert.deepEqual(owners(m.vol.tree, '/public'), [MOUNTER, MOUNTER])
    assert.equal((await sh(m.mnt, 'stat -c "%u:%g" public')).trim(), '0:0')
  })

  test('chown and chgrp as root; chown clears setuid and setgid; owners survive a reopen', async () => {
    await sh(m.mnt, 'echo x > f && chown 1234:5678 f && mkdir d && chgrp 77 d && echo y > s && chmod 6755 s && chown 42 s')
    assert.equal((await sh(m.mnt, 'stat -c "%u:%g %a" f d s')).trim(), '1234:5678 644\n0:77 755\n42:0 755')
    await sh(m.mnt, 'chown 0:0 f')
    assert.deepEqual(owners(m.vol.tree, '/f'), [MOUNTER, MOUNTER])
    await sh(m.mnt, 'chown 9:9 f')
    // The mount's root: chown as root works, and is kept.
    await sh(m.mnt, 'chown 31:32 .')
    assert.equal((await sh(m.mnt, 'stat -c "%u:%g" .')).trim(), '31:32')
    assert.deepEqual(owners(m.vol.tree, '/'), [31, 32])
    await m.reopen()
    assert.equal((await sh(m.mnt, 'stat -c "%u:%g" f d s .')).trim(), '9:9\n0:77\n42:0\n31:32')
    await sh(m.mnt, 'chown 0:0 .')
    assert.deepEqual(owners(m.vol.tree, '/'), [MOUNTER, MOUNTER])
  })

  test('tar x as root keeps the archive\'s owners, and tar c gives them back', async () => {
    const src = tempDir('bazil-owners-tar-')
    try {
      await sh(src.dir, 'mkdir t && echo a > t/a && echo b > t/b && mkdir t/sub && ln -s a t/sub/l && chown 1001:1002 t/a && chown -h 7:8 t/sub/l && chown 65534:65534 t/sub && tar --numeric-owner -cf in.tar t')
      await sh(m.mnt, `mkdir x && cd x && tar --numeric-owner -xpf ${src.dir}/in.tar && tar --numeric-owner -cf ${src.dir}/out.tar t`)
      const list = (f: string) => sh(src.dir, `tar --numeric-owner -tvf ${f} | awk '{print $1, $2, $6, $7, $8}' | sort`)
      assert.equal(await list('out.tar'), await list('in.tar'))
      assert.match(await list('out.tar'), /1001\/1002 t\/a/)
    } finally {
      src.cleanup()
    }
  })
})
