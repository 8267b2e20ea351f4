// Peers on a loopback DHT testnet: discovery by key, reconnection, direct locations, the firewall.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import createTestnet from '@hyperswarm/testnet'
import { tempDir } from './helpers.js'
import { addPeer, startPeer, until, sleep } from './net-helpers.js'

test('two peers find each other by public key alone and reconnect after a restart', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const testnet = await createTestnet(4, { host: '127.0.0.1' })
  const a = await startPeer(dir, 'a', { bootstrap: testnet.bootstrap })
  const b = await startPeer(dir, 'b', { bootstrap: testnet.bootstrap })
  try {
    // Only a knows b at first: b's firewall refuses a until b adds it.
    await addPeer(a, b)
    await sleep(500)
    assert.equal(a.net.connected(b.key), false)
    await addPeer(b, a)
    let t0 = Date.now()
    await a.net.waitConnected(b.key, 30_000)
    await b.net.waitConnected(a.key, 30_000)
    const firstMs = Date.now() - t0
    const [st] = a.net.peers()
    assert.equal(st.connected, true)
    assert.equal(typeof st.lastSeen, 'number')
    assert.equal(st.location, undefined)

    const down = new Promise<void>((r) => a.net.once('peer-disconnected', () => r()))
    await b.stop()
    await down
    assert.equal(a.net.connected(b.key), false)
    // a recorded when it last saw b
    const { PeerRegistry } = await import('../src/net/index.js')
    assert.ok((PeerRegistry.load(a.root).get(b.key)?.lastSeen ?? 0) > 0)
    t0 = Date.now()
    await b.restart()
    await b.net.waitConnected(a.key, 30_000)
    await a.net.waitConnected(b.key, 30_000)
    const againMs = Date.now() - t0
    process.stderr.write(`# discovery ${firstMs} ms, reconnect after restart ${againMs} ms\n`)
  } finally {
    await b.stop()
    await a.stop()
    await testnet.destroy()
    cleanup()
  }
})

test('peer location set connects directly, with no DHT at all; unknown keys are refused', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  // No bootstrap nodes: the only way to meet is the address.
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  const c = await startPeer(dir, 'c', { bootstrap: [] })
  try {
    await addPeer(a, b) // a knows b's key but not where it is
    await addPeer(b, a, { location: a.location() })
    await b.net.waitConnected(a.key, 20_000)
    await a.net.waitConnected(b.key, 20_000)
    assert.equal(b.net.peers()[0].location, a.location())

    // c knows where a is, but a never added c.
    await addPeer(c, a, { location: a.location() })
    await assert.rejects(c.net.waitConnected(a.key, 3000), /not reachable within 3 s/)
    assert.equal(a.net.connected(c.key), false)
    const { encodeKey } = await import('../src/crypto.js')
    assert.ok(a.lines.some((l) => l.includes(`refused a connection from unknown node ${encodeKey(c.key)}`)), 'a logs the refusal')

    // Once a adds c, c's retry gets in.
    await addPeer(a, c)
    await c.net.waitConnected(a.key, 20_000)
    assert.equal(a.net.connected(c.key), true)
  } finally {
    await c.stop()
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('when both peers know each other\'s location, the crossing dials settle on one connection', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  try {
    let ups = 0
    let downs = 0
    a.net.on('peer-connected', () => ups++)
    a.net.on('peer-disconnected', () => downs++)
    await addPeer(a, b, { location: b.location() })
    await addPeer(b, a, { location: a.location() })
    await a.net.waitConnected(b.key, 20_000)
    await b.net.waitConnected(a.key, 20_000)
    await sleep(3000)
    assert.equal(a.net.connected(b.key), true)
    assert.equal(b.net.connected(a.key), true)
    assert.ok(ups <= 2 && downs <= 1, `a connected ${ups} times, disconnected ${downs} times`)
  } finally {
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('a fixed port is used, and a port in use is a clear error', { timeout: 30_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const { DataDir } = await import('../src/datadir.js')
  const { Node } = await import('../src/node.js')
  const { PeerNetwork } = await import('../src/net/index.js')
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const node = await Node.open(DataDir.create(`${dir}/x`))
  try {
    const taken = Number(a.location().split(':')[1])
    const net = new PeerNetwork({ node, log: () => {}, bootstrap: [], port: taken })
    await assert.rejects(net.start(), new RegExp(`UDP port ${taken} is in use`))
    const free = taken + 1000
    const net2 = new PeerNetwork({ node, log: () => {}, bootstrap: [], port: free })
    await net2.start()
    assert.equal(net2.address()?.port, free)
    await net2.stop()
  } finally {
    await node.close()
    await a.stop()
    cleanup()
  }
})
