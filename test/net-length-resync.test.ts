// A replica whose peer missed its new length still learns that the core grew (hypercore
// 11.37.1's sync race, src/net/length-resync.ts): three real corestores replicating one core
// through bazil's Replication over in-process streams.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import Corestore from 'corestore'
import Hypercore from 'hypercore'
import type { Duplex } from 'node:stream'
import type { SecretStream } from 'hyperdht'
import { Replication, discoveryKey } from '../src/net/replication.js'
import { tempDir } from './helpers.js'

/** What hypercore 11 keeps per replicating peer (internal): the fields this test looks at or hooks. */
interface PeerState {
  stream: unknown
  remoteLength: number
  lengthAcked: number
  _canUpgrade(length: number, fork: number): Promise<boolean>
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond();) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

test('a replica whose peer missed its new length (two replicas upgraded at once) learns the core grew from that peer', { timeout: 60_000 }, async (t) => {
  const { dir, cleanup } = tempDir('bazil-resync-')
  const stores = ['a', 'b', 'c'].map((n) => new Corestore(path.join(dir, n)))
  const reps: Replication[] = []
  const streams: Duplex[] = []
  t.after(async () => {
    for (const r of reps) await r.close()
    for (const s of streams) s.destroy()
    for (const s of stores) await s.close()
    cleanup()
  })
  const [sa, sb, sc] = stores as [Corestore, Corestore, Corestore]
  const log = sa.get({ name: 'log' })
  await log.ready()
  const dk = discoveryKey(log.key).toString('hex')
  // B and C follow the whole core, live, as a writer's log is followed (src/logs/held-range.ts).
  const b = sb.get({ key: log.key })
  const c = sc.get({ key: log.key })
  await b.ready(); await c.ready()
  b.download({ start: 0, end: -1 }); c.download({ start: 0, end: -1 })

  /** Connects two stores: one Replication per side, the core attached on both. */
  const link = async (x: Corestore, y: Corestore): Promise<[Replication, Replication]> => {
    const sx = Hypercore.createProtocolStream(true) as Duplex
    const sy = Hypercore.createProtocolStream(false) as Duplex
    sx.pipe(sy).pipe(sx)
    sx.on('error', () => {}); sy.on('error', () => {})
    streams.push(sx, sy)
    const pair = [new Replication(x, sx as unknown as SecretStream, async (h) => (h === dk ? log.key : null), () => {}), new Replication(y, sy as unknown as SecretStream, async (h) => (h === dk ? log.key : null), () => {})] as [Replication, Replication]
    reps.push(...pair)
    await Promise.all(pair.map((r) => r.attach(log.key)))
    return pair
  }
  const ac = await link(sa, sc)
  const [, cb] = await link(sb, sc)
  await link(sa, sb)
  await log.append([Buffer.from('0'), Buffer.from('1'), Buffer.from('2')])
  const peers = (core: typeof c): PeerState[] => core.peers as unknown as PeerState[]
  await until('b and c hold 3 blocks, each with two peers', () => b.contiguousLength === 3 && c.contiguousLength === 3 && b.peers.length === 2 && c.peers.length === 2)

  // B and C get block 3 from A at once. C's peer for B takes 100 ms to decide whether C can
  // upgrade B (hypercore awaits a storage read there), so B's sync ("I have 4") always lands
  // in that await (it did 9 of 10 times without the delay): C then never sends B its length.
  const fromB = peers(c).find((p) => p.stream === (cb.mux as unknown as { stream: unknown }).stream)
  assert.ok(fromB, "C's peer for B")
  const canUpgrade = fromB._canUpgrade
  fromB._canUpgrade = async function (this: PeerState, length: number, fork: number) {
    await new Promise((r) => setTimeout(r, 100))
    return canUpgrade.call(this, length, fork)
  }
  await log.append(Buffer.from('3'))
  await until('b and c have length 4', () => b.length === 4 && c.length === 4)
  await new Promise((r) => setTimeout(r, 200)) // (C's delayed decision is over)

  // A can no longer reach C: only B can tell C that the log grew.
  await ac[0].close(); await ac[1].close()
  for (const s of streams.slice(0, 2)) s.destroy()
  await log.append(Buffer.from('4'))
  await until('b has length 5', () => b.length === 5)
  await until('c learns length 5 from b', () => c.length === 5 && c.contiguousLength === 5)
  assert.equal((await c.get(4))!.toString(), '4')
})
