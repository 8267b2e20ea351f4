// `volume import` then `volume export` (src/copy/local-copy.ts) of a tree with hard links,
// fifos, devices, owners, modes and times, as root: the exported tree lists the same as the
// source (type, mode, owner, size, content, mtime, device numbers, symlink targets, which
// names share an inode). Not carried yet: atimes on import, extended attributes (Node has no xattr call).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { exportTree, importDir } from '../src/copy/local-copy.js'
import { tempDir } from './helpers.js'
import { LISTING } from './tree-listing.js'

const exec = promisify(execFile)


const MAKE_SOURCE = String.raw`
set -e
mkdir -p src/a/b src/empty-dir
printf 'hello, world\n' > src/f
head -c 300000 /dev/urandom > src/a/big
: > src/a/empty
ln src/f src/a/g
ln src/f src/a/b/h
ln src/a/big src/big-too
ln -s a/g src/s
mkfifo -m 640 src/a/pipe
mknod -m 600 src/a/null-dev c 1 3
mknod -m 660 src/a/block-dev b 7 200
chown 1234:5678 src/f
chown 1001:1002 src/a src/a/big src/a/pipe src/a/null-dev
chown -h 4242:4343 src/s
chmod 750 src/a; chmod 2775 src/a/b; chmod 1777 src/empty-dir; chmod 4755 src/a/big; chmod 600 src/f
touch -h -d '2019-03-04 05:06:07' src/s
touch -d '2020-01-02 03:04:05' src/f src/a/big src/a/empty src/a/pipe src/a/null-dev src/a/block-dev
touch -d '2021-06-07 08:09:10' src/a/b src/empty-dir src/a
`

test('import then export keeps hard links, fifos, devices, owners, modes and times', { skip: process.getuid?.() !== 0 ? 'needs root (owners, devices)' : false }, async () => {
  const { dir, cleanup } = tempDir('bazil-copy-rt-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    await exec('bash', ['-c', MAKE_SOURCE], { cwd: dir })
    const list = async (root: string): Promise<string> => (await exec('python3', ['-c', LISTING, root])).stdout
    const want = await list(path.join(dir, 'src'))
    const vol = await node.createVolume('v', 'default')
    const imported = await importDir(vol, path.join(dir, 'src'), '/')
    assert.deepEqual([imported.files, imported.links, imported.special, imported.symlinks], [3, 3, 3, 1])
    assert.equal(vol.tree.stat('/a/g').id, vol.tree.stat('/f').id)
    assert.equal(vol.tree.stat('/f').nlink, 3)
    assert.equal(vol.tree.stat('/a/null-dev').kind, 'chardev')
    const exported = await exportTree(vol.cas, vol.tree, path.join(dir, 'out'))
    assert.deepEqual(exported.skipped, [])
    assert.deepEqual([exported.files, exported.links, exported.special], [3, 3, 3])
    const got = await list(path.join(dir, 'out'))
    assert.equal(got, want)
    // Again into the same volume: nothing changes, links stay links.
    await importDir(vol, path.join(dir, 'src'), '/')
    assert.equal(vol.tree.stat('/f').nlink, 3)
    const again = await exportTree(vol.cas, vol.tree, path.join(dir, 'out2'))
    assert.deepEqual(again.skipped, [])
    assert.equal(await list(path.join(dir, 'out2')), want)
  } finally {
    await node.close()
    cleanup()
  }
})
