// First sync between two peers on loopback, next to its baselines measured in the same run on
// the same data set (a BIG_MIB random file plus SMALL_FILES files of 0.5–8.5 KiB in 100 dirs,
// as the import bench): raw hypercore replication over hyperswarm (the transport's ceiling),
// Syncthing (Debian's package, two instances on 127.0.0.1) and rsync (local mode); then two
// peers that each made OPS ops offline, and the time to converge after they reconnect.
//
// bazil runs as the user runs it: `bazil dht run` on 127.0.0.1, two `bazil server run`
// processes (config {"firewalled": false}) and the CLI. Every timed figure starts with the page
// cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches, when permitted) and ends with sync(1),
// so each contender reads from disk and its data is on disk, not only in the page cache.
//
// Runs alone (`node --import tsx bench/sync-bench.ts` or `node dist/bench/sync-bench.js`,
// writes bench/results/sync.json) or from bench/run.ts through `run()`. The CLI is
// bin/bazil.js, i.e. dist/: build first (`npm run build`).
//
// Sizes: BENCH_SYNC_BIG_MIB (default BENCH_BIG_MIB, else 1024), BENCH_SYNC_SMALL_FILES
// (default BENCH_SMALL_FILES, else 10000), BENCH_SYNC_SETS: a comma list of the data sets
// (mixed: the big file and the small files; big: the big file alone; default both; converge
// runs on mixed only), BENCH_SYNC_OPS (10000 offline ops per peer),
// BENCH_SYNC_OPS_PER_ENTRY (1: one log entry per op, the worst case; the mount groups a burst into an entry per 100 ms). BENCH_SYNC_PARTS: a comma list of rsync,hypercore,syncthing,bazil,converge
// (default all; converge alone still sets up the pair, without the content export). BENCH_SYNC_LOG_DIR=DIR keeps every server's and
// Syncthing's output there, each line with the bench's clock (where time goes);
// BENCH_SYNC_CPU_PROF=DIR runs the bazil servers with --cpu-prof into DIR. Syncthing is
// installed with apt-get if missing (bench only), else its rows say why they are skipped.
// The converge part has its own baselines in the same run: a raw hypercore pair exchanging the
// very blocks the servers exchanged (both ways at once), and two Syncthing instances that made
// the same ops on their folders while paused. BENCH_SYNC_PERF=DIR: `perf record` of both
// servers over the converge (every thread's CPU, by kind); BENCH_SYNC_STASH=DIR: the first run
// keeps its prepared pair there, later runs converge copies of it (A/B on the same data).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomBytes } from 'node:crypto'
import type { Row } from './row.js'
import { monotonicMicros, splitProfile, summarizeProfile, type ProfileShare, type StackFrame } from './profile-summary.js'
import { bazilBin, callOp, cpuSecs, threadCpu, treeCpuSecs, freePort, freeUdpPort, has, log, now, ok, repoRoot, serverUp, sleep, startProc, startServer, syncDisks, dropCaches, waitLine, type Proc } from './procs.js'
import type { SyncResult } from '../src/control/requests.js'
import { summaryOf } from '../src/cli/progress.js'
import { LOG_INFLIGHT, widenLogRequests } from '../src/logs/inflight.js'
import type Corestore from 'corestore'
import type Hyperswarm from 'hyperswarm'
export type { Row }


const BIG_MIB = Number(process.env.BENCH_SYNC_BIG_MIB ?? process.env.BENCH_BIG_MIB ?? 1024)
const SMALL_FILES = Number(process.env.BENCH_SYNC_SMALL_FILES ?? process.env.BENCH_SMALL_FILES ?? 10_000)
const OPS = Number(process.env.BENCH_SYNC_OPS ?? 10_000)
const OPS_PER_ENTRY = Number(process.env.BENCH_SYNC_OPS_PER_ENTRY ?? 1)
const PARTS = new Set((process.env.BENCH_SYNC_PARTS ?? 'rsync,hypercore,syncthing,bazil,converge').split(',').map((s) => s.trim()))
const SETS = (process.env.BENCH_SYNC_SETS ?? 'mixed,big').split(',').map((x) => x.trim()).filter(Boolean)
const MiB = 1024 * 1024


// ---- the data set --------------------------------------------------------------------------

interface DataSet {
  root: string
  files: number
  bytes: number
}

function makeDataSet(root: string, bigMib: number, smallFiles: number): DataSet {
  fs.mkdirSync(path.join(root, 'small'), { recursive: true })
  const fd = fs.openSync(path.join(root, 'big.bin'), 'w')
  for (let i = 0; i < bigMib; i++) fs.writeSync(fd, randomBytes(MiB), 0, MiB)
  fs.closeSync(fd)
  let bytes = bigMib * MiB
  for (let i = 0; i < smallFiles; i++) {
    const dir = path.join(root, 'small', `d${Math.floor(i / 100)}`)
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true })
    const size = 512 + Math.floor(Math.random() * 8192)
    fs.writeFileSync(path.join(dir, `f${i}.txt`), randomBytes(size))
    bytes += size
  }
  return { root, files: smallFiles + 1, bytes }
}

/** Files under root (relative path -> size), for checking what a contender delivered. */
function listing(root: string): Map<string, number> {
  const out = new Map<string, number>()
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) {
        if (e.name.startsWith('.st')) continue // Syncthing's folder marker
        walk(r)
      } else if (e.isFile()) out.set(r, fs.statSync(path.join(root, r)).size)
    }
  }
  walk('')
  return out
}

/** Same files with the same sizes, and the big file byte for byte. */
function check(src: DataSet, dest: string, who: string): void {
  const a = listing(src.root)
  const b = listing(dest)
  if (a.size !== b.size) throw new Error(`${who}: ${b.size} files delivered, ${a.size} expected`)
  for (const [p, size] of a) if (b.get(p) !== size) throw new Error(`${who}: ${p} is ${b.get(p)} bytes, ${size} expected`)
  if (spawnSync('cmp', ['-s', path.join(src.root, 'big.bin'), path.join(dest, 'big.bin')]).status !== 0) throw new Error(`${who}: big.bin differs`)
}

// ---- rsync -----------------------------------------------------------------------------------

function benchRsync(ds: DataSet, work: string): { secs: number; note: string } {
  const dest = path.join(work, 'rsync-dest')
  dropCaches()
  const t0 = now()
  const r = spawnSync('rsync', ['-a', `${ds.root}/`, `${dest}/`], { stdio: ['ignore', 'ignore', 'pipe'] })
  syncDisks()
  const secs = (now() - t0) / 1000
  if (r.status !== 0) throw new Error(`rsync failed: ${r.stderr?.toString()}`)
  check(ds, dest, 'rsync')
  fs.rmSync(dest, { recursive: true, force: true })
  const sshd = has('sshd') ? 'sshd is installed but not used' : 'no sshd on this machine'
  return { secs, note: `local-mode rsync -a (no transport, no encryption; ${sshd}) + sync` }
}

// ---- raw hypercore over hyperswarm ---------------------------------------------------------

/** A swarm on the bench's DHT (firewalled: false) that replicates `store` on every connection. */
async function benchSwarm(store: Corestore, dhtPort: number, onConnection?: () => void): Promise<{ swarm: Hyperswarm; keyPair: { publicKey: Buffer } }> {
  const { default: Hyperswarm } = await import('hyperswarm')
  const { default: DHT } = await import('hyperdht')
  const keyPair = DHT.keyPair()
  const swarm = new Hyperswarm({ keyPair, dht: new DHT({ bootstrap: [{ host: '127.0.0.1', port: dhtPort }], firewalled: false, keyPair }) })
  swarm.on('connection', (conn) => {
    onConnection?.()
    conn.on('error', () => {})
    store.replicate(conn)
  })
  return { swarm, keyPair }
}

/** Child: a corestore with one core holding the data set, served on the swarm until SIGTERM. */
async function hcSeed(dir: string, dhtPort: number, src: string, HC_BLOCK: number): Promise<void> {
  const { default: Corestore } = await import('corestore')
  const store = new Corestore(dir)
  const core = store.get({ name: 'bench' })
  await core.ready()
  let batch: Buffer[] = []
  const push = async (b: Buffer): Promise<void> => {
    batch.push(b)
    if (batch.length >= 256) {
      await core.append(batch)
      batch = []
    }
  }
  const fd = fs.openSync(path.join(src, 'big.bin'), 'r')
  for (;;) {
    const b = Buffer.allocUnsafe(HC_BLOCK)
    const n = fs.readSync(fd, b, 0, HC_BLOCK, null)
    if (n === 0) break
    await push(n === HC_BLOCK ? b : b.subarray(0, n))
  }
  fs.closeSync(fd)
  const dirs = fs.readdirSync(path.join(src, 'small')).sort()
  for (const d of dirs) for (const f of fs.readdirSync(path.join(src, 'small', d)).sort()) await push(fs.readFileSync(path.join(src, 'small', d, f)))
  if (batch.length) await core.append(batch)
  const { swarm, keyPair } = await benchSwarm(store, dhtPort)
  await swarm.listen()
  process.stdout.write(JSON.stringify({ key: core.key.toString('hex'), publicKey: keyPair.publicKey.toString('hex'), length: core.length, byteLength: core.byteLength }) + '\n')
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()))
  await swarm.destroy()
  await store.close()
}

/** Child: replicates the seeder's core into a new corestore; prints how long until it has every block. */
async function hcFetch(dir: string, dhtPort: number, keyHex: string, peerHex: string, length: number): Promise<void> {
  const { default: Corestore } = await import('corestore')
  const store = new Corestore(dir)
  const core = store.get({ key: Buffer.from(keyHex, 'hex') })
  await core.ready()
  let connectedMs = 0
  const t0 = now()
  const { swarm } = await benchSwarm(store, dhtPort, () => {
    if (!connectedMs) connectedMs = now() - t0
  })
  swarm.joinPeer(Buffer.from(peerHex, 'hex'))
  const range = core.download({ start: 0, end: length })
  await range.done()
  if (core.contiguousLength < length) throw new Error(`downloader has ${core.contiguousLength} of ${length} blocks`)
  const doneMs = now() - t0
  const byteLength = core.byteLength
  await swarm.destroy()
  await store.close()
  spawnSync('sync') // on disk, as every other contender
  process.stdout.write(JSON.stringify({ ms: now() - t0, doneMs, connectedMs, byteLength }) + '\n')
}

/**
 * Child: one side of the raw hypercore pair: a core holding the blocks of `blocksFile`, served
 * on the swarm; once `${dir}.go` names the other side's core, fetches all of it (both sides at
 * once, as two servers converging) and prints how long that took; serves until SIGTERM.
 */
async function hcPair(dir: string, dhtPort: number, blocksFile: string): Promise<void> {
  const { default: Corestore } = await import('corestore')
  const store = new Corestore(dir)
  const core = store.get({ name: 'bench' })
  await core.ready()
  const blocks = readBlocks(blocksFile)
  for (let i = 0; i < blocks.length; i += 256) await core.append(blocks.slice(i, i + 256))
  const { swarm, keyPair } = await benchSwarm(store, dhtPort)
  await swarm.listen()
  process.stdout.write(JSON.stringify({ key: core.key.toString('hex'), publicKey: keyPair.publicKey.toString('hex'), length: core.length }) + '\n')
  const go = `${dir}.go`
  while (!fs.existsSync(go)) await sleep(5)
  const t0 = now()
  const other = JSON.parse(fs.readFileSync(go, 'utf8')) as { key: string; publicKey: string; length: number }
  const theirs = store.get({ key: Buffer.from(other.key, 'hex') })
  await theirs.ready()
  widenLogRequests(theirs) // the request window bazil gives another writer's log (src/logs/inflight.ts)
  swarm.joinPeer(Buffer.from(other.publicKey, 'hex'))
  await theirs.download({ start: 0, end: other.length }).done()
  if (theirs.contiguousLength < other.length) throw new Error(`has ${theirs.contiguousLength} of ${other.length} blocks`)
  process.stdout.write(JSON.stringify({ ms: now() - t0 }) + '\n')
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()))
  await swarm.destroy()
  await store.close()
}

/**
 * The transport's part of a converge: two processes, each holding one side's offline blocks
 * (the very blocks the bazil servers exchanged) in a raw hypercore, fetch each other's core at
 * once over hyperswarm on the same DHT. Timed from both told the other's key until both have
 * every block; CPU of each process over that span (serving and fetching).
 */
async function benchHypercorePair(work: string, dhtPort: number, blockFiles: [string, string]): Promise<{ secs: number; cpu: number[]; note: string }> {
  const dirs = [path.join(work, 'hc-pair-a'), path.join(work, 'hc-pair-b')]
  const procs = dirs.map((d, k) => startProc(process.execPath, childArgs(['--hc-pair', d, String(dhtPort), blockFiles[k]!])))
  try {
    const infos = await Promise.all(procs.map(async (p, k) => {
      await waitLine(p, /^\{"key"/, `hypercore pair ${k}`, 300_000)
      return p.lines.find((l) => l.line.startsWith('{"key"'))!.line
    }))
    const cpu0 = procs.map((p) => cpuSecs(p.child.pid))
    const threads0 = procs.map((p) => threadCpu(p.child.pid))
    const t0 = now()
    fs.writeFileSync(`${dirs[0]}.go`, infos[1]!)
    fs.writeFileSync(`${dirs[1]}.go`, infos[0]!)
    await Promise.all(procs.map((p, k) => waitLine(p, /^\{"ms"/, `hypercore pair ${k} fetching`, 600_000)))
    const wall = (now() - t0) / 1000
    const cpu = procs.map((p, k) => cpuSecs(p.child.pid) - cpu0[k]!)
    const threads1 = procs.map((p) => threadCpu(p.child.pid))
    const ms = procs.map((p) => (JSON.parse(p.lines.find((l) => l.line.startsWith('{"ms"'))!.line) as { ms: number }).ms)
    const lens = infos.map((i) => (JSON.parse(i) as { length: number }).length)
    return { secs: wall, cpu, note: `${lens.join(' + ')} blocks (the converge's own blocks), ${LOG_INFLIGHT[0]} requests in flight as bazil's logs, each side done after ${ms.map((m) => (m / 1000).toFixed(2)).join(' / ')} s; cpu per process ${cpu.map((c) => c.toFixed(2)).join(' / ')} s (by thread: ${procs.map((_, k) => threadNote(threads0[k]!, threads1[k]!)).join('; ')})` }
  } finally {
    for (const p of procs) await p.stop()
    for (const d of dirs) {
      fs.rmSync(d, { recursive: true, force: true })
      fs.rmSync(`${d}.go`, { force: true })
    }
  }
}

function childArgs(args: string[]): string[] {
  return [...process.execArgv, fileURLToPath(import.meta.url), ...args]
}

async function benchHypercore(ds: DataSet, work: string, dhtPort: number, block: number): Promise<{ secs: number; note: string }> {
  const seedDir = path.join(work, 'hc-seed')
  const fetchDir = path.join(work, 'hc-fetch')
  const seeder = startProc(process.execPath, childArgs(['--hc-seed', seedDir, String(dhtPort), ds.root, String(block)]))
  try {
    await waitLine(seeder, /^\{"key"/, 'hypercore seeder', 600_000)
    const info = JSON.parse(seeder.lines.find((l) => l.line.startsWith('{"key"'))!.line) as { key: string; publicKey: string; length: number; byteLength: number }
    if (info.byteLength !== ds.bytes) throw new Error(`seeder holds ${info.byteLength} bytes, the data set is ${ds.bytes}`)
    dropCaches()
    const r = spawnSync(process.execPath, childArgs(['--hc-fetch', fetchDir, String(dhtPort), info.key, info.publicKey, String(info.length)]), { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 1_800_000 })
    if (r.status !== 0) throw new Error(`hypercore downloader failed: ${r.stderr}`)
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; doneMs: number; connectedMs: number; byteLength: number }
    if (out.byteLength !== ds.bytes) throw new Error(`downloader got ${out.byteLength} bytes, ${ds.bytes} expected`)
    // Timed inside the downloader: from joinPeer until it has every block, closed its store and ran sync(1).
    return { secs: out.ms / 1000, note: `${info.length} blocks (${block / 1024} KiB + one per small file); connected after ${out.connectedMs.toFixed(0)} ms, every block after ${(out.doneMs / 1000).toFixed(2)} s, then close + sync` }
  } finally {
    await seeder.stop()
    fs.rmSync(seedDir, { recursive: true, force: true })
    fs.rmSync(fetchDir, { recursive: true, force: true })
  }
}

// ---- Syncthing ------------------------------------------------------------------------------

function ensureSyncthing(): string | null {
  if (has('syncthing')) return null
  log('syncthing is missing: apt-get install -y syncthing')
  let r = spawnSync('apt-get', ['install', '-y', 'syncthing'], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8' })
    r = spawnSync('apt-get', ['install', '-y', 'syncthing'], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  if (r.status !== 0 || !has('syncthing')) return `apt-get install syncthing failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`
  return null
}

interface StNode {
  home: string
  id: string
  gui: number
  listen: number
  key: string
  proc?: Proc
}

function stConfig(self: StNode, other: StNode, folder: string | null, folderId = 'bench'): string {
  const dev = (n: StNode, addr: string): string =>
    `  <device id="${n.id}" name="${path.basename(n.home)}" compression="never" introducer="false"><address>${addr}</address><autoAcceptFolders>false</autoAcceptFolders></device>\n`
  const folderXml = folder
    ? `  <folder id="${folderId}" label="${folderId}" path="${folder}" type="sendreceive" rescanIntervalS="86400" fsWatcherEnabled="false" ignorePerms="false" autoNormalize="true">\n` +
      `    <filesystemType>basic</filesystemType>\n    <device id="${self.id}"></device>\n    <device id="${other.id}"></device>\n    <minDiskFree unit="%">0</minDiskFree>\n  </folder>\n`
    : ''
  return `<configuration version="36">\n${folderXml}${dev(self, 'dynamic')}${dev(other, `tcp://127.0.0.1:${other.listen}`)}` +
    `  <gui enabled="true" tls="false" debugging="false"><address>127.0.0.1:${self.gui}</address><apikey>${self.key}</apikey></gui>\n` +
    '  <options>\n' +
    `    <listenAddress>tcp://127.0.0.1:${self.listen}</listenAddress>\n` +
    '    <globalAnnounceEnabled>false</globalAnnounceEnabled>\n    <localAnnounceEnabled>false</localAnnounceEnabled>\n' +
    '    <relaysEnabled>false</relaysEnabled>\n    <natEnabled>false</natEnabled>\n    <stunKeepaliveStartS>0</stunKeepaliveStartS>\n' +
    '    <urAccepted>-1</urAccepted>\n    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>\n    <crashReportingEnabled>false</crashReportingEnabled>\n' +
    '    <startBrowser>false</startBrowser>\n    <reconnectionIntervalS>1</reconnectionIntervalS>\n    <setLowPriority>false</setLowPriority>\n' +
    '    <minHomeDiskFree unit="%">0</minHomeDiskFree>\n' +
    '  </options>\n</configuration>\n'
}

async function stApi<T>(n: StNode, method: string, p: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${n.gui}${p}`, {
    method,
    headers: { 'X-API-Key': n.key, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  if (!res.ok) throw new Error(`syncthing ${method} ${p}: ${res.status} ${await res.text()}`)
  const text = await res.text()
  return (text ? JSON.parse(text) : null) as T
}

async function stUntil(what: string, n: StNode, cond: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await cond()) return
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`syncthing: timed out waiting for ${what}:\n${n.proc?.text().slice(-2000) ?? ''}`)
    await sleep(stepMs)
  }
}

interface FolderStatus {
  state: string
  needFiles: number
  needBytes: number
  globalFiles: number
  globalBytes: number
  inSyncBytes: number
  localFiles: number
  localBytes: number
}

/** A Syncthing home (`syncthing generate`) under `work`, with free ports and an API key. */
async function stNode(work: string, name: string): Promise<StNode> {
  const home = path.join(work, `st-${name}`)
  const r = spawnSync('syncthing', ['generate', `--home=${home}`, '--no-default-folder', '--skip-port-probing'], { encoding: 'utf8' })
  const m = /Device ID: ([A-Z0-9-]+)/.exec(r.stdout + r.stderr)
  if (r.status !== 0 || !m) throw new Error(`syncthing generate failed: ${r.stderr}`)
  return { home, id: m[1], gui: await freePort(), listen: await freePort(), key: randomBytes(16).toString('hex') }
}

function serve(n: StNode): Proc {
  const env = { ...process.env, STNORESTART: '1', STNOUPGRADE: '1', STNODEFAULTFOLDER: '1' }
  return startProc('syncthing', ['serve', `--home=${n.home}`, '--no-browser', '--no-restart', '--no-upgrade', '--no-default-folder'], env)
}

async function benchSyncthing(ds: DataSet, work: string): Promise<{ secs: number; note: string } | { skipped: string }> {
  const why = ensureSyncthing()
  if (why) return { skipped: why }
  const version = spawnSync('syncthing', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 2).join(' ')
  const sender = await stNode(work, 'sender')
  const receiver = await stNode(work, 'receiver')
  const dest = path.join(work, 'st-dest')
  fs.writeFileSync(path.join(sender.home, 'config.xml'), stConfig(sender, receiver, ds.root))
  fs.writeFileSync(path.join(receiver.home, 'config.xml'), stConfig(receiver, sender, null))
  try {
    sender.proc = serve(sender)
    // The sender scans (hashes) the data set first: like bazil's import, not part of the sync.
    const t0 = now()
    let senderBytes = -1
    await stUntil('the sender to scan the data set', sender, async () => {
      const s = await stApi<FolderStatus>(sender, 'GET', '/rest/db/status?folder=bench')
      senderBytes = s.globalBytes // Syncthing counts 128 bytes per directory: compare its own figures
      return s.state === 'idle' && s.localFiles === ds.files && s.needFiles === 0
    }, 1_800_000, 250)
    const scanSecs = (now() - t0) / 1000
    receiver.proc = serve(receiver)
    await stUntil('the two instances to connect', receiver, async () => {
      const c = await stApi<{ connections: Record<string, { connected: boolean }> }>(receiver, 'GET', '/rest/system/connections')
      return c.connections[sender.id]?.connected === true
    }, 120_000)
    dropCaches()
    const t1 = now()
    await stApi(receiver, 'POST', '/rest/config/folders', {
      id: 'bench', label: 'bench', path: dest, type: 'sendreceive', fsWatcherEnabled: false, rescanIntervalS: 86400,
      devices: [{ deviceID: receiver.id }, { deviceID: sender.id }], minDiskFree: { value: 0, unit: '%' }
    })
    await stUntil('the receiver to complete', receiver, async () => {
      const s = await stApi<FolderStatus>(receiver, 'GET', '/rest/db/status?folder=bench')
      return s.state === 'idle' && s.needFiles === 0 && s.needBytes === 0 && s.globalFiles === ds.files && s.globalBytes === senderBytes && s.inSyncBytes === s.globalBytes
    }, 1_800_000, 100)
    syncDisks()
    const secs = (now() - t1) / 1000
    check(ds, dest, 'syncthing')
    return { secs, note: `${version}, TCP on 127.0.0.1, TLS; discovery, relays, NAT traversal off; timed from the receiver's folder add (REST) to /rest/db/status complete + sync; the sender's scan took ${scanSecs.toFixed(1)} s before (not timed)` }
  } finally {
    for (const n of [receiver, sender]) await n.proc?.stop()
    fs.rmSync(path.join(ds.root, '.stfolder'), { recursive: true, force: true })
    for (const n of [receiver, sender]) fs.rmSync(n.home, { recursive: true, force: true })
    fs.rmSync(dest, { recursive: true, force: true })
  }
}

/** Files under root (relative path -> "size mode"), Syncthing's own files left out: what two folders agree on. */
function modeListing(root: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.st') || e.name.startsWith('.syncthing.')) continue
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) walk(r)
      else if (e.isFile()) {
        const st = fs.statSync(path.join(root, r))
        out.set(r, `${st.size} ${(st.mode & 0o777).toString(8)}`)
      }
    }
  }
  walk('')
  return out
}

function sameListing(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

/**
 * What a user would pick for two machines that changed files apart: two Syncthing instances
 * share a copy of the data set each; with the other device paused on both, each makes the same
 * OPS ops as a bazil side (offlinePlan) on its folder and rescans (not timed, as bazil's
 * offline ops are not); then both unpause. Timed from the unpause until both folders agree
 * (same paths, sizes and modes, both idle with nothing needed; a file changed on both sides
 * stays as a conflict copy, which is Syncthing's answer). CPU of each instance over the span.
 */
async function benchSyncthingConverge(ds: DataSet, work: string): Promise<{ secs: number; cpu: number[]; note: string } | { skipped: string }> {
  const why = ensureSyncthing()
  if (why) return { skipped: why }
  const nodes = [await stNode(work, 'conv-a'), await stNode(work, 'conv-b')]
  const folders = [path.join(work, 'st-conv-a-dir'), path.join(work, 'st-conv-b-dir')]
  for (const f of folders) {
    fs.mkdirSync(f, { recursive: true })
    if (spawnSync('cp', ['-a', `${ds.root}/.`, f]).status !== 0) throw new Error(`cp -a ${ds.root} ${f} failed`)
  }
  fs.writeFileSync(path.join(nodes[0]!.home, 'config.xml'), stConfig(nodes[0]!, nodes[1]!, folders[0]!, 'conv'))
  fs.writeFileSync(path.join(nodes[1]!.home, 'config.xml'), stConfig(nodes[1]!, nodes[0]!, folders[1]!, 'conv'))
  const other = (k: number): StNode => nodes[1 - k]!
  const status = (n: StNode): Promise<FolderStatus & { needTotalItems: number }> => stApi(n, 'GET', '/rest/db/status?folder=conv')
  const settled = async (): Promise<boolean> => {
    for (const n of nodes) {
      const st = await status(n)
      if (st.state !== 'idle' || st.needTotalItems !== 0) return false
    }
    return sameListing(modeListing(folders[0]!), modeListing(folders[1]!))
  }
  const connected = async (k: number, want: boolean): Promise<boolean> => {
    const c = await stApi<{ connections: Record<string, { connected: boolean }> }>(nodes[k]!, 'GET', '/rest/system/connections')
    return (c.connections[other(k).id]?.connected === true) === want
  }
  const pause = async (paused: boolean): Promise<void> => {
    await Promise.all(nodes.map((n, k) => stApi(n, 'PATCH', `/rest/config/devices/${other(k).id}`, { paused })))
  }
  try {
    for (const n of nodes) n.proc = serve(n)
    const t0 = now()
    for (let k = 0; k < 2; k++) await stUntil('the two instances to connect', nodes[k]!, () => connected(k, true), 120_000)
    await stUntil('the two folders to agree before the offline ops', nodes[0]!, settled, 1_800_000, 250)
    const startSecs = (now() - t0) / 1000
    await pause(true)
    for (let k = 0; k < 2; k++) await stUntil('the devices to disconnect', nodes[k]!, () => connected(k, false), 60_000)
    let applied = 0
    for (let k = 0; k < 2; k++) {
      const at = (p: string): string => path.join(folders[k]!, p)
      for (const op of offlinePlan(k + 1)) {
        try {
          if (op.op === 'write') fs.writeFileSync(at(op.path), op.data)
          else if (op.op === 'chmod') fs.chmodSync(at(op.path), op.mode)
          else fs.renameSync(at(op.from), at(op.to))
          applied++
        } catch {
          // a path an earlier op moved away: skipped, as for bazil
        }
      }
    }
    const t1 = now()
    await Promise.all(nodes.map((n) => stApi(n, 'POST', '/rest/db/scan?folder=conv')))
    for (const n of nodes) await stUntil('the rescan after the offline ops', n, async () => (await status(n)).state === 'idle', 600_000)
    const scanSecs = (now() - t1) / 1000
    const cpu0 = nodes.map((n) => treeCpuSecs(n.proc!.child.pid))
    const t2 = now()
    await pause(false)
    await stUntil('both folders to agree after the reconnect', nodes[0]!, settled, 1_800_000, 100)
    const secs = (now() - t2) / 1000
    const cpu = nodes.map((n, k) => treeCpuSecs(n.proc!.child.pid) - cpu0[k]!)
    const files = modeListing(folders[0]!)
    const conflicts = [...files.keys()].filter((f) => f.includes('.sync-conflict-')).length
    return { secs, cpu, note: `Syncthing, two instances, TCP on 127.0.0.1; ${applied} ops applied on the two folders while paused, rescan ${scanSecs.toFixed(1)} s (not timed); timed from unpausing until both idle with the same ${files.size} files (${conflicts} conflict copies), sizes and modes; cpu per instance over that ${cpu.map((c) => c.toFixed(2)).join(' / ')} s; the first sync of the two copies took ${startSecs.toFixed(1)} s before (not timed)` }
  } finally {
    for (const n of nodes) await n.proc?.stop()
    for (const n of nodes) fs.rmSync(n.home, { recursive: true, force: true })
    for (const f of folders) fs.rmSync(f, { recursive: true, force: true })
  }
}

// ---- bazil ---------------------------------------------------------------------------------

interface Peers {
  white: string
  black: string
  WHITE: string
  BLACK: string
}

interface BazilResult {
  importSecs: number
  pairSecs: number
  connectSecs: number
  syncSecs: number
  logSecs: number
  exportSecs: number
  reexportSecs: number
  syncJson: Record<string, unknown>
  cpu: { white: number; black: number }
  peers: Peers
  servers: Proc[]
}

/** With `content` false: only the pair (import, connect, log sync), for a convergence run alone. */
async function benchBazil(ds: DataSet, work: string, dhtPort: number, content = true): Promise<BazilResult> {
  const white = path.join(work, 'white')
  const black = path.join(work, 'black')
  await ok(white, ['create'])
  await ok(black, ['create'])
  for (const d of [white, black]) fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ firewalled: false }))
  const sekrit = randomBytes(32)
  await ok(white, ['sharing', 'add', 'friends'], sekrit)
  await ok(black, ['sharing', 'add', 'friends'], sekrit)
  const WHITE = (await ok(white, ['debug', 'pubkey'])).trim()
  const BLACK = (await ok(black, ['debug', 'pubkey'])).trim()
  await ok(white, ['volume', 'create', '--sharing=friends', 'v'])
  dropCaches()
  let t = now()
  await ok(white, ['volume', 'import', 'v', ds.root])
  syncDisks()
  const importSecs = (now() - t) / 1000
  log(`bazil: white imported the data set in ${importSecs.toFixed(1)} s`)

  const servers = [startServer(white, dhtPort), startServer(black, dhtPort)]
  try {
    await Promise.all(servers.map(serverUp))
    await ok(white, ['peer', 'add', BLACK])
    await ok(white, ['peer', 'storage', 'allow', BLACK, 'local'])
    await ok(white, ['peer', 'volume', 'allow', BLACK, 'v'])
    const tAdd = now()
    await ok(black, ['peer', 'add', WHITE])
    // Like Syncthing's, the timer starts with the two peers connected: pairing is not syncing.
    const connectedAt = await waitLine(servers[1], /net: peer \S+ connected/, 'black connecting to white', 120_000)
    const pairSecs = (connectedAt - tAdd) / 1000
    log(`bazil: peers connected ${pairSecs.toFixed(2)} s after black's peer add`)
    const cpu0 = { white: cpuSecs(servers[0].child.pid), black: cpuSecs(servers[1].child.pid) }
    dropCaches()
    // Timed from here: what black's user runs to get the volume, then its content.
    t = now()
    await ok(black, ['volume', 'connect', '--sharing=friends', '--timeout=120', WHITE, 'v'])
    await ok(black, ['volume', 'storage', 'add', 'v', `peerkey:${WHITE}`])
    const connectSecs = (now() - t) / 1000
    const syncJson = summaryOf(await ok(black, ['volume', 'sync', '--json', '--timeout=600', 'v', WHITE]))
    const logSecs = (now() - t) / 1000
    const syncSecs = logSecs - connectSecs
    if (!content) return { importSecs, pairSecs, connectSecs, syncSecs, logSecs, exportSecs: NaN, reexportSecs: NaN, syncJson, cpu: { white: NaN, black: NaN }, peers: { white, black, WHITE, BLACK }, servers }
    const dest = path.join(work, 'bazil-dest')
    const t1 = now()
    await ok(black, ['volume', 'export', 'v', dest])
    syncDisks()
    const exportSecs = (now() - t1) / 1000
    const cpu = { white: cpuSecs(servers[0].child.pid) - cpu0.white, black: cpuSecs(servers[1].child.pid) - cpu0.black }
    check(ds, dest, 'bazil')
    fs.rmSync(dest, { recursive: true, force: true })
    // The same export again, now that every block is in black's own store: the local part.
    dropCaches()
    const t2 = now()
    await ok(black, ['volume', 'export', 'v', dest])
    syncDisks()
    const reexportSecs = (now() - t2) / 1000
    fs.rmSync(dest, { recursive: true, force: true })
    return { importSecs, pairSecs, connectSecs, syncSecs, logSecs, exportSecs, reexportSecs, syncJson, cpu, peers: { white, black, WHITE, BLACK }, servers }
  } catch (err) {
    for (const s of servers) await s.stop()
    throw err
  }
}

/** Store sizes on disk (for the notes). */
function duMiB(dir: string): number {
  const r = spawnSync('du', ['-sm', dir], { encoding: 'utf8' })
  return Number(r.stdout.split('\t')[0])
}

/**
 * bazil's modules from dist/, the code the servers run (bin/bazil.js), also when this file runs
 * under tsx: the data dirs the servers open must be written by the same code.
 */
async function distModules(): Promise<{ DataDir: typeof import('../src/datadir.js').DataDir; Node: typeof import('../src/node.js').Node; hash: typeof import('../src/crypto.js').hash }> {
  const dist = (p: string): string => pathToFileURL(path.join(repoRoot, 'dist', 'src', p)).href
  const [d, n, c] = await Promise.all([import(dist('datadir.js')), import(dist('node.js')), import(dist('crypto.js'))])
  return { DataDir: d.DataDir, Node: n.Node, hash: c.hash }
}

// ---- convergence after offline work --------------------------------------------------------

/** One offline op of a side's plan (the same plan for bazil and for Syncthing's folder). */
type OfflineOp =
  | { op: 'write'; path: string; data: Buffer }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'rename'; from: string; to: string }

/**
 * Side `seed`'s OPS offline ops: new files, new versions of existing ones, chmods, renames,
 * across the data set's 100 directories (paths from the volume's root, starting with /).
 */
function* offlinePlan(seed: number): Generator<OfflineOp> {
  const dirs = Math.max(1, Math.ceil(SMALL_FILES / 100))
  const fileIn = (d: number, k: number): string => `/small/d${d}/f${d * 100 + (k % 100)}.txt`
  const dirOf = (i: number): number => (i * 7 + seed * 13) % dirs
  for (let i = 0; i < OPS; i++) {
    const d = dirOf(i)
    switch (i % 4) {
      case 0: yield { op: 'write', path: fileIn(d, i + seed), data: Buffer.from(`version ${i} from ${seed}\n`) }; break
      case 1: yield { op: 'write', path: `/small/d${d}/new-${seed}-${i}.txt`, data: Buffer.from(`new ${i} from ${seed}\n`) }; break
      case 2: yield { op: 'chmod', path: fileIn(d, i * 3 + seed), mode: 0o600 + seed }; break
      case 3: yield { op: 'rename', from: `/small/d${dirOf(i - 2)}/new-${seed}-${i - 2}.txt`, to: `/small/d${d}/moved-${seed}-${i}.txt` }; break
    }
  }
}

/** Length-prefixed blocks (u32 LE length, bytes), for the raw hypercore pair. */
function writeBlocks(file: string, blocks: Buffer[]): void {
  const parts: Buffer[] = []
  for (const b of blocks) {
    const n = Buffer.alloc(4)
    n.writeUInt32LE(b.length)
    parts.push(n, b)
  }
  fs.writeFileSync(file, Buffer.concat(parts))
}

function readBlocks(file: string): Buffer[] {
  const all = fs.readFileSync(file)
  const out: Buffer[] = []
  for (let at = 0; at < all.length;) {
    const n = all.readUInt32LE(at)
    out.push(all.subarray(at + 4, at + 4 + n))
    at += 4 + n
  }
  return out
}

/**
 * Each side makes OPS ops (offlinePlan) on its own data dir while the servers are down.
 * In-process through the Volume API (what the CLI and the mount call), OPS_PER_ENTRY ops per
 * log entry. Returns the side's log length; the blocks the ops appended go to `blocksFile`
 * (what the raw hypercore pair replicates).
 */
async function offlineOps(dataDir: string, seed: number, blocksFile: string): Promise<{ logLength: number; secs: number; reopen: string; blocks: number; bytes: number }> {
  const { DataDir, Node } = await distModules()
  const t0 = now()
  const node = await Node.open(DataDir.open(dataDir))
  try {
    const vol = await node.volume('v')
    const startLength = vol.log.length
    let i = 0
    for (const op of offlinePlan(seed)) {
      try {
        if (op.op === 'write') await vol.writeFile(op.path, op.data)
        else if (op.op === 'chmod') vol.setattr(op.path, { mode: op.mode })
        else vol.rename(op.from, op.to)
      } catch {
        // a path an earlier op moved away: skipped, as a user would get ENOENT
      }
      if (++i % OPS_PER_ENTRY === 0) await vol.flush()
    }
    await vol.flush()
    const logLength = vol.log.length
    const secs = (now() - t0) / 1000
    const blocks: Buffer[] = []
    for (let k = startLength; k < logLength; k++) blocks.push((await vol.log.core.get(k, { wait: false }))!)
    writeBlocks(blocksFile, blocks)
    await node.close()
    // What the server's open will find: the checkpoint the close wrote, or a replay of the logs.
    const again = await Node.open(DataDir.open(dataDir))
    try {
      const v = await again.volume('v')
      return { logLength, secs, blocks: blocks.length, bytes: blocks.reduce((n, b) => n + b.length, 0), reopen: `${v.opened.fromCheckpoint ? 'from its checkpoint' : 'NOT from its checkpoint'}, ${v.opened.replayedEntries} entries replayed, ${(v.opened.ms / 1000).toFixed(2)} s` }
    } finally {
      await again.close()
    }
  } catch (err) {
    await node.close().catch(() => {})
    throw err
  }
}

/** The whole tree of a data dir's volume: paths, content hashes, modes (servers stopped). */
async function treeDump(dataDir: string): Promise<{ hash: string; paths: number }> {
  const { DataDir, Node, hash } = await distModules()
  const node = await Node.open(DataDir.open(dataDir))
  try {
    const vol = await node.volume('v')
    const all = [...vol.tree.walk('/')].map((s) => [s.path, s.kind, s.content?.hash ?? null, s.mode, s.target ?? null])
    return { hash: hash(Buffer.from(JSON.stringify(all))).toString('hex').slice(0, 16), paths: all.length }
  } finally {
    await node.close()
  }
}

const inUrl = (re: RegExp) => (stack: StackFrame[]): boolean => stack.some((f) => re.test(f.url))
const inFn = (url: RegExp, fn: RegExp) => (stack: StackFrame[]): boolean => stack.some((f) => url.test(f.url) && fn.test(f.fn))

/**
 * What a server does while it converges, by whole stack (the first that matches): ours (apply:
 * the tree, Automerge, the index; entry read: decrypt, decode, checks, the control scan), then
 * hypercore's replication (serving a request, taking in a block: verify and store, the rest:
 * requests and bookkeeping), the transport under it, and RocksDB read batches whose caller is
 * not on the stack (their flush runs from a microtask).
 */
const CONVERGE_SHARES: ProfileShare[] = [
  { name: 'apply (tree, Automerge, index)', test: (s) => inUrl(/\/dist\/src\/tree\/|@automerge|automerge_wasm/)(s) },
  { name: 'entry read (storage, decrypt, decode, control scan)', test: inUrl(/\/dist\/src\/logs\/|\/dist\/src\/volume\/replay\.js/) },
  { name: 'hypercore serve (a request: reads, proof)', test: inFn(/hypercore\/lib\/replicator\.js/, /^(_handleRequest|_fulfillRequest|onrequest|_serve)/) },
  { name: 'hypercore take a block (verify, store)', test: inFn(/hypercore\/lib\/replicator\.js/, /^(_handleData|ondata|_verify)/) },
  { name: 'hypercore requests and bookkeeping', test: inUrl(/node_modules\/(hypercore|hypercore-storage|hypercore-crypto)\//) },
  { name: 'transport (protomux, secret-stream, UDX, DHT)', test: inUrl(/node_modules\/(protomux|@hyperswarm|udx-native|hyperdht|noise-|hyperswarm|compact-encoding|streamx)/) },
  { name: 'RocksDB batch flush/callback, caller not on stack', test: inUrl(/node_modules\/rocksdb-native\//) },
  { name: 'garbage collector', test: (s) => s[0]?.fn === '(garbage collector)' }
]

/**
 * With BENCH_SYNC_CPU_PROF: where each server's main thread spent the span (from both servers up
 * to converged), from the profile it wrote when it stopped (the newest of its data dir's name):
 * by package and function (self time), and split by whole stack (CONVERGE_SHARES).
 */
function profileNotes(names: string[], span: [number, number]): string {
  const dir = process.env.BENCH_SYNC_CPU_PROF
  if (!dir) return ''
  const notes = names.map((name) => {
    const f = fs.readdirSync(dir).filter((x) => x.startsWith(`${name}-`) && x.endsWith('.cpuprofile')).sort().pop()
    if (!f) return `${name}: no profile`
    const x = summarizeProfile(path.join(dir, f), { span, top: 12 })
    const split = splitProfile(path.join(dir, f), CONVERGE_SHARES, span)
    const shares = [...split.secs].map(([k, v]) => `${k} ${v.toFixed(2)} s (${((v / Math.max(1e-9, split.busySecs)) * 100).toFixed(0)}%)`).join(', ')
    return `${name} (${path.join(dir, f)}) main thread busy ${x.busySecs.toFixed(2)} s of ${x.wallSecs.toFixed(2)} s; by stack: ${shares}; by package ${x.packages}; by function ${x.functions}`
  })
  log(`converge profiles:\n  ${notes.join('\n  ')}`)
  return `; profiles from both servers up to converged: ${notes.join(' | ')}`
}

/** CPU seconds per thread between two threadCpu() readings, as "main 3.1 s, libuv-worker 0.4 s, ...". */
function threadNote(a: Map<string, number>, b: Map<string, number>): string {
  const d = [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, v]) => v >= 0.01).sort((x, y) => y[1] - x[1])
  return d.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')
}

/**
 * With BENCH_SYNC_PERF=DIR: `perf record` of the servers' every thread over the span (call
 * graphs; JIT frames named through --perf-basic-prof), for the CPU the V8 profile cannot see:
 * other threads (RocksDB's reads and writes on libuv's pool, V8's compiler and GC helpers) and
 * time off the CPU (the V8 profile samples wall time). Read with `perf report -i FILE`.
 */
function startPerf(pids: number[]): (Proc & { file: string }) | null {
  const dir = process.env.BENCH_SYNC_PERF
  if (!dir) return null
  if (!has('perf')) {
    log('BENCH_SYNC_PERF: no perf on this machine')
    return null
  }
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `converge-${Date.now()}.perf.data`)
  log(`perf record of the servers into ${file}`)
  const p = startProc('perf', ['record', '-F', '999', '-g', '-p', pids.join(','), '-o', file])
  return { ...p, file, stop: async () => { p.child.kill('SIGINT'); await new Promise((r) => p.child.exitCode !== null ? r(null) : p.child.once('exit', r)) } }
}

type OfflineResult = Awaited<ReturnType<typeof offlineOps>>

/**
 * BENCH_SYNC_STASH=DIR: the converge's prepared pair (both data dirs after the offline ops,
 * servers stopped, and the blocks the ops appended) is copied there by the first run, and later
 * runs converge copies of it instead of preparing again: builds compared back to back on the
 * same data (`prepared` in DIR/meta.json).
 */
const STASH = process.env.BENCH_SYNC_STASH ?? null

function stashSave(p: Peers, blockFiles: [string, string], w: OfflineResult, b: OfflineResult): void {
  if (!STASH) return
  fs.mkdirSync(STASH, { recursive: true })
  for (const [from, to] of [[p.white, 'white'], [p.black, 'black'], [blockFiles[0], 'white.blocks'], [blockFiles[1], 'black.blocks']] as const) {
    if (spawnSync('cp', ['-a', from, path.join(STASH, to)]).status !== 0) throw new Error(`cp -a ${from} ${STASH} failed`)
  }
  fs.writeFileSync(path.join(STASH, 'meta.json'), JSON.stringify({ WHITE: p.WHITE, BLACK: p.BLACK, w, b }))
  log(`converge: the prepared pair stashed in ${STASH}`)
}

/** A copy of the stashed pair under `work`, or null when there is none. */
function stashLoad(work: string): { peers: Peers; blockFiles: [string, string]; w: OfflineResult; b: OfflineResult } | null {
  if (!STASH || !fs.existsSync(path.join(STASH, 'meta.json'))) return null
  const meta = JSON.parse(fs.readFileSync(path.join(STASH, 'meta.json'), 'utf8')) as { WHITE: string; BLACK: string; w: OfflineResult; b: OfflineResult }
  for (const d of ['white', 'black']) {
    if (spawnSync('cp', ['-a', path.join(STASH, d), path.join(work, d)]).status !== 0) throw new Error(`cp -a ${STASH}/${d} failed`)
    // corestore refuses a copied store (its device file names the original); each copy here is used once.
    fs.rmSync(path.join(work, d, 'corestore', 'CORESTORE'), { force: true })
  }
  return { peers: { white: path.join(work, 'white'), black: path.join(work, 'black'), WHITE: meta.WHITE, BLACK: meta.BLACK }, blockFiles: [path.join(STASH, 'white.blocks'), path.join(STASH, 'black.blocks')], w: meta.w, b: meta.b }
}

/** What another thread than the main one ran, by its leaf frame. */
function perfCategory(dso: string, sym: string): string {
  if (/Scaveng|MarkCompact|ConcurrentMarking|Sweep|Marking|Evacuat|MinorMS|ArrayBufferSweeper|Heap::|heap::/.test(sym)) return 'GC'
  if (/compiler::|wasm::|Turbofan|Maglev|maglev|Compile/.test(sym)) return 'V8 optimizing compilers (JS and wasm tier-up)'
  if (dso.includes('rocksdb')) return 'RocksDB'
  if (dso.includes('[kernel.kallsyms]')) return 'kernel'
  return 'other'
}

/** Main-thread shares of a perf sample's stack: V8's own work first, then CONVERGE_SHARES. */
const PERF_MAIN_SHARES: ProfileShare[] = [
  { name: 'garbage collector', test: (s) => s.some((f) => /Heap::CollectGarbage|Heap::PerformGarbageCollection|ScavengerCollector|MarkCompactCollector/.test(f.fn)) },
  { name: 'V8 compiling (lazy JS and wasm)', test: (s) => s.some((f) => /Compile|wasm::WasmFullDecoder|Liftoff/.test(f.fn)) },
  ...CONVERGE_SHARES.filter((x) => x.name !== 'garbage collector')
]

/**
 * With BENCH_SYNC_PERF: each server's CPU over the span from `perf script` (every thread, on
 * the CPU only: what the V8 profile, which samples wall time on the main thread, cannot say),
 * the main thread split by whole stack (PERF_MAIN_SHARES, JIT frames named by
 * --perf-basic-prof), the other threads by what they ran; seconds, as shares of `cpu`.
 */
function perfSplit(file: string, names: string[], tids: Set<number>[], mains: number[], cpu: number[]): string {
  const r = spawnSync('perf', ['script', '-i', file, '-F', 'tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30 })
  if (r.status !== 0) return `perf script failed: ${r.stderr.trim().split('\n').pop()}`
  const by = names.map(() => new Map<string, number>())
  const total = names.map(() => 0)
  let tid = -1
  let stack: StackFrame[] = []
  const end = (): void => {
    const k = tids.findIndex((t) => t.has(tid))
    if (k >= 0 && stack.length > 0) {
      const key = tid === mains[k] ? `main: ${PERF_MAIN_SHARES.find((x) => x.test(stack))?.name ?? 'other'}` : `other threads: ${perfCategory(stack[0]!.url, stack[0]!.fn)}`
      by[k]!.set(key, (by[k]!.get(key) ?? 0) + 1)
      total[k]!++
    }
    stack = []
  }
  for (const line of r.stdout.split('\n')) {
    const head = /^\s*(\d+)\s*$/.exec(line)
    if (head) {
      end()
      tid = Number(head[1])
      continue
    }
    const f = /^\s+[0-9a-f]+ (.*) \((.*)\)$/.exec(line)
    if (!f) continue
    // A JIT frame: "JS:^name path:line:col" (the map --perf-basic-prof writes), else a native symbol and its file.
    const js = /^JS:[~^*+]?(\S*) (.*)$/.exec(f[1]!)
    stack.push(js ? { fn: js[1]!, url: js[2]! } : { fn: f[1]!, url: f[2]! })
  }
  end()
  return names.map((n, k) => `${n}: ${[...by[k]!].sort((a, b) => b[1] - a[1]).filter(([, v]) => v / total[k]! >= 0.01).map(([c, v]) => `${c} ${((v / total[k]!) * cpu[k]!).toFixed(2)} s`).join(', ')}`).join(' | ')
}

async function benchConverge(p: Peers, dhtPort: number, blockFiles: [string, string], prepared?: { w: OfflineResult; b: OfflineResult }): Promise<{ rows: Row[]; cpu: number[] }> {
  const [w, b] = prepared ? [prepared.w, prepared.b] : [await offlineOps(p.white, 1, blockFiles[0]), await offlineOps(p.black, 2, blockFiles[1])]
  if (!prepared) stashSave(p, blockFiles, w, b)
  log(`converge: ${OPS} offline ops took ${w.secs.toFixed(1)} s (white), ${b.secs.toFixed(1)} s (black); a reopen: white ${w.reopen}; black ${b.reopen}`)
  const expected = (w.logLength - 1) + (b.logLength - 1)
  dropCaches()
  const t0 = now()
  const servers = [startServer(p.white, dhtPort), startServer(p.black, dhtPort)]
  const peerOf = [p.BLACK, p.WHITE]
  const dirs = [p.white, p.black]
  let rounds = 0
  let firstSync: SyncResult[] = []
  let upMs = 0
  let convergedMs = 0
  let cpu: number[] = []
  let cpuUp: number[] = []
  let threads0: Map<string, number>[] = []
  let threads1: Map<string, number>[] = []
  let perf: (Proc & { file: string }) | null = null
  let tids: Set<number>[] = []
  let span: [number, number] = [0, 0]
  try {
    const up = await Promise.all(servers.map(serverUp))
    upMs = Math.max(...up) - t0
    span[0] = monotonicMicros()
    threads0 = servers.map((s) => threadCpu(s.child.pid))
    cpuUp = servers.map((s) => cpuSecs(s.child.pid))
    perf = startPerf(servers.map((s) => s.child.pid!))
    // Both sides ask for a sync at once (as the user would run `volume sync` on each), again until
    // both have applied every entry of both logs.
    for (;;) {
      rounds++
      const res = await Promise.all(dirs.map(async (d, k) => {
        try {
          return await callOp(d, 'volume.sync', { volume: 'v', peer: peerOf[k]!, timeoutMs: 60_000 })
        } catch (err) {
          throw new Error(`volume sync on ${path.basename(d)} failed: ${(err as Error).message}`)
        }
      }))
      if (rounds === 1) firstSync = res
      if (res.every((r) => r.entries === expected)) break
      if (now() - t0 > 600_000) throw new Error(`no convergence after 600 s: ${JSON.stringify(res)} (expected ${expected} entries)`)
      await sleep(20)
    }
    convergedMs = now() - t0
    span = [span[0], monotonicMicros()]
    cpu = servers.map((s) => cpuSecs(s.child.pid))
    threads1 = servers.map((s) => threadCpu(s.child.pid))
    tids = servers.map((s) => new Set(fs.readdirSync(`/proc/${s.child.pid}/task`).map(Number)))
    await perf?.stop()
  } finally {
    for (const s of servers) await s.stop()
  }
  const spanCpu = cpu.map((c, k) => c - cpuUp[k]!)
  let prof = profileNotes(dirs.map((d) => path.basename(d)), span)
  if (perf) {
    const split = perfSplit(perf.file, dirs.map((d) => path.basename(d)), tids, servers.map((s) => s.child.pid!), spanCpu)
    log(`converge perf (${perf.file}): ${split}`)
    prof += `; perf, CPU over the span by thread and kind: ${split}`
  }
  const connected = servers.map((s) => s.lines.find((l) => /net: peer \S+ connected/.test(l.line))?.t ?? NaN)
  const connMs = Math.max(...connected) - t0
  const [dw, db] = [await treeDump(p.white), await treeDump(p.black)]
  const same = dw.hash === db.hash
  const fromUp = (convergedMs - upMs) / 1000
  const fromConn = (convergedMs - connMs) / 1000
  const note = `a reopen after the offline ops: white ${w.reopen}, black ${b.reopen}; same tree on both: ${same} (${dw.paths} paths, ${dw.hash} / ${db.hash}); ${expected} entries in all; servers started (processes spawned → control sockets up) in ${(upMs / 1000).toFixed(2)} s, peers connected at ${(connMs / 1000).toFixed(2)} s; ` +
    `first volume sync on each: ${firstSync.map((r) => `${r.ms} ms (received ${r.received}, applied ${r.entriesApplied})`).join(', ')}; ${rounds} round(s) of volume sync on both; server cpu since spawn ${cpu.map((c) => c.toFixed(1)).join(' s / ')} s, from both up to converged ${cpu.map((c, k) => (c - cpuUp[k]!).toFixed(2)).join(' s / ')} s (by thread: white ${threadNote(threads0[0]!, threads1[0]!)}; black ${threadNote(threads0[1]!, threads1[1]!)}); load avg ${os.loadavg()[0].toFixed(1)}${prof}`
  if (!same) throw new Error(`converge: the two trees differ: ${note}`)
  const rows: Row[] = [
    { name: `converge ${OPS}+${OPS} offline ops after reconnect (from both servers up)`, value: fromUp, unit: 's', target: 2, ok: fromUp <= 2, note },
    { name: `converge ${OPS}+${OPS} offline ops (from the peers' connection)`, value: fromConn, unit: 's', target: 2, ok: fromConn <= 2 },
    { name: `converge ${OPS}+${OPS} offline ops (from spawning both servers)`, value: convergedMs / 1000, unit: 's' },
    { name: `converge ${OPS}+${OPS}: server cpu from both up to converged, white / black`, value: Math.max(...spanCpu), unit: 's (the larger)', note: `${spanCpu.map((c) => c.toFixed(2)).join(' / ')} s; blocks exchanged: white ${w.blocks} (${w.bytes} B), black ${b.blocks} (${b.bytes} B)` },
    { name: `${OPS} offline ops on each peer (in-process, ${OPS_PER_ENTRY} op per entry; not timed above)`, value: (w.secs + b.secs) / 2, unit: 's per peer' }
  ]
  return { rows, cpu: spanCpu }
}

// ---- the run -------------------------------------------------------------------------------

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-sync-'))
  let dht: Proc | null = null
  try {
    const dhtPort = await freeUdpPort()
    dht = startProc(process.execPath, [bazilBin, 'dht', 'run', '--host=127.0.0.1', `--port=${dhtPort}`])
    await waitLine(dht, /DHT bootstrap node/, 'bazil dht run')
    const stashed = stashLoad(work)
    if (stashed) {
      log(`converge of the pair stashed in ${STASH} (nothing else runs)`)
      const conv = await benchConverge(stashed.peers, dhtPort, stashed.blockFiles, { w: stashed.w, b: stashed.b })
      rows.push(...conv.rows)
      if (PARTS.has('hypercore')) {
        const hc = await benchHypercorePair(work, dhtPort, stashed.blockFiles)
        rows.push({ name: `converge ${OPS}+${OPS}: raw hypercore, both sides fetching the other's offline blocks at once`, value: hc.secs, unit: 's', note: `${hc.note}; server cpu / raw cpu: ${conv.cpu.map((c, k) => (c / hc.cpu[k]!).toFixed(2)).join(' / ')}` })
      }
      return rows
    }
    for (const set of SETS) {
      if (set !== 'mixed' && set !== 'big') throw new Error(`BENCH_SYNC_SETS: unknown data set "${set}" (mixed, big)`)
      const dir = path.join(work, set)
      fs.mkdirSync(dir)
      rows.push(...(await runSet(set, dir, dhtPort)))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  } finally {
    await dht?.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
  return rows
}

/** Every part on one data set: `mixed` (the big file and the small files) or `big` (the big file alone). */
async function runSet(set: 'mixed' | 'big', work: string, dhtPort: number): Promise<Row[]> {
  const rows: Row[] = []
  let servers: Proc[] = []
  const small = set === 'big' ? 0 : SMALL_FILES
  try {
    const label = small ? `${BIG_MIB} MiB + ${small} files` : `${BIG_MIB} MiB file alone`
    log(`data set: ${label}`)
    const ds = makeDataSet(path.join(work, 'src'), BIG_MIB, small)
    const mb = ds.bytes / 1e6

    const base: { name: string; secs: number; note: string }[] = []
    const skipped: Row[] = []
    if (PARTS.has('rsync')) {
      log('rsync')
      if (!has('rsync')) skipped.push({ name: `first sync ${label}: rsync`, value: NaN, unit: 'MB/s', note: 'skipped: rsync is not installed' })
      else base.push({ name: 'rsync -a (local)', ...benchRsync(ds, work) })
    }
    if (PARTS.has('hypercore')) {
      log('raw hypercore over hyperswarm')
      // The big file alone in 1 MiB blocks (hypercore's best case); the mixed set in 64 KiB blocks, one per small file.
      const block = small ? 64 * 1024 : 1024 * 1024
      base.push({ name: `raw hypercore over hyperswarm, ${block / 1024} KiB blocks`, ...(await benchHypercore(ds, work, dhtPort, block)) })
    }
    if (PARTS.has('syncthing')) {
      log('syncthing')
      const st = await benchSyncthing(ds, work)
      if ('skipped' in st) skipped.push({ name: `first sync ${label}: Syncthing`, value: NaN, unit: 'MB/s', note: `skipped: ${st.skipped}` })
      else base.push({ name: 'Syncthing', ...st })
    }
    const hc = base.find((x) => x.name.startsWith('raw hypercore'))
    const st = base.find((x) => x.name === 'Syncthing')
    const rs = base.find((x) => x.name.startsWith('rsync'))
    for (const x of base) rows.push({ name: `first sync ${label}: ${x.name}`, value: mb / x.secs, unit: 'MB/s', note: `${x.secs.toFixed(2)} s; ${x.note}` })
    rows.push(...skipped)

    const converge = PARTS.has('converge') && set === 'mixed'
    if (PARTS.has('bazil') || converge) {
      log(PARTS.has('bazil') ? 'bazil' : 'bazil: the pair for the convergence run (no content sync)')
      const r = await benchBazil(ds, work, dhtPort, PARTS.has('bazil'))
      servers = r.servers
      if (PARTS.has('bazil')) {
        const total = r.logSecs + r.exportSecs
        const bz = mb / total
        const storeNote = `stores: white ${duMiB(path.join(r.peers.white))} MiB, black ${duMiB(path.join(r.peers.black))} MiB on disk`
        const name = `first sync ${label}: bazil connect + storage add + sync + export`
        const what = `${total.toFixed(2)} s = connect + storage add ${r.connectSecs.toFixed(2)} s + volume sync ${r.syncSecs.toFixed(2)} s (${JSON.stringify({ received: r.syncJson.received, writers: r.syncJson.writers, entries: r.syncJson.entries })}) + volume export to a dir ${r.exportSecs.toFixed(2)} s (every block fetched from white's store, the files written) + sync; server cpu white ${r.cpu.white.toFixed(1)} s, black ${r.cpu.black.toFixed(1)} s; ${storeNote}`
        const stTarget = small ? 1 : 0.8
        if (st) rows.push({ name, value: bz, unit: 'MB/s', baseline: 'Syncthing', baselineValue: mb / st.secs, ratio: bz / (mb / st.secs), target: stTarget, ok: bz / (mb / st.secs) >= stTarget, note: what })
        if (hc) rows.push({ name, value: bz, unit: 'MB/s', baseline: hc.name, baselineValue: mb / hc.secs, ratio: bz / (mb / hc.secs), note: st ? undefined : what })
        if (rs) rows.push({ name, value: bz, unit: 'MB/s', baseline: 'rsync -a (local)', baselineValue: mb / rs.secs, ratio: bz / (mb / rs.secs), note: st || hc ? undefined : what })
        if (!st && !hc && !rs) rows.push({ name, value: bz, unit: 'MB/s', note: what })
        rows.push({ name: `bazil ${label}: log sync alone (connect + storage add + volume sync)`, value: r.logSecs, unit: 's', note: `the volume's entries only; content comes on demand. Before the timer: the peers connected ${r.pairSecs.toFixed(2)} s after black's \`peer add\`` })
        const exName = `export ${label}, every block local (bazil volume export, the second export on black)`
        const exNote = `${r.reexportSecs.toFixed(2)} s, page cache dropped before, + sync; network fetch ≈ ${(r.exportSecs - r.reexportSecs).toFixed(2)} s of the first export`
        if (rs) rows.push({ name: exName, value: mb / r.reexportSecs, unit: 'MB/s', baseline: 'rsync -a (local)', baselineValue: mb / rs.secs, ratio: (mb / r.reexportSecs) / (mb / rs.secs), note: exNote })
        else rows.push({ name: exName, value: mb / r.reexportSecs, unit: 'MB/s', note: exNote })
        rows.push({ name: `bazil ${label}: white's import of the data set (not in the sync figure)`, value: mb / r.importSecs, unit: 'MB/s', note: `${r.importSecs.toFixed(2)} s, volume import + sync` })
      }
      for (const s of servers) await s.stop()
      servers = []
      if (converge) {
        log('convergence')
        const blockFiles: [string, string] = [path.join(work, 'conv-white.blocks'), path.join(work, 'conv-black.blocks')]
        const conv = await benchConverge(r.peers, dhtPort, blockFiles)
        rows.push(...conv.rows)
        const bz = conv.rows[0]!
        const convergeCpu = conv.cpu
        log('convergence: raw hypercore pair on the same blocks')
        const hc = await benchHypercorePair(work, dhtPort, blockFiles)
        rows.push({ name: `converge ${OPS}+${OPS}: raw hypercore, both sides fetching the other's offline blocks at once`, value: hc.secs, unit: 's', note: `${hc.note}; bazil / raw: ${(bz.value / hc.secs).toFixed(2)} (wall), server cpu / raw cpu: ${convergeCpu.map((c, k) => (c / hc.cpu[k]!).toFixed(2)).join(' / ')}` })
        log('convergence: Syncthing')
        const st = await benchSyncthingConverge(ds, work)
        if ('skipped' in st) rows.push({ name: `converge ${OPS}+${OPS}: Syncthing`, value: NaN, unit: 's', note: `skipped: ${st.skipped}` })
        else rows.push({ name: `converge ${OPS}+${OPS} changed files: Syncthing, from unpausing until both folders agree`, value: st.secs, unit: 's', note: `${st.note}; bazil / Syncthing: ${(bz.value / st.secs).toFixed(2)} (wall), server cpu / Syncthing cpu: ${convergeCpu.map((c, k) => (c / st.cpu[k]!).toFixed(2)).join(' / ')}` })
      }
    }
  } finally {
    for (const s of servers) await s.stop()
  }
  return rows
}

async function main(): Promise<void> {
  const a = process.argv
  const i = a.indexOf('--hc-seed')
  if (i >= 0) return hcSeed(a[i + 1], Number(a[i + 2]), a[i + 3], Number(a[i + 4]))
  const k = a.indexOf('--hc-pair')
  if (k >= 0) return hcPair(a[k + 1], Number(a[k + 2]), a[k + 3])
  const j = a.indexOf('--hc-fetch')
  if (j >= 0) return hcFetch(a[j + 1], Number(a[j + 2]), a[j + 3], a[j + 4], Number(a[j + 5]))
  const rows = await run()
  for (const r of rows) {
    const v = Number.isNaN(r.value) ? '—' : r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(2)
    const base = r.baseline ? `  vs ${r.baseline} ${r.baselineValue!.toFixed(1)}: ratio ${r.ratio!.toFixed(2)}` : ''
    const target = r.target !== undefined ? `  (target ${r.unit === 's' ? '≤' : '≥'} ${r.target}: ${r.ok ? 'ok' : 'MISSED'})` : ''
    console.log(`${r.name}: ${v} ${r.unit}${base}${target}${r.note ? `\n    ${r.note}` : ''}`)
  }
  const out = path.join(repoRoot, 'bench', 'results', 'sync.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version }, params: { BIG_MIB, SMALL_FILES, OPS, OPS_PER_ENTRY, SETS: SETS.join(','), PARTS: [...PARTS].join(',') }, rows }, null, 2) + '\n')
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    }
  )
}
