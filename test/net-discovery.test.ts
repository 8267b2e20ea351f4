// Discovery by key on a private DHT, as a new user runs the 2015 walkthrough on one host:
// `bazil dht run` as the DHT, two servers started with only --bootstrap (no config.json),
// `volume connect` by key. hyperdht's holepunch aborts a first connection when the listener
// has sampled fewer than 3 DHT nodes (STACK.md); `bazil dht run` starts persistent DHT nodes
// beside its bootstrapper so that every server can sample enough (spec/protocol.md,
// "Discovery"). BAZIL_DISCOVERY_TRIALS sets how many fresh pairs connect (default 3).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import path from 'node:path'
import { bazil, bazilBin, runInProcess, startServer, tempDir, type ServerProcess } from './helpers.js'

async function freeUdpPort(): Promise<number> {
  const sock = dgram.createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  const { port } = sock.address()
  await new Promise<void>((r) => sock.close(() => r()))
  return port
}

const TRIALS = Number(process.env.BAZIL_DISCOVERY_TRIALS ?? 3)
// For measuring the alternatives (spec/protocol.md, "Discovery"): DHT nodes beside the
// bootstrapper (`dht run --nodes`), and a config.json to write (e.g. {"firewalled": false}).
const NODES = process.env.BAZIL_DISCOVERY_NODES
const CONFIG = process.env.BAZIL_DISCOVERY_CONFIG

test(`the walkthrough on one host: bazil dht run, two servers with no config.json, volume connect by key (${TRIALS} trials)`, { timeout: 60_000 + TRIALS * 45_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-discovery-')
  const port = await freeUdpPort()
  const dht = spawn(process.execPath, [bazilBin, 'dht', 'run', `--port=${port}`, ...(NODES ? [`--nodes=${NODES}`] : [])], { stdio: ['ignore', 'pipe', 'pipe'] })
  let dhtOut = ''
  dht.stdout.on('data', (d: Buffer) => (dhtOut += d.toString()))
  dht.stderr.on('data', (d: Buffer) => (dhtOut += d.toString()))
  const servers: ServerProcess[] = []
  const times: number[] = []
  const failures: string[] = []
  try {
    const t0 = Date.now()
    while (!dhtOut.includes('start servers with') && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50))
    assert.match(dhtOut, /start servers with --bootstrap=127\.0\.0\.1:/, dhtOut)
    const secret = Buffer.alloc(32, 7)
    for (let trial = 0; trial < TRIALS; trial++) {
      const W = path.join(dir, `white${trial}`)
      const B = path.join(dir, `black${trial}`)
      const keys: string[] = []
      for (const d of [W, B]) {
        const created = await bazil(d, ['create'])
        assert.equal(created.code, 0, created.stderr)
        keys.push(/node public key: (\S+)/.exec(created.stdout)![1])
        assert.equal((await bazil(d, ['sharing', 'add', 'friends'], secret)).code, 0)
        if (CONFIG) fs.writeFileSync(path.join(d, 'config.json'), CONFIG)
        else assert.ok(!fs.existsSync(path.join(d, 'config.json')))
      }
      const [WHITE, BLACK] = keys
      const sw = await startServer(W, [`--bootstrap=127.0.0.1:${port}`])
      const sb = await startServer(B, [`--bootstrap=127.0.0.1:${port}`])
      servers.push(sw, sb)
      const run = async (d: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => runInProcess(d, argv)
      assert.equal((await run(W, ['volume', 'create', '--sharing=friends', 'myfiles'])).code, 0)
      assert.equal((await run(W, ['peer', 'add', BLACK])).code, 0)
      assert.equal((await run(W, ['peer', 'volume', 'allow', BLACK, 'myfiles'])).code, 0)
      assert.equal((await run(B, ['peer', 'add', WHITE])).code, 0)
      const c0 = Date.now()
      const r = await run(B, ['volume', 'connect', '--sharing=friends', '--timeout=30', WHITE, 'myfiles'])
      const ms = Date.now() - c0
      if (process.env.BAZIL_DISCOVERY_LOGS) fs.writeFileSync(path.join(process.env.BAZIL_DISCOVERY_LOGS, `trial${trial}-${ms}ms.log`), `[white ${WHITE}]\n${sw.log()}\n[black ${BLACK}]\n${sb.log()}`)
      if (r.code === 0) times.push(ms)
      else failures.push(`trial ${trial}: ${r.stderr.trim()} (${ms} ms)\n[white]\n${sw.log()}\n[black]\n${sb.log()}`)
      await sb.stop()
      await sw.stop()
    }
    process.stderr.write(`# discovery by key: ${times.length}/${TRIALS} connected; volume connect took ${times.map((t) => `${t} ms`).join(', ')}\n`)
    assert.deepEqual(failures, [], failures.join('\n'))
  } finally {
    for (const s of servers) await s.stop().catch(() => null)
    dht.kill('SIGTERM')
    cleanup()
  }
})
