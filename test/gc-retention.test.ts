// Snapshot retention (src/retention.ts): which snapshots a rule keeps; a node that has seen
// fewer snapshots never removes one a node that has seen them all keeps; the rule is set with
// `volume snapshot keep`, replicated in the volume, and applied by `volume gc`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { keptSnapshots, decodeRetention, encodeRetention, type RetentionRule } from '../src/retention.js'
import { bazil, summaryOf } from './helpers.js'
import { withFilledVolume } from './gc-helpers.js'

const H = 3_600_000
const D = 24 * H

test('a rule keeps the last N and the newest of each recent hour, day and week that has a snapshot', () => {
  const t0 = Date.UTC(2026, 11, 7, 12) // a Monday, noon
  const snaps = [
    { name: 'a', time: t0 - 20 * D },
    { name: 'b', time: t0 - 9 * D },
    { name: 'c', time: t0 - 8 * D },
    { name: 'd', time: t0 - 2 * D },
    { name: 'e', time: t0 - 2 * D + H },
    { name: 'f', time: t0 - 3 * H },
    { name: 'g', time: t0 - 3 * H + 60_000 },
    { name: 'h', time: t0 - H }
  ]
  const keep = (r: Partial<RetentionRule>): string[] => [...keptSnapshots(snaps, { last: 0, hourly: 0, daily: 0, weekly: 0, ...r })].sort()
  assert.deepEqual(keep({ last: 2 }), ['g', 'h'])
  assert.deepEqual(keep({ hourly: 2 }), ['g', 'h'])
  assert.deepEqual(keep({ daily: 2 }), ['e', 'h'])
  // Weeks from Monday: h, g, f (this week), e, d (last week: e newest), c, b (the week before: c newest).
  assert.deepEqual(keep({ weekly: 3 }), ['c', 'e', 'h'])
  assert.deepEqual(keep({ last: 1, daily: 3 }), ['c', 'e', 'h'])
  assert.equal(decodeRetention(encodeRetention({ last: 3, hourly: 0, daily: 7, weekly: 4 }))?.daily, 7)
  for (const bad of ['[2,1,0,0,0]', '[1,-1,0,0,0]', '[1,1,0,0]', 'x', '[1,0,0,0,0]']) assert.equal(decodeRetention(bad), null, bad)
})

test('a node that has seen only some snapshots keeps every one of them that the full view keeps (removals need no coordination)', () => {
  let seed = 7
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  }
  for (let round = 0; round < 300; round++) {
    const snaps = Array.from({ length: 1 + rnd(40) }, (_, i) => ({ name: `s${i}`, time: 1_700_000_000_000 + rnd(60) * D + rnd(24) * H + rnd(3600) * 1000 }))
    const rule = { last: rnd(4), hourly: rnd(5), daily: rnd(8), weekly: rnd(5) }
    const full = keptSnapshots(snaps, rule)
    const partial = snaps.filter(() => rnd(3) > 0)
    const kept = keptSnapshots(partial, rule)
    for (const s of partial) if (full.has(s.name)) assert.ok(kept.has(s.name), `round ${round}: ${s.name} kept by the full view, removed by a partial one`)
  }
})

test('volume snapshot keep sets the rule in the volume; volume gc removes the snapshots it does not keep', async () => {
  await withFilledVolume(async (vol) => {
    for (const n of ['one', 'two', 'three', 'four']) {
      await vol.writeFile(`/${n}`, Buffer.from(n))
      vol.snapshot(n)
      await new Promise((r) => setTimeout(r, 5))
    }
  }, async (root) => {
    const show = await bazil(root, ['volume', 'snapshot', 'keep', 'v'])
    assert.equal(show.stdout, 'volume v: no rule: every snapshot is kept\n')
    const set = await bazil(root, ['volume', 'snapshot', 'keep', 'v', '--last', '2'])
    assert.equal(set.code, 0, set.stderr)
    assert.equal(set.stdout, 'volume v: keep last 2\n')
    const bad = await bazil(root, ['volume', 'snapshot', 'keep', 'v', '--daily', 'many'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /--daily: "many" is not a count/)
    const dry = await bazil(root, ['volume', 'gc', 'v', '--dry-run'])
    assert.match(dry.stdout, /would remove snapshot "one" of volume v \(retention: keep last 2\)/)
    const gc = await bazil(root, ['volume', 'gc', 'v', '--json'])
    assert.equal(gc.code, 0, gc.stderr)
    assert.deepEqual((summaryOf(gc.stdout) as { snapshotsRemoved: { name: string }[] }).snapshotsRemoved.map((s) => s.name).sort(), ['one', 'two'])
    const list = await bazil(root, ['volume', 'snapshot', 'list', 'v', '--json'])
    assert.deepEqual((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name), ['three', 'four'])
    assert.equal((await bazil(root, ['volume', 'snapshot', 'keep', 'v', '--none'])).stdout, 'volume v: no rule: every snapshot is kept\n')
  })
})
