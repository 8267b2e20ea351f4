// Cost of writer authorisation (spec/oplog.md "Writer set"): computing the writer set, scanning
// logs for control entries, and a rebuild after a late revocation. Not part of npm test.
//
//   node dist/bench/writers-bench.js      sizes: BENCH_WRITERS_ENTRIES (default 5000), BENCH_WRITERS_LOGS (200)
import path from 'node:path'
import { randomBytes } from '../src/crypto.js'
import { computeWriterSet, scanControl, type ControlOp, type ControlRecord, type LogInfo } from '../src/logs/index.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { PeerRegistry } from '../src/net/peers.js'
import { tempDir } from '../test/helpers.js'

const ENTRIES = Number(process.env.BENCH_WRITERS_ENTRIES ?? 5000)
const LOGS = Number(process.env.BENCH_WRITERS_LOGS ?? 200)

function ms(t0: number): string {
  return (performance.now() - t0).toFixed(1)
}

async function main(): Promise<void> {
  // 1. The pure function: LOGS logs in a chain of admits (each admitted by the previous), every
  // fifth revoked by the root, plus mutual revocations between neighbours.
  const hex = (i: number): string => i.toString(16).padStart(64, '0')
  const logs: LogInfo[] = [{ log: hex(1), node: hex(100001), genesisNode: hex(100001) }]
  const control: ControlRecord[] = []
  for (let i = 2; i <= LOGS; i++) {
    logs.push({ log: hex(i), node: hex(100000 + i), genesisNode: null })
    control.push({ log: hex(i - 1), seq: 1, ops: [{ op: 'admit', log: Buffer.from(hex(i), 'hex'), node: Buffer.from(hex(100000 + i), 'hex') }] })
    if (i % 5 === 0) control.push({ log: hex(1), seq: i, ops: [{ op: 'revoke', log: Buffer.from(hex(i), 'hex'), last: 3 }] })
    if (i % 7 === 0) control.push({ log: hex(i), seq: 5, ops: [{ op: 'revoke', log: Buffer.from(hex(i - 1), 'hex'), last: 4 } as ControlOp] })
  }
  let t0 = performance.now()
  const set = computeWriterSet({ logs, control })
  console.log(`writer set of ${LOGS} logs, ${control.length} control entries (admit chain, revocations, mutual ones): ${ms(t0)} ms, ${set.writers.size} authorised`)

  // 2. and 3. Real logs: a root and one admitted writer with ENTRIES entries.
  const { dir, cleanup } = tempDir('bazil-writers-bench-')
  try {
    const sharing = randomBytes(32)
    const nodes: Node[] = []
    for (const n of ['a', 'b']) {
      const d = DataDir.create(path.join(dir, n))
      d.addSharingKey('s', sharing)
      nodes.push(await Node.open(d))
    }
    const [na, nb] = nodes
    const a = await na.createVolume('v', 's')
    const rec = na.dir.volume('v')
    nb.dir.addVolume({ ...rec, genesis: undefined })
    PeerRegistry.update(na.dir.root, (r) => { r.add(nb.dir.publicKey); r.setVolume(nb.dir.publicKey, rec.id, true) })
    const b = await nb.volume('v')
    await a.addWriter(b.log.key)
    await b.addWriter(a.log.key)
    const s1 = na.store.replicate(true), s2 = nb.store.replicate(false)
    s1.pipe(s2).pipe(s1)
    const until = async (cond: () => boolean): Promise<void> => {
      while (!cond()) {
        await Promise.all([a.refresh(), b.refresh()])
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    await until(() => b.canWrite)
    t0 = performance.now()
    for (let i = 0; i < ENTRIES; i++) {
      b.mkdir(`/d${i}`)
      await b.flush()
    }
    console.log(`b wrote ${ENTRIES} entries in ${ms(t0)} ms`)
    await until(() => a.tree.lookup(`/d${ENTRIES - 1}`) !== null)
    const blog = a.writers.get(b.log.key.toString('hex'))!
    t0 = performance.now()
    const scanned = await scanControl(blog.core, 1)
    console.log(`scan of ${scanned.next - 1} blocks for control entries (no key): ${ms(t0)} ms`)
    // A revocation that keeps half: a rebuild of a's tree without the other half.
    const statsBefore = { ...a.rebuilds }
    t0 = performance.now()
    await a.log.appendControl([{ op: 'revoke', log: b.log.key, last: Math.floor(ENTRIES / 2) }])
    await a.refresh()
    console.log(`late revocation keeping ${Math.floor(ENTRIES / 2)} of ${ENTRIES} entries: rebuild + replay ${ms(t0)} ms (${a.rebuilds.count - statsBefore.count} rebuild, ${a.dropped.length} entries dropped); writer set computed ${a.setStats.computed} times, ${a.setStats.ms.toFixed(1)} ms in all`)
    s1.destroy(); s2.destroy()
    for (const n of nodes) await n.close()
    // Reopen without checkpoint: full replay with control scan.
    const n2 = await Node.open(DataDir.open(path.join(dir, 'a')))
    const { Volume } = await import('../src/volume/volume.js')
    t0 = performance.now()
    const v2 = await Volume.open(n2, n2.dir.volume('v'), { checkpoint: false })
    console.log(`full replay at open without checkpoint (${v2.opened.replayedEntries} entries applied, scan included): ${ms(t0)} ms`)
    await v2.close()
    await n2.close()
  } finally {
    cleanup()
  }
}

void main()
