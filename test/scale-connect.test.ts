// A second peer's first sync of a volume's metadata (issue 12), at small size: `volume connect`
// reports its progress (restic-style JSON lines with --json; a bar when the client's stderr is
// a terminal, carried over the control socket), and the joining node's volume answers ls and
// stat while the sync runs (the source is frozen mid-sync with SIGSTOP, so "while" is certain).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { PeerCluster } from './peer-setup.js'
import { bazilBin } from './helpers.js'

const FILES = Number(process.env.BAZIL_CONNECT_FILES ?? 3000)
const PER_ENTRY = 10

test(`volume connect of a ${FILES}-file volume: JSON progress, the volume listed and stat'ed while it syncs, a bar on a terminal`, async (t) => {
  const c = await PeerCluster.create(['a', 'b'])
  try {
    const a = c.get('a'), b = c.get('b')
    // The source: FILES files in /d, PER_ENTRY per log entry (many entries, as a volume built over time).
    const node = await Node.open(DataDir.open(a.data))
    const vol = await node.createVolume('v', 'friends')
    vol.mkdir('/d')
    for (let i = 0; i < FILES; i++) {
      await vol.writeFile(`/d/f${i}`, Buffer.from(`file ${i}\n`))
      if (i % PER_ENTRY === PER_ENTRY - 1) await vol.flush()
    }
    await vol.flush()
    const entries = vol.log.length
    await node.close()

    await c.start('a', 'b')
    await c.run('a', ['peer', 'add', b.key])
    await c.run('a', ['peer', 'volume', 'allow', b.key, 'v'])
    await c.run('b', ['peer', 'add', a.key])

    const connect = spawn(process.execPath, [bazilBin, `--data-dir=${b.data}`, 'volume', 'connect', '--json', '--sharing=friends', a.key, 'v'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = '', err = ''
    connect.stderr.on('data', (d: Buffer) => { err += d })
    const exited = new Promise<number | null>((resolve) => connect.on('close', resolve))
    const firstStatus = new Promise<void>((resolve) => {
      connect.stdout.on('data', (d: Buffer) => {
        out += d
        // The first status that says some entries are applied: /d and some of its files are here.
        if (/"message_type":"status".*"entries_done":[1-9]/.test(out)) resolve()
      })
    })
    await Promise.race([firstStatus, exited])
    // Freeze the source mid-sync: what b holds now is all it gets until it thaws.
    a.server!.child.kill('SIGSTOP')
    let stillSyncing: boolean
    try {
      const root = await c.run('b', ['volume', 'ls', 'v', '/'])
      const ls = root.stdout.includes('d/') ? await c.run('b', ['volume', 'ls', 'v', '/d']) : { stdout: '' }
      const names = ls.stdout.split('\n').filter(Boolean)
      assert.ok(names.length <= FILES)
      for (const n of names) assert.match(n, /^f\d+$/)
      if (names.length > 0) {
        const st = await c.run('b', ['volume', 'ls', '-l', '--json', 'v', `/d/${names[0]}`])
        assert.equal((JSON.parse(st.stdout) as { kind: string }[])[0]!.kind, 'file')
      }
      stillSyncing = connect.exitCode === null
    } finally {
      a.server!.child.kill('SIGCONT')
    }
    assert.equal(await exited, 0, `connect failed: ${err}\n${c.logs()}`)
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string | boolean | null>)
    const status = lines.filter((l) => l.message_type === 'status')
    const summary = lines[lines.length - 1]!
    assert.ok(status.length >= 1, out)
    for (const s of status) {
      assert.ok(typeof s.percent_done === 'number' && s.percent_done >= 0 && s.percent_done <= 1, JSON.stringify(s))
      assert.ok((s.entries_done as number) <= (s.entries_total as number))
    }
    assert.equal(summary.message_type, 'summary')
    assert.equal(summary.complete, true)
    assert.equal(summary.entries_done, summary.entries_total)
    assert.ok((summary.entries_total as number) >= entries - 1, `${summary.entries_total} entries of ${entries}`)
    // When b had not got everything before the freeze, it was listing while it synced.
    t.diagnostic(`connect still syncing when ls and stat answered: ${stillSyncing}; ${status.length} status lines: ${status.map((s) => `${s.entries_done}/${s.entries_total} ${s.blocks_held}`).join(', ')}`)
    if (stillSyncing) assert.ok(status.some((s) => (s.percent_done as number) < 1), 'a status before the end said less than 100%')
    const all = await c.run('b', ['volume', 'ls', 'v', '/d'])
    assert.equal(all.stdout.split('\n').filter(Boolean).length, FILES)

    // Connect again from a terminal: the bar (already full) is drawn on the client's stderr.
    const tty = spawnSync('script', ['-qfec', `${process.execPath} ${bazilBin} --data-dir=${b.data} volume connect --sharing=friends ${a.key} v`, path.join(c.dir, 'typescript')], { encoding: 'utf8' })
    assert.equal(tty.status, 0, tty.stdout + tty.stderr)
    assert.match(tty.stdout, /\[#{30}\] 100% \d+\/\d+ entries/)
    assert.match(tty.stdout, /connected volume "v"/)
  } finally {
    await c.close()
  }
})
