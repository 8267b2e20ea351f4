// Owners and special files between peers (issue 13): made through one peer's mount, seen
// through the other's; then both peers chown one file while apart, and after they meet both
// show the same owner, one of the two (the Automerge winner of the uid and gid keys), and an
// extended attribute both set; `volume conflicts` lists both on both peers (every writer's
// value, the same winner), and `volume resolve --attr` keeps the loser's, everywhere.
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
    await c.shareMounted(VOL, 'white', 'black')
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
    const setx = (mnt: string, v: string): string => `python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.tag", sys.argv[2].encode())' ${mnt}/d/f ${v}`
    assert.equal((await sh(`cd ${w} && chown 11:12 d/f && ${setx(w, 'white')} && sync d/f`)).code, 0)
    await c.stop('white')
    await c.start('black')
    assert.equal((await sh(`cd ${b} && chown 21:22 d/f && ${setx(b, 'black')} && sync d/f`)).code, 0)
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
    // Listed on both, the same: uid, gid and user.tag of /d/f, each with both writers' values.
    type Row = { path: string; attribute?: string; values?: { value: number | { text?: string }; writer: string; mine: boolean; won: boolean }[] }
    const list = async (name: string): Promise<Row[]> => (JSON.parse((await c.run(name, ['volume', 'conflicts', '--json', VOL])).stdout) as Row[]).filter((r) => r.attribute !== undefined)
    const brief = (rows: Row[]): string => rows.map((r) => `${r.path} ${r.attribute} ${r.values!.map((v) => `${typeof v.value === 'number' ? v.value : v.value.text}${v.won ? '*' : ''}`).join(' ')}`).join('\n')
    let wl: Row[] = []
    let bl: Row[] = []
    await eventually('attribute conflicts listed on both', async () => {
      wl = await list('white')
      bl = await list('black')
      return wl.length === 3 && brief(wl) === brief(bl)
    }, 30_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}\nwhite: ${brief(wl)}\nblack: ${brief(bl)}\n${c.logs()}`)
    })
    assert.deepEqual(wl.map((r) => r.attribute), ['gid', 'uid', 'user.tag'])
    for (const r of wl) {
      assert.equal(r.path, '/d/f')
      assert.equal(r.values!.length, 2)
      assert.equal(r.values![0].won, true)
      assert.deepEqual(r.values!.map((v) => v.mine).sort(), [false, true])
    }
    const uidWon = wl[1].values![0]
    assert.equal(ws.split(' ')[1].split(':')[0], String(uidWon.value), 'the listed winner is the owner shown')
    assert.ok(brief(wl).includes('white') && brief(wl).includes('black'))
    // White keeps the loser's uid (named by its writer) and its own tag; both settle on both peers.
    const uidLost = wl[1].values![1]
    const text = (await c.run('white', ['volume', 'conflicts', VOL])).stdout
    assert.match(text, /\/d\/f\tuid set concurrently\n {2}shown\t/, text)
    await c.run('white', ['volume', 'resolve', VOL, '/d/f', '--attr=uid', `--keep=${uidLost.writer.slice(0, 12)}`])
    await c.run('white', ['volume', 'resolve', VOL, '/d/f', '--attr=user.tag', '--keep=mine'])
    await eventually('settled on both', async () => {
      ws = await stat(w, 'd/f')
      bs = await stat(b, 'd/f')
      bl = await list('black')
      return ws === bs && ws.split(' ')[1].split(':')[0] === String(uidLost.value) && bl.length === 1 && bl[0].attribute === 'gid'
    }, 30_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}\nwhite: ${ws}\nblack: ${bs} ${brief(bl)}\n${c.logs()}`)
    })
    const tag = await sh(`python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.tag").decode())' ${b}/d/f`)
    assert.equal(tag.out.trim(), 'white')
    assert.deepEqual(brief(await list('white')), brief(bl))
  })
})
