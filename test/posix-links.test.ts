// Hard links through a real mount (issue 13; spec/fuse.md "Hard links"): ln, cp -al, tar x of
// an archive with hard links and tar c back, rsync -H: every name of a file shows one inode
// number and the link count, writes through one name show through the others, unlink of one
// name leaves the rest; the names replicate to a second peer as one node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { VolumeMount } from '../src/mount/index.js'
import { haveFuse, sh } from './posix-helpers.js'
import { Nodes, until } from './writers-helpers.js'

/** `stat -c '%i %h'` of each path: inode number and link count. */
async function inodes(dir: string, ...paths: string[]): Promise<[number, number][]> {
  const out = (await sh(dir, `stat -c '%i %h' ${paths.map((p) => JSON.stringify(p)).join(' ')}`)).trim().split('\n')
  return out.map((l) => l.split(' ').map(Number) as [number, number])
}

test('hard links through the mount: ln, cp -al, tar x/c and rsync -H keep one inode per file; replicated to a second peer', { skip: !haveFuse && 'no /dev/fuse' }, async () => {
  const { c, vols } = await Nodes.writers(2)
  const mnt = path.join(c.root, 'mnt')
  const src = path.join(c.root, 'src')
  fs.mkdirSync(mnt)
  const mount = new VolumeMount(vols[0], mnt, { spoolDir: path.join(c.root, 'spool') })
  await mount.mount()
  try {
    // ln, and a write through one name seen through the other.
    await sh(mnt, 'echo hello > a; ln a b; mkdir d; ln a d/c')
    // Each name is its own inode to the kernel (libfuse's high-level API keys nodes by path):
    // another name's cached attributes (its link count) lag up to the attr timeout, 1 s.
    await new Promise((r) => setTimeout(r, 1200))
    let st = await inodes(mnt, 'a', 'b', 'd/c')
    assert.equal(new Set(st.map((s) => s[0])).size, 1, `one inode: ${JSON.stringify(st)}`)
    assert.deepEqual(st.map((s) => s[1]), [3, 3, 3])
    await sh(mnt, 'echo more >> b')
    await mount.idle()
    // The kernel keeps another name's attributes up to its attr timeout (1 s), as for remote changes.
    await new Promise((r) => setTimeout(r, 1200))
    assert.equal(await sh(mnt, 'cat a'), 'hello\nmore\n')
    assert.equal(await sh(mnt, 'cat d/c'), 'hello\nmore\n')
    await sh(mnt, 'chmod 600 d/c')
    await new Promise((r) => setTimeout(r, 1200))
    assert.equal((await sh(mnt, "stat -c '%a' a")).trim(), '600', 'one set of attributes')
    // Unlink one name: the others stay.
    await sh(mnt, 'rm a')
    await new Promise((r) => setTimeout(r, 1200))
    st = await inodes(mnt, 'b', 'd/c')
    assert.deepEqual(st.map((s) => s[1]), [2, 2])
    assert.equal(await sh(mnt, 'cat b'), 'hello\nmore\n')
    assert.equal(await sh(mnt, 'ln d e 2>&1 || echo refused'), "ln: d: hard link not allowed for directory\nrefused\n")

    // cp -al: a tree of links.
    await sh(mnt, 'cp -al d d2')
    await new Promise((r) => setTimeout(r, 1200))
    st = await inodes(mnt, 'd/c', 'd2/c', 'b')
    assert.equal(new Set(st.map((s) => s[0])).size, 1)
    assert.deepEqual(st.map((s) => s[1]), [3, 3, 3])

    // tar x of an archive with hard links (made outside the mount), then tar c of the mount.
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true })
    fs.writeFileSync(path.join(src, 'f'), 'archived\n')
    fs.linkSync(path.join(src, 'f'), path.join(src, 'g'))
    fs.linkSync(path.join(src, 'f'), path.join(src, 'sub', 'h'))
    fs.writeFileSync(path.join(src, 'lone'), 'one name\n')
    await sh(c.root, 'tar cf x.tar -C src .')
    await sh(mnt, 'mkdir t && tar xf ../x.tar -C t')
    await new Promise((r) => setTimeout(r, 1200))
    st = await inodes(mnt, 't/f', 't/g', 't/sub/h', 't/lone')
    assert.equal(new Set(st.slice(0, 3).map((s) => s[0])).size, 1, `tar x: one inode: ${JSON.stringify(st)}`)
    assert.deepEqual(st.map((s) => s[1]), [3, 3, 3, 1])
    assert.notEqual(st[3][0], st[0][0])
    assert.equal(await sh(mnt, 'cat t/sub/h'), 'archived\n')
    const listing = await sh(mnt, 'tar cf - -C t . | tar tvf -')
    assert.equal((listing.match(/ link to /g) ?? []).length, 2, `tar c stores the two further names as links:\n${listing}`)
    const out = path.join(c.root, 'out')
    await sh(c.root, `mkdir out && tar cf - -C ${JSON.stringify(path.join(mnt, 't'))} . | tar xf - -C out`)
    assert.equal(fs.statSync(path.join(out, 'g')).ino, fs.statSync(path.join(out, 'sub', 'h')).ino)
    assert.equal(fs.statSync(path.join(out, 'f')).nlink, 3)

    // rsync -aH into the mount.
    await sh(c.root, `rsync -aH src/ ${JSON.stringify(path.join(mnt, 'r'))}/`)
    await new Promise((r) => setTimeout(r, 1200))
    st = await inodes(mnt, 'r/f', 'r/g', 'r/sub/h')
    assert.equal(new Set(st.map((s) => s[0])).size, 1, `rsync -H: one inode: ${JSON.stringify(st)}`)
    assert.deepEqual(st.map((s) => s[1]), [3, 3, 3])

    // The second peer: the same names, one node each, the same link counts.
    await mount.idle()
    const shown = (k: number): string[] => [...vols[k].tree.walk('/')].map((s) => `${s.path} ${s.kind} ${s.id} ${s.nlink ?? 1} ${s.content?.hash ?? ''}`)
    await until('the second peer has every name', vols, () => JSON.stringify(shown(1)) === JSON.stringify(shown(0)))
    const t1 = vols[1].tree
    assert.equal(t1.stat('/t/f').id, t1.stat('/t/sub/h').id)
    assert.equal(t1.stat('/t/g').nlink, 3)
    assert.equal(t1.lookup('/a'), null)
    assert.deepEqual(t1.audit(), [])
  } finally {
    await mount.unmount().catch(() => {})
    await c.close()
  }
})
