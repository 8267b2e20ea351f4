// Coalesced: one run at a time; requests during a run share exactly one more run; errors are
// reported, never thrown; nothing starts once stopped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Coalesced } from '../src/coalesced.js'

test('requests during a run share one more run; errors are reported; stopped runs nothing new', async () => {
  let runs = 0
  let release: (() => void) | null = null
  const errors: string[] = []
  let stop = false
  const c = new Coalesced(async () => {
    runs++
    if (runs === 3) throw new Error('third run fails')
    await new Promise<void>((r) => { release = r })
  }, (err) => errors.push(err.message), () => stop)
  const first = c.run()
  const more = [c.run(), c.run(), c.run()]
  assert.equal(runs, 1)
  release!()
  await new Promise((r) => setImmediate(r))
  assert.equal(runs, 2, 'one more run for the three requests')
  release!()
  await Promise.all([first, ...more])
  assert.equal(runs, 2)
  await c.run()
  assert.deepEqual(errors, ['third run fails'])
  stop = true
  await c.run()
  assert.equal(runs, 3)
})
