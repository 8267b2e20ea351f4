// Reading a file on demand from peers through the mount, as a user does it: white imports a
// random file of BENCH_PEER_READ_MIB (default 100) MiB; a closet server mirrors white's store
// (`volume connect --storage-only` + `volume sync`: a full replica, spec/cas.md section 6); then
// two fresh readers, each with its own server and mount:
//   one: knows white only (the firewall admits known peers): every block comes from white;
//   two: knows white and the closet: both hold every block.
// Each reader runs `volume connect`, `volume storage add VOLUME peerkey:WHITE`, `volume sync`
// and `volume mount` (not timed), then the page cache is dropped and `dd bs=1M` reads the file
// through the mount (timed, then sync(1)). Baselines in the same run: the same read again on
// reader one's mount once every block is local (page cache dropped again): what the network costs;
// and for two peers, the one-peer figure (the target: faster than from one). Then each reader
// copies a tree of BENCH_PEER_READ_FILES files (default 1000; 0: none; 0.5-8.5 KiB, every
// tenth 128 KiB-1 MiB) out of the mount (`cp -r`, timed the same way; reader one again once
// local), checked with `diff -r`.
//
// Runs alone (`node dist/bench/peer-read-bench.js`, writes bench/results/peer-read.json) or
// from bench/run.ts through `run()`. Needs /dev/fuse and root. BENCH_SYNC_LOG_DIR keeps the
// servers' logs, BENCH_SYNC_CPU_PROF profiles them (bench/procs.ts).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import type { Row } from './row.js'
import { monotonicMicros, summarizeProfile } from './profile-summary.js'
import { bazilBin, cpuSecs, dropCaches, freeUdpPort, log, now, ok, repoRoot, serverUp, sleep, startProc, startServer, waitLine, type Proc } from './procs.js'
import { summaryOf } from '../src/cli/progress.js'
export type { Row }

const MiB = 1024 * 1024

interface Reader {
  name: string
  dir: string
  key: string
  mnt: string
}

/** `cp -r FROM TO` after a dropped page cache, then sync(1): seconds. */
function timedCopy(from: string, to: string): number {
  dropCaches()
  const t0 = now()
  const r = spawnSync('cp', ['-r', from, to], { encoding: 'utf8' })
  spawnSync('sync')
  const secs = (now() - t0) / 1000
  if (r.status !== 0) throw new Error(`cp -r ${from} failed: ${r.stderr.trim()}`)
  return secs
}

/** `dd if=FILE of=/dev/null bs=1M` after a dropped page cache, then sync(1): seconds. */
function timedRead(file: string): number {
  dropCaches()
  const t0 = now()
  const r = spawnSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'], { encoding: 'utf8' })
  spawnSync('sync')
  const secs = (now() - t0) / 1000
  if (r.status !== 0) throw new Error(`dd ${file} failed: ${r.stderr.trim()}`)
  return secs
}

async function waitConnected(server: Proc, key: string, what: string): Promise<void> {
  // The server logs "net: peer KEY connected" (abbreviated keys: match the first characters).
  const re = new RegExp(`net: peer ${key.slice(0, 8)}\\S* connected`)
  await waitLine(server, re, what, 120_000)
}

export async function run(): Promise<Row[]> {
  const mib = Number(process.env.BENCH_PEER_READ_MIB ?? 100)
  if (!fs.existsSync('/dev/fuse')) throw new Error('peer-read-bench: /dev/fuse is missing')
  const work = fs.mkdtempSync(path.join(repoRoot, '.bench-work-peer-read-'))
  const procs: Proc[] = []
  const mounted: { dir: string; mnt: string }[] = []
  let dht: Proc | null = null
  try {
    const src = path.join(work, 'src')
    fs.mkdirSync(src)
    const file = path.join(src, 'f.bin')
    const fd = fs.openSync(file, 'w')
    for (let i = 0; i < mib; i++) fs.writeSync(fd, randomBytes(MiB))
    fs.closeSync(fd)
    // The files a tree copy reads, 100 a directory: 0.5-8.5 KiB, every tenth 128 KiB-1 MiB
    // (those each fill most of a pack: one round trip each unless requested ahead).
    const treeFiles = Number(process.env.BENCH_PEER_READ_FILES ?? 1000)
    let treeBytes = 0
    for (let i = 0; i < treeFiles; i++) {
      const d = path.join(src, 'tree', `d${String(Math.floor(i / 100)).padStart(3, '0')}`)
      if (i % 100 === 0) fs.mkdirSync(d, { recursive: true })
      const data = randomBytes(i % 10 === 5 ? 128 * 1024 + Math.floor(Math.random() * 896 * 1024) : 512 + Math.floor(Math.random() * 8192))
      treeBytes += data.length
      fs.writeFileSync(path.join(d, `f${String(i).padStart(5, '0')}`), data)
    }
    const dhtPort = await freeUdpPort()
    dht = startProc(process.execPath, [bazilBin, 'dht', 'run', '--host=127.0.0.1', `--port=${dhtPort}`])
    await waitLine(dht, /DHT bootstrap node/, 'bazil dht run')

    const sekrit = randomBytes(32)
    const mk = async (name: string, sharing: boolean): Promise<{ dir: string; key: string }> => {
      const dir = path.join(work, name)
      await ok(dir, ['create'])
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ firewalled: false }))
      if (sharing) await ok(dir, ['sharing', 'add', 'friends'], sekrit)
      return { dir, key: (await ok(dir, ['debug', 'pubkey'])).trim() }
    }
    const white = await mk('white', true)
    const closet = await mk('closet', false)
    const readers: Reader[] = []
    for (const name of ['one', 'two']) {
      const r = await mk(name, true)
      readers.push({ name, ...r, mnt: path.join(work, `mnt-${name}`) })
    }
    const [one, two] = readers as [Reader, Reader]

    await ok(white.dir, ['volume', 'create', '--sharing=friends', 'v'])
    await ok(white.dir, ['volume', 'import', 'v', src])
    // Who knows whom, before the servers dial (a dial to a peer that has not added us is refused).
    for (const k of [closet.key, one.key, two.key]) {
      await ok(white.dir, ['peer', 'add', k])
      await ok(white.dir, ['peer', 'storage', 'allow', k, 'local'])
      await ok(white.dir, ['peer', 'volume', 'allow', k, 'v'])
    }
    await ok(closet.dir, ['peer', 'add', white.key])
    await ok(closet.dir, ['peer', 'add', two.key])
    await ok(one.dir, ['peer', 'add', white.key])
    await ok(two.dir, ['peer', 'add', white.key])
    await ok(two.dir, ['peer', 'add', closet.key])

    const ws = startServer(white.dir, dhtPort)
    const cs = startServer(closet.dir, dhtPort)
    procs.push(ws, cs)
    await Promise.all([serverUp(ws), serverUp(cs)])
    await ok(closet.dir, ['volume', 'connect', '--storage-only', white.key, 'v'])
    let replica = ''
    for (let i = 0; ; i++) {
      const s = summaryOf(await ok(closet.dir, ['volume', 'sync', '--json', '--timeout=600', 'v', white.key])) as { complete: boolean; replica?: { blocks: number; length: number } }
      replica = JSON.stringify(s.replica ?? null)
      if (s.complete && s.replica && s.replica.length > 0 && s.replica.blocks === s.replica.length) break
      if (i > 100) throw new Error(`the closet's replica of white's store is not complete: ${replica}`)
      await sleep(200)
    }
    await ok(closet.dir, ['peer', 'volume', 'allow', two.key, 'v'])
    log(`peer-read: the closet holds white's store (${replica})`)

    const readThrough = async (r: Reader, peers: string[]): Promise<{ secs: number; again?: number; tree?: number; treeAgain?: number; cpu: number; serverCpu: number[]; span: [number, number] }> => {
      const server = startServer(r.dir, dhtPort)
      procs.push(server)
      await serverUp(server)
      for (const k of peers) await waitConnected(server, k, `${r.name} connecting to ${k.slice(0, 8)}`)
      await ok(r.dir, ['volume', 'connect', '--sharing=friends', '--timeout=120', white.key, 'v'])
      // A replica the closet offers (STORES) is read only for a volume the closet is allowed
      // here (spec/protocol.md, "What P may feed us"): without this the closet serves nothing.
      for (const k of peers) if (k !== white.key) await ok(r.dir, ['peer', 'volume', 'allow', k, 'v'])
      await ok(r.dir, ['volume', 'storage', 'add', 'v', `peerkey:${white.key}`])
      await ok(r.dir, ['volume', 'sync', '--json', '--timeout=120', 'v', white.key])
      fs.mkdirSync(r.mnt)
      await ok(r.dir, ['volume', 'mount', 'v', r.mnt])
      mounted.push({ dir: r.dir, mnt: r.mnt })
      const cpu0 = [ws, cs, server].map((p) => cpuSecs(p.child.pid))
      const t0 = monotonicMicros()
      const secs = timedRead(path.join(r.mnt, 'f.bin'))
      const span: [number, number] = [t0, monotonicMicros()]
      const serverCpu = [ws, cs, server].map((p, i) => cpuSecs(p.child.pid) - cpu0[i]!)
      if (spawnSync('cmp', ['-s', file, path.join(r.mnt, 'f.bin')]).status !== 0) throw new Error(`peer-read ${r.name}: the file read through the mount differs`)
      const again = r === one ? timedRead(path.join(r.mnt, 'f.bin')) : undefined
      let tree: number | undefined
      let treeAgain: number | undefined
      if (treeFiles > 0) {
        const dest = path.join(work, `copy-${r.name}`)
        tree = timedCopy(path.join(r.mnt, 'tree'), dest)
        if (spawnSync('diff', ['-r', '-q', path.join(src, 'tree'), dest]).status !== 0) throw new Error(`peer-read ${r.name}: the tree copied out of the mount differs`)
        if (r === one) treeAgain = timedCopy(path.join(r.mnt, 'tree'), `${dest}-again`)
      }
      await ok(r.dir, ['volume', 'unmount', r.mnt])
      mounted.pop()
      await server.stop()
      procs.pop()
      return { secs, again, tree, treeAgain, cpu: serverCpu[2]!, serverCpu, span }
    }
    log('peer-read: one peer (white)')
    const a = await readThrough(one, [white.key])
    log('peer-read: two peers (white and the closet)')
    const b = await readThrough(two, [white.key, closet.key])
    // With BENCH_SYNC_CPU_PROF: each server's main thread during each timed read (the servers
    // write their profiles when they stop).
    let profNote = ['', '']
    const profDir = process.env.BENCH_SYNC_CPU_PROF
    if (profDir) {
      for (const p of procs.splice(0).reverse()) await p.stop()
      const file = (name: string): string | null => fs.readdirSync(profDir).filter((f) => f.startsWith(`${name}-`) && f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f)).sort().pop() ?? null
      const what = (name: string, span: [number, number]): string => {
        const f = file(name)
        if (!f) return `${name}: no profile`
        const x = summarizeProfile(f, { span, top: 6 })
        return `${name} main thread busy ${x.busySecs.toFixed(2)} s of ${x.wallSecs.toFixed(2)} s: ${x.functions}`
      }
      profNote = [a, b].map((x, i) => `; profiles during the read: ${[i === 0 ? 'one' : 'two', 'white', ...(i === 1 ? ['closet'] : [])].map((n) => what(n, x.span)).join(' | ')}`)
      log(`peer-read profiles:\n  ${profNote.join('\n  ')}`)
    }
    const mb = (mib * MiB) / 1e6
    const cpuNote = (x: { serverCpu: number[] }): string => `server cpu during the read: white ${x.serverCpu[0]!.toFixed(1)} s, closet ${x.serverCpu[1]!.toFixed(1)} s, reader ${x.serverCpu[2]!.toFixed(1)} s`
    const treeRows: Row[] = treeFiles > 0 ? [
      {
        name: `cp -r of ${treeFiles} files (${(treeBytes / MiB).toFixed(1)} MiB) on demand out of the mount from one peer`, value: treeFiles / a.tree!, unit: 'files/s',
        baseline: 'the same copy again, every block local', baselineValue: treeFiles / a.treeAgain!, ratio: a.treeAgain! / a.tree!,
        note: `${a.tree!.toFixed(2)} s (page cache dropped, + sync); again ${a.treeAgain!.toFixed(2)} s`,
      },
      {
        name: `the same from two peers (white + the closet)`, value: treeFiles / b.tree!, unit: 'files/s',
        baseline: 'from one peer (same run)', baselineValue: treeFiles / a.tree!, ratio: a.tree! / b.tree!,
        note: `${b.tree!.toFixed(2)} s`,
      },
    ] : []
    return [
      {
        name: `read ${mib} MiB on demand through the mount from one peer`, value: mb / a.secs, unit: 'MB/s',
        baseline: 'the same read again, every block local', baselineValue: mb / a.again!, ratio: (mb / a.secs) / (mb / a.again!), target: 100, ok: mb / a.secs >= 100,
        note: `${a.secs.toFixed(2)} s (dd bs=1M, page cache dropped, + sync); again ${a.again!.toFixed(2)} s; ${cpuNote(a)}${profNote[0]}`,
      },
      {
        name: `read ${mib} MiB on demand through the mount from two peers (white + a closet mirroring its store)`, value: mb / b.secs, unit: 'MB/s',
        baseline: 'from one peer (same run)', baselineValue: mb / a.secs, ratio: (mb / b.secs) / (mb / a.secs), target: 1, ok: b.secs < a.secs,
        note: `${b.secs.toFixed(2)} s; ${cpuNote(b)}${profNote[1]}`,
      },
      ...treeRows,
    ]
  } finally {
    for (const m of mounted) spawnSync('fusermount', ['-uz', m.mnt])
    for (const p of procs.reverse()) await p.stop()
    await dht?.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (isMain) {
  const rows = await run()
  const out = path.join(repoRoot, 'bench', 'results', 'peer-read.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ time: new Date().toISOString(), rows }, null, 2) + '\n')
  for (const r of rows) console.log(`${r.name}: ${r.value.toFixed(1)} ${r.unit} (${r.baseline}: ${r.baselineValue?.toFixed(1)}, ratio ${r.ratio?.toFixed(2)}; ${r.note})`)
}
