// Progress of long ops (issue 14): the status events an op streams (src/control/progress.ts:
// throttled, percent never going back, time left) and how the CLI shows them
// (src/cli/progress.ts: a line rewritten in place on a terminal with rate and time left, JSON
// lines and a summary with --json, nothing otherwise). A fake clock: no timing asserted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { OpProgress } from '../src/control/progress.js'
import { ProgressView, clock, statusLine } from '../src/cli/progress.js'
import type { ControlEvent } from '../src/control/requests.js'

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('OpProgress: at most one event per interval (the first and a forced one always), percent never back, time left from the rate so far', () => {
  const c = fakeClock()
  const events: Record<string, unknown>[] = []
  const p = new OpProgress((e) => events.push(e), { unit: 'files', now: c.now })
  p.update({ done: 0, total: 10, bytesDone: 0, bytesTotal: 1000 })
  p.update({ done: 1, total: 10, bytesDone: 100, bytesTotal: 1000 }) // same instant: held back
  assert.equal(events.length, 1)
  assert.deepEqual(events[0], { message_type: 'status', percent_done: 0, seconds_elapsed: 0, seconds_remaining: null, files_done: 0, files_total: 10, bytes_done: 0, bytes_total: 1000 })
  c.advance(2000)
  p.update({ done: 5, total: 10, bytesDone: 250, bytesTotal: 1000 }) // by bytes: a quarter in 2 s, 6 s left
  assert.equal(events.length, 2)
  assert.equal(events[1]!.percent_done, 0.25)
  assert.equal(events[1]!.seconds_remaining, 6)
  c.advance(200)
  p.update({ done: 5, total: 20, bytesDone: 250, bytesTotal: 4000 }) // more found: the percentage stays
  assert.equal(events[2]!.percent_done, 0.25)
  c.advance(50)
  p.update({ done: 20, total: 20, bytesDone: 4000, bytesTotal: 4000 }, false) // held back...
  assert.equal(events.length, 3)
  p.end() // ...and sent at the end
  assert.deepEqual([events.length, events[3]!.percent_done, events[3]!.seconds_remaining, events[3]!.files_done], [4, 1, 0, 20])
  p.end()
  assert.equal(events.length, 4, 'the end said once')
  // Counts standing still: one event a second, not ten.
  const still: Record<string, unknown>[] = []
  const s = new OpProgress((e) => still.push(e), { unit: 'entries', now: c.now })
  for (let i = 0; i < 25; i++) {
    s.update({ done: 1, total: 2 })
    c.advance(100)
  }
  assert.equal(still.length, 3, JSON.stringify(still))
  // Without bytes, units; a phase when the op names one; extras as they are.
  const q: Record<string, unknown>[] = []
  new OpProgress((e) => q.push(e), { unit: 'entries', now: c.now }).update({ done: 3, total: 4, phase: 'apply', extra: { blocks_held: 9 } })
  assert.deepEqual(q[0], { message_type: 'status', phase: 'apply', percent_done: 0.75, seconds_elapsed: 0, seconds_remaining: null, entries_done: 3, entries_total: 4, blocks_held: 9 })
})

function collect(tty: boolean, json: boolean, events: ControlEvent[], now?: () => number, columns?: number): { out: string; err: string } {
  const out = new PassThrough(), err = Object.assign(new PassThrough(), { isTTY: tty, columns })
  let o = '', e = ''
  out.on('data', (d: Buffer) => { o += d })
  err.on('data', (d: Buffer) => { e += d })
  const v = new ProgressView(out, err, { json, now })
  for (const ev of events) assert.equal(v.event(ev), true)
  assert.equal(v.event({ message_type: 'change', volume: 'v', entries: 1, time: '' }), false, 'not progress: the caller\'s')
  v.finish({ volume: 'v', files: 10 })
  return { out: o, err: e }
}

test('ProgressView: a line rewritten in place on a terminal (bar, counts, rate, time left), JSON lines and a summary with --json, nothing otherwise', () => {
  const ev = (done: number, left: number | null): ControlEvent => ({ message_type: 'status', percent_done: done / 10, seconds_elapsed: done, seconds_remaining: left, files_done: done, files_total: 10, bytes_done: done * 1048576, bytes_total: 10 * 1048576 })
  const events = [ev(0, null), ev(5, 5), ev(10, 0)]
  const c = fakeClock()
  const timed = (): number => { const t = c.now(); c.advance(1000); return t }
  const tty = collect(true, false, events, timed)
  assert.equal(tty.out, '')
  const lines = tty.err.split('\r').filter(Boolean)
  assert.equal(lines.length, 3, tty.err)
  assert.match(lines[0]!, /^\[\.{30}\]   0% 0\/10 files, 0B\/10MiB\x1b\[K$/)
  // 5 MiB in the second since the first event; 5 s left as the op said.
  assert.match(lines[1]!, /^\[#{15}\.{15}\]  50% 5\/10 files, 5MiB\/10MiB, 5MiB\/s, 0:05 left\x1b\[K$/)
  assert.match(lines[2]!, /^\[#{30}\] 100% 10\/10 files, 10MiB\/10MiB, 5MiB\/s\x1b\[K\n$/, 'no time left at the end; the line ends')
  const json = collect(false, true, events)
  assert.equal(json.err, '')
  const objs = json.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(objs.slice(0, 3), events)
  assert.deepEqual(objs[3], { message_type: 'summary', volume: 'v', files: 10 })
  assert.deepEqual(collect(false, false, events), { out: '', err: '' }, 'no terminal, no --json: nothing')
  // A terminal narrower than the line: cut, so that \r still rewrites it.
  const narrow = collect(true, false, [ev(5, 5)], undefined, 40)
  assert.ok(narrow.err.split('\r')[1]!.replace('\x1b[K\n', '').length <= 39, narrow.err)
})

test('statusLine and clock: units without bytes, a phase, hours', () => {
  assert.equal(statusLine({ message_type: 'status', phase: 'rewrite', percent_done: 0.5, seconds_remaining: 3725, packs_done: 2, packs_total: 4 }, 0.5), `[${'#'.repeat(15)}${'.'.repeat(15)}]  50% rewrite: 2/4 packs, 0.5 packs/s, 1:02:05 left`)
  assert.equal(statusLine({ message_type: 'status', percent_done: 0, seconds_remaining: null, entries_done: 0, entries_total: 0 }, null), `[${'.'.repeat(30)}]   0% 0/0 entries`)
  assert.deepEqual([clock(0), clock(65), clock(3600)], ['0:00', '1:05', '1:00:00'])
})
