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
import { LISTING, sourceTree } from './tree-listing.js'

const exec = promisify(execFile)

/** The source tree, with a second file of two names (a hard link outside its directory). */
const MAKE_SOURCE = sourceTree('ln src/a/big src/big-too')

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
