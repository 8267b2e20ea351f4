// One flipped byte anywhere in a data dir: the damage is found by `bazil log verify` or by a
// read that names what is damaged, nothing else is lost, and the node never crashes.
//
// Setup: one data dir with a volume built by several CLI commands (imports, a move, a remove,
// a new version of a file, snapshots after each step, so every version of every file stays
// reachable and a damaged byte of any of them is visible to a read). Each round copies that
// data dir, flips one byte (a random file, a random offset: half the rounds pick the file
// uniformly, half pick a byte uniformly over all bytes but DATA/reserve's), then twice (the second pass sees
// whatever the first rebuilt) runs `log verify --json`, and `volume export` of the live tree
// and of every snapshot (a failed export is followed by `volume cat` of each file); the second
// pass then makes one edit and verifies again (a damaged key shows only in what is written
// next). The commands of a pass run in one process (torture/cli-batch.ts). Each round is then
// one of:
//   detected  - some command failed with a one-line error naming what is damaged (a volume
//               path, a log and its seq, an object, a data-dir file), and every read that
//               succeeded returned the right content;
//   harmless  - everything read exactly as before on both passes and verify was clean
//               (free space in RocksDB files, its info logs, a cache that was rebuilt);
//   failure   - a crash (signal, hang, stack trace, exit status not 0/1), content read with
//               exit 0 that is no version the path ever had (silent corruption), a tree that
//               differs with no error anywhere (undetected damage), an error that names
//               nothing, or other files lost beside the damaged one (collateral).
//
// Env: BAZIL_TORTURE_FLIP_ROUNDS (default 20), BAZIL_TORTURE_SEED (replays one run: the same
// data set, files and offsets), BAZIL_TORTURE_FLIP_ONLY=N (with the seed: only round N),
// BAZIL_TORTURE_VERBOSE=1 (one line per round).
import fs from 'node:fs'
import path from 'node:path'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'
import { bazilBatch, bazilRun, crashOf, listTree, treeDiff, type CliRun } from './cli.js'
import { Rand, baseSeed } from './rand.js'
import { startServer, type ServerProcess } from '../test/helpers.js'

const VOL = 'v'

type Listing = Map<string, string>

interface DataSet {
  /** The pristine data dir. */
  template: string
  /** Views to read: '' is the live tree, else a snapshot name. */
  views: string[]
  /** Expected listing of each view. */
  expected: Map<string, Listing>
  /** Every listing value a path ever had (any view): a stale version is not corruption. */
  history: Map<string, Set<string>>
}

async function must(dataDir: string, args: string[]): Promise<CliRun> {
  const r = await bazilRun(dataDir, args)
  if (r.code !== 0) throw new Error(`setup: bazil ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`)
  return r
}

function writeFiles(root: string, files: Record<string, Buffer | string>): void {
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true })
    fs.writeFileSync(path.join(root, p), c)
  }
}

/** A volume made by several commands (one log entry each), a snapshot after each step. */
async function buildDataSet(tmp: string, rand: Rand): Promise<DataSet> {
  const template = path.join(tmp, 'template')
  const src = path.join(tmp, 'src')
  await must(template, ['create'])
  await must(template, ['volume', 'create', VOL])
  const views: string[] = ['']
  let step = 0
  const snap = async (): Promise<void> => {
    const name = `s${++step}`
    await must(template, ['volume', 'snapshot', 'create', VOL, name])
    views.push(name)
  }
  const s1 = path.join(src, '1')
  writeFiles(s1, {
    'a/small.txt': 'small file\n',
    'a/medium.bin': rand.bytes(100_000),
    'big.bin': rand.bytes(700_000), // several chunks
    'empty': '',
    'docs/readme.md': `# readme ${rand.int(1e9)}\n`,
    'docs/deep/er/note.txt': rand.bytes(3000)
  })
  fs.mkdirSync(path.join(s1, 'e'))
  fs.symlinkSync('a/small.txt', path.join(s1, 'link'))
  await must(template, ['volume', 'import', VOL, s1])
  const s2 = path.join(src, '2')
  writeFiles(s2, { 'x.txt': `x ${rand.int(1e9)}\n`, 'y.bin': rand.bytes(40_000) })
  await must(template, ['volume', 'import', VOL, s2, '--to=/b'])
  await snap()
  await must(template, ['volume', 'mv', VOL, 'a/medium.bin', 'b/medium.bin'])
  await must(template, ['volume', 'rm', VOL, 'b/x.txt'])
  // A new version of big.bin: an insertion near the start (most chunks shared) and a new file.
  const big = fs.readFileSync(path.join(s1, 'big.bin'))
  const s3 = path.join(src, '3')
  writeFiles(s3, { 'big.bin': Buffer.concat([big.subarray(0, 1000), rand.bytes(500), big.subarray(1000)]), 'docs/new.txt': 'added last\n' })
  await must(template, ['volume', 'import', VOL, s3])
  await must(template, ['volume', 'mkdir', VOL, 'made'])
  const verify = await must(template, ['log', 'verify', '--json', VOL])
  if (!(JSON.parse(verify.stdout) as { ok: boolean }).ok) throw new Error(`setup: log verify of the pristine data dir: ${verify.stdout}`)
  const expected = new Map<string, Listing>()
  const history = new Map<string, Set<string>>()
  for (const v of views) {
    const out = path.join(tmp, `expected-${v || 'live'}`)
    await must(template, ['volume', 'export', VOL, out, ...(v ? [`--snapshot=${v}`] : [])])
    const l = listTree(out)
    expected.set(v, l)
    for (const [p, val] of l) {
      if (!history.has(p)) history.set(p, new Set())
      history.get(p)!.add(val)
    }
    fs.rmSync(out, { recursive: true, force: true })
  }
  return { template, views, expected, history }
}

/** Every non-empty regular file under `root`, with its size. */
function dataFiles(root: string): { rel: string; size: number }[] {
  const out: { rel: string; size: number }[] = []
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) {
        const size = fs.statSync(path.join(root, p)).size
        if (size > 0) out.push({ rel: p, size })
      }
    }
  }
  walk('')
  return out.sort((a, b) => (a.rel < b.rel ? -1 : 1))
}

interface Flip { file: string; offset: number; size: number; mask: number }

/** Picks a file of `root` and an offset: half the time a file uniformly, else a byte uniformly (but the reserve's). */
function pickFlip(root: string, rand: Rand): Flip {
  const files = dataFiles(root)
  let f: { rel: string; size: number }
  if (rand.chance(0.5)) f = rand.pick(files)
  else {
    // By byte, leaving out the disk-space reserve (megabytes of nothing; still picked as a file).
    const some = files.filter((x) => x.rel !== 'reserve')
    const total = some.reduce((s, x) => s + x.size, 0)
    let at = rand.int(total)
    f = some.find((x) => (at -= x.size) < 0)!
  }
  return { file: f.rel, offset: rand.int(f.size), size: f.size, mask: 1 + rand.int(255) }
}

/** XORs the byte in place, keeping the file's times (so the flip is all that changed). */
function applyFlip(root: string, flip: Flip): void {
  const full = path.join(root, flip.file)
  const st = fs.statSync(full)
  const fd = fs.openSync(full, 'r+')
  try {
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, flip.offset)
    b[0] ^= flip.mask
    fs.writeSync(fd, b, 0, 1, flip.offset)
  } finally {
    fs.closeSync(fd)
  }
  fs.utimesSync(full, st.atime, st.mtime)
}

/**
 * corestore/CORESTORE is the store's device file: it records its own inode and an xattr, so a
 * copied data dir cannot keep it (the store refuses "was moved unsafely"). Copies leave it out
 * and the store makes a new one; flips of it are made in the template itself and undone.
 */
const DEVICE_FILE = 'corestore/CORESTORE'

/** What one pass of reads saw. */
interface Pass {
  crashes: string[]
  /** One-line errors, each with the command that gave it. */
  errors: string[]
  verifyErrors: string[]
  /** Reads that returned content with exit 0 which that path never had. */
  corrupt: string[]
  /** Differences in views read without any error. */
  silentDiffs: string[]
  /** Paths of views whose read failed with an error (lost, at least for now). */
  unreadable: string[]
  /** Paths missing or stale in a view that exported without error. */
  changed: string[]
}

/** `bazil: ...` without the prefix. */
const errLine = (r: CliRun): string => (r.stderr.trim().split('\n').find((l) => l.startsWith('bazil: ')) ?? '').replace(/^bazil: /, '')

/**
 * One pass: `log verify`, an export of each view (a failed export is followed by a `volume
 * cat` of each of its files) and, with `write`, a small edit and `log verify` again (a
 * damaged key or log may read fine and only break what is written next).
 */
async function readPass(data: string, ds: DataSet, views: string[], scratch: string, write = false): Promise<Pass> {
  const p: Pass = { crashes: [], errors: [], verifyErrors: [], corrupt: [], silentDiffs: [], unreadable: [], changed: [] }
  const note = (r: CliRun): boolean => {
    const c = crashOf(r)
    if (c) p.crashes.push(c)
    else if (r.code !== 0) p.errors.push(`${r.args.filter((a) => !a.startsWith('/')).join(' ')}: ${errLine(r)}`)
    return c === null && r.code === 0
  }
  const outOf = (v: string): string => path.join(scratch, `out-${v || 'live'}`)
  const snapArg = (v: string): string[] => (v ? [`--snapshot=${v}`] : [])
  for (const v of views) fs.rmSync(outOf(v), { recursive: true, force: true })
  const verifyArgs = ['log', 'verify', '--json', VOL]
  const plan = [verifyArgs, ...views.map((v) => ['volume', 'export', VOL, outOf(v), ...snapArg(v)])]
  if (write) plan.push(['volume', 'mkdir', VOL, 'torture-probe'], verifyArgs)
  const runs = await bazilBatch(data, plan)
  const [verify, ...exports] = runs.slice(0, 1 + views.length)
  // verify exits 1 with its JSON report when it finds bad entries: that is a finding, not an error line.
  for (const r of [verify, ...runs.slice(1 + views.length)]) {
    if (!r) continue
    if (r.args[0] === 'log' && r.stdout.startsWith('{')) {
      const j = JSON.parse(r.stdout) as { ok: boolean; errors: { writer?: string; seq?: number; reason?: string }[] }
      for (const e of j.errors) p.verifyErrors.push(`log verify: writer ${e.writer} seq ${e.seq}: ${e.reason}`)
    } else note(r)
  }
  const cats: string[][] = []
  for (const [i, v] of views.entries()) {
    const want = ds.expected.get(v)!
    const ex = exports[i]
    if (!ex) continue // the batch died before it: reported as a crash already
    if (note(ex)) {
      for (const line of treeDiff(want, listTree(outOf(v)))) {
        const [sign, rel, ...rest] = line.split(' ')
        const val = rest.join(' ')
        const known = ds.history.get(rel!)?.has(val) ?? false
        if (sign === '+' && val.startsWith('f ') && want.has(rel!) && !known) p.corrupt.push(`${v || 'live'}:${rel} read as ${val}`)
        else p.changed.push(`${v || 'live'}:${line}`)
      }
      continue
    }
    // The export stopped at the first error: read each file alone to see what else is lost.
    for (const [rel, val] of want) if (val.startsWith('f ')) cats.push(['volume', 'cat', VOL, rel, ...snapArg(v)])
  }
  if (cats.length > 0) {
    for (const cat of await bazilBatch(data, cats)) {
      const rel = cat.args[3]!
      const v = cat.args[4]?.replace('--snapshot=', '') ?? ''
      const want = ds.expected.get(v)!.get(rel)!
      if (note(cat)) {
        const got = `f ${cat.stdoutLen} ${cat.stdoutSha}`
        if (got !== want) {
          if (ds.history.get(rel)?.has(got)) p.changed.push(`${v || 'live'}:${rel} stale`)
          else p.corrupt.push(`${v || 'live'}:${rel} read as ${got}`)
        }
      } else p.unreadable.push(`${v || 'live'}:${rel}`)
    }
  }
  fs.rmSync(scratch, { recursive: true, force: true })
  fs.mkdirSync(scratch, { recursive: true })
  return p
}

/** The first pass with `bazil server run` owning the damaged data dir. */
async function serverPass(data: string, ds: DataSet, scratch: string): Promise<Pass> {
  let server: ServerProcess
  try {
    server = await startServer(data)
  } catch (err) {
    // It refused to start: that must be one clear line, and then the CLI alone is tried.
    const p = await readPass(data, ds, ds.views, scratch)
    const log = (err as Error).message
    const refusal = log.split('\n').filter((l) => l.startsWith('bazil: ')).at(-1)
    if (refusal) p.errors.push(`server run: ${refusal.slice('bazil: '.length)}`)
    else p.crashes.push(`server run: did not start and gave no one-line error: ${log.slice(-800)}`)
    return p
  }
  try {
    const p = await readPass(data, ds, ds.views, scratch)
    if (server.child.exitCode !== null || server.child.signalCode !== null) p.crashes.push(`server died during the reads (exit ${server.child.exitCode}, ${server.child.signalCode}): ${server.log().slice(-800)}`)
    const code = await server.stop('SIGTERM')
    if (code !== 0) p.crashes.push(`server exited ${code} on SIGTERM: ${server.log().slice(-800)}`)
    return p
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL')
  }
}

/** An error names what is damaged: a volume path, a log entry, an object or a data-dir file. */
export function namesDamage(msg: string, flip: Flip): boolean {
  const base = path.basename(flip.file)
  return msg.includes(base) ||
    /\bseq(uence)?\b|\bentry\b|\bblock\b/i.test(msg) ||
    /\b(object|chunk|manifest|address)\b/i.test(msg) ||
    / \/?[a-z]+[a-z0-9./-]*\.(txt|bin|md)\b|\/(empty|link|e|made)\b/.test(msg) ||
    /\b(checkpoint|node\.key|node\.json|sharing key|volume record|CURRENT|MANIFEST|OPTIONS|\.sst|\.blob|\.log)\b/.test(msg)
}

type Verdict = 'detected' | 'harmless' | 'failure'

function classify(flip: Flip, passes: Pass[]): { verdict: Verdict; why: string } {
  const all = <K extends keyof Pass>(k: K): string[] => passes.flatMap((p) => p[k])
  if (all('crashes').length > 0) return { verdict: 'failure', why: `crash: ${all('crashes')[0]}` }
  if (all('corrupt').length > 0) return { verdict: 'failure', why: `silent wrong content: ${all('corrupt').slice(0, 3).join('; ')}` }
  const errors = [...all('errors'), ...all('verifyErrors')]
  if (errors.length === 0) {
    if (all('changed').length > 0) return { verdict: 'failure', why: `undetected damage: ${all('changed').slice(0, 4).join('; ')}` }
    return { verdict: 'harmless', why: 'verify clean, every view read exactly as before, twice' }
  }
  const unnamed = errors.filter((e) => !namesDamage(e, flip))
  if (unnamed.length > 0) return { verdict: 'failure', why: `an error that names nothing: ${unnamed[0]}` }
  // Damage was reported. A flip inside the first pass's caches may be gone by the second one;
  // what the second pass reads is what the user is left with.
  const last = passes[passes.length - 1]!
  const lost = new Set(last.unreadable)
  const everything = [...passes[0]!.unreadable].length
  if (everything > 0 && lost.size === 0 && last.errors.length === 0 && last.verifyErrors.length === 0) return { verdict: 'detected', why: `reported, then rebuilt: ${errors[0]}` }
  return { verdict: 'detected', why: `${errors[0]}${lost.size > 0 ? ` (${lost.size} file reads fail)` : ''}` }
}

const section: Section = {
  name: 'flip-byte',
  async run(env: TortureEnv): Promise<SectionResult> {
    const rounds = envInt('BAZIL_TORTURE_FLIP_ROUNDS', 20)
    const seed = baseSeed()
    const verbose = process.env.BAZIL_TORTURE_VERBOSE === '1'
    env.log(`seed ${seed} (replay: BAZIL_TORTURE_SEED=${seed}), ${rounds} rounds`)
    const rand = new Rand(seed)
    const t0 = Date.now()
    const ds = await buildDataSet(env.tmpDir, rand)
    const files = dataFiles(ds.template)
    env.log(`data set: ${files.length} files, ${files.reduce((s, f) => s + f.size, 0)} bytes in the data dir, ${ds.views.length} views, built in ${Date.now() - t0} ms`)
    const counts: Record<Verdict, number> = { detected: 0, harmless: 0, failure: 0 }
    const byArea = new Map<string, Record<Verdict, number>>()
    const failures: string[] = []
    const largestLoss: string[] = []
    const data = path.join(env.tmpDir, 'round')
    const scratch = path.join(env.tmpDir, 'scratch')
    fs.mkdirSync(scratch, { recursive: true })
    let servedRounds = 0
    const only = process.env.BAZIL_TORTURE_FLIP_ONLY
    for (let i = 0; i < rounds; i++) {
      if (only !== undefined && only !== '' && Number(only) !== i) continue
      // Each round has its own generator: one round replays alone (BAZIL_TORTURE_FLIP_ONLY).
      const flip = pickFlip(ds.template, new Rand((Math.imul(seed, 0x9e3779b1) + i) >>> 0))
      let passes: Pass[]
      if (flip.file === DEVICE_FILE) {
        applyFlip(ds.template, flip)
        try {
          passes = [await readPass(ds.template, ds, ds.views, scratch), await readPass(ds.template, ds, [''], scratch)]
        } finally {
          applyFlip(ds.template, flip)
        }
      } else {
        fs.rmSync(data, { recursive: true, force: true })
        fs.cpSync(ds.template, data, { recursive: true, preserveTimestamps: true, filter: (p) => path.relative(ds.template, p) !== DEVICE_FILE })
        applyFlip(data, flip)
        // Every fourth round the first pass goes through a server (the commands are handed to
        // it over its control socket): it must start or refuse with one clear line, survive
        // every read, and stop cleanly.
        passes = [i % 4 === 3 ? await serverPass(data, ds, scratch) : await readPass(data, ds, ds.views, scratch), await readPass(data, ds, [''], scratch, true)]
        servedRounds += i % 4 === 3 ? 1 : 0
      }
      const { verdict, why } = classify(flip, passes)
      counts[verdict]++
      const area = areaOf(flip.file)
      if (!byArea.has(area)) byArea.set(area, { detected: 0, harmless: 0, failure: 0 })
      byArea.get(area)![verdict]++
      const where = `${flip.file}@${flip.offset}/${flip.size} ^0x${flip.mask.toString(16)}`
      const lost = passes[1]!.unreadable.length
      if (lost > 1) largestLoss.push(`${where}: ${lost} file reads fail (${passes[1]!.unreadable.slice(0, 4).join(', ')})`)
      if (verdict === 'failure') failures.push(`round ${i} (replay: BAZIL_TORTURE_SEED=${seed} BAZIL_TORTURE_FLIP_ONLY=${i}): ${where}: ${why}`)
      if (verbose || verdict === 'failure') env.log(`round ${i}: ${verdict}: ${where}: ${why}`)
    }
    const figures: Record<string, number | string> = {
      seed,
      detected: counts.detected,
      harmless: counts.harmless,
      undetected_or_crash: counts.failure,
      through_server: servedRounds,
      by_area: [...byArea].map(([a, c]) => `${a}:${c.detected}/${c.harmless}/${c.failure}`).join(' ')
    }
    for (const l of largestLoss.slice(0, 5)) env.log(`more than one file unreadable after ${l}`)
    env.log(`by area (detected/harmless/failure): ${figures.by_area}`)
    return { rounds, failures, figures }
  }
}

/** The kind of data-dir file, for the per-area counts. */
function areaOf(rel: string): string {
  if (rel.startsWith('corestore/db/')) {
    const base = path.basename(rel)
    if (/^LOG/.test(base)) return 'rocksdb-infolog'
    if (/\.(sst|blob|log)$/.test(base)) return `rocksdb-${path.extname(base).slice(1)}`
    return `rocksdb-${base.replace(/-\d+$/, '')}`
  }
  if (rel.startsWith('index/')) return 'checkpoint'
  return rel.replace(/\/[^/]*$/, '/*')
}

export default section
