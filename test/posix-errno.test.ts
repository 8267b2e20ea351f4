// The errno contract of a local file system where FUSE exposes it (issue 13), through a real
// mount: rename over a non-empty directory, O_EXCL, O_APPEND from two processes at once.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'

describe('errno contract through a mount', { skip: !haveFuse }, () => {
  let m: MountedVolume
  before(async () => { m = await MountedVolume.open('bazil-posix-errno-') })
  after(async () => { await m?.close() })

  test('rename over a non-empty directory is ENOTEMPTY, over an empty one replaces it', async () => {
    const out = await sh(m.mnt, `mkdir -p a b/c e && python3 -c "
import os, errno
try:
    os.rename('a', 'b')
    print('renamed')
except OSError as e:
    print(errno.errorcode[e.errno])
os.rename('a', 'e')
print(sorted(os.listdir('.')))"`)
    assert.deepEqual(out.trim().split('\n'), ['ENOTEMPTY', "['.snap', 'b', 'e']"])
  })

  test('O_CREAT|O_EXCL on an existing name is EEXIST, on a new one creates it', async () => {
    const out = await sh(m.mnt, `touch x && python3 -c "
import os, errno
try:
    os.open('x', os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    print('opened')
except OSError as e:
    print(errno.errorcode[e.errno])
os.close(os.open('y', os.O_CREAT | os.O_EXCL | os.O_WRONLY))
print(os.path.exists('y'))"`)
    assert.deepEqual(out.trim().split('\n'), ['EEXIST', 'True'])
  })

  test('O_APPEND from two processes at once: every record whole, none lost', async () => {
    // Two writers, 2000 records each, one write(2) per record through O_APPEND descriptors.
    const writer = (tag: string) => `python3 -c "
import os
fd = os.open('log', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(2000):
    os.write(fd, b'${tag} %05d ................................\\n' % i)
os.close(fd)" &`
    await sh(m.mnt, `${writer('A')}\n${writer('B')}\nwait`)
    const lines = (await sh(m.mnt, 'cat log')).split('\n').filter(Boolean)
    assert.equal(lines.length, 4000)
    for (const tag of ['A', 'B']) {
      const mine = lines.filter((l) => l.startsWith(`${tag} `))
      assert.equal(mine.length, 2000)
      assert.deepEqual(mine.map((l) => Number(l.slice(2, 7))), [...Array(2000).keys()], `${tag}'s records in order, each whole`)
    }
  })
})
