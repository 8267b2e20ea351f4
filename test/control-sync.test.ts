// `volume sync` through the typed API (op volume.sync) on two real servers: it reports what
// this node holds now that it did not hold when the command started, whoever delivered it
// (issue 14 defect 1: live replication used to make it say "received 0 entries").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { PeerCluster, eventually } from './peer-setup.js'
import { bazilBin, summaryOf } from './helpers.js'
import { callRemote } from '../src/control/client.js'
import { connect } from '../src/control/frames.js'
import type { ControlEvent } from '../src/control/requests.js'

test('volume sync counts what arrived since it started, whoever delivered it', async (t) => {
  const c = await PeerCluster.create(['white', 'black'])
  t.after(() => c.close())
  await c.start('white', 'black')
  const W = c.get('white'), B = c.get('black')
  await c.run('white', ['volume', 'create', '--sharing=friends', 'v'])
  await c.connect('white', 'black', 'v')
  const ls = async (who: string): Promise<string[]> => (JSON.parse((await c.run(who, ['volume', 'ls', '--json', 'v', '/'])).stdout) as { name: string }[]).map((e) => e.name)

  // White writes three entries while it is offline (the CLI opens its data dir directly).
  await c.stop('white')
  for (const d of ['/one', '/two', '/three']) await c.run('white', ['volume', 'mkdir', 'v', d])
  // Black's sync starts while white is away (it waits for white), then white comes back and
  // live replication races the sync to deliver the three: the sync counts them all the same.
  const sync = c.run('black', ['volume', 'sync', '--json', 'v', W.key])
  await eventually('black runs the sync', async () => /control: volume\.sync/.test(B.log()), 20_000, 20)
  await c.start('white')
  const r = summaryOf((await sync).stdout) as Record<string, unknown>
  assert.equal(r.complete, true, JSON.stringify(r))
  assert.equal(r.received, 3, JSON.stringify(r))
  assert.equal(r.entriesApplied, 3, JSON.stringify(r))
  assert.deepEqual((await ls('black')).sort(), ['one', 'three', 'two'])

  // Nothing new: said in words.
  const again = await c.run('black', ['volume', 'sync', 'v', W.key])
  assert.match(again.stdout, /^nothing new since the command started, sent 0 entries, in \d+ ms; volume "v": 2 writer logs, \d+ entries applied in all\n$/)

  // A watch on black streams a change event when white's next entry is applied there.
  const sock = await connect(B.data)
  assert.ok(sock)
  const events: ControlEvent[] = []
  const watching = callRemote(sock, 'watch', { volume: 'v', limit: 1 }, { onEvent: (e) => void events.push(e) })
  await eventually('black runs the watch', async () => /control: watch/.test(B.log()), 20_000, 20)
  // A change live replication delivered before the command started is not news to it.
  await c.run('white', ['volume', 'mkdir', 'v', '/four'])
  assert.deepEqual(await watching, { events: 1 })
  assert.equal(events.length, 1)
  assert.equal(events[0]!.message_type, 'change')
  assert.equal(events[0]!.volume, 'v')
  assert.ok((events[0]!.entries as number) >= 1, JSON.stringify(events))
  await eventually('four on black', async () => (await ls('black')).includes('four'), 30_000)
  const after = summaryOf((await c.run('black', ['volume', 'sync', '--json', 'v', W.key])).stdout) as Record<string, unknown>
  assert.equal(after.received, 0, JSON.stringify(after))
  assert.equal(after.complete, true)

  // `bazil status --watch --json`: the status on one line, then one line per change.
  const child = spawn(process.execPath, [bazilBin, `--data-dir=${B.data}`, 'status', '--watch', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  try {
    await eventually('the status line', async () => out.includes('\n'), 20_000, 20)
    assert.equal((JSON.parse(out.split('\n')[0]!) as { server: { running: boolean } }).server.running, true)
    await eventually('black runs the watch of status --watch', async () => (B.log().match(/control: watch/g) ?? []).length === 2, 20_000, 20)
    await c.run('white', ['volume', 'mkdir', 'v', '/five'])
    await eventually('a change line', async () => out.split('\n').length >= 3, 30_000)
    assert.equal((JSON.parse(out.split('\n')[1]!) as { message_type: string; volume: string }).volume, 'v')
  } finally {
    child.kill('SIGTERM')
  }

  // A watch with `peers` (the web view's) also says when a peer goes away and comes back.
  const sock2 = await connect(B.data)
  assert.ok(sock2)
  const seen: ControlEvent[] = []
  const peerWatch = callRemote(sock2, 'watch', { peers: true, limit: 2 }, { onEvent: (e) => void seen.push(e) })
  await eventually('black runs the peers watch', async () => (B.log().match(/control: watch/g) ?? []).length === 3, 20_000, 20)
  await c.stop('white')
  await c.start('white')
  assert.deepEqual(await peerWatch, { events: 2 })
  assert.deepEqual(seen.map((e: Record<string, unknown>) => [e.message_type, e.peer, e.connected]), [['peer', W.key, false], ['peer', W.key, true]])
})
