// The FUSE mount's throughput and op rates next to the native disk and a trivial in-memory
// fuse-native file system (the FUSE ceiling on this machine) measured in the same run, with
// the same kernel options (big writes, 1 s attr/entry cache).
//
// Runs alone (`node dist/bench/fuse-bench.js`, writes bench/results/fuse.json) or from
// bench/run.ts through `run()`. Scale down with BENCH_FUSE_MIB (default 1024),
// BENCH_FUSE_FILES (default 10000), BENCH_FUSE_FSYNCS (400), BENCH_RESP_MIB (500: the file read
// while stat/ls latencies are taken); BENCH_UNTAR_SRC (a tree to tar, default this project's
// node_modules). BENCH_FUSE_PARTS picks parts: seq,small,fsync,untar,resp (default all).
// Needs /dev/fuse and root (it drops the page cache).
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import type { FuseOps, FuseStat } from 'fuse-native'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { BazilFuse, VolumeMount } from '../src/mount/mount.js'
import type { Row } from './row.js'
export type { Row }

const exec = promisify(execFile)
const MiB = 1024 * 1024


interface Target {
  label: string
  dir: string
  /** Waits until data written is durable in the target's own sense (commit for bazil). */
  settle: () => Promise<void>
}

/** A trivial file system in memory: a flat map of paths, files as lists of 1 MiB buffers. */
class MemFs {
  private readonly nodes = new Map<string, { dir: boolean; mode: number; mtime: number; blocks: Buffer[]; size: number }>()
  constructor() {
    this.nodes.set('/', { dir: true, mode: 0o755, mtime: Date.now(), blocks: [], size: 0 })
  }

  ops(): FuseOps {
    const stat = (n: { dir: boolean; mode: number; mtime: number; size: number }): FuseStat => ({
      mode: (n.dir ? 0o040000 : 0o100000) | n.mode, size: n.size, nlink: 1, uid: 0, gid: 0, mtime: n.mtime, atime: n.mtime, ctime: n.mtime,
    })
    const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/'
    return {
      getattr: (p, cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(-2)
        cb(0, stat(n))
      },
      readdir: (p, cb) => {
        const prefix = p === '/' ? '/' : p + '/'
        const names: string[] = []
        for (const k of this.nodes.keys()) if (k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')) names.push(k.slice(prefix.length))
        cb(0, names)
      },
      open: (_p, _flags, cb) => cb(0, 1),
      release: (_p, _fd, cb) => cb(0),
      flush: (_p, _fd, cb) => cb(0),
      create: (p, mode, cb) => {
        if (!this.nodes.has(parentOf(p))) return cb(-2)
        this.nodes.set(p, { dir: false, mode: mode & 0o7777, mtime: Date.now(), blocks: [], size: 0 })
        cb(0, 1)
      },
      mkdir: (p, mode, cb) => {
        this.nodes.set(p, { dir: true, mode: mode & 0o7777, mtime: Date.now(), blocks: [], size: 0 })
        cb(0)
      },
      unlink: (p, cb) => cb(this.nodes.delete(p) ? 0 : -2),
      truncate: (p, size, cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(-2)
        if (size === 0) n.blocks = []
        n.size = size
        cb(0)
      },
      utimens: (_p, _a, _m, cb) => cb(0),
      chmod: (_p, _m, cb) => cb(0),
      write: (p, _fd, buf, len, pos, cb) => {
        const n = this.nodes.get(p)!
        let done = 0
        while (done < len) {
          const b = Math.floor((pos + done) / MiB)
          const off = (pos + done) % MiB
          const block = (n.blocks[b] ??= Buffer.alloc(MiB))
          const k = Math.min(len - done, MiB - off)
          buf.copy(block, off, done, done + k)
          done += k
        }
        n.size = Math.max(n.size, pos + len)
        cb(len)
      },
      read: (p, _fd, buf, len, pos, cb) => {
        const n = this.nodes.get(p)!
        const end = Math.min(n.size, pos + len)
        let done = 0
        while (pos + done < end) {
          const b = Math.floor((pos + done) / MiB)
          const off = (pos + done) % MiB
          const k = Math.min(end - pos - done, MiB - off)
          const block = n.blocks[b]
          if (block) block.copy(buf, done, off, off + k)
          else buf.fill(0, done, done + k)
          done += k
        }
        cb(done)
      },
    }
  }
}

async function dropCaches(): Promise<void> {
  await exec('sync')
  await fsp.writeFile('/proc/sys/vm/drop_caches', '3').catch(() => {})
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e9
}

/** create, stat and unlink rates of `files` small files, one at a time, from a child process. */
async function smallFileRates(dir: string, files: number, settle: () => Promise<void>): Promise<{ create: number; stat: number; unlink: number }> {
  const py = `
import os, sys, time
d = sys.argv[1]; n = int(sys.argv[2]); data = b'x' * 100
os.mkdir(d)
t0 = time.time()
for i in range(n):
    fd = os.open(f'{d}/f{i}', os.O_CREAT | os.O_WRONLY, 0o644); os.write(fd, data); os.close(fd)
t1 = time.time()
for i in range(n): os.stat(f'{d}/f{i}')
t2 = time.time()
print(t1 - t0, t2 - t1)
`
  const out = await exec('python3', ['-c', py, path.join(dir, 'small'), String(files)])
  const [create, stat] = out.stdout.trim().split(' ').map(Number) as [number, number]
  const createAndSettle = create + (await timed(settle))
  const unlinkPy = `
import os, sys, time
d = sys.argv[1]; n = int(sys.argv[2])
t0 = time.time()
for i in range(n): os.unlink(f'{d}/f{i}')
print(time.time() - t0)
`
  const un = Number((await exec('python3', ['-c', unlinkPy, path.join(dir, 'small'), String(files)])).stdout.trim())
  const unlinkAndSettle = un + (await timed(settle))
  return { create: files / createAndSettle, stat: files / stat, unlink: files / unlinkAndSettle }
}

/** Files of 4 KiB written with create+write+fsync+close by `writers` processes at once; returns fsyncs/s. */
async function fsyncRate(dir: string, files: number, writers: number): Promise<number> {
  const py = `
import os, sys
d = sys.argv[1]; w = sys.argv[2]; n = int(sys.argv[3]); data = os.urandom(4096)
for i in range(n):
    fd = os.open(f'{d}/w{w}-{i}', os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644); os.write(fd, data); os.fsync(fd); os.close(fd)
`
  const sub = path.join(dir, `fsync-${writers}`)
  await fsp.mkdir(sub)
  const per = Math.ceil(files / writers)
  const secs = await timed(() => Promise.all(Array.from({ length: writers }, (_, w) => exec('python3', ['-c', py, sub, String(w), String(per)]))))
  await exec('sh', ['-c', 'rm -f "$1"/*; rmdir "$1" 2>/dev/null || true', 'sh', sub]) // memfs has no rmdir
  return (per * writers) / secs
}


/** A tarball of a real tree (default: this project's node_modules; hard links stored as files), made once, not timed. */
async function makeTarball(root: string): Promise<{ tar: string; bytes: number; files: number; what: string }> {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const repo = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
  const tree = fs.realpathSync(process.env.BENCH_UNTAR_SRC ?? path.join(repo, 'node_modules'))
  const tar = path.join(root, 'tree.tar')
  await exec('tar', ['-C', path.dirname(tree), '--hard-dereference', '-cf', tar, path.basename(tree)], { maxBuffer: 1 << 26 })
  const listing = (await exec('tar', ['-tvf', tar], { maxBuffer: 1 << 26 })).stdout.split('\n').filter((l) => l.startsWith('-'))
  return { tar, bytes: listing.reduce((n, l) => n + Number(l.split(/\s+/)[2]), 0), files: listing.length, what: tree }
}

/** `tar -xf` of the tarball into dir, until settled (committed for bazil) and sync(1); page cache dropped first. */
async function untarSecs(tar: string, dir: string, settle: () => Promise<void>): Promise<number> {
  const dest = path.join(dir, 'untar')
  await fsp.mkdir(dest)
  await dropCaches()
  const secs = await timed(async () => {
    await exec('tar', ['-C', dest, '--no-same-owner', '-xf', tar], { maxBuffer: 1 << 26 })
    await settle()
    await exec('sync')
  })
  await exec('rm', ['-rf', dest])
  await settle()
  return secs
}

interface Latencies { stat: number[]; ls: number[]; readSecs: number }

/**
 * How the mount answers while a big file is read: a child process stats a new file (never the
 * same name twice in a row, so the kernel's 1 s entry/attr cache does not answer for the mount)
 * and lists a 300-entry directory every 20 ms, while `dd bs=1M` reads `big` (page cache
 * dropped first); with `big` null, for `idleSecs` on the idle mount.
 */
async function latencies(dir: string, big: string | null, idleSecs = 3): Promise<Latencies> {
  const py = `
import os, sys, time, json, subprocess
d = sys.argv[1]; big = sys.argv[2]; idle = float(sys.argv[3])
names = sorted(os.listdir(d))
st, ls = [], []
p = subprocess.Popen(['dd', 'if=' + big, 'of=/dev/null', 'bs=1M', 'status=none']) if big != '-' else None
t0 = time.perf_counter(); i = 0
while (p.poll() is None) if p else (time.perf_counter() - t0 < idle):
    a = time.perf_counter(); os.stat(os.path.join(d, names[i % len(names)])); b = time.perf_counter()
    os.listdir(d); c = time.perf_counter()
    st.append((b - a) * 1000); ls.append((c - b) * 1000); i += 1
    time.sleep(0.02)
secs = time.perf_counter() - t0
if p and p.wait() != 0: sys.exit('dd failed')
print(json.dumps({'stat': st, 'ls': ls, 'readSecs': secs}))
`
  if (big) await dropCaches()
  const out = await exec('python3', ['-c', py, path.join(dir, 'resp'), big ?? '-', String(idleSecs)], { maxBuffer: 1 << 24 })
  return JSON.parse(out.stdout) as Latencies
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN
}

/** The 300 files the latency probe stats, and the file it reads. */
async function prepareResponsiveness(dir: string, source: string, mib: number, settle: () => Promise<void>): Promise<string> {
  await exec('python3', ['-c', `
import os, sys
d = sys.argv[1]; os.mkdir(d)
for i in range(300):
    with open(os.path.join(d, 'f%03d' % i), 'wb') as f: f.write(b'x' * 100)
`, path.join(dir, 'resp')])
  const big = path.join(dir, 'resp-big')
  await exec('dd', [`if=${source}`, `of=${big}`, 'bs=1M', `count=${mib}`, 'status=none'])
  await settle()
  return big
}

export async function run(log: (msg: string) => void = (m) => console.error(m)): Promise<Row[]> {
  const mib = Number(process.env.BENCH_FUSE_MIB ?? 1024)
  const files = Number(process.env.BENCH_FUSE_FILES ?? 10000)
  const fsyncFiles = Number(process.env.BENCH_FUSE_FSYNCS ?? 400)
  const respMib = Number(process.env.BENCH_RESP_MIB ?? 500)
  const parts = new Set((process.env.BENCH_FUSE_PARTS ?? 'seq,small,fsync,untar,resp').split(',').map((x) => x.trim()))
  if (!fs.existsSync('/dev/fuse')) throw new Error('fuse-bench: /dev/fuse is missing')
  // On the disk under test (/tmp may be a tmpfs elsewhere): the repo's disk, like the other benches.
  const here = path.dirname(fileURLToPath(import.meta.url))
  const repo = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
  const root = fs.mkdtempSync(path.join(repo, '.bench-work-fuse-'))
  const mounts: { unmount: () => Promise<void> }[] = []
  let node: Node | null = null
  const rows: Row[] = []
  try {
    const source = path.join(root, 'source.bin')
    await exec('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${Math.max(mib, parts.has('resp') ? respMib : 0)}`, 'status=none'])

    const nativeDir = path.join(root, 'native')
    fs.mkdirSync(nativeDir)

    const memDir = path.join(root, 'memfs')
    fs.mkdirSync(memDir)
    const mem = new BazilFuse(memDir, new MemFs().ops(), { fsname: 'memfs', timeout: false })
    await new Promise<void>((resolve, reject) => mem.mount((err) => (err ? reject(err) : resolve())))
    mounts.push({ unmount: () => new Promise<void>((resolve) => mem.unmount(() => resolve())) })

    node = await Node.open(DataDir.create(path.join(root, 'data')))
    let vol = await node.createVolume('bench', 'default')
    const bazilDir = path.join(root, 'bazil')
    fs.mkdirSync(bazilDir)
    let mount = new VolumeMount(vol, bazilDir, { spoolDir: path.join(root, 'spool') })
    await mount.mount()
    mounts.push({ unmount: () => mount.unmount() })
    /** Cold for bazil too before a timed read: no cache of what was written, in this process or the spool (a restarted server). */
    const reopen = async (): Promise<void> => {
      await mount.unmount()
      await node!.close()
      node = await Node.open(DataDir.open(path.join(root, 'data')))
      vol = await node.volume('bench')
      mount = new VolumeMount(vol, bazilDir, { spoolDir: path.join(root, 'spool') })
      await mount.mount()
    }

    const targets: Target[] = [
      { label: 'native', dir: nativeDir, settle: async () => {} },
      { label: 'memfs', dir: memDir, settle: async () => {} },
      { label: 'bazil', dir: bazilDir, settle: () => mount.idle() },
    ]
    const write: Record<string, number> = {}
    const writeCommitted: Record<string, number> = {}
    const read: Record<string, number> = {}
    const rates: Record<string, { create: number; stat: number; unlink: number }> = {}
    const fsyncs: Record<string, { one: number; eight: number }> = {}
    let rssBefore = 0
    let rssPeak = 0
    for (const t of targets) {
      if (parts.has('seq')) {
        await dropCaches()
        // RSS of this process while bazil takes the big file in (memfs holds its copy in RAM).
        if (t.label === 'bazil') rssPeak = rssBefore = process.memoryUsage().rss
        const sampler = setInterval(() => { if (t.label === 'bazil') rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 50)
        const ddSecs = await timed(() => exec('dd', [`if=${source}`, `of=${path.join(t.dir, 'big')}`, 'bs=1M', `count=${mib}`, 'status=none']))
        // Until committed (bazil: in the content store and the op log) and on disk (sync).
        const settleSecs = await timed(async () => { await t.settle(); await exec('sync') })
        clearInterval(sampler)
        write[t.label] = mib / ddSecs
        writeCommitted[t.label] = mib / (ddSecs + settleSecs)
        if (t.label === 'bazil') await reopen()
        await dropCaches()
        const readSecs = await timed(() => exec('dd', [`if=${path.join(t.dir, 'big')}`, 'of=/dev/null', 'bs=1M', 'status=none']))
        read[t.label] = mib / readSecs
        await exec('rm', ['-f', path.join(t.dir, 'big')])
        await t.settle()
        log(`fuse-bench ${t.label}: write ${write[t.label]!.toFixed(0)} MiB/s (committed ${writeCommitted[t.label]!.toFixed(0)}), read ${read[t.label]!.toFixed(0)} MiB/s`)
      }
      if (parts.has('small')) {
        rates[t.label] = await smallFileRates(t.dir, files, t.settle)
        log(`fuse-bench ${t.label}: create ${rates[t.label]!.create.toFixed(0)}/s, stat ${rates[t.label]!.stat.toFixed(0)}/s, unlink ${rates[t.label]!.unlink.toFixed(0)}/s`)
      }
      if (parts.has('fsync')) {
        fsyncs[t.label] = { one: await fsyncRate(t.dir, fsyncFiles, 1), eight: await fsyncRate(t.dir, fsyncFiles, 8) }
        if (t.label === 'bazil') {
          // What durability costs: the same with the corestore's WAL left unsynced (as before issue 9).
          node.storeSync.enabled = false
          fsyncs['bazil-unsynced'] = { one: await fsyncRate(t.dir, fsyncFiles, 1), eight: await fsyncRate(t.dir, fsyncFiles, 8) }
          node.storeSync.enabled = true
          await t.settle()
        }
        log(`fuse-bench ${t.label}: fsync (4 KiB files) ${fsyncs[t.label]!.one.toFixed(0)}/s one writer, ${fsyncs[t.label]!.eight.toFixed(0)}/s 8 writers` +
          (t.label === 'bazil' ? `; WAL unsynced ${fsyncs['bazil-unsynced']!.one.toFixed(0)}/s and ${fsyncs['bazil-unsynced']!.eight.toFixed(0)}/s` : ''))
      }
    }

    const base = 'trivial in-memory fuse-native fs'
    const row = (name: string, unit: string, ours: number, ceiling: number, native: number, extra = '', target?: number): Row => ({
      name, value: round(ours), unit, baseline: base, baselineValue: round(ceiling), ratio: round(ours / ceiling, 3),
      ...(target === undefined ? {} : { target, ok: ours / ceiling >= target }),
      note: `native disk ${round(native)} ${unit}${extra}`,
    })
    if (parts.has('seq')) rows.push(
      row(`mount: sequential read ${mib} MiB, cold (dd bs=1M, page cache dropped, bazil's node reopened)`, 'MiB/s', read.bazil!, read.memfs!, read.native!, '', 0.6),
      row(`mount: sequential write ${mib} MiB until committed (dd bs=1M, then commit to the content store and op log, sync)`, 'MiB/s', writeCommitted.bazil!, writeCommitted.memfs!, writeCommitted.native!,
        `; until close alone: bazil ${round(write.bazil!)}, memfs ${round(write.memfs!)} MiB/s; server RSS grew ${round((rssPeak - rssBefore) / MiB)} MiB during the write`, 0.6),
    )
    if (parts.has('small')) rows.push(
      row(`mount: create+write+close ${files} small files (until committed)`, 'files/s', rates.bazil!.create, rates.memfs!.create, rates.native!.create),
      row(`mount: stat ${files} files`, 'stats/s', rates.bazil!.stat, rates.memfs!.stat, rates.native!.stat),
      row(`mount: unlink ${files} files (until in the op log)`, 'files/s', rates.bazil!.unlink, rates.memfs!.unlink, rates.native!.unlink),
    )
    if (parts.has('fsync')) rows.push(
      row(`mount: create+write 4 KiB+fsync+close, one writer (${fsyncFiles} files)`, 'fsyncs/s', fsyncs.bazil!.one, fsyncs.memfs!.one, fsyncs.native!.one,
        `; bazil with the WAL left unsynced (not durable, before issue 9): ${round(fsyncs['bazil-unsynced']!.one)}/s`),
      row(`mount: create+write 4 KiB+fsync+close, 8 writers (${fsyncFiles} files)`, 'fsyncs/s', fsyncs.bazil!.eight, fsyncs.memfs!.eight, fsyncs.native!.eight,
        `; bazil with the WAL left unsynced: ${round(fsyncs['bazil-unsynced']!.eight)}/s`),
    )

    if (parts.has('untar')) {
      // The in-memory fs has no symlinks: the native disk is the baseline (target: ≤ 3× its time).
      const tb = await makeTarball(root)
      const native = await untarSecs(tb.tar, nativeDir, async () => {})
      const ours = await untarSecs(tb.tar, bazilDir, () => mount.idle())
      log(`fuse-bench untar: bazil ${ours.toFixed(1)} s, native ${native.toFixed(1)} s`)
      rows.push({
        name: `mount: untar of a real tree (${tb.what.split('/').slice(-1)[0]}: ${round(tb.bytes / 1e6)} MB, ${tb.files} files), until committed + sync`, value: round(ours, 2), unit: 's',
        baseline: 'native disk (same tar, page cache dropped)', baselineValue: round(native, 2), ratio: round(ours / native, 2), target: 3, ok: ours / native <= 3,
        note: `${tb.what}, tar --hard-dereference (hard links stored as files); ratio = times slower than native`,
      })
      fs.rmSync(tb.tar)
    }

    if (parts.has('resp')) {
      // Latency of stat and ls on the mount while a big file is read from it (cold), next to
      // the same mount idle and the in-memory fs under the same read.
      const res: Record<string, { idle: Latencies; busy: Latencies }> = {}
      for (const t of [targets[1]!, targets[2]!]) {
        const big = await prepareResponsiveness(t.dir, source, respMib, t.settle)
        if (t.label === 'bazil') await reopen()
        res[t.label] = { idle: await latencies(t.dir, null), busy: await latencies(t.dir, big) }
        await exec('sh', ['-c', 'rm -rf "$1" "$2" 2>/dev/null || true', 'sh', path.join(t.dir, 'resp'), big]) // memfs has no rmdir
        await t.settle()
      }
      const bz = res.bazil!
      const mem = res.memfs!
      const fmt = (l: number[]): string => `p50 ${round(pct(l, 0.5), 2)} ms, p99 ${round(pct(l, 0.99), 2)} ms, max ${round(Math.max(...l), 2)} ms (${l.length} samples)`
      log(`fuse-bench responsiveness: bazil busy stat ${fmt(bz.busy.stat)}, ls ${fmt(bz.busy.ls)}; read ${round(respMib / bz.busy.readSecs)} MiB/s`)
      for (const op of ['stat', 'ls'] as const) {
        const what = op === 'stat' ? 'stat of a file' : 'ls of a 300-entry directory'
        rows.push({
          name: `mount responsiveness: ${what} while a ${respMib} MiB file is read (cold), p50`, value: round(pct(bz.busy[op], 0.5), 2), unit: 'ms',
          baseline: 'the same mount idle, p50', baselineValue: round(pct(bz.idle[op], 0.5), 2), ratio: round(pct(bz.busy[op], 0.5) / pct(bz.idle[op], 0.5), 2),
          note: `busy: ${fmt(bz.busy[op])}; idle: ${fmt(bz.idle[op])}; in-memory fs under the same read: ${fmt(mem.busy[op])}; the read took ${round(bz.busy.readSecs, 1)} s (memfs ${round(mem.busy.readSecs, 1)} s); ratio = times slower than idle`,
        })
        rows.push({
          name: `mount responsiveness: ${what} while a ${respMib} MiB file is read (cold), max`, value: round(Math.max(...bz.busy[op]), 2), unit: 'ms',
          baseline: 'the same mount idle, max', baselineValue: round(Math.max(...bz.idle[op]), 2), ratio: round(Math.max(...bz.busy[op]) / Math.max(...bz.idle[op]), 2),
        })
      }
    }
    return rows
  } finally {
    for (const m of mounts.reverse()) await m.unmount().catch((err: Error) => log(`fuse-bench: unmount failed: ${err.message}`))
    if (node) await node.close()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (isMain) {
  const rows = await run()
  const here = path.dirname(fileURLToPath(import.meta.url))
  const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..')
  const out = path.join(repoRoot, 'bench', 'results', 'fuse.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ time: new Date().toISOString(), rows }, null, 2) + '\n')
  for (const r of rows) console.log(`${r.name}: ${r.value} ${r.unit} (${r.baseline}: ${r.baselineValue}, ratio ${r.ratio}; ${r.note})`)
}
