// A limited log past its limit (src/logs/held-range.ts, spec/oplog.md "Admission and
// revocation"): its control blocks are fetched, kept and found by a control scan; its sealed
// blocks are fetched once, cleared, never fetched again, and a scan reads over them, also
// after the store is opened again. Real corestores replicating over a stream pair.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import Corestore from 'corestore'
import { HeldRange, HELD_STATE_KEY, decodeHeldState, encodeHeldState } from '../src/logs/held-range.js'
import { encodeControl, scanControl } from '../src/logs/control.js'
import { LogFormatError } from '../src/logs/errors.js'
import { heldBlocks, tempDir } from './helpers.js'

function link(a: Corestore, b: Corestore): () => void {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.on('error', () => {})
  s2.on('error', () => {})
  s1.pipe(s2).pipe(s1)
  return () => { s1.destroy(); s2.destroy() }
}

const control = (n: number): Buffer => encodeControl({ time: n, ops: [{ op: 'revoke-node', node: Buffer.alloc(32, n) }] })
/** A sealed entry as far as the held range can tell (block version 1; never decrypted here). */
const sealed = (n: number): Buffer => Buffer.concat([Buffer.from([1]), Buffer.alloc(40, n)])

/** Resolves when `check` holds (polled; the deadline only ends a test that hangs). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('past a limit: control blocks kept and scanned, sealed ones cleared and not fetched again, also after reopening', async () => {
  const { dir, cleanup } = tempDir('bazil-held-')
  const writerStore = new Corestore(path.join(dir, 'w'))
  let readerStore = new Corestore(path.join(dir, 'r'))
  const log = writerStore.get({ name: 'log' })
  await log.ready()
  // 0, 1: accepted (limit 1); then sealed 2-3, control 4-5, sealed 6-7, control 8-9.
  await log.append([sealed(0), sealed(1), sealed(2), sealed(3), control(4), control(5), sealed(6), sealed(7), control(8), control(9)])
  let unlink = link(writerStore, readerStore)
  try {
    let core = readerStore.get({ key: log.key })
    await core.ready()
    let held = await HeldRange.open(core)
    await held.setLimit(1)
    const want = [0, 1, 4, 5, 8, 9]
    await until('reader holds 0-1 and the control blocks only', async () => JSON.stringify(await heldBlocks(core)) === JSON.stringify(want) && (await scanControl(core, 1, core.length, held.pastLimit())).next === 10)
    let scan = await scanControl(core, 1, core.length, held.pastLimit())
    assert.deepEqual(scan.found.map((c) => c.seq), [4, 5, 8, 9])
    assert.equal(scan.next, 10, 'the scan reads over the cleared sealed blocks')
    // Without the limit's state a scan stops at the first block not held (what it did before).
    assert.equal((await scanControl(core, 1)).next, 2)

    // Live: more blocks; the cleared ones are never requested again.
    const downloads: number[] = []
    core.on('download', (i: number) => downloads.push(i))
    await log.append([sealed(10), sealed(11), control(12)])
    // (Held as wanted and the scan through: 10 and 11 may not have arrived when 12 has.)
    await until('the new control block arrives and the new sealed ones are cleared', async () => JSON.stringify(await heldBlocks(core)) === JSON.stringify([...want, 12]) && (await scanControl(core, 1, core.length, held.pastLimit())).next === 13)
    assert.deepEqual(downloads.filter((i) => i < 10), [], `cleared blocks fetched again: ${downloads.join(',')}`)
    scan = await scanControl(core, 1, core.length, held.pastLimit())
    assert.deepEqual(scan.found.map((c) => c.seq), [4, 5, 8, 9, 12])
    assert.equal(scan.next, 13)

    // Reopened: the state comes back from the core's user data.
    held.destroy()
    unlink()
    await readerStore.close()
    readerStore = new Corestore(path.join(dir, 'r'))
    core = readerStore.get({ key: log.key })
    await core.ready()
    const stored = decodeHeldState((await core.getUserData(HELD_STATE_KEY))!)
    assert.equal(stored.limit, 1)
    held = await HeldRange.open(core)
    scan = await scanControl(core, 1, core.length, held.pastLimit())
    assert.deepEqual(scan.found.map((c) => c.seq), [4, 5, 8, 9, 12])
    assert.equal(scan.next, 13)

    // The limit lifted: everything is fetched again.
    unlink = link(writerStore, readerStore)
    await held.setLimit(null)
    await until('every block held again', async () => (await heldBlocks(core)).length === 13)
    assert.equal(held.pastLimit(), null)

    // Limited at 2: the sealed block 3 (odd, its left neighbour held) cannot be cleared alone
    // (core-clear.ts): the pair 2-3 is, and block 2 comes back from the writer.
    await held.setLimit(2)
    await until('reader holds 0-2 and the control blocks only', async () => JSON.stringify(await heldBlocks(core)) === JSON.stringify([0, 1, 2, 4, 5, 8, 9, 12]) && (await scanControl(core, 1, core.length, held.pastLimit())).next === 13)
    scan = await scanControl(core, 1, core.length, held.pastLimit())
    assert.deepEqual(scan.found.map((c) => c.seq), [4, 5, 8, 9, 12])
    assert.equal(scan.next, 13)
    held.destroy()
  } finally {
    unlink()
    await readerStore.close()
    await writerStore.close()
    cleanup()
  }
})

test('held state: encodes and decodes; rejects an unknown version, empty or adjacent runs, trailing bytes', () => {
  const s = { limit: 7, examined: [[8, 10], [12, 13]] as [number, number][] }
  assert.deepEqual(decodeHeldState(encodeHeldState(s)), s)
  assert.deepEqual(decodeHeldState(encodeHeldState({ limit: null, examined: [] })), { limit: null, examined: [] })
  const good = encodeHeldState(s)
  assert.throws(() => decodeHeldState(Buffer.concat([Buffer.from([2]), good.subarray(1)])), LogFormatError)
  assert.throws(() => decodeHeldState(Buffer.concat([good, Buffer.from([0])])), LogFormatError)
  assert.throws(() => decodeHeldState(Buffer.from([1, 8, 1, 8, 0])), /empty/)
  assert.throws(() => decodeHeldState(Buffer.from([1, 8, 2, 8, 2, 0, 1])), /adjacent/)
  assert.throws(() => encodeHeldState({ limit: 1, examined: [[5, 3]] }), LogFormatError)
})
