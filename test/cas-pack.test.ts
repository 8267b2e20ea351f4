import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from '../src/crypto.js'
import { casKeys, sealObject } from '../src/cas/index.js'
import {
  MAX_PACK_BYTES, MIN_OBJECT_BYTES, decodeIndexBlock, decodePackEntries, encodeIndexBlock, encodePack, packLength, type PackedObject
} from '../src/cas/pack-codec.js'
import { PackTable } from '../src/cas/pack-table.js'

const keys = casKeys(randomBytes(32))

function objects(sizes: number[]): Buffer[] {
  return sizes.map((n) => sealObject(keys, randomBytes(n)).block)
}

test('pack codec: a pack and its index block round-trip, objects slice back byte-exact', () => {
  const objs = objects([0, 1, 100, 65536, 3])
  const { pack, entries } = encodePack(objs)
  assert.equal(entries.length, objs.length)
  assert.equal(packLength(entries), pack.length)
  for (let i = 0; i < objs.length; i++) {
    const e = entries[i]!
    assert.deepEqual(pack.subarray(e.offset, e.offset + e.length), objs[i])
    assert.deepEqual(e.address, objs[i]!.subarray(1, 33))
  }
  assert.deepEqual(decodePackEntries(pack), entries)
  const block = encodeIndexBlock(7, entries)
  assert.equal(block.length, 13 + 40 * objs.length)
  const back = decodeIndexBlock(block)
  assert.equal(back.pack, 7)
  assert.deepEqual(back.entries.map((e) => [e.address, e.offset, e.length]), entries.map((e) => [Buffer.from(e.address), e.offset, e.length]))
  // One object alone is a pack too.
  const one = encodePack(objects([5]))
  assert.equal(decodePackEntries(one.pack).length, 1)
})

test('pack codec: every malformed pack block is rejected with a clear error', () => {
  const { pack } = encodePack(objects([10, 20, 30]))
  assert.throws(() => decodePackEntries(Buffer.alloc(0)), /pack: truncated header/)
  assert.throws(() => decodePackEntries(pack.subarray(0, 4)), /pack: truncated header/)
  const version = Buffer.from(pack)
  version[0] = 2
  assert.throws(() => decodePackEntries(version), /pack: unknown version 2/)
  const zero = Buffer.from(pack)
  zero.writeUInt32LE(0, 1)
  assert.throws(() => decodePackEntries(zero), /pack: no objects/)
  // A hostile count is refused before any work proportional to it.
  const huge = Buffer.from(pack)
  huge.writeUInt32LE(0xffffffff, 1)
  assert.throws(() => decodePackEntries(huge), /pack: count 4294967295 too large/)
  const short = Buffer.from(pack)
  short.writeUInt32LE(MIN_OBJECT_BYTES - 1, 5)
  assert.throws(() => decodePackEntries(short), /pack: object 0 of 48 bytes/)
  const past = Buffer.from(pack)
  past.writeUInt32LE(pack.readUInt32LE(13) + 1, 13)
  assert.throws(() => decodePackEntries(past), /pack: object 2 ends past the block/)
  assert.throws(() => decodePackEntries(pack.subarray(0, pack.length - 1)), /pack: object 2 ends past the block/)
  assert.throws(() => decodePackEntries(Buffer.concat([pack, Buffer.alloc(1)])), /pack: 1 trailing bytes/)
  assert.throws(() => decodePackEntries(Buffer.alloc(MAX_PACK_BYTES + 1, 1)), /more than/)
  assert.throws(() => encodePack([]), /pack: no objects/)
  assert.throws(() => encodePack([Buffer.alloc(10)]), /pack: object of 10 bytes/)
})

test('pack codec: every malformed index block is rejected with a clear error', () => {
  const { entries } = encodePack(objects([10, 20, 30]))
  const block = encodeIndexBlock(3, entries)
  assert.throws(() => decodeIndexBlock(block.subarray(0, 12)), /pack index: truncated header/)
  const version = Buffer.from(block)
  version[0] = 9
  assert.throws(() => decodeIndexBlock(version), /pack index: unknown version 9/)
  const range = Buffer.from(block)
  range.writeBigUInt64LE(2n ** 60n, 1)
  assert.throws(() => decodeIndexBlock(range), /pack number out of range/)
  const zero = Buffer.from(block)
  zero.writeUInt32LE(0, 9)
  assert.throws(() => decodeIndexBlock(zero), /pack index: no objects/)
  const huge = Buffer.from(block)
  huge.writeUInt32LE(0xffffffff, 9)
  assert.throws(() => decodeIndexBlock(huge), /pack index: \d+ bytes for 4294967295 entries/)
  assert.throws(() => decodeIndexBlock(block.subarray(0, block.length - 1)), /bytes for 3 entries/)
  // Entry i: A at 13 + 40i, offset at 45 + 40i, length at 49 + 40i.
  const overlap = Buffer.from(block)
  overlap.writeUInt32LE(overlap.readUInt32LE(85) - 1, 85)
  assert.throws(() => decodeIndexBlock(overlap), /object 1 at offset \d+, expected \d+ \(overlapping/)
  const gap = Buffer.from(block)
  gap.writeUInt32LE(gap.readUInt32LE(45) + 1, 45)
  assert.throws(() => decodeIndexBlock(gap), /object 0 at offset/)
  const tiny = Buffer.from(block)
  tiny.writeUInt32LE(1, 49)
  assert.throws(() => decodeIndexBlock(tiny), /object 0 of 1 bytes/)
  const out = Buffer.from(block)
  out.writeUInt32LE(0xfffffff0, 129)
  assert.throws(() => decodeIndexBlock(out), /object 2 ends at \d+, past the largest pack/)
  const bad: PackedObject[] = entries.map((e) => ({ ...e }))
  bad[1]!.offset += 1
  assert.throws(() => encodeIndexBlock(0, bad), /overlapping or out of place/)
  assert.throws(() => encodeIndexBlock(-1, entries), /bad pack number/)
})

test('pack table: adds, finds, grows, keeps the first location of an address', () => {
  const table = new PackTable()
  const addresses: Buffer[] = []
  for (let i = 0; i < 5000; i++) {
    const a = randomBytes(32)
    addresses.push(a)
    table.add(a, { pack: i, offset: i * 3, length: 49 + i })
  }
  assert.equal(table.size, 5000)
  for (let i = 0; i < addresses.length; i++) assert.deepEqual(table.get(addresses[i]!), { pack: i, offset: i * 3, length: 49 + i })
  for (let i = 0; i < 1000; i++) assert.equal(table.get(randomBytes(32)), null)
  table.add(addresses[0]!, { pack: 99, offset: 1, length: 60 })
  assert.equal(table.size, 5000)
  assert.deepEqual(table.get(addresses[0]!), { pack: 0, offset: 0, length: 49 })
  assert.ok(table.byteLength / table.size < 80, `${table.byteLength / table.size} bytes per object`)
  assert.throws(() => table.add(randomBytes(32), { pack: 2 ** 32, offset: 0, length: 49 }), /location out of range/)
  assert.throws(() => table.add(randomBytes(32), { pack: 0, offset: 0, length: 0 }), /location out of range/)
  assert.throws(() => table.add(Buffer.alloc(8), { pack: 0, offset: 0, length: 49 }), /address of 8 bytes/)
  assert.equal(table.get(Buffer.alloc(8)), null)
})

test('pack table: deleting addresses (backward shift) keeps every other one findable, through wrap-around and growth', () => {
  const table = new PackTable()
  const live = new Map<string, { address: Buffer; pack: number }>()
  // Many addresses sharing few home slots (the first 4 bytes pick the slot): long probe runs that wrap.
  const address = (i: number): Buffer => {
    const a = randomBytes(32)
    a.writeUInt32LE([0, 1, 1023, 1022][i % 4]!, 0)
    return a
  }
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 400; i++) {
      const a = address(i)
      table.add(a, { pack: round, offset: i, length: 10 })
      live.set(a.toString('hex'), { address: a, pack: round })
    }
    let n = 0
    const gone: Buffer[] = []
    for (const [hex, e] of live) {
      if (n++ % 3 !== 0) continue
      assert.equal(table.delete(e.address), true)
      assert.equal(table.delete(e.address), false, 'already gone')
      live.delete(hex)
      gone.push(e.address)
    }
    for (const a of gone) assert.equal(table.get(a), null)
    assert.equal(table.size, live.size)
    assert.equal(table.bytes, live.size * 10)
    for (const e of live.values()) assert.equal(table.get(e.address)?.pack, e.pack)
  }
})
