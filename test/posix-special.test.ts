// Special files (issue 13): fifos, unix sockets and devices as nodes of their own kinds,
// replicated as metadata (kind, mode, owners, times, a device's number), through the tree
// (a second writer, a fresh replica, the index rows) and a real mount driven by mkfifo, mknod,
// a unix socket bound and used in the mount, and tar x/c of an archive holding them.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Tree } from '../src/tree/index.js'
import { row, unrow, ActorTable } from '../src/tree/checkpoint.js'
import { decodeCreation } from '../src/tree/model.js'
import { mknodKind } from '../src/mount/special.js'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'
import { tempDir } from './helpers.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const ref = { hash: '11'.repeat(32), size: 3 }
const dev = (major: number, minor: number): number => (major << 8) | minor

test('fifos, sockets and devices are nodes of their own kinds, replicated with their device numbers', () => {
  const a = Tree.create(A, { clock: () => 1000 })
  const b = Tree.create(B, { clock: () => 1000 })
  try {
    a.mkdir('/d')
    a.mknod('/d/pipe', 'fifo', 0, { mode: 0o600 })
    a.mknod('/d/sock', 'socket', 0, { mode: 0o755, uid: 33, gid: 33 })
    a.mknod('/d/null', 'chardev', dev(1, 3), { mode: 0o666 })
    a.mknod('/d/sda', 'blockdev', dev(8, 0), { mode: 0o660, gid: 6 })
    const changes = a.takeChanges()
    b.applyChanges(changes)
    const c = Tree.create('cc'.repeat(16))
    try {
      c.applyChanges(changes)
      for (const t of [a, b, c]) {
        const got = t.readdir('/d').map((s) => [s.name, s.kind, s.mode, s.rdev ?? null, s.size, s.uid, s.gid])
        assert.deepEqual(got, [
          ['null', 'chardev', 0o666, dev(1, 3), 0, -1, -1],
          ['pipe', 'fifo', 0o600, null, 0, -1, -1],
          ['sda', 'blockdev', 0o660, dev(8, 0), 0, -1, 6],
          ['sock', 'socket', 0o755, null, 0, 33, 33],
        ])
      }
    } finally {
      c.free()
    }
    // They are names like any other: renamed, chmod'ed, removed; never written to.
    b.rename('/d/pipe', '/d/pipe2')
    b.setattr('/d/pipe2', { mode: 0o644 })
    b.unlink('/d/sock')
    assert.throws(() => b.writeFile('/d/null', ref), /EINVAL.*chardev/)
    assert.throws(() => b.mknod('/d/null', 'fifo', 0), /EEXIST/)
    assert.throws(() => b.mknod('/d/x', 'door' as never, 0), /EINVAL/)
    assert.throws(() => b.mknod('/d/x', 'chardev', -1), /EINVAL/)
    a.applyChanges(b.takeChanges())
    assert.deepEqual(a.readdir('/d').map((s) => [s.name, s.kind, s.mode]), [['null', 'chardev', 0o666], ['pipe2', 'fifo', 0o644], ['sda', 'blockdev', 0o660]])
    // The derived state (checkpoints, a joiner's start) keeps them.
    const r = Tree.restore('dd'.repeat(16), a.exportState())
    try {
      assert.deepEqual(r.stat('/d/sda').rdev, dev(8, 0))
      assert.equal(r.stat('/d/pipe2').kind, 'fifo')
    } finally {
      r.free()
    }
  } finally {
    a.free()
    b.free()
  }
})

test('records and rows: the new kinds and rdev decode; an unknown kind does not', () => {
  const loc = ['0'.repeat(32), 'n']
  assert.equal(decodeCreation(JSON.stringify([2, 'chardev', A, 5, { loc, mode: 0o644, mtime: 5, rdev: 259 }])).rdev, 259)
  assert.equal(decodeCreation(JSON.stringify([2, 'fifo', A, 5, { loc, mode: 0o644, mtime: 5 }])).kind, 'fifo')
  assert.throws(() => decodeCreation(JSON.stringify([2, 'door', A, 5, { loc, mode: 0o644, mtime: 5 }])), (e: Error) => /unknown kind/.test(e.message))
  assert.throws(() => decodeCreation(JSON.stringify([2, 'blockdev', A, 5, { loc, mode: 0o644, mtime: 5, rdev: -3 }])), (e: Error) => /bad rdev/.test(e.message))
  const t = Tree.create(A, { clock: () => 42 })
  try {
    t.mknod('/b', 'blockdev', dev(7, 1))
    t.mknod('/p', 'fifo', 0)
    t.takeChanges()
    const actors = new ActorTable()
    for (const n of t.exportState().nodes) {
      const r = row(n, actors)
      assert.deepEqual(unrow(JSON.parse(JSON.stringify(r)), actors.list, 3), n)
    }
  } finally {
    t.free()
  }
  assert.equal(mknodKind('/x', 0o010644), 'fifo')
  assert.equal(mknodKind('/x', 0o140755), 'socket')
  assert.equal(mknodKind('/x', 0o100644), null)
  assert.throws(() => mknodKind('/x', 0o170000), /EINVAL/)
})

const asRoot = process.getuid?.() === 0
describe('special files through a mount', { skip: !haveFuse || !asRoot ? 'needs /dev/fuse and root' : false }, () => {
  let m: MountedVolume
  before(async () => { m = await MountedVolume.open('bazil-posix-special-') })
  after(async () => { await m?.close() })

  test('mkfifo and a pipe through it; mknod of devices; a unix socket bound, connected to and listed', async () => {
    await sh(m.mnt, 'mkfifo -m 600 f && mknod c c 1 3 && mknod b b 8 1')
    assert.equal((await sh(m.mnt, 'stat -c "%F %a %t:%T" f c b')).trim(), 'fifo 600 0:0\ncharacter special file 644 1:3\nblock special file 644 8:1')
    // A fifo works as a pipe on this machine: a writer and a reader meet in it.
    assert.equal((await sh(m.mnt, '(echo through-the-fifo > f &) ; cat f')).trim(), 'through-the-fifo')
    // bind(2) makes a socket node in the mount; connect finds the listener through it.
    const py = `
import socket, os
s = socket.socket(socket.AF_UNIX); s.bind('sock'); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect('sock'); c.sendall(b'ping')
a, _ = s.accept(); print(a.recv(4).decode()); print(os.stat('sock').st_mode >> 12)
`
    assert.deepEqual((await sh(m.mnt, `python3 - <<'PY'\n${py}\nPY`)).trim().split('\n'), ['ping', String(0o140000 >> 12)])
    assert.equal(m.vol.tree.stat('/sock').kind, 'socket')
    await sh(m.mnt, 'rm sock f && mv b b2')
    assert.deepEqual(m.vol.tree.readdir('/').map((s) => `${s.name}:${s.kind}`), ['b2:blockdev', 'c:chardev'])
    await m.reopen()
    assert.equal((await sh(m.mnt, 'stat -c "%F %t:%T" c b2')).trim(), 'character special file 1:3\nblock special file 8:1')
  })

  test('tar x of an archive with fifos and devices, and tar c gives the same archive listing back', async () => {
    const src = tempDir('bazil-special-tar-')
    try {
      await sh(src.dir, 'mkdir t && mkfifo t/fifo && mknod t/zero c 1 5 && mknod t/loop b 7 0 && echo x > t/file && chown 5:6 t/fifo && tar --numeric-owner -cf in.tar t')
      await sh(m.mnt, `mkdir x && cd x && tar --numeric-owner -xpf ${src.dir}/in.tar && tar --numeric-owner -cf ${src.dir}/out.tar t`)
      const list = (f: string) => sh(src.dir, `tar --numeric-owner -tvf ${f} | awk '{print $1, $2, $3, $4, $(NF)}' | sort`)
      assert.equal(await list('out.tar'), await list('in.tar'))
      assert.match(await list('out.tar'), /^prw-r--r-- 5\/6 0 .* t\/fifo$/m)
    } finally {
      src.cleanup()
    }
  })
})
