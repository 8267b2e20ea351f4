// A joiner that starts from a state instead of replaying the history (spec/tree.md "Starting
// from a state", issue 12): `volume state save` on the source, `volume connect --state` on the
// joiner over the loopback testnet (real servers, real hyperswarm). The state is believed only
// where the signed logs say the same: a state saved before more writes is completed by
// replaying the rest, and a tampered one is rejected with a clear line while the join still
// completes by replay. Every replica ends with the source's view.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { canonicalDump } from '../src/tree/index.js'
import { decodeState, encodeState, readStateFile, StateFileError, type VolumeState } from '../src/tree/state-file.js'
import { PeerCluster } from './peer-setup.js'
import * as A from '@automerge/automerge'
import { StateExpectation } from '../src/tree/state-check.js'

const FILES = 60

test('state file: round trip; damaged, unknown version and malformed files are refused with what is wrong', () => {
  const s = { volume: 'ab'.repeat(32), logs: { ['cd'.repeat(32)]: 7 }, shards: [{ name: '3f', heads: ['01'.repeat(32)], bytes: Buffer.from('xyz') }], meta: { heads: [], bytes: Buffer.from('m') } }
  const buf = encodeState(s)
  const back = decodeState(buf)
  assert.deepEqual({ ...back, shards: back.shards.map((x) => ({ ...x, bytes: Buffer.from(x.bytes).toString() })), meta: { heads: back.meta!.heads, bytes: Buffer.from(back.meta!.bytes).toString() } },
    { ...s, shards: [{ name: '3f', heads: s.shards[0]!.heads, bytes: 'xyz' }], meta: { heads: [], bytes: 'm' } })
  const flipped = Buffer.from(buf)
  flipped[12] ^= 1
  assert.throws(() => decodeState(flipped), /damaged \(its digest/)
  const v2 = Buffer.from(buf)
  v2[4] = 2
  assert.throws(() => decodeState(v2), /version 2 is not known/)
  assert.throws(() => decodeState(Buffer.from('hello world, this is not a state file at all.....')), StateFileError)
  assert.throws(() => decodeState(encodeState({ ...s, shards: [{ name: 'zz', heads: [], bytes: Buffer.alloc(0) }] })), /malformed: a shard record/)
})

test('what the logs say a shard is: heads of the changes whose deps are all there (any order), the rest held; a change twice counts once; a foreign actor is rejected', () => {
  const w = 'ab'.repeat(32)
  let d = A.init<Record<string, string>>({ actor: w })
  const changes: Uint8Array[] = []
  for (const k of ['x', 'y', 'z']) {
    d = A.change(d, (m) => { m[k] = k })
    changes.push(A.getLastLocalChange(d)!)
  }
  const heads = A.getHeads(d)
  const e = new StateExpectation()
  assert.equal(e.addEntry(w, 2, [{ shard: '3f', change: changes[2]! }, { shard: '3f', change: changes[1]! }]), true)
  let s = e.shards().get('3f')!
  assert.deepEqual([s.heads, s.held.length, s.changes], [[], 2, 0], 'nothing ready before the first change')
  assert.equal(e.addEntry(w, 1, [{ shard: '3f', change: changes[0]! }, { shard: '3f', change: changes[0]! }]), true)
  s = e.shards().get('3f')!
  assert.deepEqual([s.heads, s.held.length, s.changes, s.duplicateSeq], [heads, 0, 3, null])
  assert.equal(e.addEntry('cd'.repeat(32), 1, [{ shard: '40', change: changes[0]! }]), false)
  assert.match(e.rejected.at(-1)!.reason, /change by actor ab.* in the log of writer cd/)
  assert.equal(e.shards().has('40'), false)
})

test('volume connect --state: from a state saved before more writes (the rest replayed), and from a tampered one (rejected, replayed): both end with the source view', async (t) => {
  const c = await PeerCluster.create(['a', 'b', 'c'])
  try {
    const a = c.get('a'), b = c.get('b'), cc = c.get('c')
    const good = path.join(c.dir, 'v.state'), bad = path.join(c.dir, 'bad.state')
    let early: VolumeState | null = null
    {
      const node = await Node.open(DataDir.open(a.data))
      const vol = await node.createVolume('v', 'friends')
      vol.mkdir('/d')
      for (let i = 0; i < FILES; i++) {
        await vol.writeFile(`/d/f${i}`, Buffer.from(`file ${i}\n`))
        if (i % 10 === 9) await vol.flush()
        // An early state: its saves are valid documents with fewer changes (the tampered state's bytes).
        if (i === 19) early = await vol.saveState()
      }
      vol.setattr('/d/f1', { mode: 0o600 })
      await vol.snapshot('s1') // a change in the meta shard too
      await vol.flush()
      await node.close()
    }
    // The state, saved by the CLI (no server: it opens the data dir); then more writes on the source.
    const saved = await c.run('a', ['volume', 'state', 'save', 'v', good])
    assert.match(saved.stdout, /saved the state of volume "v" to .*: \d+ shards, \d+ log entries covered/)
    {
      const node = await Node.open(DataDir.open(a.data))
      const vol = await node.volume('v')
      for (let i = FILES; i < FILES + 10; i++) await vol.writeFile(`/d/f${i}`, Buffer.from(`late ${i}\n`))
      vol.rename('/d/f2', '/d/renamed')
      vol.unlink('/d/f3')
      await vol.flush()
      await node.close()
    }
    // Tampered: a shard's bytes replaced by its save of the early state (a valid document of
    // that shard, fewer changes), under the heads the logs give it now.
    const state = readStateFile(good)
    const s0 = state.shards.find((x) => early!.shards.some((y) => y.name === x.name && y.heads.join() !== x.heads.join()))
    assert.ok(s0, 'a shard that changed after the early state')
    fs.writeFileSync(bad, encodeState({ ...state, shards: state.shards.map((x) => (x === s0 ? { ...x, bytes: early!.shards.find((y) => y.name === x.name)!.bytes } : x)) }))

    await c.start('a', 'b', 'c')
    await c.run('a', ['peer', 'add', b.key])
    await c.run('a', ['peer', 'add', cc.key])
    await c.run('a', ['peer', 'volume', 'allow', b.key, 'v'])
    await c.run('a', ['peer', 'volume', 'allow', cc.key, 'v'])
    await c.run('b', ['peer', 'add', a.key])
    await c.run('c', ['peer', 'add', a.key])

    const lines = (out: string): Record<string, unknown>[] => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    const rb = await c.run('b', ['volume', 'connect', '--json', `--state=${good}`, '--sharing=friends', a.key, 'v'])
    const sb = lines(rb.stdout).find((l) => l.message_type === 'state')
    assert.equal(sb?.adopted, true, rb.stdout + rb.stderr)
    assert.ok((sb!.entries as number) > 0)
    assert.equal(lines(rb.stdout).at(-1)!.complete, true)

    const rc = await c.run('c', ['volume', 'connect', '--json', `--state=${bad}`, '--sharing=friends', a.key, 'v'])
    const sc = lines(rc.stdout).find((l) => l.message_type === 'state')
    assert.equal(sc?.adopted, false, rc.stdout)
    assert.match(sc!.error as string, new RegExp(`^state rejected: shard ${s0.name} (is not at the heads its logs give|does not load)`), "found by loading the save, not by the heads it names")
    assert.match(rc.stderr, /state rejected: .*; replaying the logs instead/)
    assert.equal(lines(rc.stdout).at(-1)!.complete, true)

    // A state that is not one: refused before anything is written.
    fs.writeFileSync(path.join(c.dir, 'junk'), 'not a state')
    const junk = await c.run('c', ['volume', 'connect', `--state=${path.join(c.dir, 'junk')}`, '--sharing=friends', a.key, 'other']).catch((e: Error) => e)
    assert.ok(junk instanceof Error && /not a bazil state file/.test(junk.message), String(junk))

    await c.stop('a', 'b', 'c')
    const dumps: string[][] = []
    for (const p of [a, b, cc]) {
      const node = await Node.open(DataDir.open(p.data))
      try {
        const vol = await node.volume('v')
        dumps.push([...canonicalDump(vol.tree), ...vol.tree.snapshots().map((x) => `snapshot ${x.name}`), ...canonicalDump(vol.view('s1')).map((l) => `s1: ${l}`)])
      } finally {
        await node.close()
      }
    }
    assert.ok(dumps[0]!.some((l) => l.startsWith('/d/renamed\t')) && !dumps[0]!.some((l) => l.startsWith('/d/f3\t')))
    assert.equal(dumps[0]!.filter((l) => l.startsWith('/')).length, FILES + 10 + 2 - 1)
    assert.ok(dumps[0]!.includes('snapshot s1') && dumps[0]!.some((l) => l.startsWith('s1: /d/f3\t')), 'the snapshot (meta shard) shows /d/f3, unlinked after it')
    assert.deepEqual(dumps[1], dumps[0], 'joined from the state (plus the rest replayed) = the source')
    assert.deepEqual(dumps[2], dumps[0], 'joined by replay after the tampered state = the source')
    t.diagnostic(`b: ${JSON.stringify(sb)}; c: ${JSON.stringify(sc)}`)
  } finally {
    await c.close()
  }
})
