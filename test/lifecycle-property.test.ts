// Issue 11's content-lifecycle property (test/lifecycle-run.ts), one short deterministic seed
// (~40-60 s here): three servers writing, deleting, pinning, evicting, collecting and being
// stopped; then every file reads byte-exact from every peer. Long runs: `npm run lifecycle`.
import { test } from 'node:test'
import { lifecycleProperty } from './lifecycle-run.js'

test('lifecycle property (seed 1, 24 steps): writes, deletes, pins, evictions, gc and partitions lose no referenced file', { timeout: 600_000 }, () => lifecycleProperty(1, 24))
