// The state transfer of a joiner's first sync (spec/protocol.md "States", issue 12): how long
// a sealed state of BENCH_STATE_MIB (default 96: a 1M-file volume's) takes from a source to a
// joiner over bazil's channel (STATE_GET / STATE_PART, a window of 32 parts of 60,000 bytes),
// beside, in the same run, the same bytes as a hypercore (64 KiB blocks) replicated between
// two corestores over a hyperdht connection: what the logs' own transport does. Both in one
// process (both ends on one thread), on a loopback DHT testnet.
//
//   node dist/bench/state-transfer.js   (build first)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { randomBytes } from '../src/crypto.js'
import { PeerNetwork, PeerRegistry, nodeHost } from '../src/net/index.js'
import { encodeKey } from '../src/crypto.js'
import { log } from './procs.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
const require = createRequire(import.meta.url)
const createTestnet: any = require('@hyperswarm/testnet')
const Corestore: any = require('corestore')
const DHT: any = require('hyperdht')

const MiB = 1024 * 1024
const SIZE = Math.round(Number(process.env.BENCH_STATE_MIB ?? 96) * MiB)
const BLOCK = 64 * 1024

const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-state-transfer-'))
  const testnet = await createTestnet(4, { host: '127.0.0.1' })
  const bytes = randomBytes(SIZE)
  const closers: (() => Promise<void>)[] = []
  try {
    // bazil's channel: a source serving `bytes` as its state of a volume the joiner is allowed.
    const open = async (name: string, serve: boolean): Promise<{ node: Node; net: PeerNetwork; root: string }> => {
      const root = path.join(tmp, name)
      DataDir.create(root)
      const node = await Node.open(DataDir.open(root))
      let net: PeerNetwork | null = null
      const host = serve ? { ...nodeHost(node, { writersChanged: (id: Buffer) => net!.writersChanged(id) }), volumeState: async () => bytes } : undefined
      net = new PeerNetwork({ node, log: () => {}, bootstrap: testnet.bootstrap, firewalled: false, retryMs: 1000, host })
      await net.start()
      closers.push(async () => { await net!.stop(); await node.close() })
      return { node, net, root }
    }
    const a = await open('a', true)
    const b = await open('b', false)
    a.node.dir.addSharingKey('s', randomBytes(32))
    const vol = await a.node.createVolume('v', 's')
    PeerRegistry.update(a.root, (r) => { r.add(b.node.dir.publicKey); r.setVolume(b.node.dir.publicKey, vol.id.toString('hex'), true) })
    PeerRegistry.update(b.root, (r) => { r.add(a.node.dir.publicKey); r.setLocation(a.node.dir.publicKey, `127.0.0.1:${a.net.address()!.port}`) })
    a.net.refresh()
    b.net.refresh()
    await b.net.waitConnected(a.node.dir.publicKey, 30_000)
    let c0 = cpu()
    let t = performance.now()
    const got = await b.net.fetchState(a.node.dir.publicKey, vol.id)
    const stateS = (performance.now() - t) / 1000
    const stateCpu = cpu() - c0
    if (!got.equals(bytes)) throw new Error('the state arrived altered')
    log(`state over bazil's channel: ${(SIZE / MiB).toFixed(0)} MiB in ${stateS.toFixed(2)} s (${(SIZE / MiB / stateS).toFixed(1)} MiB/s), cpu ${stateCpu.toFixed(1)} s (both ends)`)

    // The same bytes as a hypercore, replicated over a hyperdht connection on the same testnet.
    const sa = new Corestore(path.join(tmp, 'hc-a')), sb = new Corestore(path.join(tmp, 'hc-b'))
    const core = sa.get({ name: 'state' })
    await core.ready()
    const blocks: Buffer[] = []
    for (let i = 0; i < SIZE; i += BLOCK) blocks.push(bytes.subarray(i, Math.min(SIZE, i + BLOCK)))
    await core.append(blocks)
    const dhtA = new DHT({ bootstrap: testnet.bootstrap, firewalled: false, host: '127.0.0.1' })
    const dhtB = new DHT({ bootstrap: testnet.bootstrap, firewalled: false, host: '127.0.0.1' })
    const kp = DHT.keyPair()
    const server = dhtA.createServer((conn: any) => { conn.on('error', () => {}); sa.replicate(conn) })
    await server.listen(kp)
    closers.push(async () => { await server.close(); await dhtA.destroy(); await dhtB.destroy(); await sa.close(); await sb.close() })
    const conn = dhtB.connect(kp.publicKey, { relayAddresses: [{ host: '127.0.0.1', port: dhtA.address().port }] })
    conn.on('error', () => {})
    sb.replicate(conn)
    const copy = sb.get({ key: core.key })
    await copy.ready()
    c0 = cpu()
    t = performance.now()
    await copy.update({ wait: true })
    await copy.download({ start: 0, end: blocks.length }).done()
    const hcS = (performance.now() - t) / 1000
    const hcCpu = cpu() - c0
    log(`same bytes as a hypercore: ${hcS.toFixed(2)} s (${(SIZE / MiB / hcS).toFixed(1)} MiB/s), cpu ${hcCpu.toFixed(1)} s (both ends); ratio ${(stateS / hcS).toFixed(2)}; peer ${encodeKey(a.node.dir.publicKey).slice(0, 8)}; ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {})
    await testnet.destroy()
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

await main()
