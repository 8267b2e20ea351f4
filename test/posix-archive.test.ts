// Issue 13's "done when": a real archive with hard links, special files, owners and extended
// attributes extracts into a mount, replicates to a second peer, and extracts back from that
// peer's mount identical, through real servers on the loopback testnet, by GNU tar, `cp -a` and
// `rsync -aHAX` as root.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { PeerCluster, eventually, hasFuse } from './peer-setup.js'
import { LISTING, sourceTree } from './tree-listing.js'

const exec = promisify(execFile)

/** The source tree (tree-listing.ts), with a dangling symlink and xattrs. */
const MAKE_SOURCE = sourceTree(String.raw`
ln -s /nowhere/at/all src/a/dangling
setfattr_py() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))' "$@"; }
setfattr_py src/f user.tag 626c7565
setfattr_py src/a/big user.binary 00ff10fe
setfattr_py src/empty-dir user.empty ''
setfattr_py src/a user.note 6469726563746f7279`)

const TAR = "tar --xattrs --xattrs-include='*' --numeric-owner"
/** The copies made in each mount: by tar, `cp -a` and `rsync -aHAX`. */
const WAYS = ['t', 'cp', 'rsync']

test('a tree with hard links, special files, owners and xattrs goes into a mount by tar, cp -a and rsync -aHAX, replicates, and comes back out of the second peer identical', { skip: !hasFuse || process.getuid?.() !== 0 ? 'needs /dev/fuse and root' : false }, async () => {
  const c = await PeerCluster.create(['white', 'black'])
  try {
    await c.start('white', 'black')
    await c.run('white', ['volume', 'create', '--sharing=friends', 'v'])
    await c.connect('white', 'black', 'v')
    await c.mount('v', 'white', 'black')
    const white = c.get('white').mnt
    const black = c.get('black').mnt
    const work = path.join(c.dir, 'work')
    fs.mkdirSync(work)
    // A child process: this process serves no mount here (the servers do), but tar and python
    // must never run inside the test's own event loop anyway.
    const run = async (script: string): Promise<string> => (await exec('bash', ['-euo', 'pipefail', '-c', `cd ${JSON.stringify(work)}\n${script}`], { maxBuffer: 64 << 20, timeout: 180_000 })).stdout
    const listing = async (dir: string): Promise<string> => (await exec('python3', ['-c', LISTING, dir], { maxBuffer: 64 << 20, timeout: 180_000 })).stdout

    await run(MAKE_SOURCE)
    await run(`${TAR} -cpf x.tar -C src .`)
    const original = await listing(path.join(work, 'src'))
    assert.match(original, /inode-of=/, 'the source has hard links')

    // Into the first peer's mount; what the mount shows is the archive's tree.
    // Into the first peer's mount three ways: tar, `cp -a` and `rsync -aHAX`, each as root.
    const q = JSON.stringify
    await run(`mkdir ${q(path.join(white, 't'))} && ${TAR} -xpf x.tar -C ${q(path.join(white, 't'))}`)
    await run(`cp -a src ${q(path.join(white, 'cp'))}`)
    await run(`rsync -aHAX src/ ${q(path.join(white, 'rsync'))}/`)
    // The kernel keeps each name's attributes for the attr timeout (1 s; libfuse's high-level API
    // keys nodes by path, so a hard link's other names show the new link count after it: spec/fuse.md).
    await new Promise((r) => setTimeout(r, 1200))
    for (const way of WAYS) assert.equal(await listing(path.join(white, way)), original, `the first peer shows the tree as ${way} made it`)

    // The second peer's mount shows the same, once replicated.
    for (const way of WAYS) {
      let seen = ''
      await eventually(`the second peer shows the tree ${way} made`, async () => {
        seen = await listing(path.join(black, way)).catch((e: Error) => e.message)
        return seen === original
      }, 120_000, 500).catch((err: Error) => {
        assert.equal(seen, original, `${err.message}\n${c.logs().slice(-4000)}`)
      })
    }

    // Out of the second peer's mount with tar, and extracted again: identical.
    // Out of the second peer's mount the same three ways: identical.
    await run(`${TAR} -cpf back.tar -C ${q(path.join(black, 't'))} . && mkdir back && ${TAR} -xpf back.tar -C back`)
    await run(`cp -a ${q(path.join(black, 'cp'))} back-cp`)
    await run(`rsync -aHAX ${q(path.join(black, 'rsync'))}/ back-rsync/`)
    for (const [dir, way] of [['back', 'tar'], ['back-cp', 'cp -a'], ['back-rsync', 'rsync -aHAX']]) {
      assert.equal(await listing(path.join(work, dir!)), original, `copied back out of the second peer by ${way}: identical`)
    }
  } finally {
    await c.close()
  }
})
