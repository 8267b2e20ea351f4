// The random schedules of the convergence property tests (test/convergence.test.ts,
// test/tree-shard-split.test.ts): ops of three writers, partitions and reconnections, what must
// not be lost, and the Tree-level harness that runs a schedule and checks every replica agrees.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { hash } from '../src/crypto.js'
import { Tree, TreeError, canonicalDump, type ShardChange, type TreeOptions } from '../src/tree/index.js'

const SEED = process.env.BAZIL_PROPERTY_SEED === undefined ? undefined : Number(process.env.BAZIL_PROPERTY_SEED)
const PATH = process.env.BAZIL_PROPERTY_PATH
export const ACTORS = ['aa'.repeat(16), 'bb'.repeat(16), 'cc'.repeat(16)]
const NAMES = ['a', 'b', 'c', 'd']

// ---- schedules ---------------------------------------------------------------------------

export type Op =
  | { t: 'file'; w: number; dir: number; name: number }
  | { t: 'write'; w: number; file: number }
  | { t: 'mkdir'; w: number; dir: number; name: number }
  | { t: 'move'; w: number; src: number; dir: number; name: number }
  /** Moves a directory into another one, keeping its name: concurrent ones make cycles. */
  | { t: 'mvdir'; w: number; src: number; dir: number }
  | { t: 'unlink'; w: number; file: number }
  | { t: 'rmdir'; w: number; dir: number }
  | { t: 'chmod'; w: number; src: number; mode: number }
  | { t: 'resolve'; w: number; file: number; keep: 'mine' | 'theirs' | 'both' }
  /** A hard link to a file (spec/tree.md "Hard links"): then writes, moves and unlinks through either name. */
  | { t: 'link'; w: number; file: number; dir: number; name: number }
  /** Connectivity changes: `links` is a bit set over the pairs (0,1) (0,2) (1,2). */
  | { t: 'net'; links: number }

const w = fc.nat(2)
const i = fc.nat(20)
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('file' as const), w, dir: i, name: fc.nat(NAMES.length - 1) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('write' as const), w, file: i }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('mkdir' as const), w, dir: i, name: fc.nat(NAMES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('move' as const), w, src: i, dir: i, name: fc.nat(NAMES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('mvdir' as const), w, src: i, dir: i }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('unlink' as const), w, file: i }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('rmdir' as const), w, dir: i }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('chmod' as const), w, src: i, mode: fc.constantFrom(0o600, 0o644, 0o755, 0o700) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('resolve' as const), w, file: i, keep: fc.constantFrom('mine' as const, 'theirs' as const, 'both' as const) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('link' as const), w, file: i, dir: i, name: fc.nat(NAMES.length - 1) }) },
  // Mostly all-connected or all-partitioned, so that shared state is edited concurrently.
  { weight: 4, arbitrary: fc.record({ t: fc.constant('net' as const), links: fc.oneof(fc.constantFrom(0, 7, 0, 7), fc.nat(7)) }) },
)
export const scheduleArb = fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' })

export const PAIRS: [number, number][] = [[0, 1], [0, 2], [1, 2]]

/** What a schedule must not lose: every content hash written and not knowingly superseded. */
export class Ledger {
  private next = 1
  readonly written = new Set<string>()
  readonly superseded = new Set<string>()
  /** Writes a fresh content hash with `fn`; counted only if the write happened. */
  write(fn: (hash: string) => void): void {
    const h = (this.next++).toString(16).padStart(64, '0')
    fn(h)
    this.written.add(h)
  }
  supersede(hashes: Iterable<string>): void { for (const h of hashes) this.superseded.add(h) }
  mustSurvive(): string[] { return [...this.written].filter((h) => !this.superseded.has(h)) }
}

/** The view a writer acts on: what its tree shows now. */
export interface Actor {
  walk(): { path: string; kind: string; id: string }[]
  versionHashes(path: string): string[]
  file(path: string, hash: string): void
  mkdir(path: string): void
  rename(from: string, to: string): void
  unlink(path: string): void
  rmdir(path: string): void
  chmod(path: string, mode: number): void
  resolve(path: string, keep: 'mine' | 'theirs' | 'both'): void
  link(from: string, to: string): void
}

/** Runs one op on one writer; tree errors (EEXIST, ENOTEMPTY...) make it a no-op, as for a user. */
export function runOp(a: Actor, op: Exclude<Op, { t: 'net' }>, ledger: Ledger): void {
  const all = a.walk()
  const dirs = all.filter((s) => s.kind === 'dir').map((s) => s.path)
  const files = all.filter((s) => s.kind === 'file').map((s) => s.path)
  const nonRoot = all.slice(1).map((s) => s.path)
  const pick = <T>(xs: T[], k: number): T | undefined => (xs.length === 0 ? undefined : xs[k % xs.length])
  const join = (d: string, n: string): string => (d === '/' ? '/' + n : d + '/' + n)
  // A conflict copy's id is `<node id>:<version>`; a node whose name lost a clash is no copy.
  const isCopy = (p: string): boolean => all.find((s) => s.path === p)?.id.includes(':') ?? false
  try {
    switch (op.t) {
      case 'file': {
        const p = join(pick(dirs, op.dir)!, NAMES[op.name])
        const seen = all.some((s) => s.path === p && s.kind === 'file') ? a.versionHashes(p) : []
        if (isCopy(p)) return
        ledger.write((h) => a.file(p, h))
        ledger.supersede(seen)
        return
      }
      case 'write': {
        const p = pick(files, op.file)
        if (p === undefined) return
        const seen = a.versionHashes(p)
        if (isCopy(p)) return // copies are read-only
        ledger.write((h) => a.file(p, h))
        ledger.supersede(seen)
        return
      }
      case 'mkdir': a.mkdir(join(pick(dirs, op.dir)!, NAMES[op.name])); return
      case 'move': {
        const src = pick(nonRoot, op.src)
        if (src === undefined) return
        const to = join(pick(dirs, op.dir)!, NAMES[op.name])
        const target = all.find((s) => s.path === to)
        const seen = target?.kind === 'file' ? a.versionHashes(to) : []
        a.rename(src, to)
        ledger.supersede(seen)
        return
      }
      case 'mvdir': {
        const src = pick(dirs.slice(1), op.src)
        if (src === undefined) return
        const dst = pick(dirs.slice(1), op.dir)
        if (dst !== undefined) a.rename(src, join(dst, src.slice(src.lastIndexOf('/') + 1)))
        return
      }
      case 'unlink': {
        const p = pick(files, op.file)
        if (p === undefined) return
        const seen = a.versionHashes(p)
        a.unlink(p)
        // Unlinking a conflict copy settles the conflict: every version but the winner goes.
        ledger.supersede(isCopy(p) ? seen.slice(1) : seen)
        return
      }
      case 'rmdir': {
        const p = pick(dirs.slice(1), op.dir)
        if (p !== undefined) a.rmdir(p)
        return
      }
      case 'chmod': {
        const p = pick(nonRoot, op.src)
        if (p !== undefined) a.chmod(p, op.mode)
        return
      }
      case 'link': {
        const p = pick(files, op.file)
        if (p !== undefined && !isCopy(p)) a.link(p, join(pick(dirs, op.dir)!, NAMES[op.name]))
        return
      }
      case 'resolve': {
        const p = pick(files, op.file)
        if (p === undefined) return
        const seen = a.versionHashes(p)
        if (seen.length < 2) return
        a.resolve(p, op.keep)
        if (op.keep !== 'both') ledger.supersede(seen) // the kept one is written again, counted below
        return
      }
    }
  } catch (e) {
    if (!(e instanceof TreeError)) throw e
  }
}

/** Every schedule starts from a state all writers share: three sibling dirs, each with a file. */
export function seedState(a: Actor, ledger: Ledger): void {
  for (const d of ['/A', '/B', '/C']) {
    a.mkdir(d)
    ledger.write((h) => a.file(`${d}/f`, h))
  }
}

/** Content hashes reachable in a dump (files and conflict copies). */
export function hashesIn(dump: string[]): Set<string> {
  return new Set(dump.map((l) => l.split('\t')[4]).filter((h) => h.length === 64))
}

/**
 * Runs a property; a failure throws with the shrunk schedule, the seed and path to replay
 * it (BAZIL_PROPERTY_SEED / BAZIL_PROPERTY_PATH), and the assertion that failed.
 */
export function checkProperty<T>(prop: fc.IProperty<T> | fc.IAsyncProperty<T>, numRuns: number): void | Promise<void> {
  const params = { numRuns, seed: SEED, path: PATH, endOnFailure: false }
  const report = (out: fc.RunDetails<T>): void => {
    if (!out.failed) return
    const err = out.errorInstance as Error | undefined
    throw new Error(`${fc.defaultReportMessage(out)}\nreplay: BAZIL_PROPERTY_SEED=${out.seed} BAZIL_PROPERTY_PATH=${out.counterexamplePath}\nfailure: ${err?.message ?? String(err)}`)
  }
  const out = fc.check(prop as fc.IProperty<T>, params)
  if (out instanceof Promise) return out.then(report)
  report(out)
}

// ---- the Tree-level harness ---------------------------------------------------------------

/** Deterministic clock and ids per writer, so a schedule replays exactly. */
function treeOpts(k: number): TreeOptions {
  let t = 1_000_000 + k
  let r = 0
  return {
    clock: () => (t += 3),
    random: (n) => hash(Buffer.from(`${k}:${r++}`)).toString('hex').slice(0, n * 2),
  }
}

export class TreeActor implements Actor {
  constructor(readonly tree: Tree) {}
  walk() { return [...this.tree.walk('/')] }
  versionHashes(p: string) { return this.tree.versions(p).map((v) => v.hash) }
  file(p: string, hash: string) { this.tree.writeFile(p, { hash, size: 1 }) }
  mkdir(p: string) { this.tree.mkdir(p) }
  rename(a: string, b: string) { this.tree.rename(a, b) }
  unlink(p: string) { this.tree.unlink(p) }
  rmdir(p: string) { this.tree.rmdir(p) }
  chmod(p: string, mode: number) { this.tree.setattr(p, { mode }) }
  resolve(p: string, keep: 'mine' | 'theirs' | 'both') { this.tree.resolve(p, keep) }
  link(a: string, b: string) { this.tree.link(a, b) }
}

/**
 * Three writers, each with its own log of changes. Connected writers exchange everything
 * they hold of every log (hypercore replication relays other writers' logs too), applying
 * another writer's log in log order; the order across logs follows the link order.
 */
/** Returns the shards every replica ended with (the three writers, then a fresh replica). */
export function runTreeSchedule(ops: Op[], opts: (k: number) => TreeOptions = () => ({})): string[][] {
  const trees = ACTORS.map((a, k) => Tree.create(a, { ...treeOpts(k), ...opts(k) }))
  const logs: ShardChange[][] = trees.map(() => [])
  const have = trees.map((_, k) => trees.map((__, j) => (j === k ? Infinity : 0)))
  const ledger = new Ledger()
  let links = 0
  const exchange = (): void => {
    trees.forEach((t, k) => logs[k].push(...t.takeChanges()))
    for (let round = 0; round < 2; round++) {
      PAIRS.forEach(([x, y], bit) => {
        if (!(links & (1 << bit))) return
        for (const [from, to] of [[x, y], [y, x]]) {
          for (let j = 2; j >= 0; j--) {
            const upto = Math.min(have[from][j], logs[j].length)
            if (upto > have[to][j]) {
              trees[to].applyChanges(logs[j].slice(have[to][j], upto))
              have[to][j] = upto
            }
          }
        }
      })
    }
  }
  try {
    seedState(new TreeActor(trees[0]), ledger)
    links = 7
    exchange()
    links = 0
    let brokeCycle = false
    for (const op of ops) {
      if (op.t === 'net') links = op.links
      else runOp(new TreeActor(trees[op.w]), op, ledger)
      exchange()
      brokeCycle ||= trees.some((t) => t.brokenCount > 0)
    }
    links = 7
    exchange()
    const kept = new Set(ledger.mustSurvive())
    const dumps = trees.map((t) => canonicalDump(t))
    // A replica that gets every change at once, newest first (dependencies arrive late).
    const fresh = Tree.create('dd'.repeat(16))
    fresh.applyChanges(logs.flat().reverse())
    dumps.push(canonicalDump(fresh))
    for (const [k, t] of [...trees, fresh].entries()) {
      assert.deepEqual(dumps[k], dumps[0], `writer ${k} differs from writer 0`)
      assert.deepEqual(t.audit(), [], `writer ${k} view invariants`)
    }
    stats.runs++
    if (trees[0].conflicts().length > 0) stats.withContentConflict++
    if (dumps[0].some((l) => /\.conflict-[0-9a-f]{8}(~\d+)?\t(dir|symlink)/.test(l))) stats.withNameConflict++
    if (brokeCycle) stats.withCycleBroken++
    if ([...trees[0].walk('/')].some((s) => (s.nlink ?? 1) > 1)) stats.withLinks++
    const present = hashesIn(dumps[0])
    const lost = [...kept].filter((h) => !present.has(h))
    assert.deepEqual(lost, [], 'file versions lost')
    const shards = [...trees, fresh].map((t) => Object.keys(t.heads()).sort())
    fresh.free()
    return shards
  } finally {
    for (const t of trees) t.free()
  }
}

/** How often schedules reach the interesting cases (printed, so a weak generator shows). */
export const stats = { runs: 0, withContentConflict: 0, withNameConflict: 0, withCycleBroken: 0, withLinks: 0 }
