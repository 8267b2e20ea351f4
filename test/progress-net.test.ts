// Progress and status on two real servers on a loopback testnet (issue 14): `volume import`
// and `volume sync` with --json stream restic-style status lines (percent never going back)
// and end with a summary; a terminal gets the line drawn in place; `bazil status --json`
// shows the peer connected (since when, where, direct) and how far behind each writer log
// is, 0 after a sync.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { PeerCluster, eventually } from './peer-setup.js'
import { bazilBin, summaryOf } from './helpers.js'
import type { StatusResult } from '../src/control/requests.js'

const FILES = 40

/** The status lines of a --json run, checked: percent in 0..1 and never going back. */
function statusLines(stdout: string): Record<string, any>[] {
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>)
  const status = lines.filter((l) => l.message_type === 'status')
  assert.ok(status.length >= 1, stdout)
  let last = 0
  for (const s of status) {
    assert.ok(typeof s.percent_done === 'number' && s.percent_done >= last && s.percent_done <= 1, `percent went back or out of range: ${stdout}`)
    assert.ok(s.seconds_remaining === null || typeof s.seconds_remaining === 'number')
    last = s.percent_done
  }
  assert.equal(lines.at(-1)!.message_type, 'summary')
  return status
}

test('import and sync --json: status lines then a summary; a bar on a terminal; status shows the peer and how far behind', async (t) => {
  const c = await PeerCluster.create(['white', 'black'])
  t.after(() => c.close())
  await c.start('white', 'black')
  const W = c.get('white'), B = c.get('black')
  await c.run('white', ['volume', 'create', '--sharing=friends', 'v'])

  // Import: files and bytes.
  const src = path.join(c.dir, 'src')
  fs.mkdirSync(path.join(src, 'd'), { recursive: true })
  let bytes = 0
  for (let i = 0; i < FILES; i++) {
    const data = Buffer.alloc(1000 + i * 100, i)
    bytes += data.length
    fs.writeFileSync(path.join(src, 'd', `f${i}`), data)
  }
  const imp = await c.run('white', ['volume', 'import', '--json', 'v', src])
  assert.equal(imp.stderr, '', 'no progress noise on stderr')
  const st = statusLines(imp.stdout)
  assert.deepEqual([st.at(-1)!.percent_done, st.at(-1)!.files_done, st.at(-1)!.files_total, st.at(-1)!.bytes_done, st.at(-1)!.bytes_total], [1, FILES, FILES, bytes, bytes])
  assert.deepEqual(summaryOf(imp.stdout), { volume: 'v', files: FILES, dirs: 1, symlinks: 0, links: 0, special: 0, bytes, skipped: [] })
  // Neither --json nor a terminal: the final line only.
  const quiet = await c.run('white', ['volume', 'import', 'v', src, '--to=/quiet'])
  assert.deepEqual([quiet.stdout, quiet.stderr], [`imported ${FILES} files, 1 directories, 0 symlinks, 0 hard links, 0 fifos/devices, ${bytes} bytes\n`, ''])
  // On a terminal: the line drawn in place on stderr (script(1) gives the command a pty).
  const tty = spawnSync('script', ['-qfec', `${process.execPath} ${bazilBin} --data-dir=${W.data} volume import v ${src} --to=/tty`, path.join(c.dir, 'typescript')], { encoding: 'utf8' })
  assert.equal(tty.status, 0, tty.stdout + tty.stderr)
  assert.match(tty.stdout, new RegExp(`\\r\\[#{30}\\] 100% ${FILES}/${FILES} files, [0-9.]+KiB/[0-9.]+KiB`))
  assert.match(tty.stdout, /imported 40 files/)

  await c.connect('white', 'black', 'v')
  // Black writes while white is away; its sync then sends them, with progress.
  await c.stop('white')
  for (const d of ['/one', '/two', '/three']) await c.run('black', ['volume', 'mkdir', 'v', d])
  await c.start('white')
  const sync = await c.run('black', ['volume', 'sync', '--json', 'v', W.key])
  const ss = statusLines(sync.stdout)
  const end = ss.at(-1)!
  assert.equal(end.percent_done, 1, sync.stdout)
  assert.equal(end.entries_done, end.entries_total)
  assert.ok(end.entries_sent <= end.entries_to_send && end.entries_received <= end.entries_to_receive, JSON.stringify(end))
  const r = summaryOf(sync.stdout)
  assert.equal(r.complete, true, sync.stdout)
  assert.equal(r.volume, 'v')

  // Status on black: white connected (since when, where, direct), nothing behind after the sync.
  await c.run('white', ['volume', 'mkdir', 'v', '/four'])
  await c.run('black', ['volume', 'sync', 'v', W.key])
  const status = async (): Promise<StatusResult> => JSON.parse((await c.run('black', ['status', '--json'])).stdout) as StatusResult
  await eventually('white announced its lengths to black', async () => {
    const v = (await status()).volumeStatus.find((x) => x.name === 'v')!
    return v.peers[0]!.writers.every((w) => w.peerLength !== null)
  })
  const s = await status()
  assert.equal(s.server.running, true)
  assert.ok(s.server.running && s.server.uptimeSeconds >= 0 && s.server.version.length > 0)
  const peer = s.peers.find((p) => p.key === W.key)!
  assert.equal(peer.connected, true)
  assert.ok(peer.since && !Number.isNaN(Date.parse(peer.since)), JSON.stringify(peer))
  assert.match(peer.address ?? '', /^127\.0\.0\.1:\d+$/)
  assert.equal(peer.relayed, false)
  const v = s.volumeStatus.find((x) => x.name === 'v')!
  assert.equal(v.writers, 2)
  assert.equal(v.conflicts, 0)
  assert.deepEqual(v.peers.map((p) => [p.key, p.connected, p.behind]), [[W.key, true, 0]], JSON.stringify(v))
  const own = v.peers[0]!.writers.find((w) => w.mine)!
  const theirs = v.peers[0]!.writers.find((w) => !w.mine)!
  assert.equal(theirs.held, theirs.peerLength, 'black holds white\'s log as far as white has it')
  assert.ok(own.held >= 4, JSON.stringify(own)) // the header and three mkdirs
  assert.ok(s.cache && s.cache.budgetBytes > 0)
  assert.equal(s.transfer.fetchBytes, 0)
  // The same, for people.
  const human = (await c.run('black', ['status'])).stdout
  assert.match(human, /^server: running, version \S+, pid \d+, up \d+:\d\d/m)
  assert.match(human, new RegExp(`^volume v: 2 writer logs, \\d+ entries$`, 'm'))
  assert.match(human, new RegExp(`^  peer ${W.key}: connected since \\S+ \\(127\\.0\\.0\\.1:\\d+, direct, (outgoing|incoming)\\); in sync$`, 'm'))
  assert.match(human, /^cache: /m)
  // `status --watch` on a terminal: the status drawn again after a change, the change under it.
  const watch = spawn('script', ['-qfec', `${process.execPath} ${bazilBin} --data-dir=${B.data} status --watch`, path.join(c.dir, 'watch-typescript')], { stdio: ['pipe', 'pipe', 'pipe'] })
  let screen = ''
  watch.stdout.on('data', (d: Buffer) => { screen += d })
  try {
    await eventually('the watch started', async () => /^volume v: /m.test(screen))
    await eventually('the watch is on', async () => /control: watch/.test(B.log()), 20_000, 50)
    await c.run('white', ['volume', 'mkdir', 'v', '/five'])
    await eventually('the status drawn again with the change', async () => /\x1b\[H\x1b\[2Jserver: running[^]*volume "v": \d+ entries applied from other writers/.test(screen), 20_000)
  } finally {
    watch.kill('SIGTERM')
  }
  // White's status says the same of black, from its side.
  const sw = JSON.parse((await c.run('white', ['status', '--json'])).stdout) as StatusResult
  assert.deepEqual(sw.volumeStatus[0]!.peers.map((p) => [p.key, p.connected]), [[B.key, true]])
})
