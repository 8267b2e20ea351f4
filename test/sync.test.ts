// The seed walkthrough (2015 Bazil post), end to end with the CLI: two data dirs, two
// servers on a loopback DHT testnet, volume connect / storage add / sync, both mounts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import { bazil, startServer, summaryOf, tempDir, type ServerProcess } from './helpers.js'
import { eventually, hasFuse, isMounted, ok, sh } from './peer-setup.js'

if (!hasFuse) console.warn('\n*** /dev/fuse is missing: SKIPPING the sync walkthrough with mounts ***\n')

test('seed walkthrough: connect, storage add, sync, mounts on both sides, both directions', { skip: !hasFuse, timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-sync-')
  const testnet = await createTestnet(4, { host: '127.0.0.1' }) // a bootstrapper and 3 DHT nodes, as `bazil dht run` starts
  const port = testnet.bootstrap[0]!.port
  const W = path.join(dir, 'white')
  const B = path.join(dir, 'black')
  const wmnt = path.join(dir, 'wmnt')
  const bmnt = path.join(dir, 'bmnt')
  fs.mkdirSync(wmnt)
  fs.mkdirSync(bmnt)
  process.env.BAZIL_REMOTE_TIMEOUT_MS = '3000'
  const servers: ServerProcess[] = []
  const logs = (): string => servers.map((s) => s.log()).join('\n----\n')
  try {
    ok(await bazil(W, ['create']), 'create white')
    ok(await bazil(B, ['create']), 'create black')
    const BLACK = ok(await bazil(B, ['debug', 'pubkey']), 'pubkey').stdout.trim()
    const WHITE = ok(await bazil(W, ['debug', 'pubkey']), 'pubkey').stdout.trim()
    const sekrit = path.join(dir, 'sekrit')
    fs.writeFileSync(sekrit, Buffer.from('0123456789abcdef0123456789abcdef'))
    ok(await bazil(W, ['sharing', 'add', 'friends'], fs.readFileSync(sekrit)), 'sharing add white')

    const white = await startServer(W, [`--bootstrap=127.0.0.1:${port}`])
    servers.push(white)
    const black = await startServer(B, [`--bootstrap=127.0.0.1:${port}`])
    servers.push(black)
    // startServer's "listening on" also matches the network's UDP line, logged before the control socket.
    await eventually('control sockets', async () => /listening on .*control\.sock/.test(white.log()) && /listening on .*control\.sock/.test(black.log()))

    ok(await bazil(W, ['volume', 'create', '--sharing=friends', 'myfiles']), 'volume create')
    ok(await bazil(W, ['volume', 'mount', 'myfiles', wmnt]), 'mount white')
    ok(await bazil(W, ['peer', 'add', BLACK]), 'peer add')
    ok(await bazil(W, ['peer', 'storage', 'allow', BLACK, 'local']), 'storage allow')
    ok(await bazil(W, ['peer', 'volume', 'allow', BLACK, 'myfiles']), 'volume allow')

    const unknown = await bazil(B, ['volume', 'connect', WHITE, 'myfiles'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /^bazil: unknown peer \S+: add it with `bazil peer add/)
    ok(await bazil(B, ['peer', 'add', WHITE]), 'peer add on black')
    ok(await bazil(B, ['sharing', 'add', 'friends'], fs.readFileSync(sekrit)), 'sharing add black')
    // Unknown volume names are one clear line.
    const nosuch = await bazil(B, ['volume', 'connect', '--sharing=friends', WHITE, 'nosuch'])
    assert.equal(nosuch.code, 1, JSON.stringify(nosuch))
    assert.match(nosuch.stderr, /offers no volume "nosuch" \(it offers: myfiles\)/, JSON.stringify(nosuch))
    ok(await bazil(B, ['volume', 'connect', '--sharing=friends', WHITE, 'myfiles']), 'volume connect', logs())
    ok(await bazil(B, ['volume', 'storage', 'add', '--sharing=friends', 'myfiles', `peerkey:${WHITE}`]), 'storage add', logs())
    ok(await bazil(B, ['volume', 'mount', 'myfiles', bmnt]), 'mount black')

    const catOnBlack = async (p: string): Promise<string> => (await sh(`cat "${bmnt}/${p}"`)).out
    const catOnWhite = async (p: string): Promise<string> => (await sh(`cat "${wmnt}/${p}"`)).out
    const syncBlack = async (): Promise<Record<string, unknown>> => summaryOf(ok(await bazil(B, ['volume', 'sync', '--json', 'myfiles', WHITE]), 'sync on black', logs()).stdout)
    const syncWhite = async (): Promise<Record<string, unknown>> => summaryOf(ok(await bazil(W, ['volume', 'sync', '--json', 'myfiles', BLACK]), 'sync on white', logs()).stdout)

    assert.equal((await sh(`echo hello, world > "${wmnt}/greeting" && sync "${wmnt}/greeting"`)).code, 0)
    const first = await syncBlack()
    assert.equal(first.complete, true)
    assert.equal(first.writers, 2, JSON.stringify(first))
    assert.ok((first.entries as number) >= 1, JSON.stringify(first))
    await eventually('greeting on black', async () => (await catOnBlack('greeting')) === 'hello, world\n')
    assert.match((await sh(`ls "${bmnt}"`)).out, /^greeting$/m)

    assert.equal((await sh(`echo hello, again > "${wmnt}/greeting" && sync "${wmnt}/greeting"`)).code, 0)
    await syncBlack()
    await eventually('second greeting on black', async () => (await catOnBlack('greeting')) === 'hello, again\n')

    // Subdirectories, deletions, directory renames: white to black ...
    assert.equal((await sh(`mkdir -p "${wmnt}/docs/sub" && echo deep > "${wmnt}/docs/sub/f" && sync "${wmnt}/docs/sub/f" && rm "${wmnt}/greeting" && mv "${wmnt}/docs" "${wmnt}/papers" && sync "${wmnt}/papers/sub/f"`)).code, 0)
    await syncBlack()
    await eventually('tree on black', async () => (await catOnBlack('papers/sub/f')) === 'deep\n' && !fs.existsSync(path.join(bmnt, 'greeting')))
    assert.equal((await sh(`ls "${bmnt}"`)).out, 'papers\n')

    // ... and black to white (white reads black's content from its own store? no: black's
    // new chunks reach white only through white's storage of black, so add it there too).
    ok(await bazil(B, ['peer', 'storage', 'allow', WHITE, 'local']), 'storage allow on black')
    ok(await bazil(W, ['volume', 'storage', 'add', 'myfiles', `peerkey:${BLACK}`]), 'storage add on white', logs())
    assert.equal((await sh(`mkdir "${bmnt}/from-black" && echo 'written on black' > "${bmnt}/from-black/note" && sync "${bmnt}/from-black/note" && mv "${bmnt}/papers" "${bmnt}/archive" && rm "${bmnt}/archive/sub/f"`)).code, 0)
    const back = await syncWhite()
    assert.equal(back.complete, true)
    await eventually('black changes on white', async () => (await catOnWhite('from-black/note')) === 'written on black\n' && fs.existsSync(path.join(wmnt, 'archive/sub')) && !fs.existsSync(path.join(wmnt, 'archive/sub/f')))
    assert.equal((await sh(`ls "${wmnt}"`)).out, 'archive\nfrom-black\n')

    // Each stores to the other (`volume storage add` both ways, each may read the other's store):
    // black keeps white's store (KEEP/HOLDS, spec/protocol.md), so white's new content is on
    // black once it confirmed it, and reads there with white gone. (A read whose only source is
    // gone fails with EIO within the timeout: test/cache-laptop.test.ts, cas-remote.test.ts.)
    assert.equal((await sh(`echo 'only on white' > "${wmnt}/lonely" && sync "${wmnt}/lonely"`)).code, 0)
    await syncBlack()
    await eventually('lonely listed on black', async () => fs.existsSync(path.join(bmnt, 'lonely')))
    await eventually('black confirms keeping all of white\'s store', async () => {
      const c = JSON.parse(ok(await bazil(W, ['volume', 'copies', '--json', 'myfiles']), 'copies on white').stdout) as { store: { packs: number; safePacks: number } }
      return c.store.packs > 0 && c.store.safePacks === c.store.packs
    })
    await white.stop()
    const r = await sh(`cat "${bmnt}/lonely"`)
    assert.equal(r.code, 0, r.out)
    assert.equal(r.out, 'only on white\n')
    const unreachable = await bazil(B, ['volume', 'sync', 'myfiles', WHITE, '--timeout=1'])
    assert.equal(unreachable.code, 1)
    assert.match(unreachable.stderr, /not reachable within 1 s/)
  } finally {
    for (const s of servers) await s.stop('SIGTERM')
    for (const mp of [wmnt, bmnt]) if (isMounted(mp)) await sh(`fusermount -uz "${mp}"`)
    await testnet.destroy()
    delete process.env.BAZIL_REMOTE_TIMEOUT_MS
    cleanup()
  }
})
