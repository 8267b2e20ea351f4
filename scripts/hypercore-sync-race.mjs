// Reproduces, with raw hypercore + corestore (no bazil code), the sync race that
// src/net/length-resync.ts repairs: run it after upgrading hypercore; when it prints "learnt"
// every time, the repair may go (spec/protocol.md, "Length announcements").
//
//   node scripts/hypercore-sync-race.mjs            the natural race (stalled 9 of 10 runs on 11.37.1)
//   DELAY=100 node scripts/hypercore-sync-race.mjs  C's upgrade check delayed: stalls every time
//   NUDGE=1 ...                                     after the stall, C sends B one more sync
//
// A writes a core; B and C follow it live; A-B, A-C and B-C are linked. B and C get block 3
// from A at once; C's sync announcing length 4 to B is never sent (it waited on a storage read
// while B's sync arrived). A-C is cut, A appends block 4: B gets it, C never does from B.
// Exit status 1 when C did not learn length 5.
import Corestore from 'corestore'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const DELAY = Number(process.env.DELAY ?? 0)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypercore-sync-race-'))
const [sa, sb, sc] = ['a', 'b', 'c'].map((n) => new Corestore(path.join(dir, n)))
const a = sa.get({ name: 'log' })
await a.ready()
const b = sb.get({ key: a.key })
const c = sc.get({ key: a.key })
await b.ready()
await c.ready()
b.download({ start: 0, end: -1 })
c.download({ start: 0, end: -1 })

const streams = {}
function link(name, x, y) {
  const sx = x.replicate(true)
  const sy = y.replicate(false)
  sx.pipe(sy).pipe(sx)
  sx.on('error', () => {})
  sy.on('error', () => {})
  streams[name] = [sx, sy]
}
async function until(cond, ms) {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}
/** The peer object on `core` for the connection whose local end is `stream`. */
const peerOn = (core, stream) => core.peers.find((p) => p.stream === (stream.noiseStream ?? stream))

link('ab', sa, sb)
link('ac', sa, sc)
link('bc', sb, sc)
await a.append(['0', '1', '2'].map((s) => Buffer.from(s)))
await until(() => b.contiguousLength === 3 && c.contiguousLength === 3 && b.peers.length === 2 && c.peers.length === 2, 10_000)
const cToB = peerOn(c, streams.bc[1])
if (DELAY > 0) {
  const check = Object.getPrototypeOf(cToB)._canUpgrade
  cToB._canUpgrade = async function (...args) {
    await new Promise((r) => setTimeout(r, DELAY))
    return check.apply(this, args)
  }
}
await a.append(Buffer.from('3'))
await until(() => b.length === 4 && c.length === 4, 10_000)
await new Promise((r) => setTimeout(r, DELAY + 50))
for (const s of streams.ac) s.destroy()
await a.append(Buffer.from('4'))
await until(() => b.length === 5, 10_000)
c.update({ wait: true }).catch(() => {})
let ok = await until(() => c.length === 5, 5_000)
const bToC = peerOn(b, streams.bc[0])
console.log(`C ${ok ? 'learnt' : 'did NOT learn'} length 5 in 5 s (C ${c.length}, B ${b.length}); B thinks C has ${bToC?.remoteLength}; C's peer B: remoteLength ${cToB.remoteLength}, lengthAcked ${cToB.lengthAcked}`)
if (!ok && process.env.NUDGE) {
  cToB.sendSync()
  ok = await until(() => c.length === 5, 5_000)
  console.log(`after one more sync from C to B: ${ok ? 'C learnt length 5' : 'still stuck'}`)
}
for (const s of Object.values(streams).flat()) s.destroy()
for (const s of [sa, sb, sc]) await s.close()
fs.rmSync(dir, { recursive: true, force: true })
process.exit(ok ? 0 : 1)
