// `npm run lifecycle`: issue 11's content-lifecycle property (test/lifecycle-run.ts) for long
// runs. BAZIL_PROP_SEED (default 1) and BAZIL_PROP_STEPS (default 24) replay or lengthen a run;
// npm test runs one short seed (test/lifecycle-property.test.ts).
import { test } from 'node:test'
import { lifecycleProperty } from '../test/lifecycle-run.js'

const SEED = Number(process.env.BAZIL_PROP_SEED ?? 1)
const STEPS = Number(process.env.BAZIL_PROP_STEPS ?? 24)

test(`lifecycle property (seed ${SEED}, ${STEPS} steps): writes, deletes, pins, evictions, gc and partitions lose no referenced file`, { timeout: 1_200_000 }, () => lifecycleProperty(SEED, STEPS))
