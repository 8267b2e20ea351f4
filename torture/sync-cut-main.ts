// The sync-cut section run inside its loopback-only network namespace (started by
// sync-cut.section.ts under `unshare -n`): `node sync-cut-main.js TMPDIR RESULT.json`. Also a
// way to run the section alone: BAZIL_TORTURE_NETNS_INSIDE=1 node dist/torture/sync-cut-main.js DIR OUT.
import fs from 'node:fs'
import { syncCut } from './sync-cut.section.js'

const [tmpDir, resultFile] = process.argv.slice(2)
if (!tmpDir || !resultFile) {
  console.error('usage: sync-cut-main.js TMPDIR RESULT.json')
  process.exit(2)
}
try {
  const result = await syncCut({ tmpDir, log: (m) => console.log(m) })
  fs.writeFileSync(resultFile, JSON.stringify(result))
} catch (err) {
  fs.writeFileSync(resultFile, JSON.stringify({ rounds: 0, failures: [`threw: ${(err as Error).stack ?? String(err)}`], figures: {} }))
}
process.exit(0)
