// A joiner's first sync takes the source's state over the network (spec/protocol.md "States",
// spec/tree.md "Starting from a state", issue 12): `volume connect` without --state asks the
// peer (STATE_GET), gets its state sealed under the volume's state key in parts, checks it
// against the signed logs and starts from it. A peer not allowed the volume gets none; a
// tampered state from a peer is rejected with one line and the join completes by replay.
// Three peers in one process on the loopback testnet (real corestores, real hyperswarm); the
// CLI command runs as the server runs it (its node and network).
import { test } from 'node:test'
import fs from 'node:fs'
import assert from 'node:assert/strict'
import createTestnet from '@hyperswarm/testnet'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { nodeHost, PeerRegistry } from '../src/net/index.js'
import { decodeMessage, encodeHandshake, encodeMessage, FEATURE_STATE, MAX_STATE_BYTES, STATE_PART_BYTES, ProtocolError } from '../src/net/protocol.js'
import { canonicalDump } from '../src/tree/index.js'
import { encodeState, openSealedState, sealState, StateFileError } from '../src/tree/state-file.js'
import type { ServerHandle } from '../src/server/handle.js'
import type { Node } from '../src/node.js'
import { checkpointPath } from '../src/volume/checkpoint-file.js'
import { runInProcess, tempDir } from './helpers.js'
import { addPeer, shareKey, startPeer, startRogue, until, type TestPeer } from './net-helpers.js'

const FILES = 40

function handle(p: TestPeer): ServerHandle {
  return { node: p.node, dir: p.dir, pid: process.pid, startedAt: Date.now(), log: () => {}, net: p.net, mounts: () => [], mount: async () => {}, unmount: async () => {} }
}

async function cli(p: TestPeer, argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await runInProcess(p.root, argv, handle(p))
  assert.equal(r.code, 0, `bazil ${argv.join(' ')}: ${r.stderr}\n${p.lines.join('\n')}`)
  return r
}

const lines = (out: string): Record<string, unknown>[] => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)

test('state messages: round trip; parts of the wrong length, offsets off a part boundary and over-long reasons are refused', () => {
  const get = { type: 'state-get' as const, volumeId: Buffer.alloc(32, 7), request: 3, offset: STATE_PART_BYTES * 2 }
  assert.deepEqual(decodeMessage(encodeMessage(get)), get)
  const part = { type: 'state-part' as const, request: 3, total: STATE_PART_BYTES + 5, offset: STATE_PART_BYTES, data: Buffer.alloc(5, 1) }
  assert.deepEqual(decodeMessage(encodeMessage(part)), part)
  const none = { type: 'state-none' as const, request: 3, reason: 'not allowed' }
  assert.deepEqual(decodeMessage(encodeMessage(none)), none)
  assert.throws(() => encodeMessage({ ...part, data: Buffer.alloc(4) }), /state-part: 4 bytes/)
  assert.throws(() => encodeMessage({ ...get, offset: 17 }), /not a part boundary/)
  assert.throws(() => encodeMessage({ ...part, total: MAX_STATE_BYTES + 1, offset: 0, data: Buffer.alloc(STATE_PART_BYTES) }), /over/)
  assert.throws(() => encodeMessage({ ...none, reason: 'two\nlines' }), /one line/)
  // A part that claims bytes it does not carry: refused on decode as a protocol error.
  const bad = encodeMessage({ ...part, total: STATE_PART_BYTES + 6, data: Buffer.alloc(6, 1) })
  bad[bad.length - 7] = 5 // the data's length prefix: 5 bytes, one trailing
  assert.throws(() => decodeMessage(bad), ProtocolError)
})

test('a sealed state opens only under its volume\'s state key and id', () => {
  const key = Buffer.alloc(32, 1), id = Buffer.alloc(32, 2)
  const file = encodeState({ volume: id.toString('hex'), logs: {}, shards: [], meta: null })
  const sealed = sealState(file, key, id)
  assert.equal(openSealedState(sealed, key, id).volume, id.toString('hex'))
  assert.throws(() => openSealedState(sealed, Buffer.alloc(32, 3), id), StateFileError)
  assert.throws(() => openSealedState(sealed, key, Buffer.alloc(32, 4)), /does not open under this volume's state key/)
})

test('volume connect takes the state from the peer; a peer not allowed the volume gets none; a tampered state from the peer is rejected and replay converges', async (t) => {
  const { dir, cleanup } = tempDir('bazil-join-net-')
  const testnet = await createTestnet(4, { host: '127.0.0.1' })
  const peers: TestPeer[] = []
  let tamper = false
  let raw: Buffer | null = null
  // The source serves its real state, or (tamper) one whose first shard carries another shard's save.
  const tampered = async (node: Node, id: Buffer): Promise<Buffer> => {
    const vol = await node.volume('v')
    const s = await vol.saveState()
    assert.ok(s.shards.length >= 2, `${s.shards.length} shards`)
    const shards = s.shards.map((x, i) => (i === 0 ? { ...x, bytes: s.shards[1]!.bytes } : x))
    return sealState(encodeState({ ...s, shards }), vol.stateKey, id)
  }
  try {
    const a = await startPeer(dir, 'a', {
      bootstrap: testnet.bootstrap,
      host: (node, net) => ({ ...nodeHost(node, { writersChanged: (id) => net().writersChanged(id) }), volumeState: async (id) => (raw ?? (tamper ? tampered(node, id) : node.sealedVolumeState(id))) })
    })
    peers.push(a)
    const b = await startPeer(dir, 'b', { bootstrap: testnet.bootstrap })
    peers.push(b)
    const c = await startPeer(dir, 'c', { bootstrap: testnet.bootstrap })
    peers.push(c)
    shareKey([a, b, c])
    const vol = await a.node.createVolume('v', 'friends')
    const id = vol.id.toString('hex')
    for (const d of ['/d', '/e']) {
      vol.mkdir(d)
      for (let i = 0; i < FILES / 2; i++) await vol.writeFile(`${d}/f${i}`, Buffer.from(`file ${d} ${i}\n`))
      await vol.flush()
    }
    vol.setattr('/d/f1', { mode: 0o600 })
    await vol.snapshot('s1') // a change in the meta shard too
    vol.unlink('/d/f3')
    await vol.flush()

    // c knows a, but a does not allow it the volume: no state for it.
    await addPeer(a, c, { location: c.location() })
    await addPeer(c, a, { location: a.location() })
    await until('c connected to a', () => c.net.connected(a.key) && c.net.servesStates(a.key))
    await assert.rejects(c.net.fetchState(a.key, vol.id), /has no state for us: that volume is not allowed to it here/)

    // b joins: the state comes from a.
    await addPeer(a, b, { location: b.location(), volumes: [id] })
    await addPeer(b, a, { location: a.location() })
    const rb = await cli(b, ['volume', 'connect', '--json', '--sharing=friends', encodeKey(a.key), 'v'])
    const sb = lines(rb.stdout).find((l) => l.message_type === 'state')
    assert.equal(sb?.adopted, true, rb.stdout + rb.stderr)
    assert.equal(sb!.from, 'peer')
    assert.ok((sb!.entries as number) > 0 && (sb!.bytes as number) > 0, JSON.stringify(sb))
    assert.equal(typeof sb!.checkpoint_ms, 'number', 'the joined index is checkpointed at once')
    assert.ok(fs.existsSync(checkpointPath(b.root, id)))
    assert.equal(lines(rb.stdout).at(-1)!.complete, true)

    // A state of many parts (more than the window in flight) arrives whole and in order.
    PeerRegistry.update(a.root, (r) => r.setVolume(c.key, id, true))
    a.net.refresh()
    await a.net.settled()
    raw = randomBytes(STATE_PART_BYTES * 45 + 123)
    let seen = 0
    const got = await c.net.fetchState(a.key, vol.id, (done, total) => {
      assert.ok(done > seen && total === raw!.length)
      seen = done
    })
    assert.ok(got.equals(raw), 'the bytes as served')
    raw = null

    // c joins while a tampers with what it sends: rejected with one line, replayed.
    tamper = true
    await until('a offers v to c', () => (c.net.remote(a.key)?.volumes.length ?? 0) > 0)
    const rc = await cli(c, ['volume', 'connect', '--json', '--sharing=friends', encodeKey(a.key), 'v'])
    const sc = lines(rc.stdout).find((l) => l.message_type === 'state')
    assert.equal(sc?.adopted, false, rc.stdout + rc.stderr)
    assert.equal(sc!.from, 'peer')
    assert.match(sc!.error as string, /^state rejected: shard \S+ /)
    assert.match(rc.stderr, /^state rejected: .*; replaying the logs instead$/m)
    assert.equal(lines(rc.stdout).at(-1)!.complete, true)

    const dump = async (p: TestPeer): Promise<string[]> => {
      const v = await p.node.volume('v')
      return [...canonicalDump(v.tree), ...v.tree.snapshots().map((x) => `snapshot ${x.name}`), ...canonicalDump(v.view('s1')).map((l) => `s1: ${l}`)]
    }
    const da = await dump(a)
    assert.equal(da.filter((l) => l.startsWith('/')).length, 1 + 2 + FILES - 1, 'root, two dirs, the files but one')
    assert.ok(da.some((l) => l.startsWith('s1: /d/f3\t')))
    assert.deepEqual(await dump(b), da, 'joined from the peer\'s state = the source')
    assert.deepEqual(await dump(c), da, 'joined by replay after the tampered state = the source')
    t.diagnostic(`b: ${JSON.stringify(sb)}; c: ${JSON.stringify(sc)}`)
  } finally {
    for (const p of peers) await p.stop()
    await testnet.destroy()
    cleanup()
  }
})

test('a source that misbehaves ends the transfer with one line: a part out of order, silence, an older bazil (never asked)', async () => {
  const { dir, cleanup } = tempDir('bazil-join-rogue-')
  const joiner = await startPeer(dir, 'joiner', { bootstrap: [] }) // the rogues dial its socket directly
  const skew = await startRogue(dir, 'skew'), mute = await startRogue(dir, 'mute'), old = await startRogue(dir, 'old')
  try {
    PeerRegistry.update(joiner.root, (r) => { for (const x of [skew, mute, old]) r.add(x.key) })
    joiner.net.refresh()
    await joiner.net.settled()
    const links = [
      await skew.connect(joiner, { handshake: encodeHandshake(FEATURE_STATE) }),
      await mute.connect(joiner, { handshake: encodeHandshake(FEATURE_STATE) }),
      await old.connect(joiner)
    ]
    for (const l of links) l.send({ type: 'hello', storage: null, volumes: [] })
    await until('rogues connected', () => [skew, mute, old].every((x) => joiner.net.connected(x.key)))
    const volumeId = Buffer.alloc(32, 9)
    assert.equal(joiner.net.servesStates(old.key), false)
    await assert.rejects(joiner.net.fetchState(old.key, volumeId), /runs an older bazil that serves no states/)
    assert.equal(links[2]!.received.some((m) => m.type === 'state-get'), false, 'the older peer never saw a STATE_GET')

    // skew answers the first part, then a part from further on.
    const fetching = joiner.net.fetchState(skew.key, volumeId)
    await until('first STATE_GET', () => links[0]!.received.some((m) => m.type === 'state-get'))
    const get = links[0]!.received.find((m) => m.type === 'state-get') as { request: number; volumeId: Buffer; offset: number }
    assert.deepEqual([get.volumeId, get.offset], [volumeId, 0])
    const total = STATE_PART_BYTES * 4
    links[0]!.send({ type: 'state-part', request: get.request, total, offset: 0, data: Buffer.alloc(STATE_PART_BYTES) })
    await until('the window of requests', () => links[0]!.received.filter((m) => m.type === 'state-get').length === 4)
    links[0]!.send({ type: 'state-part', request: get.request, total, offset: STATE_PART_BYTES * 2, data: Buffer.alloc(STATE_PART_BYTES) })
    await assert.rejects(fetching, /sent part 120000 of 240000 bytes where part 60000 of 240000 was due/)

    // mute never answers.
    await assert.rejects(joiner.net.fetchState(mute.key, volumeId, undefined, 500), /sent no part of its state for 1 s/)
    assert.equal(joiner.net.connected(mute.key), true, 'a silent source is not dropped, only not waited for')
  } finally {
    for (const r of [skew, mute, old]) await r.close()
    await joiner.stop()
    cleanup()
  }
})
