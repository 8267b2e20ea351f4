// Writer authorisation end to end: real `bazil server run` peers on a loopback DHT testnet,
// driven through the CLI. Finding 2 of issue 9: after `peer volume deny`, the denied peer's
// later entries must never be applied by anyone, even by a peer that still replicates from it, and that
// peer holds (so relays) none of them;
// `volume writers` shows who admitted whom and the revocation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PeerCluster, eventually } from './peer-setup.js'
import { runInProcess, summaryOf } from './helpers.js'

type WriterRow = { log: string; node: string | null; authorised: boolean; root: boolean; admittedBy: { log: string; seq: number } | null; limit: number | null; length: number; held: number }

test('peer volume deny: the denied writer\'s later entries are applied by no peer, also one that still replicates from it, which holds none of them', async (t) => {
  const c = await PeerCluster.create(['white', 'black', 'grey'])
  t.after(() => c.close())
  await c.start('white', 'black', 'grey')
  const W = c.get('white'), B = c.get('black'), G = c.get('grey')
  await c.run('white', ['volume', 'create', '--sharing=friends', 'v'])
  await c.connect('white', 'black', 'v')
  await c.connect('white', 'grey', 'v')
  // black and grey also talk to each other directly.
  await c.run('grey', ['peer', 'add', B.key])
  await c.run('black', ['peer', 'add', G.key])
  await c.run('grey', ['peer', 'volume', 'allow', B.key, 'v'])
  await c.run('black', ['peer', 'volume', 'allow', G.key, 'v'])
  await c.run('black', ['volume', 'mkdir', 'v', '/before'])
  const ls = async (who: string): Promise<string[]> => (JSON.parse((await c.run(who, ['volume', 'ls', '--json', 'v', '/'])).stdout) as { name: string }[]).map((e) => e.name)
  await eventually('white and grey see /before', async () => (await ls('white')).includes('before') && (await ls('grey')).includes('before'), 30_000)

  // White lists three writers: itself (root), black and grey admitted by white.
  const writers = async (who: string): Promise<WriterRow[]> => (JSON.parse((await c.run(who, ['volume', 'writers', '--json', 'v'])).stdout) as { writers: WriterRow[] }).writers
  const before = await writers('white')
  assert.equal(before.filter((w) => w.authorised).length, 3, JSON.stringify(before))
  assert.ok(before.some((w) => w.root && w.node === W.key))
  const blackRow = before.find((w) => w.node === B.key)!
  assert.ok(blackRow.admittedBy !== null)

  // Black goes offline; white denies it (a revocation in white's log); black, not knowing,
  // writes on, then comes back.
  await c.stop('black')
  const deny = await c.run('white', ['peer', 'volume', 'deny', B.key, 'v'])
  assert.match(deny.stdout, /revoked writer log .* of node .* \(entries after seq \d+ are not accepted\)/)
  await eventually('grey sees the revocation', async () => (await writers('grey')).find((w) => w.node === B.key)?.limit != null, 30_000)
  await c.run('black', ['volume', 'mkdir', 'v', '/after-deny'])
  await c.start('black')
  // Black gets the revocation through grey: its own tree drops the entry, and it may not write.
  await eventually('black drops its own entry', async () => !(await ls('black')).includes('after-deny'), 30_000)
  assert.match((await c.run('black', ['log', 'show', 'v'])).stdout, /mkdir \/after-deny .*\[not authorised: not applied\]/)
  const refused = await runInProcess(B.data, ['volume', 'mkdir', 'v', '/again'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /revoked/)
  // Grey, which still replicates black's log, knew the limit: it keeps none of black's sealed
  // entries past it (fetched once, to find control entries, then cleared: it relays none), and
  // a sync with black completes without them.
  await eventually('grey knows black\'s log goes past the limit', async () => {
    const row = (await writers('grey')).find((w) => w.node === B.key)!
    return row.length > row.limit! + 1
  }, 30_000)
  const sync = summaryOf((await c.run('grey', ['volume', 'sync', '--json', 'v', B.key])).stdout) as { complete: boolean }
  assert.equal(sync.complete, true)
  await eventually('grey holds none of black\'s entries past the limit', async () => !/after-deny/.test((await c.run('grey', ['log', 'show', 'v'])).stdout), 30_000)
  const greyRow = (await writers('grey')).find((w) => w.node === B.key)!
  assert.ok(greyRow.held <= greyRow.limit! + 1, `grey holds black's log up to its limit only: ${JSON.stringify(greyRow)}`)
  assert.ok(!(await ls('grey')).includes('after-deny'))
  assert.ok(!(await ls('white')).includes('after-deny'))
  assert.ok((await ls('grey')).includes('before'))
  void G
})
