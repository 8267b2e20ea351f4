// When live replay applies what arrived (src/volume/live-pace.ts): soon once the download is
// complete or a window's worth waits, else once per window; never more than once per timer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LivePace } from '../src/volume/live-pace.js'

const HOUR = 3_600_000

function source(state: { waiting: number; complete: boolean }): { applied: Promise<void>; count: () => number; src: ConstructorParameters<typeof LivePace>[0] } {
  let n = 0
  let done!: () => void
  const applied = new Promise<void>((resolve) => { done = resolve })
  return {
    applied,
    count: () => n,
    src: { waiting: () => state.waiting, complete: () => state.complete, apply: () => { n++; done() } }
  }
}

test('a complete download is applied soon, not after the window', async () => {
  const s = source({ waiting: 1, complete: true })
  const pace = new LivePace(s.src, { shortMs: 1, windowMs: HOUR, windowEntries: 1000 })
  pace.arrived()
  await s.applied
  assert.equal(s.count(), 1)
  pace.close()
})

test('a partial download waits for its window; a full window cuts the wait short', async () => {
  const state = { waiting: 10, complete: false }
  const s = source(state)
  const pace = new LivePace(s.src, { shortMs: 1, windowMs: HOUR, windowEntries: 1000 })
  for (let i = 0; i < 50; i++) pace.arrived()
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(s.count(), 0, 'nothing applied while the window is open and not full')
  assert.ok(pace.pending)
  state.waiting = 1000
  pace.arrived()
  await s.applied
  assert.equal(s.count(), 1)
  assert.equal(pace.pending, false)
  pace.close()
})

test('many arrivals within a window make one apply', async () => {
  const s = source({ waiting: 5, complete: false })
  const pace = new LivePace(s.src, { shortMs: 1, windowMs: 30, windowEntries: 1000 })
  for (let i = 0; i < 100; i++) pace.arrived()
  await s.applied
  await new Promise((resolve) => setTimeout(resolve, 60))
  assert.equal(s.count(), 1)
  pace.close()
})

test('now() applies soon; close() cancels what is pending', async () => {
  const s = source({ waiting: 5, complete: false })
  const pace = new LivePace(s.src, { shortMs: 1, windowMs: HOUR, windowEntries: 1000 })
  pace.arrived()
  pace.now()
  await s.applied
  assert.equal(s.count(), 1)
  pace.arrived()
  assert.ok(pace.pending)
  pace.close()
  assert.equal(pace.pending, false)
  pace.arrived()
  assert.equal(pace.pending, false)
})
