// bazil's peer protocol: strict decoding, and a node that meets garbage drops that peer,
// stays up and keeps serving its other peers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import DHT, { type SecretStream } from 'hyperdht'
import Protomux from 'protomux'
import c from 'compact-encoding'
import { generateKeyPair, randomBytes } from '../src/crypto.js'
import {
  CHANNEL_PROTOCOL,
  MAX_MESSAGE_BYTES,
  ProtocolError,
  decodeMessage,
  encodeMessage,
  type Message
} from '../src/net/protocol.js'
import { PeerRegistry, discoveryKey } from '../src/net/index.js'
import { tempDir } from './helpers.js'
import { addPeer, copyVolumeRecord, followWriters, shareKey, startPeer, until, sleep } from './net-helpers.js'

const key = (n: number): Buffer => Buffer.alloc(32, n)
const hello: Message = { type: 'hello', storage: { cas: key(1), index: key(2) }, volumes: [{ id: key(3), name: 'myfiles' }, { id: key(4), name: 'b.2' }] }
const writers: Message = { type: 'writers', volumeId: key(3), writers: [key(5), key(6)] }

test('messages round-trip, and the decoder rejects every shape it does not know', () => {
  for (const m of [hello, writers, { type: 'hello', storage: null, volumes: [] } as Message]) {
    assert.deepEqual(decodeMessage(encodeMessage(m)), m)
  }
  const h = encodeMessage(hello)
  const reject = (buf: Buffer, re: RegExp): void => {
    assert.throws(() => decodeMessage(buf), (err: Error) => err instanceof ProtocolError && re.test(err.message))
  }
  reject(Buffer.concat([Buffer.from([2]), h.subarray(1)]), /unknown message version 2/)
  reject(Buffer.from([1, 99, 0]), /unknown message type 99/) // 7-9: the state messages
  reject(Buffer.from([1]), /too short/)
  reject(Buffer.concat([h, Buffer.from([0])]), /trailing/)
  reject(h.subarray(0, h.length - 3), /malformed|fit/)
  reject(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 1), /exceeds/)
  reject(Buffer.from([1, 1, 2, 0]), /unknown flags/)
  // 5 as a 3-byte varint instead of one byte: same value, not the one encoding.
  reject(Buffer.from([1, 1, 0, 0xfd, 0, 0]), /canonical/)
  reject(Buffer.from([1, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0x7f]), /over the limit/)
  reject(Buffer.from([1, 2, ...key(1), 0]), /empty/)
  const badName = encodeMessage({ type: 'hello', storage: null, volumes: [{ id: key(3), name: 'ok' }] })
  badName[badName.length - 1] = 0x2f // "o/": a name that can't be a file name
  reject(badName, /volume name/)
  const dup = Buffer.concat([Buffer.from([1, 2]), key(1), Buffer.from([2]), key(5), key(5)])
  reject(dup, /twice/)
  assert.throws(() => encodeMessage({ type: 'writers', volumeId: key(1), writers: [] }), RangeError)
})

/** A registered peer that speaks garbage: connects straight to the node's socket. */
async function connectFuzzer(dht: DHT, keyPair: { publicKey: Buffer; secretKey: Buffer }, to: Buffer, port: number): Promise<{ conn: SecretStream; send: (b: Buffer) => void; closed: Promise<void> }> {
  const conn = dht.connect(to, { keyPair, relayAddresses: [{ host: '127.0.0.1', port }] })
  conn.on('error', () => {})
  const closed = new Promise<void>((r) => conn.once('close', () => r()))
  await new Promise<void>((resolve, reject) => {
    conn.once('open', () => resolve())
    conn.once('close', () => reject(new Error('fuzzer could not connect')))
  })
  const mux = Protomux.from(conn)
  const channel = mux.createChannel({ protocol: CHANNEL_PROTOCOL })
  assert.ok(channel)
  const msg = channel.addMessage<Buffer>({ encoding: c.raw })
  channel.open()
  await channel.fullyOpened()
  return { conn, send: (b) => msg.send(b), closed }
}

function mutate(buf: Buffer): Buffer {
  const out = Buffer.from(buf)
  const kind = Math.floor(Math.random() * 4)
  if (kind === 0 && out.length > 0) out[Math.floor(Math.random() * out.length)] ^= 1 << Math.floor(Math.random() * 8)
  if (kind === 1) return out.subarray(0, Math.floor(Math.random() * out.length))
  if (kind === 2) return Buffer.concat([out, randomBytes(1 + Math.floor(Math.random() * 8))])
  if (kind === 3 && out.length > 2) out[2 + Math.floor(Math.random() * Math.min(4, out.length - 2))] = Math.floor(Math.random() * 256)
  return out
}

test('garbage on the bazil channel disconnects that peer; the node stays up and keeps serving another', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', { bootstrap: [] })
  const dht = new DHT({ bootstrap: [], firewalled: false, host: '127.0.0.1' })
  const fuzzKeys = generateKeyPair()
  try {
    shareKey([a, b])
    const volA = await a.node.createVolume('v', 'friends')
    const idHex = volA.id.toString('hex')
    copyVolumeRecord(a, b, 'v')
    await addPeer(a, b, { volumes: [idHex] })
    await addPeer(b, a, { location: a.location(), volumes: [idHex] })
    followWriters(b)
    await b.net.waitConnected(a.key, 20_000)
    // The fuzzer is a peer a added (the firewall would stop a stranger before any message).
    PeerRegistry.update(a.root, (r) => r.add(fuzzKeys.publicKey))
    a.net.refresh()
    await a.net.settled()
    const port = Number(a.location().split(':')[1])

    const valid = [encodeMessage(hello), encodeMessage(writers), encodeMessage({ type: 'hello', storage: null, volumes: [] })]
    let dropped = 0
    let surelyBad = 0
    const rounds = 40
    for (let i = 0; i < rounds; i++) {
      const f = await connectFuzzer(dht, fuzzKeys, a.key, port)
      let payload: Buffer
      let bad: boolean
      if (i === 0) [payload, bad] = [Buffer.alloc(4 * 1024 * 1024, 7), true] // huge
      else if (i % 4 === 1) [payload, bad] = [randomBytes(Math.floor(Math.random() * 300)), false]
      else if (i % 4 === 2) [payload, bad] = [Buffer.concat([Buffer.from([2 + Math.floor(Math.random() * 254)]), randomBytes(40)]), true] // unknown version
      else [payload, bad] = [mutate(valid[i % valid.length]), false]
      try {
        decodeMessage(payload)
      } catch {
        bad = true
      }
      if (bad) surelyBad++
      f.send(payload)
      const gone = await Promise.race([f.closed.then(() => true), sleep(bad ? 5000 : 400).then(() => false)])
      if (gone) dropped++
      else {
        assert.equal(bad, false, `a kept a peer that sent a bad message (round ${i})`)
        f.conn.destroy()
        await f.closed
      }
    }
    assert.ok(dropped >= surelyBad, `${dropped} drops for ${surelyBad} bad messages`)
    assert.ok(a.lines.some((l) => l.includes('protocol error')), 'a says why it dropped the peer')
    // A raw non-protomux frame on the encrypted stream: protomux rejects it; a stays up.
    const raw = await connectFuzzer(dht, fuzzKeys, a.key, port)
    raw.conn.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]))
    await Promise.race([raw.closed, sleep(3000)])
    raw.conn.destroy()

    // a still serves b: a new entry reaches b live.
    assert.equal(a.net.connected(b.key), true)
    const logAtB = b.node.store.get({ key: volA.log.key })
    await logAtB.ready()
    const before = logAtB.contiguousLength
    await volA.writeFile('/after-fuzz', Buffer.from('still here\n'))
    await volA.flush()
    await until('b gets a\'s entry after the fuzzing', () => logAtB.contiguousLength > before)
    await logAtB.close()
    process.stderr.write(`# fuzz: ${rounds} rounds, ${surelyBad} invalid messages, ${dropped} disconnects\n`)
  } finally {
    await dht.destroy()
    await b.stop()
    await a.stop()
    cleanup()
  }
})

test('garbage on a hypercore replication channel does not bring the node down', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const dht = new DHT({ bootstrap: [], firewalled: false, host: '127.0.0.1' })
  const keyPair = generateKeyPair()
  try {
    const vol = await a.node.createVolume('v', 'default')
    await vol.writeFile('/x', Buffer.from('hello'))
    await vol.flush()
    // Allowed the store, so a opens the cas channel and the garbage reaches hypercore itself.
    PeerRegistry.update(a.root, (r) => {
      r.add(keyPair.publicKey)
      r.setStorage(keyPair.publicKey, true)
    })
    a.net.refresh()
    await a.net.settled()
    const port = Number(a.location().split(':')[1])
    const dk = discoveryKey(a.node.chunks.casKey)
    for (let i = 0; i < 60; i++) {
      const conn = dht.connect(a.key, { keyPair, relayAddresses: [{ host: '127.0.0.1', port }] })
      conn.on('error', () => {})
      const closed = new Promise<void>((r) => conn.once('close', () => r()))
      await new Promise<void>((resolve, reject) => {
        conn.once('open', () => resolve())
        conn.once('close', () => reject(new Error('fuzzer could not connect')))
      })
      const mux = Protomux.from(conn)
      const channel = mux.createChannel({ protocol: 'hypercore/alpha', id: dk, handshake: c.raw as never })
      assert.ok(channel)
      const sends = Array.from({ length: 10 }, () => channel.addMessage<Buffer>({ encoding: c.raw }))
      // hypercore's handshake is flags || capability(32): sometimes plausible, sometimes not.
      channel.open(i % 3 === 0 ? randomBytes(Math.floor(Math.random() * 80)) : Buffer.concat([Buffer.from([Math.floor(Math.random() * 4)]), randomBytes(32 + Math.floor(Math.random() * 40))]))
      await Promise.race([channel.fullyOpened(), sleep(500)])
      for (let j = 0; j < 5; j++) sends[Math.floor(Math.random() * 10)].send(randomBytes(Math.floor(Math.random() * 60)))
      await Promise.race([closed, sleep(100)])
      conn.destroy()
      await closed
    }
    // Still serving: a fresh, well-behaved peer connects and says hello.
    const b = await startPeer(dir, 'b', { bootstrap: [] })
    try {
      PeerRegistry.update(a.root, (r) => r.add(b.key))
      a.net.refresh()
      PeerRegistry.update(b.root, (r) => {
        r.add(a.key)
        r.setLocation(a.key, a.location())
      })
      b.net.refresh()
      await b.net.waitConnected(a.key, 20_000)
    } finally {
      await b.stop()
    }
  } finally {
    await dht.destroy()
    await a.stop()
    cleanup()
  }
})
