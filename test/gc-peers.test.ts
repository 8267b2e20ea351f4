// GC across peers (issue 11): a desk writes a volume, a laptop (a second writer, which keeps the
// desk's store: they store to each other) and a closet (storage-only, keeping both stores) hold
// it. The laptop goes offline and writes a new file whose content equals a file the desk then
// deletes; the desk deletes 90% of the volume, drops the snapshot that held it, collects; the
// laptop comes back and collects; the closet follows the drop records. On every peer >= 90% of
// the deleted bytes come back (du of each data dir); every remaining file and the kept snapshot
// read byte-exact on both writers; the offline writer's new file survives (rule W, spec/gc.md).
// Real servers on a loopback DHT testnet, the CLI. BAZIL_FULL=1 (`npm run lifecycle-full`): a
// 1 GiB volume (default 32 MiB).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { diskUsage } from '../src/gc.js'
import { PeerCluster, eventually } from './peer-setup.js'
import { bazil, summaryOf } from './helpers.js'

const VOL = 'docs'
const MiB = 1024 * 1024
const FULL = process.env.BAZIL_FULL === '1'
const TOTAL = (FULL ? 1024 : 32) * MiB
const BIG = FULL ? 4 * MiB : MiB

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const mib = (b: number): string => (b / MiB).toFixed(1)

/** The largest files of a data dir, for a failure message. */
function duDetail(dir: string): string {
  const out: [string, number][] = []
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) out.push([path.relative(dir, p), fs.statSync(p).blocks * 512])
    }
  }
  walk(dir)
  return out.sort((a, b) => b[1] - a[1]).slice(0, 12).map(([p, b]) => `${mib(b)} MiB ${p}`).join('\n')
}

/** path -> sha256 of every file under `dir` (relative, with a leading /). */
function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.set('/' + path.relative(dir, p).split(path.sep).join('/'), sha(fs.readFileSync(p)))
    }
  }
  walk(dir)
  return out
}

test(`gc on every peer of a ${TOTAL / MiB} MiB volume 90% deleted: the space comes back everywhere, the rest reads, an offline writer's reuse survives`, { timeout: FULL ? 3_600_000 : 600_000 }, async (t) => {
  const c = await PeerCluster.create(['desk', 'lap', 'closet'], { env: { BAZIL_REMOTE_TIMEOUT_MS: '10000' } })
  const t0 = Date.now()
  const step = (what: string): void => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(0)} s: ${what}`)
  try {
    const src = path.join(c.dir, 'src')
    const again = path.join(c.dir, 'again')
    fs.mkdirSync(path.join(src, 'gone'), { recursive: true })
    fs.mkdirSync(path.join(src, 'kept'), { recursive: true })
    fs.mkdirSync(again)
    const files = new Map<string, string>()
    let written = 0
    let goneBytes = 0
    let reused: Buffer | null = null
    for (let i = 0; written < TOTAL * 0.9; i++) {
      const data = randomBytes(i % 5 === 4 ? 300_000 : BIG)
      fs.writeFileSync(path.join(src, 'gone', `g${i}`), data)
      files.set(`/gone/g${i}`, sha(data))
      written += data.length
      goneBytes += data.length
      reused ??= data
    }
    for (let i = 0; written < TOTAL; i++) {
      const data = randomBytes(i % 2 === 0 ? 200_000 : MiB + 12_345)
      fs.writeFileSync(path.join(src, 'kept', `k${i}`), data)
      files.set(`/kept/k${i}`, sha(data))
      written += data.length
    }
    fs.writeFileSync(path.join(again, 'new.bin'), reused!)

    await c.start('desk', 'lap', 'closet')
    const desk = c.get('desk')
    const lap = c.get('lap')
    const closet = c.get('closet')
    await c.run('desk', ['volume', 'create', '--sharing=friends', VOL])
    await c.connect('desk', 'lap', VOL) // each stores to (and keeps the store of) the other
    await c.run('desk', ['volume', 'import', VOL, src])
    await c.run('desk', ['volume', 'snapshot', 'create', VOL, 'everything'])
    // The closet keeps both writers' stores (storage-only: no plaintext).
    for (const w of [desk, lap]) {
      await c.run('closet', ['peer', 'add', w.key])
      await c.run(w.name, ['peer', 'add', closet.key])
      await c.run(w.name, ['peer', 'storage', 'allow', closet.key, 'local'])
      await c.run(w.name, ['peer', 'volume', 'allow', closet.key, VOL])
    }
    await c.run('closet', ['volume', 'connect', '--storage-only', desk.key, VOL])
    for (const w of [desk, lap]) await c.run(w.name, ['volume', 'storage', 'add', VOL, `peerkey:${closet.key}`])
    step(`imported ${mib(written)} MiB on the desk`)

    // Both keepers (the laptop and the closet) confirm holding the whole desk store.
    await eventually('the laptop and the closet keep all of the desk\'s store', async () => {
      const r = JSON.parse((await c.run('desk', ['volume', 'copies', VOL, '--json'])).stdout) as { store: { packs: number }; keepers: { key: string; confirmedPacks: number }[] }
      return r.store.packs > 0 && [lap.key, closet.key].every((k) => r.keepers.find((x) => x.key === k)?.confirmedPacks === r.store.packs)
    }, FULL ? 1_800_000 : 120_000, 1000)
    // du of each data dir with its server stopped: a running store's du also counts RocksDB's
    // write-ahead log of recent writes (up to its memtables' size: 70 MiB seen right after a
    // gc), which the next flush or open writes out and deletes.
    const closedDu = async (): Promise<Map<string, number>> => {
      await c.stop('desk', 'lap', 'closet')
      const du = new Map([desk, lap, closet].map((p) => [p.name, diskUsage(p.data)]))
      await c.start('desk', 'lap', 'closet')
      return du
    }
    const before = await closedDu()
    step(`replicated; du before (servers stopped): ${[...before].map(([n, b]) => `${n} ${mib(b)} MiB`).join(', ')}`)

    // The laptop, offline, writes new.bin: the same bytes as /gone/g0 (the same chunks).
    await c.stop('lap')
    const imp = await bazil(lap.data, ['volume', 'import', '--to', '/later', VOL, again])
    assert.equal(imp.code, 0, imp.stderr)

    // The desk deletes 90%, keeps a snapshot of the rest, drops the one of everything, collects.
    await c.run('desk', ['volume', 'rm', '-r', VOL, '/gone'])
    await c.run('desk', ['volume', 'snapshot', 'create', VOL, 'kept-only'])
    await c.run('desk', ['volume', 'snapshot', 'rm', VOL, 'everything'])
    const gc = summaryOf((await c.run('desk', ['volume', 'gc', VOL, '--grace', '0', '--json'])).stdout) as { removed: { bytes: number }; disk: { before: number; after: number } }
    assert.ok(gc.removed.bytes >= goneBytes * 0.98, `desk removed ${gc.removed.bytes} of ${goneBytes}`)
    step(`desk gc: removed ${mib(gc.removed.bytes)} MiB, du ${mib(gc.disk.before)} -> ${mib(gc.disk.after)} MiB`)

    // The laptop comes back: the desk gets new.bin (from the laptop's own store), the laptop collects.
    await c.start('lap')
    await eventually('the desk sees /later/new.bin', async () => (await c.run('desk', ['volume', 'ls', VOL, '/']).then(() => c.run('desk', ['volume', 'ls', VOL, '/later'])).catch(() => ({ stdout: '' }))).stdout.includes('new.bin'), 60_000, 500)
    await eventually('the laptop applied the deletes', async () => !(await c.run('lap', ['volume', 'ls', VOL, '/'])).stdout.includes('gone'), 60_000, 500)
    const lgc = summaryOf((await c.run('lap', ['volume', 'gc', VOL, '--grace', '0', '--json'])).stdout) as { removed: { bytes: number } }
    step(`laptop gc: removed ${mib(lgc.removed.bytes)} MiB of its own store`)

    // Every peer's disk: the keepers follow the desk's drop records (spec/gc.md section 5; a
    // mirror compacts at most once a minute).
    // (a restart also makes each keeper look at the drop records it holds at once, and compact)
    let after = new Map<string, number>()
    const short = (m: Map<string, number>): string[] => [desk, lap, closet].filter((p) => before.get(p.name)! - m.get(p.name)! < goneBytes * 0.9).map((p) => p.name)
    for (let i = 0; ; i++) {
      await new Promise((r) => setTimeout(r, 20_000))
      after = await closedDu()
      const missing = short(after)
      if (missing.length === 0) break
      if (i >= (FULL ? 30 : 8)) {
        const p = c.get(missing[0]!)
        assert.fail(`${missing.join(', ')}: less than 90% of the ${mib(goneBytes)} MiB deleted came back: du ${missing.map((n) => `${n} ${mib(before.get(n)!)} -> ${mib(after.get(n)!)} MiB`).join(', ')}; desk gc ${JSON.stringify(gc)}\n${p.name}:\n${duDetail(p.data)}\n${c.logs().split('\n').filter((l) => /gc|drop|mirror|compact|cache/.test(l)).slice(-40).join('\n')}`)
      }
    }
    step(`du after: ${[desk, lap, closet].map((p) => `${p.name} ${mib(before.get(p.name)!)} -> ${mib(after.get(p.name)!)} MiB (${((before.get(p.name)! - after.get(p.name)!) / goneBytes * 100).toFixed(0)}% of ${mib(goneBytes)} MiB deleted)`).join('; ')}`)

    // Every remaining file, the kept snapshot, and the laptop's new file read byte-exact on both writers.
    for (const w of [desk, lap]) {
      const live = path.join(c.dir, `export-${w.name}`)
      const snap = path.join(c.dir, `export-${w.name}-snap`)
      await c.run(w.name, ['volume', 'export', VOL, live])
      await c.run(w.name, ['volume', 'export', '--snapshot', 'kept-only', VOL, snap])
      const got = tree(live)
      const kept = [...files].filter(([p]) => p.startsWith('/kept/'))
      for (const [p, h] of kept) assert.equal(got.get(p), h, `${w.name}: ${p}`)
      assert.equal(got.get('/later/new.bin'), sha(reused!), `${w.name}: the offline writer's file`)
      assert.equal(got.size, kept.length + 1, `${w.name}: nothing else in the volume`)
      const snapTree = tree(snap)
      for (const [p, h] of kept) assert.equal(snapTree.get(p), h, `${w.name}: ${p} in snapshot kept-only`)
      fs.rmSync(live, { recursive: true })
      fs.rmSync(snap, { recursive: true })
    }
    // A second collection on the desk keeps all of it (referenced).
    const second = summaryOf((await c.run('desk', ['volume', 'gc', VOL, '--grace', '0', '--json'])).stdout) as { removed: { objects: number } }
    assert.equal(second.removed.objects, 0)
    step('every remaining file and the kept snapshot read byte-exact on both writers')
  } finally {
    await c.close()
  }
})
