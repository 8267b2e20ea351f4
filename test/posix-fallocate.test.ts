// fallocate through a real mount (issue 13): the default mode grows the file (zeros, committed
// like any write and read back by a second node from the op log), KEEP_SIZE changes nothing,
// the other modes are refused with EOPNOTSUPP.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume.js'
import { toFileRef } from '../src/volume.js'
import { VolumeMount } from '../src/fs/fuse/index.js'
import { hasFuseFix } from '../src/fs/fuse/native-lib.js'
import { fallocateSize } from '../src/fs/fuse/fallocate.js'
import { tempDir } from './helpers.js'

const run = promisify(execFile)
const haveFuse = fs.existsSync('/dev/fuse')
const built = hasFuseFix('fallocate')
if (haveFuse && !built) console.warn('posix-fallocate: fuse-native lacks the fallocate fix (run node scripts/build-fuse-native.mjs): SKIPPING the mount test')

async function sh(dir: string, script: string): Promise<string> {
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', `cd ${JSON.stringify(dir)}\n${script}`])
  return stdout
}

test('fallocate sizes: grow, keep, refuse', () => {
  assert.equal(fallocateSize('/f', 0, 0, 100, 10), 100)
  assert.equal(fallocateSize('/f', 0, 0, 5, 10), null)
  assert.equal(fallocateSize('/f', 1, 0, 100, 10), null)
  assert.throws(() => fallocateSize('/f', 3, 0, 100, 10), /EOPNOTSUPP|not supported/)
  assert.throws(() => fallocateSize('/f', 0, 0, 0, 10), /fallocate of 0 bytes/)
})

describe('fallocate through a mount', { skip: !haveFuse || !built }, () => {
  let tmp: { dir: string; cleanup: () => void }
  let node: Node
  let vol: Volume
  let mount: VolumeMount
  let mnt: string

  before(async () => {
    tmp = tempDir('bazil-posix-fallocate-')
    node = await Node.open(DataDir.create(path.join(tmp.dir, 'data')))
    vol = await node.createVolume('v', 'default')
    mnt = path.join(tmp.dir, 'mnt')
    fs.mkdirSync(mnt)
    mount = new VolumeMount(vol, mnt, { spoolDir: path.join(tmp.dir, 'spool') })
    await mount.mount()
  })

  after(async () => {
    await mount?.unmount().catch(() => {})
    await node?.close().catch(() => {})
    tmp?.cleanup()
  })

  test('fallocate(1) default mode, --keep-size, --punch-hole; the grown file committed', async () => {
    await sh(mnt, 'printf abc > f && fallocate -l 1048576 f && fallocate -o 0 -l 10 f')
    assert.equal((await sh(mnt, 'stat -c %s f')).trim(), '1048576')
    await sh(mnt, 'fallocate -n -l 4194304 f')
    assert.equal((await sh(mnt, 'stat -c %s f')).trim(), '1048576', 'KEEP_SIZE keeps the size')
    const punch = await sh(mnt, 'fallocate -p -o 0 -l 2 f 2>&1 && echo punched || true')
    assert.match(punch, /unsupported|not supported/)
    assert.doesNotMatch(punch, /punched/)
    // posix_fallocate(3) through the same op (glibc falls back to writing zeros only on EOPNOTSUPP).
    await sh(mnt, `python3 -c "import os; fd = os.open('g', os.O_CREAT | os.O_WRONLY); os.posix_fallocate(fd, 0, 5000); os.close(fd)"`)
    assert.equal((await sh(mnt, 'stat -c %s g')).trim(), '5000')
    await mount.idle()
    const st = vol.tree.stat('/f')
    assert.equal(st.size, 1048576)
    const chunks: Buffer[] = []
    for await (const c of vol.cas.readFile(toFileRef(st.content!))) chunks.push(c)
    const data = Buffer.concat(chunks)
    assert.equal(data.subarray(0, 3).toString(), 'abc')
    assert.ok(data.subarray(3).every((b) => b === 0))
  })
})
