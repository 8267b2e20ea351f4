// The CLI as a user runs it: a real data dir, real corestore, the `bazil` binary.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { bazil, tempDir } from './helpers.js'

function makeSource(root: string): void {
  fs.mkdirSync(path.join(root, 'a/b/c'), { recursive: true })
  fs.writeFileSync(path.join(root, 'a/hello.txt'), 'hello, world\n')
  fs.writeFileSync(path.join(root, 'a/b/c/deep.bin'), Buffer.alloc(300_000, 7))
  fs.writeFileSync(path.join(root, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 })
  fs.writeFileSync(path.join(root, 'empty'), '')
  fs.symlinkSync('a/hello.txt', path.join(root, 'link'))
  fs.utimesSync(path.join(root, 'a/hello.txt'), new Date('2014-04-24T10:00:00Z'), new Date('2014-04-24T10:00:00Z'))
  fs.utimesSync(path.join(root, 'a/b'), new Date('2013-04-01T00:00:00Z'), new Date('2013-04-01T00:00:00Z'))
}

/** Every path under root with kind, mode, mtime (s) and content or link target. */
function dump(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string): void => {
    const abs = path.join(root, rel)
    const st = fs.lstatSync(abs)
    const key = rel || '.'
    if (st.isSymbolicLink()) out[key] = `l ${fs.readlinkSync(abs)}`
    else if (st.isDirectory()) {
      if (rel) out[key] = `d ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)}`
      for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n)
    } else out[key] = `f ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${fs.readFileSync(abs).toString('base64').slice(0, 40)} ${st.size}`
  }
  walk('')
  return out
}

test('create, pubkey, sharing keys, and their errors', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    const created = await bazil(data, ['create'])
    assert.equal(created.code, 0, created.stderr)
    assert.equal(fs.statSync(data).mode & 0o777, 0o700)
    assert.equal(fs.statSync(path.join(data, 'node.key')).mode & 0o777, 0o600)
    assert.equal(fs.statSync(path.join(data, 'sharing/default.key')).mode & 0o777, 0o600)

    const again = await bazil(data, ['create'])
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /^bazil: a data dir already exists/)

    const pub = await bazil(data, ['debug', 'pubkey'])
    assert.equal(pub.code, 0)
    assert.match(pub.stdout, /^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}\n$/)

    assert.equal((await bazil(data, ['sharing', 'add', 'friends'], Buffer.alloc(32, 1))).code, 0)
    const short = await bazil(data, ['sharing', 'add', 'short'], Buffer.alloc(31))
    assert.equal(short.code, 1)
    assert.match(short.stderr, /exactly 32 bytes.*got 31/)
    const long = await bazil(data, ['sharing', 'add', 'long'], Buffer.alloc(33))
    assert.match(long.stderr, /exactly 32 bytes.*got more/)
    const dup = await bazil(data, ['sharing', 'add', 'friends'], Buffer.alloc(32))
    assert.match(dup.stderr, /already exists/)
    const bad = await bazil(data, ['sharing', 'add', '../x'], Buffer.alloc(32))
    assert.match(bad.stderr, /invalid sharing key name/)
    assert.equal((await bazil(data, ['sharing', 'list'])).stdout, 'default\nfriends\n')
    assert.deepEqual(JSON.parse((await bazil(data, ['sharing', 'list', '--json'])).stdout), ['default', 'friends'])

    const none = await bazil(path.join(dir, 'nowhere'), ['debug', 'pubkey'])
    assert.equal(none.code, 1)
    assert.match(none.stderr, /no bazil data dir at .*run `bazil create`/)
  } finally {
    cleanup()
  }
})

test('import, ls, cat, snapshot, change, export the snapshot, log show/verify', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    const src = path.join(dir, 'src')
    makeSource(src)
    const original = dump(src)
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'myfiles'])).code, 0)
    const dupVol = await bazil(data, ['volume', 'create', 'myfiles'])
    assert.match(dupVol.stderr, /volume "myfiles" already exists/)
    const badShare = await bazil(data, ['volume', 'create', '--sharing=nope', 'other'])
    assert.match(badShare.stderr, /unknown sharing key "nope"/)
    assert.equal((await bazil(data, ['volume', 'list'])).stdout, 'myfiles\tsharing=default\n')

    const imp = await bazil(data, ['volume', 'import', 'myfiles', src])
    assert.equal(imp.code, 0, imp.stderr)
    assert.match(imp.stdout, /imported 4 files, 3 directories, 1 symlinks/)

    assert.equal((await bazil(data, ['volume', 'ls', 'myfiles'])).stdout, 'a/\nempty\nlink\nrun.sh\n')
    const ls = JSON.parse((await bazil(data, ['volume', 'ls', '--json', 'myfiles', '/a'])).stdout)
    assert.deepEqual(ls.map((e: { name: string }) => e.name), ['b', 'hello.txt'])
    assert.equal(ls[1].size, 13)
    const long = (await bazil(data, ['volume', 'ls', '-l', 'myfiles', 'run.sh'])).stdout
    assert.match(long, /^-rwxr-xr-x +10 .* run\.sh\n$/)
    assert.equal((await bazil(data, ['volume', 'cat', 'myfiles', 'a/hello.txt'])).stdout, 'hello, world\n')
    const deep = await bazil(data, ['volume', 'cat', 'myfiles', '/a/b/c/deep.bin'])
    assert.deepEqual(deep.stdoutBuf, Buffer.alloc(300_000, 7))

    assert.equal((await bazil(data, ['volume', 'snapshot', 'create', 'myfiles', 'one'])).code, 0)
    const dupSnap = await bazil(data, ['volume', 'snapshot', 'create', 'myfiles', 'one'])
    assert.equal(dupSnap.code, 1)
    fs.writeFileSync(path.join(src, 'a/hello.txt'), 'hello, again\n')
    assert.equal((await bazil(data, ['volume', 'import', 'myfiles', src])).code, 0)
    assert.equal((await bazil(data, ['volume', 'mv', 'myfiles', 'a/b', 'moved'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'rm', 'myfiles', 'run.sh'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'mkdir', 'myfiles', 'newdir'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'cat', 'myfiles', 'a/hello.txt'])).stdout, 'hello, again\n')
    assert.equal((await bazil(data, ['volume', 'cat', '--snapshot=one', 'myfiles', 'a/hello.txt'])).stdout, 'hello, world\n')
    assert.equal((await bazil(data, ['volume', 'ls', 'myfiles'])).stdout, 'a/\nempty\nlink\nmoved/\nnewdir/\n')
    assert.match((await bazil(data, ['volume', 'snapshot', 'list', 'myfiles'])).stdout, /^one\t\d{4}-/)

    const out = path.join(dir, 'restored')
    const exp = await bazil(data, ['volume', 'export', '--snapshot=one', 'myfiles', out])
    assert.equal(exp.code, 0, exp.stderr)
    assert.deepEqual(dump(out), original)
    const again = await bazil(data, ['volume', 'export', 'myfiles', out])
    assert.match(again.stderr, /is not empty/)

    const log = await bazil(data, ['log', 'show', 'myfiles'])
    assert.equal(log.code, 0, log.stderr)
    const lines = log.stdout.trim().split('\n')
    assert.ok(lines.some((l) => / write \/a\/hello\.txt size=13 hash=/.test(l)), log.stdout)
    assert.ok(lines.some((l) => / rename \/a\/b -> \/moved/.test(l)), log.stdout)
    assert.ok(lines.some((l) => / unlink \/run\.sh/.test(l)), log.stdout)
    const json = JSON.parse((await bazil(data, ['log', 'show', '--json', 'myfiles'])).stdout)
    assert.ok(json.every((r: { writer: string; seq: number }) => r.writer.length === 52 && r.seq >= 1))
    const verify = await bazil(data, ['log', 'verify', 'myfiles'])
    assert.equal(verify.code, 0, verify.stderr + verify.stdout)
    assert.match(verify.stdout, /^ok: 1 writer log\(s\), \d+ entries, \d+ ops verified/)
  } finally {
    cleanup()
  }
})

test('volume errors: one line, non-zero, nothing written', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    await bazil(data, ['volume', 'create', 'v'])
    await bazil(data, ['volume', 'mkdir', 'v', 'd'])
    const before = (await bazil(data, ['log', 'show', '--json', 'v'])).stdout
    const cases: [string[], RegExp][] = [
      [['volume', 'ls', 'nope'], /unknown volume "nope"/],
      [['volume', 'ls', 'v', 'missing'], /missing/],
      [['volume', 'mkdir', 'v', 'd'], /exists/i],
      [['volume', 'mkdir', 'v', 'x/../y'], /\.\./],
      [['volume', 'mv', 'v', 'd', 'd/inner'], /./],
      [['volume', 'rm', 'v', 'd2'], /d2/],
      [['volume', 'cat', 'v', 'd'], /is a directory/],
      [['volume', 'import', 'v', path.join(dir, 'no-such-dir')], /does not exist/],
      [['volume', 'export', '--snapshot=nope', 'v', path.join(dir, 'o')], /no snapshot "nope"/],
      [['log', 'show', '--writer=xyz', 'v'], /invalid writer key "xyz"/]
    ]
    for (const [args, re] of cases) {
      const r = await bazil(data, args)
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`)
      assert.match(r.stderr, re, args.join(' '))
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`)
    }
    assert.equal((await bazil(data, ['log', 'show', '--json', 'v'])).stdout, before)
    assert.ok(!fs.existsSync(path.join(dir, 'o')))
  } finally {
    cleanup()
  }
})

test('log verify names the first bad entry and exits non-zero; log show skips it with a report', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    await bazil(data, ['volume', 'create', 'v'])
    await bazil(data, ['volume', 'mkdir', 'v', 'one'])
    // A block that is not an entry, appended to the writer log itself (signed, so only decoding can catch it).
    const { DataDir } = await import('../src/datadir.js')
    const { Node } = await import('../src/node.js')
    const node = await Node.open(DataDir.open(data))
    const vol = await node.volume('v')
    await vol.log.core.append(Buffer.from('not an entry'))
    await node.close()
    await bazil(data, ['volume', 'mkdir', 'v', 'two'])

    const verify = await bazil(data, ['log', 'verify', 'v'])
    assert.equal(verify.code, 1)
    assert.match(verify.stdout, /FAILED: 1 bad entry .* first: writer \S{52} seq 2: /)
    const show = await bazil(data, ['log', 'show', 'v'])
    assert.equal(show.code, 1)
    assert.match(show.stderr, /entry 2/)
    assert.match(show.stdout, /mkdir \/one/)
    assert.match(show.stdout, /mkdir \/two/)
    // The volume still opens and shows both directories.
    assert.equal((await bazil(data, ['volume', 'ls', 'v'])).stdout, 'one/\ntwo/\n')
  } finally {
    cleanup()
  }
})
