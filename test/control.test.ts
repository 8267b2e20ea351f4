// The typed control API (spec/control.md version 2): every converted op round-trips through a
// real server's control socket; the same ops run in-process when no server runs; an old or
// unknown version, an unknown op and bad arguments are refused with a clear error, leaving
// state untouched, and the server goes on serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { call, callRemote } from '../src/control/client.js'
import { FRAME, FrameReader, connect, encodeFrame, socketPath } from '../src/control/frames.js'
import { OP_ARGS, type Args, type ControlEvent, type Op, type Results } from '../src/control/requests.js'
import { checkRequest } from '../src/control/request-codec.js'
import { encodeKey, generateKeyPair, randomBytes } from '../src/crypto.js'
import { bazil, startServer, tempDir } from './helpers.js'

/** One op through the socket, with the output bytes and events it streamed. */
async function remote<O extends Op>(data: string, op: O, args: Args<O>): Promise<{ result: Results[O]; out: Buffer; events: ControlEvent[] }> {
  const sock = await connect(data)
  assert.ok(sock, 'the server answers on its socket')
  const out: Buffer[] = []
  const events: ControlEvent[] = []
  const result = await callRemote(sock, op, args, { onOutput: (b) => void out.push(b), onEvent: (e) => void events.push(e) })
  return { result, out: Buffer.concat(out), events }
}

/** Sends raw bytes on the socket; the frames the server answers with, parsed. */
async function raw(data: string, bytes: Buffer): Promise<{ type: string; body: string }[]> {
  const reader = new FrameReader()
  const frames: { type: string; body: string }[] = []
  await new Promise<void>((resolve) => {
    const c = net.createConnection(socketPath(data), () => c.write(bytes))
    c.on('data', (d: Buffer) => {
      for (const f of reader.push(d)) frames.push({ type: String.fromCharCode(f.type), body: f.payload.toString() })
    })
    c.on('error', () => resolve())
    c.on('close', () => resolve())
  })
  return frames
}

const request = (obj: unknown): Buffer => encodeFrame(FRAME.request, Buffer.from(JSON.stringify(obj)))

/** A fresh data dir (`bazil create`), with its server running while `fn` runs when `server`; cleaned up after. */
async function withDataDir(server: boolean, fn: (data: string, dir: string, log: () => string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir()
  const data = path.join(dir, 'data')
  try {
    assert.equal((await bazil(data, ['create'])).code, 0)
    if (!server) return await fn(data, dir, () => '')
    const s = await startServer(data)
    try {
      await fn(data, dir, s.log)
    } finally {
      assert.equal(await s.stop('SIGTERM'), 0, s.log())
    }
  } finally {
    cleanup()
  }
}

type Caller = <O extends Op>(op: O, args: Args<O>) => Promise<{ result: Results[O]; out: Buffer; events: ControlEvent[] }>

/** The ops of the identity, peer, writer, conflict, placement, cache, retention and state commands. */
async function identityPeersAndPlacement(data: string, dir: string, r: Caller): Promise<void> {
  const me = (await r('debug.pubkey', {})).result.publicKey
  assert.match(me, /^[a-z0-9]{52}$/)
  const secret = randomBytes(32).toString('base64')
  assert.deepEqual((await r('sharing.add', { name: 'friends', key: secret })).result, { name: 'friends' })
  assert.deepEqual((await r('sharing.list', {})).result.names.sort(), ['default', 'friends'])

  const other = encodeKey(generateKeyPair().publicKey)
  assert.deepEqual((await r('peer.add', { key: other })).result, { key: other, added: true })
  assert.deepEqual((await r('peer.location.set', { key: other, location: '127.0.0.1:9' })).result, { key: other, location: '127.0.0.1:9' })
  assert.deepEqual((await r('peer.storage', { key: other, store: 'local', allow: true })).result, { key: other, store: 'local', allow: true })
  const allowed = (await r('peer.volume', { key: other, volume: 'v', allow: true })).result
  assert.equal(allowed.changed, true)
  const [row] = (await r('peer.list', {})).result.peers
  assert.deepEqual({ ...row, lastSeen: null }, { key: other, location: '127.0.0.1:9', storage: true, volumes: ['v'], connected: false, lastSeen: null })

  const writers = (await r('volume.writers', { volume: 'v' })).result
  assert.equal(writers.volume, 'v')
  assert.deepEqual(writers.writers.map((w) => [w.authorised, w.root]), [[true, true]])
  assert.match((await r('volume.writers.remove', { volume: 'v', key: other })).result.message, /no authorised log of node .* here/)
  assert.deepEqual((await r('volume.conflicts', { volume: 'v' })).result, { volume: 'v', files: [], attributes: [] })
  await assert.rejects(r('volume.resolve', { volume: 'v', path: '/nope', keep: 'mine' }), /nope/)

  const copies = (await r('volume.copies', { volume: 'v', copies: 2 })).result
  assert.deepEqual([copies.copies, copies.set, copies.keepers], [2, true, []])
  const where = (await r('where', { volume: 'v', path: '/' })).result
  assert.deepEqual([where.path, where.copiesWanted], ['/', 2])
  assert.deepEqual((await r('volume.du', { volume: 'v' })).result.path, '/')
  const add = (await r('volume.storage.add', { volume: 'v', store: `peerkey:${other}` })).result
  assert.deepEqual(add, { volume: 'v', peer: other, added: true, state: 'not-connected' })
  assert.deepEqual((await r('volume.storage.rm', { volume: 'v', store: `peerkey:${other}` })).result, { volume: 'v', peer: other, stillUsed: false, server: true })

  const file = path.join(dir, 'v.state')
  const saved = (await r('volume.state.save', { volume: 'v', file })).result
  assert.equal(saved.bytes, fs.statSync(file).size)
  await r('volume.snapshot.create', { volume: 'v', name: 'gone' })
  assert.deepEqual((await r('volume.snapshot.rm', { volume: 'v', name: 'gone' })).result, { volume: 'v', name: 'gone' })
  assert.deepEqual((await r('volume.snapshot.keep', { volume: 'v', last: 3 })).result, { volume: 'v', rule: { last: 3, hourly: 0, daily: 0, weekly: 0 }, text: 'keep last 3' })
  assert.equal((await r('volume.snapshot.keep', { volume: 'v', none: true })).result.rule, null)
  const cache = (await r('cache.size', { size: '1GiB' })).result
  assert.deepEqual([cache.set, cache.status.budgetBytes], ['1GiB', 1024 ** 3])
  assert.equal((await r('cache.size', {})).result.set, null)

  const removed = (await r('peer.remove', { key: other })).result
  assert.equal(removed.key, other)
  assert.equal(removed.revoked.length, 1)
  assert.deepEqual((await r('peer.list', {})).result.peers, [])
}

test('every op of the typed API round-trips through the control socket', async () => {
  await withDataDir(true, async (data, dir) => {
    const seen = new Set<Op>()
    const r = async <O extends Op>(op: O, args: Args<O>) => {
      seen.add(op)
      return remote(data, op, args)
    }
    const st = (await r('status', {})).result
    assert.equal(st.server.running, true)
    assert.equal(st.dataDir, data)
    assert.deepEqual(st.volumes, [])
    assert.deepEqual((await r('volume.create', { name: 'v' })).result, { name: 'v', sharing: 'default' })
    const list = (await r('volume.list', {})).result.volumes
    assert.deepEqual(list.map((v) => [v.name, v.sharing]), [['v', 'default']])
    assert.deepEqual((await r('volume.mkdir', { volume: 'v', path: '/a/b', parents: true })).result, { path: '/a/b', created: true })
    assert.deepEqual((await r('volume.mkdir', { volume: 'v', path: '/a/b', parents: true })).result, { path: '/a/b', created: false })
    // A file to read.
    const src = path.join(dir, 'src')
    fs.mkdirSync(src)
    const content = Buffer.alloc(300_000, 'x')
    fs.writeFileSync(path.join(src, 'f'), content)
    assert.equal((await r('volume.import', { volume: 'v', src, to: '/a' })).result.files, 1)
    const ls = (await r('volume.ls', { volume: 'v', path: '/a' })).result.entries
    assert.deepEqual(ls.map((e) => [e.name, e.kind]), [['b', 'dir'], ['f', 'file']])
    assert.equal(ls[1]!.size, content.length)
    assert.match(ls[1]!.hash ?? '', /^[0-9a-f]{64}$/)
    const cat = await r('volume.cat', { volume: 'v', path: '/a/f' })
    assert.ok(cat.out.equals(content), 'the content arrives whole as output frames')
    assert.deepEqual(cat.result, { path: '/a/f', size: content.length })
    assert.deepEqual((await r('volume.snapshot.create', { volume: 'v', name: 's1' })).result, { volume: 'v', name: 's1' })
    assert.deepEqual((await r('volume.snapshot.list', { volume: 'v' })).result.snapshots.map((s) => s.name), ['s1'])
    assert.deepEqual((await r('volume.mv', { volume: 'v', from: '/a/f', to: '/a/g' })).result, { from: '/a/f', to: '/a/g' })
    const mvOver = await remote(data, 'volume.mv', { volume: 'v', from: '/a/g', to: '/a/b' }).catch((e: Error) => e)
    assert.match(String(mvOver), /\/a\/b already exists: use --force/)
    assert.deepEqual((await r('volume.rm', { volume: 'v', path: '/a', recursive: true })).result, { removed: 3 })
    assert.deepEqual((await r('volume.ls', { volume: 'v' })).result.entries, [])
    // The snapshot still has it.
    assert.equal((await r('volume.ls', { volume: 'v', path: '/a', snapshot: 's1' })).result.entries.length, 2)
    const rows = (await r('log.show', { volume: 'v' })).result
    assert.equal(rows.bad, 0)
    assert.ok(rows.rows.some((x) => x.op === 'rename' || x.op === 'mv' || String(x.to ?? '') === '/a/g'), JSON.stringify(rows.rows))
    const ver = (await r('log.verify', { volume: 'v' })).result
    assert.equal(ver.ok, true)
    assert.ok(ver.entries >= 4, JSON.stringify(ver))
    // History ops (spec/history.md; two peers in test/history.test.ts): /a/f became /a/g, then went.
    const hist = (await r('volume.history', { volume: 'v', path: '/a/g' })).result
    assert.equal(hist.exists, false)
    assert.deepEqual(hist.versions.map((x) => [x.op, x.path]), [['write', '/a/f'], ['rename', '/a/f'], ['delete', '/a/g']])
    const hash = hist.versions[0]!.hash!
    assert.deepEqual((await r('volume.restore', { volume: 'v', path: '/a/g', version: hash.slice(0, 8) })).result, { path: '/a/g', size: content.length, hash, created: true, previous: null, unchanged: false })
    assert.deepEqual((await r('log.blame', { volume: 'v', path: '/a' })).result.rows.map((x) => [x.path, x.changes]), [['/a/g', 1]])
    await identityPeersAndPlacement(data, dir, r)
    // Import, export and gc stream their progress as status events before the result.
    const imported = await r('volume.import', { volume: 'v', src, to: '/c' })
    assert.deepEqual(imported.result, { files: 1, dirs: 0, symlinks: 0, links: 0, special: 0, bytes: content.length, skipped: [] })
    const last = imported.events.at(-1)!
    assert.deepEqual(last, { ...last, message_type: 'status', percent_done: 1, files_done: 1, files_total: 1, bytes_done: content.length, bytes_total: content.length })
    const exported = await r('volume.export', { volume: 'v', dest: path.join(dir, 'out') })
    assert.deepEqual([exported.result.files, exported.result.bytes, exported.result.skipped], [2, 2 * content.length, []])
    assert.ok(fs.readFileSync(path.join(dir, 'out', 'c', 'f')).equals(content))
    assert.equal((exported.events.at(-1) as Record<string, unknown>).percent_done, 1)
    // Pins: with wait, the server's fetch followed to its end (here, all held already).
    const pinned = await r('pin', { volume: 'v', paths: ['/c'], wait: true })
    assert.deepEqual(pinned.result, { lines: ['pinned volume v /c: fetched'], waited: true })
    const pinEnd = pinned.events.at(-1) as Record<string, unknown>
    assert.deepEqual([pinEnd.percent_done, pinEnd.files_done, pinEnd.files_total], [1, 1, 1], JSON.stringify(pinned.events))
    assert.deepEqual((await r('pin.list', {})).result.pins.map((x) => [x.volume, x.path, x.files, x.heldFiles]), [['v', '/c', 1, 1]])
    assert.deepEqual((await r('unpin', { volume: 'v', paths: ['/c'] })).result, { lines: ['unpinned volume v /c'] })
    const gc = await r('volume.gc', { volume: 'v', dryRun: true, graceMs: 0 })
    assert.deepEqual([gc.result.dryRun, gc.result.volumes, gc.result.snapshotsRemoved], [true, ['v'], []])
    const phases = gc.events.map((e) => [(e as Record<string, unknown>).phase, (e as Record<string, unknown>).percent_done])
    assert.deepEqual([phases[0], phases.at(-1)], [['walk', 0], ['done', 1]], JSON.stringify(gc.events))
    // A user's mistake comes back as one line, the server still serving.
    await assert.rejects(remote(data, 'volume.cat', { volume: 'v', path: '/nope' }), /nope/)
    await assert.rejects(remote(data, 'volume.ls', { volume: 'nosuch' }), /nosuch/)
    await assert.rejects(remote(data, 'volume.unmount', { mountpoint: path.join(dir, 'mnt') }), /is not a bazil mount of this server/)
    seen.add('volume.unmount')
    // This server runs without --web: web.url says how to turn it on (with it: test/web.test.ts).
    await assert.rejects(remote(data, 'web.url', {}), /the web view is off: start the server with `bazil server run --web=127.0.0.1:PORT`/)
    seen.add('web.url')
    // Mounts (FUSE) round-trip in test/server.test.ts; sync and watch (two peers) in test/control-sync.test.ts.
    // `create` makes the data dir, so it runs in the caller's process (below).
    // connect (two peers) in test/join-net.test.ts and test/join-state.test.ts.
    const elsewhere: Op[] = ['volume.mount', 'volume.sync', 'watch', 'create', 'volume.connect']
    assert.deepEqual(Object.keys(OP_ARGS).filter((op) => !seen.has(op as Op) && !elsewhere.includes(op as Op)), [], 'every op is exercised')
  })
})

test('the same ops run in-process when no server runs; server-only ops say how to start one', async () => {
  await withDataDir(false, async (data, dir) => {
    await call({ dataDir: data }, 'volume.create', { name: 'v' })
    await call({ dataDir: data }, 'volume.mkdir', { volume: 'v', path: '/d' })
    const { entries } = await call({ dataDir: data }, 'volume.ls', { volume: 'v' })
    assert.deepEqual(entries.map((e) => e.path), ['/d'])
    const st = await call({ dataDir: data }, 'status', {})
    assert.equal(st.server.running, false)
    assert.deepEqual(st.volumes, ['v'])
    await assert.rejects(call({ dataDir: data, label: 'bazil volume mount' }, 'volume.mount', { volume: 'v', mountpoint: dir }), /`bazil volume mount` needs a running server: start `bazil server run`/)
    // `create` makes a data dir before there is one (a second time is the user's mistake).
    const fresh = path.join(dir, 'fresh')
    const made = await call({ dataDir: fresh }, 'create', {})
    assert.equal(made.dataDir, fresh)
    assert.equal((await call({ dataDir: fresh }, 'debug.pubkey', {})).publicKey, made.publicKey)
    await assert.rejects(call({ dataDir: fresh }, 'create', {}), /a data dir already exists/)
    // The CLI speaks the same API.
    assert.equal((await bazil(data, ['volume', 'ls', 'v'])).stdout, 'd/\n')
  })
})

test('an old or unknown version, an unknown op and bad arguments are refused, state untouched', async () => {
  await withDataDir(true, async (data, dir, log) => {
    await remote(data, 'volume.create', { name: 'v' })
    const before = (await bazil(data, ['log', 'show', '--json', 'v'])).stdout
    const volumesBefore = fs.readdirSync(data).sort()

    // A version 1 client (argv) is told in its own terms (a stderr frame, exit code 2) to upgrade.
    const v1 = await raw(data, request({ version: 1, argv: ['volume', 'mkdir', 'v', 'x'], cwd: dir }))
    assert.deepEqual(v1.map((f) => f.type), ['E', 'X'])
    assert.match(v1[0]!.body, /^bazil: bad control request: control request version 1 comes from an older bazil client: this server speaks version 2; run the same bazil as the server \(upgrade the client\)\n$/)
    assert.deepEqual(JSON.parse(v1[1]!.body), { code: 2 })

    const refused = async (req: unknown, re: RegExp): Promise<void> => {
      const frames = await raw(data, request(req))
      assert.deepEqual(frames.map((f) => f.type), ['X'], JSON.stringify(req))
      const end = JSON.parse(frames[0]!.body) as { ok: boolean; error: { kind: string; message: string } }
      assert.equal(end.ok, false)
      assert.equal(end.error.kind, 'request')
      assert.match(end.error.message, re)
      assert.ok(!end.error.message.includes('\n'), 'one line')
    }
    await refused({ version: 3, op: 'status', args: {} }, /^control request version 3 is not supported \(this server speaks version 2\)$/)
    await refused({ op: 'status', args: {} }, /version missing is not supported/)
    await refused({ version: 2, op: 'volume.format', args: {} }, /^unknown control op "volume.format" \(this server knows: status, /)
    await refused({ version: 2, op: 'volume.mkdir', args: { volume: 'v' } }, /^volume.mkdir: missing argument "path"$/)
    await refused({ version: 2, op: 'volume.mkdir', args: { volume: 'v', path: '/x', parents: 'yes' } }, /^volume.mkdir: argument "parents" must be a boolean, got "yes"$/)
    await refused({ version: 2, op: 'volume.mkdir', args: { volume: 'v', path: '/x', mode: 511 } }, /^volume.mkdir: unknown argument "mode" \(it takes: volume, path, parents\)$/)
    await refused({ version: 2, op: 'volume.create', args: { name: 'w', sharing: 7 } }, /argument "sharing" must be a string/)
    await refused({ version: 2, op: 'volume.mount', args: { volume: 'v', mountpoint: 'rel/dir' } }, /argument "mountpoint" must be an absolute path/)
    await refused({ version: 2, op: 'volume.sync', args: { volume: 'v', peer: 'k', timeoutMs: -1 } }, /"timeoutMs" must be a non-negative integer/)
    await refused({ version: 2, op: 'cli.run', args: { argv: ['status'], cwd: '/' } }, /^unknown control op "cli.run"/)
    await refused({ version: 2, op: 'pin', args: { volume: 'v', paths: ['/a', 3] } }, /"paths" must be a list of strings/)
    await refused({ version: 2, op: 'peer.storage', args: { key: 'k', store: 'local', allow: 'yes' } }, /"allow" must be a boolean/)
    await refused({ version: 2, op: 'volume.copies', args: { volume: 'v', copies: 1.5 } }, /"copies" must be a non-negative integer/)
    await refused({ version: 2, op: 'sharing.add', args: { name: 'x' } }, /missing argument "key"/)
    await refused({ version: 2, op: 'volume.state.save', args: { volume: 'v', file: 'rel.state' } }, /"file" must be an absolute path/)
    await refused({ version: 2, op: 'status', args: [] }, /"args" must be an object/)
    await refused({ version: 2, op: 'status', args: {}, extra: 1 }, /unknown field "extra"/)
    await refused([1, 2], /must be a JSON object/)
    const notJson = await raw(data, encodeFrame(FRAME.request, Buffer.from('{nope')))
    assert.match(JSON.parse(notJson[0]!.body).error.message, /^control request is not JSON$/)
    const notRequest = await raw(data, encodeFrame(FRAME.stdout, Buffer.from('{}')))
    assert.match(JSON.parse(notRequest[0]!.body).error.message, /the first control frame must be a request/)

    // Arguments only the op can judge: refused before anything changes.
    const other = encodeKey(generateKeyPair().publicKey)
    await assert.rejects(remote(data, 'volume.copies', { volume: 'v', copies: 0 }), /invalid copies "0": give an integer 1\.\.16/)
    await assert.rejects(remote(data, 'peer.storage', { key: other, store: 'remote', allow: true }), /unknown store "remote"/)
    await assert.rejects(remote(data, 'peer.add', { key: (await remote(data, 'debug.pubkey', {})).result.publicKey }), /this node's own key/)
    await assert.rejects(remote(data, 'volume.resolve', { volume: 'v', path: '/x', keep: 'bogus' }), /--keep must be mine, theirs, both/)
    await assert.rejects(remote(data, 'sharing.add', { name: 'short', key: randomBytes(31).toString('base64') }), /exactly 32 bytes, got 31/)
    await assert.rejects(remote(data, 'volume.snapshot.keep', { volume: 'v', last: 200000 }), /not a count/)
    await assert.rejects(remote(data, 'volume.snapshot.keep', { volume: 'v', last: 1, none: true }), /--none with counts/)
    await assert.rejects(remote(data, 'volume.storage.add', { volume: 'v', store: `peerkey:${other}` }), /unknown peer/)
    // Nothing ran: no directory made, no volume created, no log entry written.
    assert.deepEqual((await remote(data, 'volume.ls', { volume: 'v' })).result.entries, [])
    assert.deepEqual((await remote(data, 'volume.list', {})).result.volumes.map((v) => v.name), ['v'])
    assert.equal((await bazil(data, ['log', 'show', '--json', 'v'])).stdout, before)
    assert.deepEqual(fs.readdirSync(data).sort(), volumesBefore)
    // (Reading the copy rule writes the placement file: after the listing.)
    assert.equal((await remote(data, 'volume.copies', { volume: 'v' })).result.set, false)
    assert.deepEqual((await remote(data, 'peer.list', {})).result.peers, [])
    assert.deepEqual((await remote(data, 'sharing.list', {})).result.names, ['default'])
    assert.equal((await remote(data, 'volume.snapshot.keep', { volume: 'v' })).result.rule, null)
    // The client checks a request the same way before it sends it.
    assert.throws(() => checkRequest({ version: 2, op: 'volume.rm', args: { volume: 'v' } }), /missing argument "path"/)
    assert.match(log(), /bad control request: unknown control op/)
  })
})
