// Owners and special files between peers (issue 13): made through one peer's mount, seen
// through the other's; then both peers chown one file while apart, and after they meet both
// show the same owner, one of the two (the Automerge winner of the uid and gid keys).
// Real servers on a loopback DHT testnet, real FUSE mounts (as root: the mounting user).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { PeerCluster, eventually, hasFuse, sh } from './peer-setup.js'

const VOL = 'shared'
const asRoot = process.getuid?.() === 0

describe('owners and special files between two peers', { skip: !hasFuse || !asRoot ? 'needs /dev/fuse and root' : false }, () => {
  let c: PeerCluster
  before(async () => {
    c = await PeerCluster.create(['white', 'black'], { env: { BAZIL_REMOTE_TIMEOUT_MS: '3000' } })
    await c.start('white', 'black')
    await c.run('white', ['volume', 'create', '--sharing=friends', VOL])
    await c.connect('white', 'black', VOL)
    await c.mount(VOL, 'white', 'black')
  })
  after(async () => { await c?.close() })

  const stat = async (mnt: string, names: string): Promise<string> => (await sh(`cd ${mnt} && stat -c '%n %u:%g %F %t:%T %a' ${names} 2>&1`)).out.trim()

  test('made on one peer, seen on the other; concurrent chowns while apart converge on one', { timeout: 180_000 }, async () => {
    const w = c.get('white').mnt
    const b = c.get('black').mnt
    const r = await sh(`cd ${w} && mkdir d && echo x > d/f && chown 1234:5678 d/f && mkfifo -m 640 d/p && chown 7:8 d/p && mknod d/c c 1 3 && echo y > d/mine && sync d/f`)
    assert.equal(r.code, 0, r.out)
    const want = 'd/c 0:0 character special file 1:3 644\nd/f 1234:5678 regular file 0:0 644\nd/mine 0:0 regular file 0:0 644\nd/p 7:8 fifo 0:0 640'
    let seen = ''
    await eventually('owners and special files on black', async () => (seen = await stat(b, 'd/c d/f d/mine d/p')) === want, 30_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\nseen on black:\n${seen}\n${c.logs()}`)
    })
    // Apart: white chowns, then black chowns the same file differently.
    await c.stop('black')
    assert.equal((await sh(`cd ${w} && chown 11:12 d/f && sync d/f`)).code, 0)
    await c.stop('white')
    await c.start('black')
    assert.equal((await sh(`cd ${b} && chown 21:22 d/f && sync d/f`)).code, 0)
    assert.equal(await stat(b, 'd/f'), 'd/f 21:22 regular file 0:0 644')
    await c.start('white')
    let ws = ''
    let bs = ''
    await eventually('one owner on both', async () => {
      ws = await stat(w, 'd/f')
      bs = await stat(b, 'd/f')
      return ws === bs && (ws === 'd/f 11:12 regular file 0:0 644' || ws === 'd/f 21:22 regular file 0:0 644')
    }, 60_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}\nwhite: ${ws}\nblack: ${bs}\n${c.logs()}`)
    })
  })
})
