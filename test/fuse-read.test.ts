// The mount's read path (cas-read.ts through reader.ts), driven only through child processes:
// random reads against the plaintext, a corrupt chunk, concurrent readers of one file.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { VolumeMount } from '../src/mount/index.js'
import { casKeys, chunkBuffer, gearTable, sealObject } from '../src/cas/index.js'
import { randomBytes } from '../src/crypto.js'
import { tempDir } from './helpers.js'

const run = promisify(execFile)
const haveFuse = fs.existsSync('/dev/fuse')
const MiB = 1024 * 1024

/**
 * Reads `count` random ranges (seeded) of `file` and of `reference` with pread and prints the
 * number that differ (each difference on stderr). Sizes from 1 byte to 1 MiB, offsets across
 * the file and a little past its end.
 */
const RANDOM_READS = `
import os, sys, random
f, ref, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
size = os.path.getsize(ref)
a = os.open(f, os.O_RDONLY); b = os.open(ref, os.O_RDONLY)
bad = 0
for i in range(n):
    off = r.randrange(0, size + 4096)
    ln = r.choice([1, 7, 4095, 4096, 65536, 131072, 300001, 1 << 20, r.randrange(1, 200000)])
    x = os.pread(a, ln, off); y = os.pread(b, ln, off)
    if x != y:
        bad += 1
        print(f'differs at {off}+{ln}: {len(x)} vs {len(y)} bytes', file=sys.stderr)
print(bad)
`

/** Reads [offset, offset + length) of a file; prints "ok N" or "error ERRNO". */
const READ_RANGE = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print('ok', len(os.pread(fd, int(sys.argv[3]), int(sys.argv[2]))))
except OSError as e:
    print('error', e.errno)
`

async function py(script: string, ...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('python3', ['-c', script, ...args], { maxBuffer: 16 << 20 })
  if (stderr) console.error(stderr)
  return stdout.trim()
}

describe('FUSE reads', { skip: !haveFuse }, () => {
  let tmp: { dir: string; cleanup: () => void }
  let node: Node
  let vol: Volume
  let mount: VolumeMount
  let mnt: string
  let native: string
  const logs: string[] = []

  before(async () => {
    tmp = tempDir('bazil-fuse-read-')
    node = await Node.open(DataDir.create(path.join(tmp.dir, 'data')))
    vol = await node.createVolume('v', 'default')
    mnt = path.join(tmp.dir, 'mnt')
    native = path.join(tmp.dir, 'native')
    fs.mkdirSync(mnt)
    fs.mkdirSync(native)
    mount = new VolumeMount(vol, mnt, {
      spoolDir: path.join(tmp.dir, 'spool'),
      readTimeoutMs: 5000,
      log: (level, msg) => logs.push(`${level} ${msg}`),
    })
    await mount.mount()
  })

  after(async () => {
    await mount?.unmount()
    await node?.close()
    tmp?.cleanup()
  })

  /** Writes `data` as `name` natively and through the mount, and waits for the commit. */
  async function place(name: string, make: string): Promise<void> {
    await run('bash', ['-euo', 'pipefail', '-c', make, 'make', path.join(native, name)])
    await run('cp', [path.join(native, name), path.join(mnt, name)])
    await mount.idle()
  }

  test('random reads of empty, small, large and sparse files match the plaintext', async () => {
    await place('empty', ': > "$1"')
    await place('small', 'head -c 5000 /dev/urandom > "$1"')
    await place('large', 'head -c 12582917 /dev/urandom > "$1"') // 12 MiB + 5
    await place('sparse', 'truncate -s 9M "$1"; printf x | dd of="$1" bs=1 seek=5242881 conv=notrunc status=none')
    for (const name of ['empty', 'small', 'large', 'sparse']) {
      const bad = await py(RANDOM_READS, path.join(mnt, name), path.join(native, name), '200', '7')
      assert.equal(bad, '0', `${name}: random reads differ`)
      const [ours, theirs] = await Promise.all([run('sha256sum', [path.join(mnt, name)]), run('sha256sum', [path.join(native, name)])])
      assert.equal(ours.stdout.split(' ')[0], theirs.stdout.split(' ')[0], `${name}: whole file`)
    }
  })

  test('concurrent readers of one file all read it right', async () => {
    await place('shared', 'head -c 10485760 /dev/urandom > "$1"')
    const want = (await run('sha256sum', [path.join(native, 'shared')])).stdout.split(' ')[0]
    const readers = [
      ...Array.from({ length: 4 }, () => run('sha256sum', [path.join(mnt, 'shared')]).then((r) => r.stdout.split(' ')[0])),
      ...Array.from({ length: 3 }, (_, i) => py(RANDOM_READS, path.join(mnt, 'shared'), path.join(native, 'shared'), '100', String(i))),
    ]
    const results = await Promise.all(readers)
    assert.deepEqual(results.slice(0, 4), [want, want, want, want])
    assert.deepEqual(results.slice(4), ['0', '0', '0'])
  })

  test('a corrupt chunk answers EIO for its range only, and the error names the file', async () => {
    // The store keeps the first block stored under an address: a damaged block put before the
    // file is written stays the one its chunk is read from.
    const sharingKey = node.dir.sharingKey('default')
    const data = randomBytes(3 * MiB)
    const chunks = chunkBuffer(gearTable(sharingKey), data)
    assert.ok(chunks.length >= 4, 'enough chunks')
    const k = 2
    const start = chunks.slice(0, k).reduce((n, c) => n + c.length, 0)
    const sealed = sealObject(casKeys(sharingKey), chunks[k]!)
    const damaged = Buffer.from(sealed.block)
    damaged[damaged.length - 100]! ^= 1
    await node.chunks.put([{ address: sealed.address, block: damaged }])
    fs.writeFileSync(path.join(native, 'damaged'), data)
    await run('cp', [path.join(native, 'damaged'), path.join(mnt, 'dir-damaged')])
    await mount.idle()
    const file = path.join(mnt, 'dir-damaged')
    assert.equal(await py(READ_RANGE, file, String(start + 10), '100'), 'error 5')
    assert.equal(await py(READ_RANGE, file, '0', '4096'), 'ok 4096')
    const tail = data.length - 4096
    assert.equal(await py(READ_RANGE, file, String(tail), '4096'), 'ok 4096')
    assert.ok(logs.some((l) => l.startsWith('error') && l.includes('/dir-damaged: corrupt content in chunk at offset')), logs.join('\n'))
  })
})
