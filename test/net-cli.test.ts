// peer and dht commands: the registry they write, their one-line errors, a working DHT node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { PeerRegistry, parseBootstrap, readNetConfig } from '../src/net/index.js'
import { runInProcess, tempDir } from './helpers.js'
import { addPeer, startPeer } from './net-helpers.js'
import fs from 'node:fs'

const run = runInProcess

test('peer commands edit the registry and reject bad input with one line', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const white = DataDir.create(path.join(dir, 'white'))
    const black = DataDir.create(path.join(dir, 'black'))
    white.addVolume({ version: 1, name: 'myfiles', id: randomBytes(32).toString('hex'), sharing: 'default', created: Date.now() })
    const BLACK = encodeKey(black.publicKey)
    const w = (...args: string[]): ReturnType<typeof run> => run(white.root, args)

    assert.match((await w('peer', 'add', BLACK)).stdout, /added peer/)
    assert.match((await w('peer', 'add', black.publicKey.toString('hex'))).stdout, /already added/)
    for (const [args, re] of [
      [['peer', 'add', 'not-a-key'], /invalid peer key "not-a-key"/],
      [['peer', 'add', encodeKey(white.publicKey)], /this node's own key/],
      [['peer', 'location', 'set', BLACK, 'nohost'], /expected HOST:PORT/],
      [['peer', 'location', 'set', BLACK, '10.0.0.1:70000'], /port must be 1-65535/],
      [['peer', 'location', 'set', BLACK, '[::1]:5'], /IPv6/],
      [['peer', 'location', 'set', encodeKey(randomBytes(32)), '10.0.0.1:5'], /unknown peer/],
      [['peer', 'storage', 'allow', BLACK, 'elsewhere'], /unknown store "elsewhere"/],
      [['peer', 'storage', 'permit', BLACK, 'local'], /expected "allow" or "deny"/],
      [['peer', 'volume', 'allow', BLACK, 'nosuch'], /unknown volume "nosuch"/],
      [['peer', 'remove', encodeKey(randomBytes(32))], /unknown peer/]
    ] as [string[], RegExp][]) {
      const r = await w(...args)
      assert.equal(r.code, 1, args.join(' '))
      assert.match(r.stderr, re)
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    }

    // --json: the op's result, for scripts.
    assert.deepEqual(JSON.parse((await w('peer', 'location', 'set', '--json', BLACK, '127.0.0.1:49999')).stdout), { key: BLACK, location: '127.0.0.1:49999' })
    assert.equal((await w('peer', 'storage', 'allow', BLACK, 'local')).code, 0)
    assert.equal((await w('peer', 'volume', 'allow', BLACK, 'myfiles')).code, 0)
    const list = JSON.parse((await w('peer', 'list', '--json')).stdout)
    assert.deepEqual(list, [{ key: BLACK, location: '127.0.0.1:49999', storage: true, volumes: ['myfiles'], connected: null, lastSeen: null }])
    assert.match((await w('peer', 'list')).stdout, /server not running\tnever seen\tlocation=127.0.0.1:49999\tstorage=allowed\tvolumes=myfiles/)
    const rec = PeerRegistry.load(white.root).get(black.publicKey)
    assert.equal(rec?.volumes[0], white.volume('myfiles').id)

    assert.equal((await w('peer', 'volume', 'deny', BLACK, 'myfiles')).code, 0)
    assert.equal((await w('peer', 'storage', 'deny', BLACK, 'local')).code, 0)
    assert.deepEqual(PeerRegistry.load(white.root).get(black.publicKey)?.volumes, [])
    assert.equal((await w('peer', 'remove', BLACK)).code, 0)
    assert.match((await w('peer', 'list')).stdout, /no peers/)

    // A damaged registry or config is named, not a stack trace.
    fs.writeFileSync(PeerRegistry.path(white.root), '{"version": 7, "peers": []}')
    assert.match((await w('peer', 'list')).stderr, /version 7 is not supported/)
    fs.writeFileSync(path.join(white.root, 'config.json'), '{"bootstrap": ["127.0.0.1:1"], "firewaled": false}')
    assert.throws(() => readNetConfig(white.root), /unknown setting "firewaled"/)
    fs.writeFileSync(path.join(white.root, 'config.json'), '{"bootstrap": ["127.0.0.1:49737"], "firewalled": false, "port": 4000}')
    assert.deepEqual(readNetConfig(white.root), { bootstrap: [{ host: '127.0.0.1', port: 49737 }], firewalled: false, port: 4000 })
    assert.deepEqual(parseBootstrap('127.0.0.1:1, dht.example:2'), [{ host: '127.0.0.1', port: 1 }, { host: 'dht.example', port: 2 }])
  } finally {
    cleanup()
  }
})

async function freeUdpPort(): Promise<number> {
  const sock = dgram.createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  const { port } = sock.address()
  await new Promise<void>((r) => sock.close(() => r()))
  return port
}

test('bazil dht run is a bootstrap node peers find each other through; SIGTERM stops it', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const port = await freeUdpPort()
  const main = new URL('../src/cli/main.js', import.meta.url).href
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `const m = await import(${JSON.stringify(main)}); await m.main(['dht', 'run', '--port=${port}'])`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  try {
    const t0 = Date.now()
    while (!stdout.includes('DHT bootstrap node') && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50))
    assert.match(stdout, new RegExp(`--bootstrap=127\\.0\\.0\\.1:${port}`))
    const bootstrap = [{ host: '127.0.0.1', port }]
    const a = await startPeer(dir, 'a', { bootstrap })
    const b = await startPeer(dir, 'b', { bootstrap })
    try {
      await addPeer(a, b)
      await addPeer(b, a)
      await a.net.waitConnected(b.key, 30_000)
      await b.net.waitConnected(a.key, 30_000)
    } finally {
      await b.stop()
      await a.stop()
    }
    // A second node on the same port says so and exits (no half-open socket keeping it alive).
    const second = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `const m = await import(${JSON.stringify(main)}); await m.main(['dht', 'run', '--port=${port}'])`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let secondErr = ''
    second.stderr.on('data', (d: Buffer) => (secondErr += d.toString()))
    const secondCode = await new Promise<number | null>((r) => second.on('exit', (code) => r(code)))
    assert.equal(secondCode, 1)
    assert.match(secondErr, new RegExp(`UDP port ${port} is in use`))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  } finally {
    child.kill('SIGKILL')
    cleanup()
  }
})

test('inside a server, peer commands take effect at once and peer list shows who is connected', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  // What the server hands a command: its node, data dir and (ServerHandle.net) network.
  const inServer = (p: typeof a): unknown => ({ node: p.node, dir: p.node.dir, net: p.net, pid: process.pid, startedAt: Date.now(), log: () => {} })
  try {
    assert.equal((await run(a.root, ['peer', 'add', encodeKey(b.key)], inServer(a))).code, 0)
    assert.equal((await run(b.root, ['peer', 'add', encodeKey(a.key)], inServer(b))).code, 0)
    assert.equal((await run(b.root, ['peer', 'location', 'set', encodeKey(a.key), a.location()], inServer(b))).code, 0)
    await b.net.waitConnected(a.key, 20_000)
    await a.net.waitConnected(b.key, 20_000)
    const [row] = JSON.parse((await run(a.root, ['peer', 'list', '--json'], inServer(a))).stdout)
    assert.equal(row.connected, true)
    assert.ok(Date.parse(row.lastSeen) > 0)
    assert.match((await run(a.root, ['peer', 'list'], inServer(a))).stdout, /\tconnected\tlast seen /)
    // Removing a peer disconnects it.
    assert.equal((await run(a.root, ['peer', 'remove', encodeKey(b.key)], inServer(a))).code, 0)
    await a.net.settled()
    const { until } = await import('./net-helpers.js')
    await until('b is dropped', () => !b.net.connected(a.key))
  } finally {
    await b.stop()
    await a.stop()
    cleanup()
  }
})
