import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream'
import Corestore from 'corestore'
import * as crypto from '../src/crypto.js'
import {
  BINDING_BYTES,
  ENTRY_BODY_VERSION,
  EntryError,
  LIMITS,
  LogBindingError,
  LogFormatError,
  MAX_BODY_BYTES,
  TreeHasher,
  WriterLog,
  decodeBinding,
  decodeEntry,
  decodeEntryBody,
  encodeBinding,
  encodeEntry,
  encodeEntryBody,
  writerLogName,
  type EntryBody,
  type LogEntry
} from '../src/logs/index.js'

function tmpdir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-oplog-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function volume() {
  const volumeId = crypto.randomBytes(32)
  const sharingKey = crypto.randomBytes(32)
  return { volumeId, volumeKey: crypto.deriveKey(sharingKey, crypto.CONTEXT.volume, volumeId) }
}

function body(i: number, nOps = 2): EntryBody {
  const ops = []
  for (let j = 0; j < nOps; j++) {
    ops.push({ op: 'write', path: `/dir ${i}/file-${j}.txt`, kind: 'file', size: i * 1000 + j, hash: crypto.hash(Buffer.from(`${i}/${j}`)).toString('hex'), mode: 0o644, mtime: 1_700_000_000_000 + j })
  }
  ops.push({ op: 'rename', path: `/a${i}`, to: `/b${i}` }, { op: 'symlink', path: `/l${i}`, target: '../x', mtime: -5 })
  return {
    time: 1_700_000_000_000 + i,
    ops,
    changes: [
      { shard: `shard-${i % 3}`, change: new Uint8Array(crypto.randomBytes(50 + i)) },
      { shard: 'root', change: new Uint8Array([1, 2, 3]) }
    ]
  }
}

async function collect(log: WriterLog, opts?: Parameters<WriterLog['read']>[0]): Promise<(LogEntry | EntryError)[]> {
  const out: (LogEntry | EntryError)[] = []
  for await (const e of log.read(opts)) out.push(e)
  return out
}

function entries(list: (LogEntry | EntryError)[]): LogEntry[] {
  return list.filter((e): e is LogEntry => !(e instanceof EntryError))
}

test('create, append batches, reopen the corestore: same key, same entries, binding names the node', async (t) => {
  const dir = tmpdir(t)
  const { volumeId, volumeKey } = volume()
  const identity = crypto.generateKeyPair()
  const bodies = [body(1), body(2), body(3), body(4, 0)]

  let store = new Corestore(dir)
  let log = await WriterLog.create(store, { volumeId, identity, volumeKey })
  assert.equal(log.writable, true)
  assert.equal(log.length, 1)
  assert.deepEqual(await log.append(bodies.slice(0, 3)), [1, 2, 3])
  assert.deepEqual(await log.append(bodies.slice(3)), [4])
  assert.deepEqual(await log.append([]), [])
  const key = log.key
  await log.close()
  await store.close()

  store = new Corestore(dir)
  log = await WriterLog.create(store, { volumeId, identity, volumeKey })
  assert.deepEqual(log.key, key)
  assert.equal(log.length, 5)
  assert.deepEqual(await log.node(), identity.publicKey)
  const read = await collect(log)
  assert.deepEqual(read.map((e) => (e as LogEntry).seq), [1, 2, 3, 4])
  assert.deepEqual(read.map((e) => (e as LogEntry).body), bodies)
  assert.ok(read.every((e) => (e as LogEntry).writer.equals(key)))
  assert.deepEqual((await collect(log, { from: 2, to: 4 })).map((e) => (e as LogEntry).seq), [2, 3])
  const v = await log.verify()
  assert.deepEqual(v, { length: 5, entries: 4, missing: 0, errors: [] })
  // The stored binding decodes to the node and volume, and the block is exactly 129 bytes.
  const block0 = await log.core.get(0)
  assert.ok(block0)
  assert.equal(block0.length, BINDING_BYTES)
  assert.deepEqual(decodeBinding(block0).node, identity.publicKey)
  assert.deepEqual(decodeBinding(block0).volumeId, volumeId)
  // Our recomputed merkle tree hash matches hypercore's own.
  const hasher = new TreeHasher()
  for (let i = 0; i < log.length; i++) hasher.push((await log.core.get(i)) as Buffer)
  assert.deepEqual(hasher.treeHash(), await log.core.treeHash())

  // Same data dir, another identity: the log is bound to the first node.
  await log.close()
  await assert.rejects(WriterLog.create(store, { volumeId, identity: crypto.generateKeyPair(), volumeKey }), LogBindingError)
  await store.close()
})

test('concurrent create and appends on one volume write one binding and consecutive seqs', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const { volumeId, volumeKey } = volume()
  const identity = crypto.generateKeyPair()
  const [a, b] = await Promise.all([WriterLog.create(store, { volumeId, identity, volumeKey }), WriterLog.create(store, { volumeId, identity, volumeKey })])
  assert.equal(a.length, 1)
  const seqs = await Promise.all([a.append([body(1)]), a.append([body(2), body(3)]), a.append([body(4)])])
  assert.deepEqual(seqs, [[1], [2, 3], [4]])
  assert.equal((await b.verify()).errors.length, 0)
  await a.close()
  await b.close()
})

test('a foreign log replicated into a second corestore reads and verifies', async (t) => {
  const { volumeId, volumeKey } = volume()
  const identity = crypto.generateKeyPair()
  const storeA = new Corestore(tmpdir(t))
  const storeB = new Corestore(tmpdir(t))
  const own = await WriterLog.create(storeA, { volumeId, identity, volumeKey })
  const bodies = [body(1), body(2), body(3)]
  await own.append(bodies)

  const s1 = storeA.replicate(true)
  const s2 = storeB.replicate(false)
  pipeline(s1, s2, s1, () => {})

  const foreign = await WriterLog.open(storeB, { key: own.key, volumeId, volumeKey })
  assert.equal(foreign.writable, false)
  assert.equal(await foreign.node(), null) // nothing replicated yet
  await foreign.core.update({ wait: true })
  assert.equal(foreign.length, 4)
  const read = await collect(foreign) // fetches blocks on demand
  assert.deepEqual(read.map((e) => (e as LogEntry).body), bodies)
  assert.deepEqual(await foreign.node(), identity.publicKey)
  assert.deepEqual(await foreign.verify(), { length: 4, entries: 3, missing: 0, errors: [] })
  await assert.rejects(foreign.append([body(9)]), /not writable/)

  // Live: a new entry shows up after an update; a sparse copy verifies what it holds.
  await own.append([body(5)])
  await foreign.core.update({ wait: true })
  assert.equal(foreign.length, 5)
  const v = await foreign.verify()
  assert.deepEqual({ ...v, errors: v.errors.length }, { length: 5, entries: 3, missing: 1, errors: 0 })
  assert.deepEqual((await collect(foreign, { from: 4, wait: false })).length, 0) // block 4 not local: stops

  // Opened by key with the wrong volume id: rejected now that block 0 is local.
  await assert.rejects(WriterLog.open(storeB, { key: own.key, volumeId: crypto.randomBytes(32), volumeKey }), LogBindingError)

  s1.destroy()
  s2.destroy()
  await own.close()
  await foreign.close()
  await storeA.close()
  await storeB.close()
})

test('wrong volume key: an EntryError per entry naming writer and seq, iteration continues', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const { volumeId, volumeKey } = volume()
  const own = await WriterLog.create(store, { volumeId, identity: crypto.generateKeyPair(), volumeKey })
  await own.append([body(1), body(2), body(3)])
  const wrong = await WriterLog.open(store, { key: own.key, volumeId, volumeKey: crypto.randomBytes(32) })
  const read = await collect(wrong)
  assert.equal(read.length, 3)
  read.forEach((e, i) => {
    assert.ok(e instanceof EntryError)
    assert.deepEqual(e.writer, own.key)
    assert.equal(e.seq, i + 1)
    assert.match(e.reason, /decryption failed/)
    assert.match(e.message, new RegExp(`log ${crypto.encodeKey(own.key)} entry ${i + 1}: `))
  })
  const v = await wrong.verify()
  assert.deepEqual(v.errors.map((e) => e.seq), [1, 2, 3])
  await wrong.close()
  await own.close()
})

test('a garbage block is an EntryError at its seq; later entries still read; verify names it', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const { volumeId, volumeKey } = volume()
  const log = await WriterLog.create(store, { volumeId, identity: crypto.generateKeyPair(), volumeKey })
  await log.append([body(1)])
  await log.core.append([Buffer.from('garbage'), Buffer.from([1, ...crypto.randomBytes(60)])]) // seqs 2, 3
  await log.append([body(4), body(5)])
  const read = await collect(log)
  assert.deepEqual(read.map((e) => (e instanceof EntryError ? `bad ${e.seq}` : `ok ${e.seq}`)), ['ok 1', 'bad 2', 'bad 3', 'ok 4', 'ok 5'])
  assert.match((read[1] as EntryError).reason, /unknown version 103/) // 'g'
  assert.match((read[2] as EntryError).reason, /decryption failed/)
  const v = await log.verify()
  assert.equal(v.entries, 3)
  assert.deepEqual(v.errors.map((e) => e.seq), [2, 3])

  // An entry copied to another seq of the same log fails: the AD binds it to its place.
  const copy = (await log.core.get(1)) as Buffer
  await log.core.append(copy) // seq 6
  const last = await collect(log, { from: 6 })
  assert.ok(last[0] instanceof EntryError && last[0].seq === 6)
  await log.close()
})

test('verify finds a block altered in storage after it was signed', async (t) => {
  const dir = tmpdir(t)
  const { volumeId, volumeKey } = volume()
  const identity = crypto.generateKeyPair()
  let store = new Corestore(dir)
  let log = await WriterLog.create(store, { volumeId, identity, volumeKey })
  await log.append([body(1), body(2), body(3)])
  const good = (await log.core.get(2)) as Buffer
  const forged = encodeEntry(body(99), { volumeKey, volumeId, logKey: log.key, seq: 2 }) // decrypts fine
  // Reach into hypercore's storage (not its API) to simulate disk tampering.
  const storage = (log.core as unknown as { state: { storage: { write(): { putBlock(i: number, b: Buffer): void; flush(): Promise<void> } } } }).state.storage
  const tx = storage.write()
  tx.putBlock(2, forged)
  await tx.flush()
  await log.close()
  await store.close()

  store = new Corestore(dir)
  t.after(() => store.close())
  log = await WriterLog.create(store, { volumeId, identity, volumeKey })
  assert.notDeepEqual(await log.core.get(2), good)
  const v = await log.verify()
  assert.equal(v.entries, 3)
  assert.deepEqual(v.errors.map((e) => [e.seq, e.reason]), [[2, 'block does not match the signed merkle tree']])
  await log.close()
})

test('binding for another volume or with a bad signature is a LogBindingError', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const { volumeId, volumeKey } = volume()
  const identity = crypto.generateKeyPair()
  const own = await WriterLog.create(store, { volumeId, identity, volumeKey })
  await assert.rejects(WriterLog.open(store, { key: own.key, volumeId: crypto.randomBytes(32), volumeKey }), /bound to volume/)

  // A core whose block 0 carries a signature that doesn't verify.
  const bad = store.get({ name: 'forged-signature' })
  await bad.ready()
  const binding = encodeBinding(volumeId, bad.key, identity)
  binding[binding.length - 1] ^= 1
  await bad.append([binding, encodeEntry(body(1), { volumeKey, volumeId, logKey: bad.key, seq: 1 })])
  await assert.rejects(WriterLog.open(store, { key: bad.key, volumeId, volumeKey }), (err: Error) => err instanceof LogBindingError && /signature does not verify/.test(err.message))

  // A binding signed for another log key (copied from our own log) is rejected too.
  const copied = store.get({ name: 'copied-binding' })
  await copied.ready()
  await copied.append((await own.core.get(0)) as Buffer)
  await assert.rejects(WriterLog.open(store, { key: copied.key, volumeId, volumeKey }), /signature does not verify/)

  // Block 0 that is not a binding at all.
  const junk = store.get({ name: 'junk' })
  await junk.ready()
  await junk.append(Buffer.from('hello'))
  await assert.rejects(WriterLog.open(store, { key: junk.key, volumeId, volumeKey }), /log binding: unknown version 104/)

  assert.equal(writerLogName(volumeId), `bazil/log/v1/${volumeId.toString('hex')}`)
  for (const c of [bad, copied, junk]) await c.close()
  await own.close()
})

test('read() of a log whose binding arrives bad yields a seq-0 EntryError and stops', async (t) => {
  const { volumeId, volumeKey } = volume()
  const storeA = new Corestore(tmpdir(t))
  const storeB = new Corestore(tmpdir(t))
  const core = storeA.get({ name: 'other-volume-log' })
  await core.ready()
  const otherVolume = crypto.randomBytes(32)
  await core.append([encodeBinding(otherVolume, core.key, crypto.generateKeyPair()), encodeEntry(body(1), { volumeKey, volumeId, logKey: core.key, seq: 1 })])
  const s1 = storeA.replicate(true)
  const s2 = storeB.replicate(false)
  pipeline(s1, s2, s1, () => {})
  const foreign = await WriterLog.open(storeB, { key: core.key, volumeId, volumeKey }) // block 0 not here yet
  await foreign.core.update({ wait: true })
  const read = await collect(foreign)
  assert.equal(read.length, 1)
  assert.ok(read[0] instanceof EntryError && read[0].seq === 0 && /bound to volume/.test(read[0].reason))
  await assert.rejects(foreign.node(), LogBindingError)
  assert.match((await foreign.verify()).errors[0].reason, /bound to volume/)
  s1.destroy()
  s2.destroy()
  await foreign.close()
  await core.close()
  await storeA.close()
  await storeB.close()
})

test('entry codec: round trip, and rejects unknown versions, truncation, trailing bytes, oversized lengths', () => {
  const b = body(7)
  const plain = encodeEntryBody(b)
  assert.deepEqual(decodeEntryBody(plain), b)
  assert.deepEqual(decodeEntryBody(encodeEntryBody({ time: 0, ops: [], changes: [] })), { time: 0, ops: [], changes: [] })
  assert.equal(plain[0], ENTRY_BODY_VERSION)

  const rejects = (buf: Uint8Array, re: RegExp) => assert.throws(() => decodeEntryBody(buf), (e: Error) => e instanceof LogFormatError && re.test(e.message))
  rejects(Buffer.concat([Buffer.from([2]), plain.subarray(1)]), /unknown version 2/)
  rejects(Buffer.alloc(0), /truncated at version/)
  for (let n = 1; n < plain.length; n++) rejects(plain.subarray(0, n), /truncated|trailing|limit|empty|UTF-8/)
  rejects(Buffer.concat([plain, Buffer.from([0])]), /1 trailing bytes/)
  // version, time 0, change count 1, shard length 2^40: absurd length is refused before use.
  rejects(Buffer.from([1, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]), /shard id length .* over the limit of 256/)
  rejects(Buffer.from([1, 0, 0xff, 0xff, 0xff, 0x7f]), /change count .* over the limit/)
  rejects(Buffer.from([1, 0, 0, 0xff, 0xff, 0x03]), /op count|truncated/)
  rejects(Buffer.from([1, 0, 0, 1, 0x80, 0x02, 1, 0x61]), /unknown field flags/)
  rejects(Buffer.from([1, 0x80, 0]), /non-canonical varint/)
  rejects(Buffer.from([1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), /longer than 8 bytes/)
  rejects(Buffer.from([1, 0, 0, 1, 0, 2, 0xc3, 0x28]), /not valid UTF-8/)

  // Encoding refuses what it could not decode back identically.
  const encRejects = (x: EntryBody, re: RegExp) => assert.throws(() => encodeEntryBody(x), (e: Error) => e instanceof LogFormatError && re.test(e.message))
  encRejects({ time: -1, ops: [], changes: [] }, /entry time/)
  encRejects({ time: 0, ops: [{ op: 'x', hash: 'ABCD' }], changes: [] }, /lowercase hex/)
  encRejects({ time: 0, ops: [{ op: 'x', path: '\uD800' }], changes: [] }, /lone surrogate/)
  encRejects({ time: 0, ops: [{ op: 'x', extra: 1 } as never], changes: [] }, /unknown field "extra"/)
  encRejects({ time: 0, ops: [{ op: '' }], changes: [] }, /non-empty/)
  encRejects({ time: 0, ops: [{ op: 'x', path: 'a'.repeat(LIMITS.pathBytes + 1) }], changes: [] }, /over the limit of 4096/)
  encRejects({ time: 0, ops: [], changes: [{ shard: 's', change: new Uint8Array(0) }] }, /non-empty bytes/)
  encRejects({ time: 0, ops: [], changes: [{ shard: 's', change: new Uint8Array(MAX_BODY_BYTES) }] }, /over the limit/)

  // The sealed block: version, nonce, AD binding volume, log key and seq.
  const place = { volumeKey: crypto.randomBytes(32), volumeId: crypto.randomBytes(32), logKey: crypto.randomBytes(32), seq: 5 }
  const block = encodeEntry(b, place)
  assert.deepEqual(decodeEntry(block, place), b)
  const blockRejects = (buf: Uint8Array, p: typeof place, re: RegExp) => assert.throws(() => decodeEntry(buf, p), (e: Error) => e instanceof LogFormatError && re.test(e.message))
  blockRejects(block, { ...place, seq: 6 }, /decryption failed/)
  blockRejects(block, { ...place, logKey: crypto.randomBytes(32) }, /decryption failed/)
  blockRejects(block, { ...place, volumeId: crypto.randomBytes(32) }, /decryption failed/)
  blockRejects(Buffer.concat([Buffer.from([9]), block.subarray(1)]), place, /unknown version 9/)
  blockRejects(block.subarray(0, 20), place, /truncated at nonce/)
  blockRejects(block.subarray(0, 30), place, /truncated at ciphertext/)

  // Binding codec.
  const kp = crypto.generateKeyPair()
  const binding = encodeBinding(place.volumeId, place.logKey, kp)
  assert.equal(binding.length, BINDING_BYTES)
  assert.throws(() => decodeBinding(binding.subarray(0, 100)), /129/)
  assert.throws(() => decodeBinding(Buffer.concat([binding, Buffer.from([0])])), /129/)
  assert.throws(() => decodeBinding(Buffer.concat([Buffer.from([2]), binding.subarray(1)])), /129 bytes, expected 193/)
})

test('entry codec fuzz: random and mutated buffers only ever throw LogFormatError', () => {
  const seeds = [encodeEntryBody(body(1)), encodeEntryBody(body(2, 5)), encodeEntryBody({ time: 1, ops: [{ op: 'mkdir', path: '/x', mtime: -1 }], changes: [] })]
  const place = { volumeKey: crypto.randomBytes(32), volumeId: crypto.randomBytes(32), logKey: crypto.randomBytes(32), seq: 1 }
  const blockSeed = encodeEntry(body(3), place)
  const rnd = (n: number) => Math.floor(Math.random() * n)
  let rejected = 0
  let accepted = 0
  const tryDecode = (fn: () => unknown) => {
    try {
      fn()
      accepted++
    } catch (err) {
      if (!(err instanceof LogFormatError)) throw err
      rejected++
    }
  }
  for (let i = 0; i < 4000; i++) {
    const seed = seeds[i % seeds.length]
    let buf: Buffer
    switch (i % 4) {
      case 0:
        buf = crypto.randomBytes(rnd(200))
        buf[0] = 1 // get past the version check most of the time
        break
      case 1: {
        buf = Buffer.from(seed)
        for (let k = 0; k <= rnd(4); k++) buf[rnd(buf.length)] = rnd(256)
        break
      }
      case 2: {
        const at = rnd(seed.length)
        buf = Buffer.concat([seed.subarray(0, at), crypto.randomBytes(rnd(8)), seed.subarray(at + rnd(8))])
        break
      }
      default:
        buf = Buffer.from(seed.subarray(0, rnd(seed.length)))
    }
    tryDecode(() => decodeEntryBody(buf))
    tryDecode(() => decodeBinding(buf))
    if (i % 10 === 0) {
      const b = Buffer.from(blockSeed)
      b[rnd(b.length)] ^= 1 + rnd(255)
      tryDecode(() => decodeEntry(b, place))
    }
  }
  assert.ok(rejected > 1000, `rejected ${rejected}`)
  assert.ok(accepted > 0, `some mutations (e.g. in change bytes) stay valid: ${accepted}`)
})

test('10k ops in one append batch: throughput and read-back', async (t) => {
  const store = new Corestore(tmpdir(t))
  t.after(() => store.close())
  const { volumeId, volumeKey } = volume()
  const log = await WriterLog.create(store, { volumeId, identity: crypto.generateKeyPair(), volumeKey })
  const N = 10_000
  const PER_ENTRY = 2_500
  const bodies: EntryBody[] = []
  for (let e = 0; e < N / PER_ENTRY; e++) {
    const ops = []
    for (let i = 0; i < PER_ENTRY; i++) {
      const n = e * PER_ENTRY + i
      ops.push({ op: 'create', path: `/import/dir${n % 100}/file-${n}.dat`, kind: 'file', size: n * 17, hash: crypto.hash(Buffer.from(String(n))).toString('hex'), mode: 0o644, mtime: 1_700_000_000_000 + n })
    }
    // A stand-in for the Automerge change of this batch (~60 bytes per op).
    bodies.push({ time: Date.now(), ops, changes: [{ shard: `shard-${e}`, change: new Uint8Array(crypto.randomBytes(PER_ENTRY * 60)) }] })
  }
  const t0 = performance.now()
  const seqs = await log.append(bodies)
  const t1 = performance.now()
  const read = entries(await collect(log))
  const t2 = performance.now()
  const v = await log.verify()
  const t3 = performance.now()
  assert.deepEqual(seqs, [1, 2, 3, 4])
  assert.equal(read.reduce((n, e) => n + e.body.ops.length, 0), N)
  assert.deepEqual(read.map((e) => e.body), bodies)
  assert.deepEqual(v.errors, [])
  const { byteLength } = await log.core.info()
  const rate = (ms: number) => Math.round(N / (ms / 1000))
  t.diagnostic(`10k ops in ${bodies.length} entries, ${(byteLength / 1024 / 1024).toFixed(2)} MiB: append ${(t1 - t0).toFixed(0)} ms (${rate(t1 - t0)} ops/s), read ${(t2 - t1).toFixed(0)} ms (${rate(t2 - t1)} ops/s), verify ${(t3 - t2).toFixed(0)} ms`)

  // Many small entries: verify's one-pass tree check stays fast.
  const small: EntryBody[] = []
  for (let i = 0; i < 2000; i++) small.push({ time: i, ops: [{ op: 'write', path: `/f${i}` }], changes: [{ shard: 's', change: new Uint8Array([i & 255, 1]) }] })
  const t4 = performance.now()
  await log.append(small)
  const t5 = performance.now()
  const v2 = await log.verify()
  const t6 = performance.now()
  assert.equal(v2.entries, 2004)
  assert.deepEqual(v2.errors, [])
  t.diagnostic(`2000 one-op entries: append ${(t5 - t4).toFixed(0)} ms, verify of 2005 blocks ${(t6 - t5).toFixed(0)} ms`)
  await log.close()
})
