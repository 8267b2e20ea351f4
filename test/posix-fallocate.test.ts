// fallocate through a real mount (issue 13): the default mode grows the file (zeros, committed
// like any write and read back by a second node from the op log), KEEP_SIZE changes nothing,
// the other modes are refused with EOPNOTSUPP.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { toFileRef } from '../src/volume/volume.js'
import { hasFuseFix } from '../src/mount/native-lib.js'
import { fallocateSize } from '../src/mount/fallocate.js'
import { haveFuse, MountedVolume, sh } from './posix-helpers.js'

const built = hasFuseFix('fallocate')
if (haveFuse && !built) console.warn('posix-fallocate: fuse-native lacks the fallocate fix (run node scripts/build-fuse-native.mjs): SKIPPING the mount test')

test('fallocate sizes: grow, keep, refuse', () => {
  assert.equal(fallocateSize('/f', 0, 0, 100, 10), 100)
  assert.equal(fallocateSize('/f', 0, 0, 5, 10), null)
  assert.equal(fallocateSize('/f', 1, 0, 100, 10), null)
  assert.throws(() => fallocateSize('/f', 3, 0, 100, 10), /EOPNOTSUPP|not supported/)
  assert.throws(() => fallocateSize('/f', 0, 0, 0, 10), /fallocate of 0 bytes/)
})

describe('fallocate through a mount', { skip: !haveFuse || !built }, () => {
  let m: MountedVolume
  before(async () => { m = await MountedVolume.open('bazil-posix-fallocate-') })
  after(async () => { await m?.close() })

  test('fallocate(1) default mode, --keep-size, --punch-hole; the grown file committed', async () => {
    await sh(m.mnt, 'printf abc > f && fallocate -l 1048576 f && fallocate -o 0 -l 10 f')
    assert.equal((await sh(m.mnt, 'stat -c %s f')).trim(), '1048576')
    await sh(m.mnt, 'fallocate -n -l 4194304 f')
    assert.equal((await sh(m.mnt, 'stat -c %s f')).trim(), '1048576', 'KEEP_SIZE keeps the size')
    const punch = await sh(m.mnt, 'fallocate -p -o 0 -l 2 f 2>&1 && echo punched || true')
    assert.match(punch, /unsupported|not supported/)
    assert.doesNotMatch(punch, /punched/)
    // posix_fallocate(3) through the same op (glibc falls back to writing zeros only on EOPNOTSUPP).
    await sh(m.mnt, `python3 -c "import os; fd = os.open('g', os.O_CREAT | os.O_WRONLY); os.posix_fallocate(fd, 0, 5000); os.close(fd)"`)
    assert.equal((await sh(m.mnt, 'stat -c %s g')).trim(), '5000')
    await m.mount.idle()
    const st = m.vol.tree.stat('/f')
    assert.equal(st.size, 1048576)
    const chunks: Buffer[] = []
    for await (const c of m.vol.cas.readFile(toFileRef(st.content!))) chunks.push(c)
    const data = Buffer.concat(chunks)
    assert.equal(data.subarray(0, 3).toString(), 'abc')
    assert.ok(data.subarray(3).every((b) => b === 0))
  })
})
