// Extended attributes through a real mount (issue 13; spec/fuse.md "Extended attributes"):
// the syscalls' errnos and buffer sizes (driven from python3's os and ctypes), kept across a
// reopen, snapshots read-only, and `tar --xattrs`, `cp -a`, `rsync -X` round trips into and out
// of the mount.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'
import { tempDir } from './helpers.js'

/** Runs a python3 script in `dir` (the syscalls themselves, with their errnos). */
function py(dir: string, script: string): Promise<string> {
  return sh(dir, `python3 - <<'PYEOF'\nimport os, errno, ctypes\n${script}\nPYEOF`)
}

/** `name=value` lines of every user./trusted. attribute under `root` (relative paths, sorted), read with python3. */
async function dumpXattrs(root: string): Promise<string> {
  return py(root, `
out = []
for d, dirs, files in os.walk('.'):
    dirs[:] = [x for x in dirs if x != '.snap']
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        for k in sorted(os.listxattr(p, follow_symlinks=False)):
            out.append('%s %s=%s' % (p, k, os.getxattr(p, k, follow_symlinks=False).hex()))
print('\\n'.join(sorted(out)))
`)
}

describe('extended attributes through the mount', { skip: !haveFuse && 'no /dev/fuse' }, () => {
  let m: MountedVolume
  before(async () => { m = await MountedVolume.open('bazil-posix-xattrs-') })
  after(async () => { await m?.close() })

  test('set, get, list, remove with the errnos and sizes Linux gives', async () => {
    const out = await py(m.mnt, `
open('f', 'w').close()
os.mkdir('d')
os.symlink('f', 'l')
os.setxattr('f', 'user.a', b'one')
os.setxattr('f', 'user.b', b'')
os.setxattr('d', 'user.dir', b'\\x00\\xff binary')
print(sorted(os.listxattr('f')), os.getxattr('f', 'user.a'), os.getxattr('f', 'user.b'), os.getxattr('d', 'user.dir'))
def err(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print(err(lambda: os.setxattr('f', 'user.a', b'x', os.XATTR_CREATE)),
      err(lambda: os.setxattr('f', 'user.c', b'x', os.XATTR_REPLACE)),
      err(lambda: os.getxattr('f', 'user.none')),
      err(lambda: os.removexattr('f', 'user.none')),
      err(lambda: os.setxattr('f', 'user.big', b'x' * 65537)),
      err(lambda: os.getxattr('f', 'system.posix_acl_access')),
      err(lambda: os.setxattr('f', 'other.ns', b'x')),
      err(lambda: os.setxattr('l', 'user.x', b'x', follow_symlinks=False)))
os.setxattr('f', 'user.a', b'two', os.XATTR_REPLACE)
for i in range(3):
    os.setxattr('d', 'user.v%d' % i, b'v' * 65536)
print(err(lambda: os.setxattr('d', 'user.v3', b'v' * 65536)), len(os.getxattr('d', 'user.v2')))
# A buffer too small is ERANGE; a size query answers the exact size.
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(2)
r = libc.getxattr(b'f', b'user.a', buf, ctypes.c_size_t(2))
print(r, errno.errorcode[ctypes.get_errno()], libc.getxattr(b'f', b'user.a', None, ctypes.c_size_t(0)), libc.listxattr(b'f', None, ctypes.c_size_t(0)))
r = libc.listxattr(b'f', buf, ctypes.c_size_t(2))
print(r, errno.errorcode[ctypes.get_errno()])
os.removexattr('f', 'user.b')
print(os.listxattr('f'), os.getxattr('f', 'user.a'))
`)
    assert.deepEqual(out.trim().split('\n'), [
      "['user.a', 'user.b'] b'one' b'' b'\\x00\\xff binary'",
      'EEXIST ENODATA ENODATA ENODATA E2BIG ENOTSUP ENOTSUP EPERM',
      'ENOSPC 65536',
      `-1 ERANGE 3 ${'user.a\0user.b\0'.length}`,
      '-1 ERANGE',
      "['user.a'] b'two'",
    ])
    // (python names errno 95 ENOTSUP: EOPNOTSUPP on Linux.) ls -l and stat ask for attributes of nodes without any: answered, not failed.
    await sh(m.mnt, 'ls -l >/dev/null && stat f >/dev/null')
  })

  test('kept in the op log: a reopened node shows them; snapshots are read-only', async () => {
    await py(m.mnt, `
open('keep', 'w').write('x')
os.setxattr('keep', 'user.k', b'kept')
os.setxattr('.', 'user.root', b'r')
os.mkdir('.snap/s1')
os.setxattr('keep', 'user.k', b'later')
`)
    await m.mount.idle()
    await m.reopen()
    const out = await py(m.mnt, `
print(os.getxattr('keep', 'user.k'), os.getxattr('.', 'user.root'), os.getxattr('.snap/s1/keep', 'user.k'), os.listxattr('.snap/s1/keep'))
try:
    os.setxattr('.snap/s1/keep', 'user.k', b'x')
except OSError as e:
    print(errno.errorcode[e.errno])
`)
    assert.deepEqual(out.trim().split('\n'), ["b'later' b'r' b'kept' ['user.k']", 'EROFS'])
  })

  test('tar --xattrs, cp -a and rsync -X round trips into and out of the mount', async () => {
    const tmp = tempDir('bazil-xattr-src-')
    try {
      const src = path.join(tmp.dir, 'src')
      fs.mkdirSync(src)
      await py(src, `
os.makedirs('a/b')
for i, p in enumerate(['a/f1', 'a/b/f2', 'plain']):
    open(p, 'wb').write(b'data %d' % i)
os.setxattr('a/f1', 'user.mime_type', b'text/plain')
os.setxattr('a/f1', 'user.xdg.origin.url', b'https://example.org/f1')
os.setxattr('a/b/f2', 'user.bin', bytes(range(256)) * 4)
os.setxattr('a/b', 'user.dir', b'on a dir')
os.setxattr('a', 'trusted.t', b'root only')
os.symlink('f1', 'a/l')
`)
      const want = await dumpXattrs(src)
      assert.ok(want.includes('user.bin=') && want.includes('trusted.t='), want)
      // Into the mount three ways, each checked; then out of it three ways.
      await sh(tmp.dir, `tar -C src --xattrs --xattrs-include='*' -cf in.tar . && mkdir ${m.mnt}/tar && tar -C ${m.mnt}/tar --xattrs --xattrs-include='*' -xf in.tar`)
      await sh(tmp.dir, `cp -a src ${m.mnt}/cp`)
      await sh(tmp.dir, `rsync -aX src/ ${m.mnt}/rsync/`)
      for (const d of ['tar', 'cp', 'rsync']) assert.equal(await dumpXattrs(path.join(m.mnt, d)), want, `into the mount by ${d}`)
      await sh(tmp.dir, `tar -C ${m.mnt}/tar --xattrs --xattrs-include='*' -cf out.tar . && mkdir back-tar && tar -C back-tar --xattrs --xattrs-include='*' -xf out.tar`)
      await sh(tmp.dir, `cp -a ${m.mnt}/cp back-cp`)
      await sh(tmp.dir, `rsync -aX ${m.mnt}/rsync/ back-rsync/`)
      for (const d of ['back-tar', 'back-cp', 'back-rsync']) {
        assert.equal(await dumpXattrs(path.join(tmp.dir, d)), want, `out of the mount by ${d}`)
        assert.equal((await sh(tmp.dir, `diff -r src ${d} && echo same`)).trim(), 'same')
      }
    } finally {
      tmp.cleanup()
    }
  })
})
