// Writer authorisation, unit level: binding v2 (self-certifying volume ids), control entries
// (plaintext admit/revoke), the writer-set function, and control entries in real logs
// (corestore on disk), read with and without the volume key.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import fc from 'fast-check'
import Corestore from 'corestore'
import * as crypto from '../src/crypto.js'
import {
  BINDING_V2_BYTES,
  EntryError,
  LogBindingError,
  LogFormatError,
  WriterLog,
  checkBindingFull,
  computeWriterSet,
  decodeBinding,
  decodeControl,
  decodeEntry,
  encodeBinding,
  encodeControl,
  scanControl,
  volumeIdOf,
  type ControlOp,
  type ControlRecord,
  type LogInfo
} from '../src/logs/index.js'

function tmpdir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-writers-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('binding v2: the volume id is derived from the genesis; a reader checks it, and v1 stays readable', () => {
  const creator = crypto.generateKeyPair()
  const genesis = { node: creator.publicKey, nonce: crypto.randomBytes(32) }
  const volumeId = volumeIdOf(genesis)
  const logKey = crypto.randomBytes(32)
  const joiner = crypto.generateKeyPair()
  const block = encodeBinding(volumeId, logKey, joiner, genesis)
  assert.equal(block.length, BINDING_V2_BYTES)
  const b = checkBindingFull(block, logKey, volumeId)
  assert.equal(b.version, 2)
  assert.deepEqual(b.node, joiner.publicKey)
  assert.deepEqual(b.genesis!.node, creator.publicKey)
  // A genesis that does not hash to the volume id: refused when encoding, and when checking a forged one.
  const fake = { node: joiner.publicKey, nonce: genesis.nonce }
  assert.throws(() => encodeBinding(volumeId, logKey, joiner, fake), LogFormatError)
  const forged = Buffer.from(block)
  joiner.publicKey.copy(forged, 65) // claims the joiner created the volume
  assert.throws(() => checkBindingFull(forged, logKey, volumeId), (e: Error) => e instanceof LogBindingError && /genesis does not hash/.test(e.message))
  // The signature covers the genesis: a v2 binding for another genesis of the same id can't exist,
  // and flipping a signature bit fails.
  const bad = Buffer.from(block)
  bad[bad.length - 1] ^= 1
  assert.throws(() => checkBindingFull(bad, logKey, volumeId), /signature does not verify/)
  // Version 1 still decodes and checks (no genesis).
  const v1 = encodeBinding(volumeId, logKey, joiner)
  assert.equal(checkBindingFull(v1, logKey, volumeId).genesis, null)
  // Shapes.
  assert.throws(() => decodeBinding(block.subarray(0, 129)), /129 bytes, expected 193/)
  assert.throws(() => decodeBinding(Buffer.concat([Buffer.from([3]), block.subarray(1)])), /unknown version 3/)
})

test('control entries: round trip; the sealed-entry decoder refuses them; malformed ones are LogFormatErrors', () => {
  const ops: ControlOp[] = [
    { op: 'admit', log: crypto.randomBytes(32), node: crypto.randomBytes(32) },
    { op: 'revoke', log: crypto.randomBytes(32), last: 12345 },
    { op: 'revoke', log: crypto.randomBytes(32), last: 0 }
  ]
  const block = encodeControl({ time: 1_700_000_000_000, ops })
  assert.deepEqual(decodeControl(block), { time: 1_700_000_000_000, ops })
  const place = { volumeKey: crypto.randomBytes(32), volumeId: crypto.randomBytes(32), logKey: crypto.randomBytes(32), seq: 1 }
  assert.throws(() => decodeEntry(block, place), /entry block: unknown version 2/)
  assert.throws(() => encodeControl({ time: 1, ops: [] }), LogFormatError)
  assert.throws(() => decodeControl(block.subarray(0, block.length - 1)), LogFormatError)
  assert.throws(() => decodeControl(Buffer.concat([block, Buffer.from([0])])), LogFormatError)
  const unknownKind = Buffer.from(block)
  unknownKind[1 + 1 + 6 + 1] = 9 // first op's kind (time is a 6-byte varint)
  assert.throws(() => decodeControl(unknownKind), /unknown kind 9/)
  // Anything at all: a LogFormatError or a body, nothing else.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    try {
      decodeControl(Buffer.concat([Buffer.from([2, 1]), bytes]))
    } catch (e) {
      if (!(e instanceof LogFormatError)) throw e
    }
  }), { numRuns: 2000 })
})

// ---- the writer-set function -------------------------------------------------------------

const hex = (n: number): string => n.toString(16).padStart(2, '0').repeat(32)
const buf = (h: string): Buffer => Buffer.from(h, 'hex')
const ROOT = hex(0x10)
const NODE = (i: number): string => hex(0x20 + i)
const LOG = (i: number): string => hex(0x40 + i)
/** Log i bound to node i; log 0 is the root's (its binding carries the genesis). */
function logs(n: number): LogInfo[] {
  const out: LogInfo[] = [{ log: LOG(0), node: ROOT, genesisNode: ROOT }]
  for (let i = 1; i < n; i++) out.push({ log: LOG(i), node: NODE(i), genesisNode: null })
  return out
}
const admit = (i: number): ControlOp => ({ op: 'admit', log: buf(LOG(i)), node: buf(NODE(i)) })
const revoke = (i: number, last: number): ControlOp => ({ op: 'revoke', log: buf(LOG(i)), last })
const at = (i: number, seq: number, ...ops: ControlOp[]): ControlRecord => ({ log: LOG(i), seq, ops })

test('writer set: the root writes from seq 1; admits chain; an admit naming another node is ignored', () => {
  const ws = computeWriterSet({ logs: logs(4), control: [at(0, 3, admit(1)), at(1, 2, admit(2)), at(0, 4, { op: 'admit', log: buf(LOG(3)), node: buf(NODE(9)) })] })
  assert.equal(ws.rootNode, ROOT)
  assert.deepEqual([...ws.writers.keys()].sort(), [LOG(0), LOG(1), LOG(2)])
  assert.deepEqual(ws.writers.get(LOG(0))!.root, true)
  assert.deepEqual(ws.writers.get(LOG(2))!.admittedBy, { log: LOG(1), seq: 2 })
  assert.deepEqual(ws.unauthorised, [LOG(3)])
  assert.ok(ws.valid(LOG(0), 1) && ws.valid(LOG(2), 1000))
  assert.ok(!ws.valid(LOG(3), 1))
})

test('writer set: a revocation limits the log; the root cannot be revoked; ops past a limit do not count', () => {
  const ws = computeWriterSet({
    logs: logs(4),
    control: [
      at(0, 1, admit(1), admit(2)),
      at(0, 5, revoke(1, 3)),
      at(1, 4, admit(3)), // past its limit: does not count
      at(1, 2, revoke(0, 0)), // the root: ignored
    ]
  })
  assert.equal(ws.writers.get(LOG(1))!.limit, 3)
  assert.ok(ws.valid(LOG(1), 3) && !ws.valid(LOG(1), 4))
  assert.ok(!ws.writers.has(LOG(3)))
  assert.equal(ws.writers.get(LOG(0))!.limit, null)
  assert.deepEqual(ws.writers.get(LOG(1))!.revokedBy, [{ log: LOG(0), seq: 5, last: 3, undecided: false }])
  // An admit by a never-admitted log does not count either.
  const ws2 = computeWriterSet({ logs: logs(4), control: [at(3, 1, admit(2))] })
  assert.deepEqual([...ws2.writers.keys()], [LOG(0)])
})

test('writer set: mutual revocation stays undecided, so both are limited (revocations win); revoke/admit races', () => {
  // 1 and 2 admitted by the root; 1 revokes 2 at 1:5 keeping 2's seq <= 3; 2 revokes 1 at 2:4 keeping 1's <= 2.
  const ws = computeWriterSet({ logs: logs(3), control: [at(0, 1, admit(1), admit(2)), at(1, 5, revoke(2, 3)), at(2, 4, revoke(1, 2))] })
  assert.equal(ws.writers.get(LOG(1))!.limit, 2)
  assert.equal(ws.writers.get(LOG(2))!.limit, 3)
  assert.ok(ws.writers.get(LOG(1))!.revokedBy[0].undecided)
  // One revocation comes before the other's entry: that one is valid, the other never counts.
  const ws2 = computeWriterSet({ logs: logs(3), control: [at(0, 1, admit(1), admit(2)), at(1, 2, revoke(2, 3)), at(2, 4, revoke(1, 2))] })
  assert.equal(ws2.writers.get(LOG(1))!.limit, null)
  assert.equal(ws2.writers.get(LOG(2))!.limit, 3)
  // Admitted by 1 in an entry that 2's (valid) revocation of 1 cuts off: not admitted.
  const ws3 = computeWriterSet({ logs: logs(4), control: [at(0, 1, admit(1), admit(2)), at(2, 1, revoke(1, 1)), at(1, 2, admit(3))] })
  assert.ok(!ws3.writers.has(LOG(3)))
  // ... but another valid admit still admits it.
  const ws4 = computeWriterSet({ logs: logs(4), control: [at(0, 1, admit(1), admit(2)), at(2, 1, revoke(1, 1)), at(1, 2, admit(3)), at(0, 2, admit(3))] })
  assert.deepEqual(ws4.writers.get(LOG(3))!.admittedBy, { log: LOG(0), seq: 2 })
  // A log admitted only by itself (a cycle with no root) is not authorised.
  const ws5 = computeWriterSet({ logs: logs(3), control: [at(1, 1, admit(2)), at(2, 1, admit(1))] })
  assert.deepEqual([...ws5.writers.keys()], [LOG(0)])
})

test('writer set: admit-node admits every log of a node, before it is seen; revoke-node cancels it, logs admitted by name keep their entries up to their limit', () => {
  const admitNode = (i: number): ControlOp => ({ op: 'admit-node', node: buf(NODE(i)) })
  const revokeNode = (i: number): ControlOp => ({ op: 'revoke-node', node: buf(NODE(i)) })
  const two = [...logs(3), { log: LOG(5), node: NODE(1), genesisNode: null }] // node 1 has logs 1 and 5
  const ws = computeWriterSet({ logs: two, control: [at(0, 1, admitNode(1))] })
  assert.ok(ws.writers.has(LOG(1)) && ws.writers.has(LOG(5)) && !ws.writers.has(LOG(2)))
  assert.deepEqual(ws.writers.get(LOG(5))!.admittedBy, { log: LOG(0), seq: 1 })
  // Deny: admit(log 1) + revoke(log 1, 4) + revoke-node(1): log 1 keeps seq <= 4, log 5 is out.
  const ws2 = computeWriterSet({ logs: two, control: [at(0, 1, admitNode(1)), at(0, 2, admit(1), revoke(1, 4), revokeNode(1))] })
  assert.equal(ws2.writers.get(LOG(1))!.limit, 4)
  assert.ok(!ws2.writers.has(LOG(5)))
  // A revoke-node in an entry that is itself not valid does not count.
  const ws3 = computeWriterSet({ logs: two, control: [at(0, 1, admitNode(1)), at(2, 1, revokeNode(1))] })
  assert.ok(ws3.writers.has(LOG(5)))
  // Codec round trip.
  const block = encodeControl({ time: 5, ops: [admitNode(1), revokeNode(2)] })
  assert.deepEqual(decodeControl(block).ops, [admitNode(1), revokeNode(2)])
})

test('writer set: legacy roots (migrated volumes) and logs whose binding is not here', () => {
  const v1 = [{ log: LOG(1), node: NODE(1), genesisNode: null }, { log: LOG(2), node: null, genesisNode: null }]
  const ws = computeWriterSet({ logs: v1, legacyRoots: [LOG(1)], control: [at(1, 1, admit(2))] })
  assert.equal(ws.rootNode, null)
  assert.deepEqual([...ws.writers.keys()], [LOG(1)]) // log 2's binding is not held: the admit can't be checked yet
  const later = computeWriterSet({ logs: [v1[0], { log: LOG(2), node: NODE(2), genesisNode: null }], legacyRoots: [LOG(1)], control: [at(1, 1, admit(2))] })
  assert.deepEqual([...later.writers.keys()].sort(), [LOG(1), LOG(2)])
})

test('writer set property: the same ops in any order give the same set', () => {
  const opArb = fc.oneof(
    fc.record({ kind: fc.constant('admit' as const), target: fc.nat(5) }),
    fc.record({ kind: fc.constant('revoke' as const), target: fc.nat(5), last: fc.nat(6) }),
    fc.record({ kind: fc.constantFrom('admit-node' as const, 'revoke-node' as const), target: fc.nat(5) })
  )
  const recArb = fc.record({ log: fc.nat(5), seq: fc.integer({ min: 1, max: 8 }), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) })
  fc.assert(fc.property(fc.uniqueArray(recArb, { selector: (r) => `${r.log}:${r.seq}`, maxLength: 14 }), fc.integer(), (recs, seed) => {
    const control = recs.map((r) => at(r.log, r.seq, ...r.ops.map((o): ControlOp => (o.kind === 'admit' ? admit(o.target) : o.kind === 'revoke' ? revoke(o.target, o.last) : { op: o.kind, node: buf(NODE(o.target)) }))))
    const a = computeWriterSet({ logs: logs(6), control })
    // A deterministic shuffle of the input (entries and logs).
    const shuffled = [...control].sort((x, y) => ((x.seq * 31 + x.log.charCodeAt(0) + seed) % 7) - ((y.seq * 31 + y.log.charCodeAt(0) + seed) % 7))
    const b = computeWriterSet({ logs: logs(6).reverse(), control: shuffled })
    assert.equal(a.fingerprint, b.fingerprint)
    // Every op counted comes from a valid entry: an authorised writer's admitter is valid at that seq.
    for (const w of a.writers.values()) if (w.admittedBy) assert.ok(a.valid(w.admittedBy.log, w.admittedBy.seq))
  }), { numRuns: 3000 })
})

test('control entries in a real log: read back with the key, and scanned without it (a storage-only node)', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const identity = crypto.generateKeyPair()
  const genesis = { node: identity.publicKey, nonce: crypto.randomBytes(32) }
  const volumeId = volumeIdOf(genesis)
  const volumeKey = crypto.deriveKey(crypto.randomBytes(32), crypto.CONTEXT.volume, volumeId)
  const log = await WriterLog.create(store, { volumeId, identity, volumeKey, genesis })
  assert.equal((await log.binding())!.version, 2)
  await log.append([{ time: 1, ops: [{ op: 'mkdir', path: '/a' }], changes: [{ shard: 's', change: new Uint8Array([1]) }] }])
  const other = { op: 'admit' as const, log: crypto.randomBytes(32), node: crypto.randomBytes(32) }
  const seq = await log.appendControl([other])
  assert.equal(seq, 2)
  await log.append([{ time: 2, ops: [{ op: 'mkdir', path: '/b' }], changes: [{ shard: 's', change: new Uint8Array([2]) }] }])
  const read = []
  for await (const e of log.read()) read.push(e)
  assert.ok(read.every((e) => !(e instanceof EntryError)))
  assert.deepEqual(read.map((e) => (e as { control: unknown }).control === null ? 'data' : 'control'), ['data', 'control', 'data'])
  const scanned = await scanControl(log.core, 1)
  assert.equal(scanned.next, 4)
  assert.deepEqual(scanned.found, [{ log: log.key.toString('hex'), seq: 2, ops: [other] }])
  // A fresh log left unbound until its genesis is known.
  const store2 = new Corestore(tmpdir(t))
  t.after(() => store2.close())
  const joining = await WriterLog.create(store2, { volumeId, identity: crypto.generateKeyPair(), volumeKey, bind: false })
  assert.equal(joining.bound, false)
  await joining.bind(genesis)
  assert.equal((await joining.binding())!.genesis!.nonce.toString('hex'), genesis.nonce.toString('hex'))
})
