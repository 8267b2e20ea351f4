// The server: one per data dir, a 0600 control socket, commands routed through it, clean stop.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { bazil, startServer, tempDir } from './helpers.js'

test('commands route through a running server; a second server is refused; SIGTERM stops cleanly', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    const mountless = await bazil(data, ['volume', 'mount', 'v', dir])
    assert.equal(mountless.code, 1)
    assert.match(mountless.stderr, /needs a running server: start `bazil server run`/)
    const down = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
    assert.equal(down.server.running, false)

    const server = await startServer(data)
    try {
      const sock = path.join(data, 'control.sock')
      assert.equal(fs.statSync(sock).mode & 0o777, 0o600)

      const second = await bazil(data, ['server', 'run'])
      assert.equal(second.code, 1)
      assert.match(second.stderr, /already running/)

      // Commands that need the corestore work while the server holds it: they run in the server.
      assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
      const src = path.join(dir, 'src')
      fs.mkdirSync(src)
      fs.writeFileSync(path.join(src, 'greeting'), 'hello, world\n')
      // A relative SRCDIR is resolved against the client's working directory, not the server's.
      const rel = path.relative(process.cwd(), src)
      const imp = await bazil(data, ['volume', 'import', 'v', rel])
      assert.equal(imp.code, 0, imp.stderr)
      assert.equal((await bazil(data, ['volume', 'cat', 'v', 'greeting'])).stdout, 'hello, world\n')
      // Output of many writes (lines, a big file) arrives whole and in order before the exit code.
      const many = path.join(dir, 'many')
      fs.mkdirSync(many)
      const names = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, '0')}`)
      for (const n of names) fs.writeFileSync(path.join(many, n), n)
      const big = crypto.randomBytes(3_000_000)
      fs.writeFileSync(path.join(many, 'zbig'), big)
      assert.equal((await bazil(data, ['volume', 'import', 'v', many, '--to=/many'])).code, 0)
      assert.equal((await bazil(data, ['volume', 'ls', 'v', 'many'])).stdout, [...names, 'zbig'].join('\n') + '\n')
      const catBig = await bazil(data, ['volume', 'cat', 'v', 'many/zbig'])
      assert.ok(catBig.stdoutBuf.equals(big), `the big file arrives whole (${catBig.stdoutBuf.length} of ${big.length} bytes)`)
      const missing = await bazil(data, ['volume', 'cat', 'v', 'nope'])
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /^bazil: .*nope/)

      const up = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
      assert.equal(up.server.running, true)
      assert.deepEqual(up.volumes, ['v'])

      // Garbage on the control socket is answered and logged; the server stays up.
      for (const junk of [Buffer.from('hello'), Buffer.from([0x52, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x52, 0, 0, 0, 3, 1, 2, 3])]) {
        await new Promise<void>((resolve) => {
          const c = net.createConnection(sock, () => c.end(junk))
          c.on('error', () => resolve())
          c.on('close', () => resolve())
          c.resume()
        })
      }
      assert.equal((await bazil(data, ['volume', 'ls', 'v'])).stdout, 'greeting\nmany/\n')
    } finally {
      const code = await server.stop('SIGTERM')
      assert.equal(code, 0, server.log())
    }
    assert.ok(!fs.existsSync(path.join(data, 'control.sock')))
    // After the server stops, the same commands open the data dir directly.
    assert.equal((await bazil(data, ['volume', 'cat', 'v', 'greeting'])).stdout, 'hello, world\n')
  } finally {
    cleanup()
  }
})

test('a stale socket left by a killed server does not block the next start', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    const first = await startServer(data)
    await first.stop('SIGKILL')
    assert.ok(fs.existsSync(path.join(data, 'control.sock')))
    const status = await bazil(data, ['status'])
    assert.match(status.stdout, /server: not running/)
    const second = await startServer(data)
    assert.equal(await second.stop('SIGINT'), 0)
  } finally {
    cleanup()
  }
})

const hasFuse = fs.existsSync('/dev/fuse')
if (!hasFuse) console.warn('\n*** /dev/fuse is missing: SKIPPING the server mount tests ***\n')

function isMounted(mp: string): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mp)
}

function sh(script: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    import('node:child_process').then(({ execFile }) => {
      execFile('sh', ['-c', script], (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }))
    })
  })
}

test('mount through the server; stop and start: all there and mounted again; kill -9 after fsync: data kept', { skip: !hasFuse }, async () => {
  const { dir, cleanup } = tempDir()
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  let server = null as Awaited<ReturnType<typeof startServer>> | null
  try {
    const data = path.join(dir, 'data')
    await bazil(data, ['create'])
    server = await startServer(data)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    const m = await bazil(data, ['volume', 'mount', 'v', mnt])
    assert.equal(m.code, 0, m.stderr + server.log())
    assert.ok(isMounted(mnt))
    // The same volume on the same path again: it says so and succeeds (issue 14 defect 2) ...
    const again = await bazil(data, ['volume', 'mount', 'v', mnt])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(again.stdout, `volume "v" is already mounted at ${mnt}\n`)
    // ... another volume on that path is refused.
    assert.equal((await bazil(data, ['volume', 'create', 'w'])).code, 0)
    const other = await bazil(data, ['volume', 'mount', 'w', mnt])
    assert.equal(other.code, 1)
    assert.match(other.stderr, /already a bazil mount \(volume v\)/)
    // The same volume and path with other options: refused, naming the way to change them.
    const otherOpts = await bazil(data, ['volume', 'mount', '--atime', 'v', mnt])
    assert.equal(otherOpts.code, 1)
    assert.match(otherOpts.stderr, /already mounted at .* without options: unmount it first .* to mount it with --atime/)
    // A second volume with --atime: kept in mounts.json, shown by status, restored with it.
    const mnt2 = path.join(dir, 'mnt2')
    fs.mkdirSync(mnt2)
    const a = await bazil(data, ['volume', 'mount', '--atime', 'w', mnt2])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(a.stdout, `mounted volume "w" at ${mnt2} (reads record atime)\n`)
    const st = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
    assert.deepEqual(st.mounts, [{ volume: 'v', mountpoint: mnt }, { volume: 'w', mountpoint: mnt2, atime: true }])

    const w = await sh(`mkdir -p "${mnt}/docs" && echo 'hello, world' > "${mnt}/docs/greeting" && sync "${mnt}/docs/greeting"`)
    assert.equal(w.code, 0, w.out)
    assert.equal((await bazil(data, ['volume', 'cat', 'v', 'docs/greeting'])).stdout, 'hello, world\n')
    // A change by another path (the CLI) shows in the mount without remounting.
    assert.equal((await bazil(data, ['volume', 'mkdir', 'v', 'from-cli'])).code, 0)
    await new Promise((r) => setTimeout(r, 1200)) // the kernel's attr/entry cache: 1 s
    assert.match((await sh(`ls "${mnt}"`)).out, /from-cli/)

    assert.equal(await server.stop('SIGTERM'), 0, server.log())
    assert.ok(!isMounted(mnt), 'SIGTERM unmounts')

    server = await startServer(data)
    assert.ok(isMounted(mnt), `remounted after restart:\n${server.log()}`)
    const st2 = JSON.parse((await bazil(data, ['status', '--json'])).stdout)
    assert.deepEqual(st2.mounts.find((m: { volume: string }) => m.volume === 'w'), { volume: 'w', mountpoint: mnt2, atime: true }, 'remounted with --atime')
    assert.equal((await bazil(data, ['volume', 'unmount', mnt2])).code, 0)
    // The restart remounted it: mounting it again, as a user would, says so and succeeds.
    const remount = await bazil(data, ['volume', 'mount', 'v', mnt])
    assert.equal(remount.code, 0, remount.stderr)
    assert.match(remount.stdout, /already mounted/)
    assert.equal((await sh(`cat "${mnt}/docs/greeting"`)).out, 'hello, world\n')

    const f = await sh(`echo 'fsynced before the crash' > "${mnt}/docs/crash" && sync "${mnt}/docs/crash"`)
    assert.equal(f.code, 0, f.out)
    await server.stop('SIGKILL')
    server = await startServer(data)
    assert.ok(isMounted(mnt), server.log())
    const got = (await sh(`cat "${mnt}/docs/crash"`)).out
    assert.equal(got, 'fsynced before the crash\n', server.log())
    const u = await bazil(data, ['volume', 'unmount', mnt])
    assert.equal(u.code, 0, u.stderr)
    assert.ok(!isMounted(mnt))
  } finally {
    if (server) await server.stop('SIGTERM')
    if (isMounted(mnt)) await sh(`fusermount -uz "${mnt}"`)
    cleanup()
  }
})
