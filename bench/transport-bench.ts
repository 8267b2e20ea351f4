// Where the transport's ceiling comes from: one sender and one receiver process on loopback,
// the same bytes moved by
//   hc     hypercore replication (blocks of BLOCK bytes, random data, the receiver's corestore on disk)
//   noise  a raw Noise stream (@hyperswarm/secret-stream) with no hypercore: the sender writes
//          BLOCK-sized buffers, the receiver counts bytes (nothing stored)
//   plain  plain TCP, no encryption, no hypercore (the loopback's own ceiling for one JS stream)
// over
//   udx    hyperswarm (UDX over UDP, a local DHT from `bazil dht run`), as bazil's servers connect
//   tcp    a TCP socket on 127.0.0.1 (wrapped in secret-stream with a Noise handshake for hc, noise)
//   mem    (hc only) both corestores in ONE process, replicating over an in-memory stream: hypercore
//          and RocksDB without any transport (both ends on one thread: a floor, not a ceiling)
// with CONNS connections (each its own swarm/keypair or socket) and CORES cores (the data split
// into CORES cores of SIZE/CORES; core i replicates on connection i % CONNS).
//
//   node dist/bench/transport-bench.js           (build first; writes bench/results/transport.json)
//
// BENCH_TRANSPORT_MIB (default 1024): bytes moved per run. BENCH_TRANSPORT_BLOCKS (default
// 65536,1048576). BENCH_TRANSPORT_MODES: a comma list of kind:transport:conns:cores (default
// below). BENCH_TRANSPORT_PROF=DIR: both ends run with --cpu-prof into DIR and the table gets
// each end's top self-time functions and packages. Also measured in-process: the per-byte
// costs every receiver pays on its one thread (BLAKE2b as hypercore hashes a block,
// XChaCha20-Poly1305 as secret-stream decrypts, an Ed25519 verify per signed tree upgrade).
// Every run ends with the receiver's store closed and sync(1) (hc); the page cache is dropped
// before each (the sender reads its blocks from disk).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { bazilBin, cpuSecs, dropCaches, freePort, freeUdpPort, log, now, repoRoot, startProc, waitLine, type Proc } from './procs.js'
import { profileTo, summarizeProfile } from './profile-summary.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
const require = createRequire(import.meta.url)
const Corestore: any = require('corestore')
const Hyperswarm: any = require('hyperswarm')
const DHT: any = require('hyperdht')
const NoiseSecretStream: any = require('@hyperswarm/secret-stream')
const hcrypto: any = require('hypercore-crypto')
const sodium: any = require('sodium-native')

const MiB = 1024 * 1024
const SIZE_MIB = Number(process.env.BENCH_TRANSPORT_MIB ?? 1024)
const BLOCKS = (process.env.BENCH_TRANSPORT_BLOCKS ?? '65536,1048576').split(',').map(Number)
const DEFAULT_MODES = [
  'plain:tcp:1:1', 'noise:tcp:1:1', 'noise:udx:1:1', 'hc:mem:1:1', 'hc:tcp:1:1', 'hc:udx:1:1',
  'noise:tcp:4:4', 'noise:udx:4:4', 'hc:udx:1:4', 'hc:udx:4:4', 'hc:tcp:4:4',
]
const MODES = (process.env.BENCH_TRANSPORT_MODES ?? DEFAULT_MODES.join(',')).split(',').map((m) => m.trim()).filter(Boolean)
// hypercore's requests in flight per peer: [16, 512] by default, and on a UDX stream with an
// RTT under 50 ms it uses the minimum (16 blocks); on TCP 3 × the minimum (48). BENCH_TRANSPORT_INFLIGHT=MIN,MAX sets it on the receiver's cores.
const INFLIGHT = process.env.BENCH_TRANSPORT_INFLIGHT ? { inflightRange: process.env.BENCH_TRANSPORT_INFLIGHT.split(',').map(Number) } : {}
const PROF = process.env.BENCH_TRANSPORT_PROF ? path.resolve(process.env.BENCH_TRANSPORT_PROF) : null
const self = fileURLToPath(import.meta.url)

interface Mode { kind: 'hc' | 'noise' | 'plain'; transport: 'udx' | 'tcp' | 'mem'; conns: number; cores: number; name: string }

function parseMode(m: string): Mode {
  const [kind, transport, conns = '1', cores = conns] = m.split(':')
  if (!['hc', 'noise', 'plain'].includes(kind!) || !['udx', 'tcp', 'mem'].includes(transport!)) throw new Error(`BENCH_TRANSPORT_MODES: "${m}" is not kind:transport:conns:cores`)
  if ((transport === 'mem') !== (kind === 'hc' && transport === 'mem')) throw new Error(`mode ${m}: mem is for hc only`)
  if (kind === 'plain' && transport !== 'tcp') throw new Error(`mode ${m}: plain is tcp only`)
  return { kind: kind as Mode['kind'], transport: transport as Mode['transport'], conns: Number(conns), cores: Number(cores), name: m }
}

/** What a child is told (one JSON argument). */
interface Job {
  role: 'make' | 'serve' | 'fetch' | 'mem'
  mode: Mode
  block: number
  bytes: number
  seedDir: string
  fetchDir: string
  dhtPort: number
  tcpPort: number
  keys: string[]
  lengths: number[]
  peers: string[]
  /** Write a CPU profile of the timed part here (inspector, not --cpu-prof: no module loading in it). */
  prof: string | null
}

const coreName = (cores: number, i: number): string => `c${cores}-${i}`

// ---- children ------------------------------------------------------------------------------

/** The seed store: for each core count, CORES cores of bytes/CORES in BLOCK-sized random blocks. */
async function make(job: Job, coreCounts: number[]): Promise<void> {
  const store = new Corestore(job.seedDir)
  const keys: Record<number, { keys: string[]; lengths: number[] }> = {}
  const pool = randomBytes(job.block * 64) // blocks are slices of a random pool: random to any compressor, cheap to make
  for (const cores of coreCounts) {
    keys[cores] = { keys: [], lengths: [] }
    for (let i = 0; i < cores; i++) {
      const core = store.get({ name: coreName(cores, i) })
      await core.ready()
      const n = Math.ceil(job.bytes / cores / job.block)
      for (let b = core.length; b < n; b += 64) {
        const batch: Buffer[] = []
        for (let k = b; k < Math.min(n, b + 64); k++) {
          const blk = Buffer.from(pool.subarray((k % 64) * job.block, (k % 64 + 1) * job.block))
          blk.writeUInt32LE(k, 0)
          blk.writeUInt32LE(i, 4)
          batch.push(blk)
        }
        await core.append(batch)
      }
      keys[cores]!.keys.push(core.key.toString('hex'))
      keys[cores]!.lengths.push(core.length)
    }
  }
  await store.close()
  process.stdout.write(JSON.stringify(keys) + '\n')
}

/** Writes `bytes` to a stream in `block`-sized writes, waiting for drain. */
async function pump(stream: any, bytes: number, block: number): Promise<void> {
  const buf = randomBytes(block)
  let sent = 0
  while (sent < bytes) {
    const n = Math.min(block, bytes - sent)
    sent += n
    if (!stream.write(n === block ? buf : buf.subarray(0, n))) await new Promise<void>((r) => stream.once('drain', () => r()))
  }
}

async function serve(job: Job): Promise<void> {
  const { mode } = job
  const store = mode.kind === 'hc' ? new Corestore(job.seedDir) : null
  if (store) {
    for (let i = 0; i < mode.cores; i++) await store.get({ name: coreName(mode.cores, i) }).ready()
  }
  const perConn = Math.ceil(job.bytes / mode.conns)
  let stopProfile: Promise<() => Promise<void>> | null = null
  const onStream = (stream: any): void => {
    stopProfile ??= profileTo(job.prof)
    stream.on('error', () => {})
    if (store) store.replicate(stream)
    else void pump(stream, perConn, job.block) // secret-stream queues writes until its handshake is done
  }
  const closers: (() => Promise<void>)[] = []
  const peers: string[] = []
  if (mode.transport === 'udx') {
    for (let c = 0; c < mode.conns; c++) {
      const keyPair = DHT.keyPair()
      const swarm = new Hyperswarm({ keyPair, dht: new DHT({ bootstrap: [{ host: '127.0.0.1', port: job.dhtPort }], firewalled: false, keyPair }) })
      swarm.on('connection', (conn: any) => {
        stopProfile ??= profileTo(job.prof)
        if (mode.kind === 'noise') {
          conn.on('error', () => {})
          void pump(conn, perConn, job.block)
        } else onStream(conn)
      })
      await swarm.listen()
      peers.push(keyPair.publicKey.toString('hex'))
      closers.push(() => swarm.destroy())
    }
  } else {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true)
      onStream(mode.kind === 'plain' ? socket : new NoiseSecretStream(false, socket))
    })
    await new Promise<void>((r) => server.listen(job.tcpPort, '127.0.0.1', () => r()))
    closers.push(() => new Promise<void>((r) => server.close(() => r())))
  }
  process.stdout.write(JSON.stringify({ peers }) + '\n')
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()))
  const stopper = stopProfile as Promise<() => Promise<void>> | null // set in the connection handlers
  if (stopper) await (await stopper)()
  for (const c of closers) await c().catch(() => {})
  await store?.close()
  process.exit(0)
}

async function fetchJob(job: Job): Promise<void> {
  const { mode } = job
  const stopProfile = await profileTo(job.prof)
  const t0 = now()
  const perConn = Math.ceil(job.bytes / mode.conns)
  let store: any = null
  let cores: any[] = []
  if (mode.kind === 'hc') {
    store = new Corestore(job.fetchDir)
    cores = job.keys.map((k) => store.get({ key: Buffer.from(k, 'hex'), ...INFLIGHT }))
    await Promise.all(cores.map((c) => c.ready()))
  }
  let firstConn = 0
  const counted: Promise<void>[] = []
  const attach = (stream: any, c: number): void => {
    if (!firstConn) firstConn = now() - t0
    stream.on('error', () => {})
    if (mode.kind === 'hc') {
      for (let i = c; i < cores.length; i += mode.conns) cores[i].replicate(stream)
    } else {
      counted.push(new Promise<void>((resolve) => {
        let got = 0
        stream.on('data', (d: Buffer) => {
          got += d.length
          if (got >= perConn) resolve()
        })
      }))
    }
  }
  const closers: (() => Promise<void>)[] = []
  const connected: Promise<void>[] = []
  for (let c = 0; c < mode.conns; c++) {
    if (mode.transport === 'udx') {
      const keyPair = DHT.keyPair()
      const swarm = new Hyperswarm({ keyPair, dht: new DHT({ bootstrap: [{ host: '127.0.0.1', port: job.dhtPort }], firewalled: false, keyPair }) })
      connected.push(new Promise<void>((resolve) => swarm.once('connection', (conn: any) => { attach(conn, c); resolve() })))
      swarm.joinPeer(Buffer.from(job.peers[c]!, 'hex'))
      closers.push(() => swarm.destroy())
    } else {
      const socket = net.connect(job.tcpPort, '127.0.0.1')
      socket.setNoDelay(true)
      const stream = mode.kind === 'plain' ? socket : new NoiseSecretStream(true, socket)
      attach(stream, c)
      connected.push(Promise.resolve())
      closers.push(async () => { stream.destroy() })
    }
  }
  await Promise.all(connected)
  if (mode.kind === 'hc') await Promise.all(cores.map((core) => core.download({ start: 0, end: job.lengths[cores.indexOf(core)] }).done()))
  else await Promise.all(counted)
  const doneMs = now() - t0
  await stopProfile()
  let byteLength = 0
  for (const core of cores) byteLength += core.byteLength
  for (const c of closers) await c().catch(() => {})
  await store?.close()
  spawnSync('sync')
  process.stdout.write(JSON.stringify({ ms: now() - t0, doneMs, firstConn, byteLength, cpu: process.cpuUsage() }) + '\n')
  process.exit(0)
}

/** Both ends in one process over an in-memory stream: hypercore + RocksDB, no transport. */
async function memJob(job: Job): Promise<void> {
  const a = new Corestore(job.seedDir)
  const seeds = []
  for (let i = 0; i < job.mode.cores; i++) seeds.push(a.get({ name: coreName(job.mode.cores, i) }))
  await Promise.all(seeds.map((c) => c.ready()))
  const stopProfile = await profileTo(job.prof)
  const t0 = now()
  const b = new Corestore(job.fetchDir)
  const cores = job.keys.map((k) => b.get({ key: Buffer.from(k, 'hex'), ...INFLIGHT }))
  await Promise.all(cores.map((c) => c.ready()))
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.pipe(s2).pipe(s1)
  await Promise.all(cores.map((core, i) => core.download({ start: 0, end: job.lengths[i] }).done()))
  const doneMs = now() - t0
  await stopProfile()
  let byteLength = 0
  for (const core of cores) byteLength += core.byteLength
  s1.destroy()
  s2.destroy()
  await b.close()
  await a.close()
  spawnSync('sync')
  process.stdout.write(JSON.stringify({ ms: now() - t0, doneMs, firstConn: 0, byteLength, cpu: process.cpuUsage() }) + '\n')
  process.exit(0)
}

// ---- profiles ----------------------------------------------------------------------------------

/** Self time by function and by package of a whole profile (bench/profile-summary.ts). */
function summarize(file: string, top = 8): { busyMs: number; packages: string; functions: string } {
  const x = summarizeProfile(file, { top })
  return { busyMs: x.busySecs * 1000, packages: x.packages, functions: x.functions }
}

// ---- per-byte costs on one thread ----------------------------------------------------------

function microCosts(): Record<string, string> {
  const out: Record<string, string> = {}
  const rate = (fn: () => void, bytes: number, minMs = 400): number => {
    let n = 0
    const t0 = now()
    while (now() - t0 < minMs) { fn(); n++ }
    return (bytes * n) / 1e6 / ((now() - t0) / 1000)
  }
  for (const block of BLOCKS) {
    const buf = randomBytes(block)
    out[`BLAKE2b-256 of a ${block / 1024} KiB block (hypercore-crypto data(), what a receiver verifies)`] = `${rate(() => hcrypto.data(buf), block).toFixed(0)} MB/s`
    // secret-stream's cipher: crypto_secretstream_xchacha20poly1305 push/pull, one message per write.
    const key = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES)
    sodium.crypto_secretstream_xchacha20poly1305_keygen(key)
    const header = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    const st = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES)
    sodium.crypto_secretstream_xchacha20poly1305_init_push(st, header, key)
    const cipher = Buffer.alloc(block + sodium.crypto_secretstream_xchacha20poly1305_ABYTES)
    const tag = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    out[`XChaCha20-Poly1305 of ${block / 1024} KiB messages (secret-stream's cipher, each side)`] = `${rate(() => sodium.crypto_secretstream_xchacha20poly1305_push(st, cipher, buf, null, tag), block).toFixed(0)} MB/s`
  }
  const kp = hcrypto.keyPair()
  const msg = randomBytes(64)
  const sig = hcrypto.sign(msg, kp.secretKey)
  let n = 0
  const t0 = now()
  while (now() - t0 < 300) { hcrypto.verify(msg, sig, kp.publicKey); n++ }
  out['Ed25519 verify (one per signed tree upgrade)'] = `${Math.round(n / ((now() - t0) / 1000))}/s`
  return out
}

// ---- the parent ------------------------------------------------------------------------------

function child(job: Job, tag: string): string[] {
  return [self, '--child', JSON.stringify({ ...job, prof: PROF ? path.join(PROF, `${tag}.cpuprofile`) : null })]
}

async function runChild(job: Job, tag: string): Promise<any> {
  const r = spawnSync(process.execPath, child(job, tag), { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 1_800_000 })
  if (r.status !== 0) throw new Error(`${tag} failed (${r.status}): ${r.stderr.slice(-2000)}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

interface Result { mode: string; block: number; mbps: number; secs: number; senderCpu: number; receiverCpu: number; note: string; profiles?: { sender?: ReturnType<typeof summarize>; receiver: ReturnType<typeof summarize> } }

async function main(): Promise<void> {
  const si = process.argv.indexOf('--summarize')
  if (si >= 0) {
    for (const f of process.argv.slice(si + 1)) {
      const x = summarize(f, 12)
      console.log(`${path.basename(f)}: busy ${(x.busyMs / 1000).toFixed(1)} s\n  ${x.packages}\n  ${x.functions}`)
    }
    return
  }
  const ci = process.argv.indexOf('--child')
  if (ci >= 0) {
    const job = JSON.parse(process.argv[ci + 1]!) as Job & { coreCounts?: number[] }
    if (job.role === 'make') return make(job, job.coreCounts!)
    if (job.role === 'serve') return serve(job)
    if (job.role === 'fetch') return fetchJob(job)
    return memJob(job)
  }
  const modes = MODES.map(parseMode)
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-transport-'))
  if (PROF) fs.mkdirSync(PROF, { recursive: true })
  const results: Result[] = []
  let dht: Proc | null = null
  const load = [`start: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`]
  try {
    const dhtPort = await freeUdpPort()
    dht = startProc(process.execPath, [bazilBin, 'dht', 'run', '--host=127.0.0.1', `--port=${dhtPort}`])
    await waitLine(dht, /DHT bootstrap node/, 'bazil dht run')
    const micro = microCosts()
    for (const [k, v] of Object.entries(micro)) log(`transport: ${k}: ${v}`)
    const bytes = SIZE_MIB * MiB
    for (const block of BLOCKS) {
      const seedDir = path.join(work, `seed-${block}`)
      const coreCounts = [...new Set(modes.filter((m) => m.kind === 'hc').map((m) => m.cores))]
      let keys: Record<number, { keys: string[]; lengths: number[] }> = {}
      if (coreCounts.length) {
        log(`transport: making the seed store (${SIZE_MIB} MiB in ${block / 1024} KiB blocks, for ${coreCounts.join(', ')} cores)`)
        keys = await runChild({ role: 'make', mode: parseMode('hc:mem:1:1'), block, bytes, seedDir, fetchDir: '', dhtPort, tcpPort: 0, keys: [], lengths: [], peers: [], prof: null, coreCounts } as Job, `make-${block}`)
      }
      for (const mode of modes) {
        const fetchDir = path.join(work, `fetch-${block}-${mode.name.replace(/:/g, '-')}`)
        const tag = `${mode.name.replace(/:/g, '-')}-${block / 1024}k`
        const tcpPort = mode.transport === 'tcp' ? await freePort() : 0
        const job: Job = { role: 'serve', mode, block, bytes, seedDir, fetchDir, dhtPort, tcpPort, keys: keys[mode.cores]?.keys ?? [], lengths: keys[mode.cores]?.lengths ?? [], peers: [], prof: null }
        dropCaches()
        let out: any
        let senderCpu = 0
        if (mode.transport === 'mem') {
          out = await runChild({ ...job, role: 'mem' }, `${tag}-both`)
        } else {
          const server = startProc(process.execPath, child(job, `${tag}-sender`))
          try {
            await waitLine(server, /^\{"peers"/, `${tag} sender`, 120_000)
            const peers = (JSON.parse(server.lines.find((l) => l.line.startsWith('{"peers"'))!.line) as { peers: string[] }).peers
            out = await runChild({ ...job, role: 'fetch', peers }, `${tag}-receiver`)
            senderCpu = cpuSecs(server.child.pid)
          } finally {
            await server.stop()
          }
        }
        fs.rmSync(fetchDir, { recursive: true, force: true })
        const moved = mode.kind === 'hc' ? out.byteLength : bytes
        if (mode.kind === 'hc' && moved < bytes) throw new Error(`${tag}: ${moved} bytes received, ${bytes} expected`)
        const secs = out.ms / 1000
        const receiverCpu = (out.cpu.user + out.cpu.system) / 1e6
        const r: Result = { mode: mode.name, block, mbps: moved / 1e6 / secs, secs, senderCpu, receiverCpu, note: `connected after ${out.firstConn.toFixed(0)} ms; all bytes after ${(out.doneMs / 1000).toFixed(2)} s` }
        if (PROF) {
          const p = (role: string): ReturnType<typeof summarize> | undefined => {
            const f = path.join(PROF, `${tag}-${role}.cpuprofile`)
            return fs.existsSync(f) ? summarize(f) : undefined
          }
          r.profiles = { sender: p('sender'), receiver: (p('receiver') ?? p('both'))! }
        }
        results.push(r)
        log(`transport ${tag}: ${r.mbps.toFixed(1)} MB/s (${secs.toFixed(2)} s; cpu sender ${senderCpu.toFixed(1)} s, receiver ${receiverCpu.toFixed(1)} s; load ${os.loadavg()[0]!.toFixed(1)})` +
          (r.profiles ? `\n    receiver: ${r.profiles.receiver?.packages}\n      ${r.profiles.receiver?.functions}` + (r.profiles.sender ? `\n    sender: ${r.profiles.sender.packages}\n      ${r.profiles.sender.functions}` : '') : ''))
      }
      fs.rmSync(seedDir, { recursive: true, force: true })
    }
    load.push(`end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`)
    const out = path.join(repoRoot, 'bench', 'results', 'transport.json')
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), sizeMiB: SIZE_MIB, load, micro, results }, null, 2) + '\n')
    // On a loaded machine the wall time includes waiting for a core: bytes / the busier end's CPU
    // seconds is what one core per end would allow (the bound when that end's thread is the limit).
    console.log('| mode (kind:transport:conns:cores) | block | MB/s | s | sender cpu s | receiver cpu s | MB per busier end\'s cpu s |\n|---|---|---|---|---|---|---|')
    for (const r of results) console.log(`| ${r.mode} | ${r.block / 1024} KiB | ${r.mbps.toFixed(1)} | ${r.secs.toFixed(2)} | ${r.senderCpu.toFixed(1)} | ${r.receiverCpu.toFixed(1)} | ${((r.mbps * r.secs) / Math.max(r.senderCpu, r.receiverCpu)).toFixed(0)} |`)
    console.log(`\nload ${load.join('; ')}`)
    for (const [k, v] of Object.entries(micro)) console.log(`- ${k}: ${v}`)
  } finally {
    await dht?.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
