// Sync cut at random points between two and three peers: real servers on a loopback DHT
// testnet (never the public DHT; the section re-runs itself inside `unshare -n` when it can),
// FUSE mounts, edits through the mounts. Each round makes a fresh cluster (2 or 3 peers,
// chained through the first or fully linked), then runs a random schedule of steps: edits on
// a running peer (create, overwrite, mkdir, rename/move, delete, rm -r; concurrent edits of one
// path become conflicts) interleaved with disruptions at random moments (drop every
// connection of a server, SIGTERM it, SIGKILL it, SIGSTOP it for a while, start it again).
// Then every server runs again and must converge: the same tree on every mount (path, kind,
// size, sha256 of content), every content a write+fsync acknowledged still there (unless an
// edit that saw it replaced or deleted it), `log verify` clean everywhere, no server exited
// by itself or failed to stop cleanly.
//
// Env: BAZIL_TORTURE_ROUNDS (default 2), BAZIL_TORTURE_STEPS (steps per round, default 25),
// BAZIL_TORTURE_CONVERGE_S (time allowed to converge, default 120), BAZIL_TORTURE_SEED (a
// round's seed, printed with every failure: replays that round's choices, with
// BAZIL_TORTURE_ROUNDS=1), BAZIL_TORTURE_VERBOSE=1 (every step).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'
import { Cluster, type TorturePeer } from './cluster.js'
import { Rand, baseSeed, median } from './rand.js'
import { sha256 } from './cli.js'
import { isMounted, mountTree, sh } from '../test/peer-setup.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const VOL = 'shared'
const NAMES = ['a', 'b', 'c', 'd', 'e']
const EXTS = ['.txt', '.bin', '']

/** Shell-quotes a string. */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** A mount's view: path -> `d` or `f SIZE SHA`, and the content hashes by path. */
interface View { lines: string[]; files: Map<string, string>; dirs: string[] }

async function viewOf(p: TorturePeer): Promise<View | null> {
  if (!isMounted(p.mnt)) return null
  const t = await mountTree(p.mnt)
  if (t.code !== 0) return null
  const files = new Map<string, string>()
  const dirs: string[] = ['']
  for (const l of t.lines) {
    const f = /^f (.+) (\d+) ([0-9a-f]{64})$/.exec(l)
    if (f) files.set(f[1]!, f[3]!)
    else if (l.startsWith('d ')) dirs.push(l.slice(2))
  }
  return { lines: t.lines, files, dirs }
}

/** What must survive: content acknowledged by fsync, minus what a later edit replaced. */
class Ledger {
  /** hash -> what wrote it (for messages). */
  readonly acked = new Map<string, string>()
  readonly superseded = new Set<string>()
  /** Hashes an edit may have replaced without our knowing it saw them (a sync raced the edit). */
  readonly atRisk = new Set<string>()
  /** Where each hash was last put, by our own bookkeeping of writes and renames. */
  readonly where = new Map<string, string>()

  mustSurvive(): string[] {
    return [...this.acked.keys()].filter((h) => !this.superseded.has(h) && !this.atRisk.has(h))
  }

  /** An edit of `paths` (files or whole subtrees) by a peer that saw `view`. */
  touch(paths: string[], view: View): void {
    const under = (p: string, root: string): boolean => p === root || p.startsWith(root + '/')
    for (const [p, h] of view.files) if (paths.some((r) => under(p, r))) this.superseded.add(h)
    for (const [h, p] of this.where) if (paths.some((r) => under(p, r)) && !this.superseded.has(h)) this.atRisk.add(h)
  }

  moved(from: string, to: string): void {
    for (const [h, p] of this.where) {
      if (p === from || p.startsWith(from + '/')) this.where.set(h, to + p.slice(from.length))
    }
  }
}

interface RoundResult {
  seed: number
  peers: number
  mesh: boolean
  failure: string | null
  convergeMs: number | null
  edits: number
  acked: number
  disruptions: Record<string, number>
  checked: number
  atRisk: number
}

async function runRound(dir: string, seed: number, steps: number, convergeS: number, log: (m: string) => void, verbose: boolean): Promise<RoundResult> {
  const rand = new Rand(seed)
  const nPeers = rand.chance(0.5) ? 2 : 3
  const mesh = nPeers === 3 && rand.chance(0.5)
  const names = ['p0', 'p1', 'p2'].slice(0, nPeers)
  const res: RoundResult = { seed, peers: nPeers, mesh, failure: null, convergeMs: null, edits: 0, acked: 0, disruptions: {}, checked: 0, atRisk: 0 }
  const src = path.join(dir, 'src')
  fs.mkdirSync(src, { recursive: true })
  const c = await Cluster.create(dir, names, { BAZIL_REMOTE_TIMEOUT_MS: '3000' })
  const ledger = new Ledger()
  let counter = 0
  const step = (m: string): void => {
    if (verbose) log(`  ${m}`)
  }
  try {
    for (const n of names) await c.start(n)
    await c.run('p0', ['volume', 'create', '--sharing=friends', VOL])
    for (const n of names.slice(1)) await c.connect('p0', n, VOL)
    if (mesh) await c.link('p1', 'p2', VOL)
    for (const n of names) await c.run(n, ['volume', 'mount', VOL, c.get(n).mnt])

    /** One edit on one running peer; returns when the shell is done (acked or not). */
    const edit = async (p: TorturePeer): Promise<void> => {
      const view = await viewOf(p)
      if (!view) return
      const mnt = p.mnt
      const files = [...view.files.keys()].filter((f) => !f.includes('.conflict-'))
      const nonRoot = [...files, ...view.dirs.filter((d) => d !== '')]
      const newPath = (): string => {
        const d = rand.pick(view.dirs)
        const name = rand.pick(NAMES) + rand.pick(EXTS)
        return d === '' ? name : `${d}/${name}`
      }
      const kind = rand.next()
      res.edits++
      if (kind < 0.45) {
        // Create or overwrite a file with fresh content, then fsync it.
        const target = kind < 0.25 || files.length === 0 ? newPath() : rand.pick(files)
        if (view.dirs.includes(target)) return
        const size = rand.chance(0.8) ? 1 + rand.int(3000) : 20_000 + rand.int(300_000)
        const content = Buffer.concat([Buffer.from(`${p.name} write ${++counter} seed ${res.seed}\n`), rand.bytes(size)])
        const h = sha256(content)
        const tmp = path.join(src, h)
        fs.writeFileSync(tmp, content)
        ledger.touch([target], view)
        // The server may go away mid-edit: an fsync counts only if the file was on the mount.
        const f = q(`${mnt}/${target}`)
        const r = await sh(`cat ${q(tmp)} > ${f} && sync ${f} && stat -f -c %T ${f}`, 60_000)
        const acked = r.code === 0 && /^fuse/.test(r.out.trim())
        step(`${p.name}: write ${target} (${content.length} B) ${acked ? 'acked' : `failed: ${r.out.trim().slice(0, 120)}`}`)
        if (acked) {
          ledger.acked.set(h, `${p.name} wrote ${target} (${content.length} B, write ${counter})`)
          ledger.where.set(h, target)
          res.acked++
        }
      } else if (kind < 0.55) {
        const d = newPath()
        const r = await sh(`mkdir -p ${q(`${mnt}/${d}`)}`)
        step(`${p.name}: mkdir ${d}: ${r.code}`)
      } else if (kind < 0.75) {
        if (nonRoot.length === 0) return
        const from = rand.pick(nonRoot)
        const to = newPath()
        if (to === from || to.startsWith(from + '/') || view.dirs.includes(to)) return
        ledger.touch([to], view)
        const r = await sh(`mv -T ${q(`${mnt}/${from}`)} ${q(`${mnt}/${to}`)}`)
        if (r.code === 0) ledger.moved(from, to)
        step(`${p.name}: mv ${from} ${to}: ${r.code}`)
      } else if (kind < 0.9) {
        if (files.length === 0) return
        const f = rand.pick(files)
        ledger.touch([f], view)
        const r = await sh(`rm ${q(`${mnt}/${f}`)}`)
        step(`${p.name}: rm ${f}: ${r.code}`)
      } else {
        const dirs = view.dirs.filter((d) => d !== '')
        if (dirs.length === 0) return
        const d = rand.pick(dirs)
        ledger.touch([d], view)
        const r = await sh(`rm -r ${q(`${mnt}/${d}`)}`)
        step(`${p.name}: rm -r ${d}: ${r.code}`)
      }
    }

    const disrupt = async (): Promise<void> => {
      const p = rand.pick(c.peers)
      const stopped = p.proc === null
      const what = stopped ? 'start' : p.paused ? 'resume' : rand.pick(['cut', 'cut', 'stop', 'kill', 'pause'])
      res.disruptions[what] = (res.disruptions[what] ?? 0) + 1
      step(`${p.name}: ${what}`)
      switch (what) {
        case 'start': await c.start(p.name); break
        case 'resume': c.resume(p.name); break
        case 'cut': c.cut(p.name); break
        case 'stop': await c.stop(p.name, 'SIGTERM'); break
        case 'kill': await c.stop(p.name, 'SIGKILL'); break
        case 'pause': c.pause(p.name); break
      }
    }

    for (let s = 0; s < steps; s++) {
      const running = c.running()
      if (running.length > 0 && rand.chance(0.65)) {
        // An edit, and maybe a disruption a random moment into it (mid-write, mid-sync).
        const p = rand.pick(running)
        const later = rand.chance(0.3) ? rand.int(400) : -1
        const d = later >= 0 ? new Promise((r) => setTimeout(r, later)).then(disrupt) : Promise.resolve()
        await Promise.all([edit(p), d])
      } else await disrupt()
      await new Promise((r) => setTimeout(r, rand.int(600)))
    }

    // Everyone back: converge.
    for (const p of c.peers) {
      if (p.paused) c.resume(p.name)
      if (!p.proc) await c.start(p.name)
    }
    const t0 = Date.now()
    const must = ledger.mustSurvive()
    res.checked = must.length
    res.atRisk = [...ledger.atRisk].filter((h) => ledger.acked.has(h) && !ledger.superseded.has(h)).length
    let last: (View | null)[] = []
    let why = ''
    while (true) {
      last = await Promise.all(c.peers.map(viewOf))
      const ok = last.every((v) => v !== null)
      if (ok) {
        const ref = JSON.stringify(last[0]!.lines)
        const same = last.every((v) => JSON.stringify(v!.lines) === ref)
        const have = new Set(last[0]!.files.values())
        const missing = must.filter((h) => !have.has(h))
        if (same && missing.length === 0) break
        why = !same
          ? `trees differ: ${c.peers.map((p, i) => `${p.name}: ${last[i]!.lines.length} entries`).join(', ')}`
          : `converged trees lack ${missing.length} acknowledged content(s): ${missing.slice(0, 3).map((h) => `${h.slice(0, 12)} (${ledger.acked.get(h)}, last put at ${ledger.where.get(h)})`).join('; ')}`
      } else why = `a mount is not readable: ${c.peers.filter((_, i) => last[i] === null).map((p) => p.name).join(', ')}`
      if (Date.now() - t0 > convergeS * 1000) {
        const trees = c.peers.map((p, i) => `${p.name}:\n    ${(last[i]?.lines ?? ['(unreadable)']).join('\n    ')}`).join('\n  ')
        res.failure = `did not converge within ${convergeS} s: ${why}\n  ${trees}`
        break
      }
      await new Promise((r) => setTimeout(r, 500))
    }
    if (!res.failure) res.convergeMs = Date.now() - t0
    for (const p of c.peers) {
      const v = await c.run(p.name, ['log', 'verify', '--json', VOL]).catch((err: Error) => ({ stdout: '', err }))
      const j = 'err' in v ? null : (JSON.parse(v.stdout) as { ok: boolean; errors: unknown[] })
      if (!j?.ok) res.failure ??= `log verify on ${p.name}: ${'err' in v ? v.err.message : JSON.stringify(j?.errors).slice(0, 500)}`
    }
    const crashes = c.peers.flatMap((p) => p.crashes)
    if (crashes.length > 0) res.failure ??= crashes[0]!
  } catch (err) {
    res.failure ??= `round stopped: ${(err as Error).stack ?? String(err)}`
  } finally {
    await c.close()
    const crashes = c.peers.flatMap((p) => p.crashes)
    if (crashes.length > 0) res.failure ??= crashes[0]!
    if (res.failure) {
      const logFile = path.join(os.tmpdir(), `bazil-torture-sync-cut-${seed}.log`)
      fs.writeFileSync(logFile, c.peers.map((p) => `==== ${p.name} ====\n${c.log(p.name)}`).join('\n'))
      res.failure += `\n  server logs: ${logFile}`
    }
  }
  return res
}

/** The section proper; runs in a loopback-only network namespace (see run below). */
export async function syncCut(env: TortureEnv): Promise<SectionResult> {
  const rounds = envInt('BAZIL_TORTURE_ROUNDS', 2)
  const steps = envInt('BAZIL_TORTURE_STEPS', 25)
  const convergeS = envInt('BAZIL_TORTURE_CONVERGE_S', 120)
  const verbose = process.env.BAZIL_TORTURE_VERBOSE === '1'
  const seed0 = baseSeed()
  env.log(`${rounds} rounds of ${steps} steps, first seed ${seed0}`)
  const failures: string[] = []
  const times: number[] = []
  const totals = { edits: 0, acked: 0, checked: 0, atRisk: 0 }
  const disruptions: Record<string, number> = {}
  for (let i = 0; i < rounds; i++) {
    const seed = (seed0 + i) >>> 0
    const t0 = Date.now()
    const r = await runRound(path.join(env.tmpDir, `round-${i}`, 'c'), seed, steps, convergeS, env.log, verbose)
    fs.rmSync(path.join(env.tmpDir, `round-${i}`, 'c'), { recursive: true, force: true })
    totals.edits += r.edits
    totals.acked += r.acked
    totals.checked += r.checked
    totals.atRisk += r.atRisk
    for (const [k, v] of Object.entries(r.disruptions)) disruptions[k] = (disruptions[k] ?? 0) + v
    if (r.convergeMs !== null) times.push(r.convergeMs)
    const shape = `${r.peers} peers${r.peers === 3 ? (r.mesh ? ', mesh' : ', chain') : ''}`
    env.log(`round ${i} (seed ${seed}, ${shape}): ${r.failure ? 'FAILED' : 'ok'} in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${r.edits} edits, ${r.acked} fsynced, ${r.checked} checked, ${r.atRisk} at risk; disruptions ${JSON.stringify(r.disruptions)}${r.convergeMs !== null ? `; converged in ${r.convergeMs} ms` : ''}`)
    if (r.failure) {
      failures.push(`round ${i}: replay with BAZIL_TORTURE_SEED=${seed} BAZIL_TORTURE_ROUNDS=1 (${shape}): ${r.failure}`)
      env.log(`  ${r.failure}`)
    }
  }
  return {
    rounds,
    failures,
    figures: {
      first_seed: seed0,
      converge_median_ms: times.length ? Math.round(median(times)) : 'n/a',
      converge_max_ms: times.length ? Math.max(...times) : 'n/a',
      edits: totals.edits,
      fsynced: totals.acked,
      checked_survived: totals.checked,
      at_risk_unchecked: totals.atRisk,
      disruptions: Object.entries(disruptions).map(([k, v]) => `${k}:${v}`).join(' ')
    }
  }
}

/** Whether this process may already only reach loopback (we are the re-run inside unshare). */
const INSIDE = 'BAZIL_TORTURE_NETNS_INSIDE'

const section: Section = {
  name: 'sync-cut',
  async run(env: TortureEnv): Promise<SectionResult> {
    if (process.env[INSIDE] === '1') return syncCut(env)
    const canUnshare = process.getuid?.() === 0 && (await sh('command -v ip >/dev/null && unshare -n true')).code === 0
    if (!canUnshare) {
      env.log('WARNING: not in a loopback-only network namespace (unshare -n needs root and ip); the peers still use only 127.0.0.1')
      return syncCut(env)
    }
    env.log('in a loopback-only network namespace (unshare -n)')
    const resultFile = path.join(env.tmpDir, 'result.json')
    const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, path.join(here, 'sync-cut-main.js'), env.tmpDir, resultFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, [INSIDE]: '1' }
    })
    let buf = ''
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        env.log(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
    })
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    if (!fs.existsSync(resultFile)) throw new Error(`the sync-cut run in its network namespace exited ${code} without a result`)
    return JSON.parse(fs.readFileSync(resultFile, 'utf8')) as SectionResult
  }
}

export default section
