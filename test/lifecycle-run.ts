// Issue 11's property: random interleavings of writes, deletes, pins, evictions, garbage
// collection and partitions across three peers never make a file that some state references
// unreadable from every peer. Three real servers on a loopback DHT testnet, driven through the
// CLI; every peer writes, keeps the others' stores (copies 2), has a tiny cache budget and
// collects with no grace period (the harshest setting: spec/gc.md's rule W must carry it).
// A partition is a stopped server (it misses everything until it starts again).
// At the end every peer is up: the trees converge, and every file of the converged tree
// exports byte-exact (content as written) from every peer.
//
// Run by test/lifecycle-property.test.ts (npm test: one short seed) and
// torture/lifecycle-property.ts (`npm run lifecycle`: BAZIL_PROP_SEED, BAZIL_PROP_STEPS). The
// seed and the steps taken are in a failure's message, every server's log in a file it names.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PeerCluster, eventually } from './peer-setup.js'
import { tempDir } from './helpers.js'

const NAMES = ['a', 'b', 'c']
const DIRS = ['/d0', '/d1', '/d2']
const VOL = 'v'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** xorshift32: the run is a function of the seed. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1
  return (n) => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x % n
  }
}

interface Entry { name: string; path: string; kind: string; hash?: string }

/** One run of the property: `stepCount` random steps drawn from `seed`, then healing and the checks. */
export async function lifecycleProperty(seed: number, stepCount: number): Promise<void> {
  const c = await PeerCluster.create(NAMES, { env: { BAZIL_REMOTE_TIMEOUT_MS: '4000' } })
  const scratch = tempDir('bazil-prop-')
  const pick = rng(seed)
  const steps: string[] = []
  /** Every content ever written, by sha256: what an exported file must be one of. */
  const contents = new Map<string, Buffer>()
  /** Paths written (live or deleted), for deletes, pins and re-writes. */
  const paths: string[] = []
  const up = new Set(NAMES)
  /** `peer:dir` pinned now. */
  const pinned = new Set<string>()
  /** Exports that failed at first and were retried (reported, not failures). */
  const retries: string[] = []
  // On a failure every server's whole log goes to a file (named in the message): the message keeps the last warnings.
  const why = (): string => {
    const file = path.join(os.tmpdir(), `bazil-lifecycle-seed${seed}-${stepCount}-${process.pid}.log`)
    fs.writeFileSync(file, `${steps.join('\n')}\n${c.logs()}`)
    return `seed ${seed}; retried exports: ${retries.join('; ') || 'none'}; servers' logs: ${file}; steps:\n  ${steps.join('\n  ')}\n${c.logs().split('\n').filter((l) => /warn|error/.test(l)).slice(-60).join('\n')}`
  }
  try {
    await c.start(...NAMES)
    await c.run('a', ['volume', 'create', '--sharing=friends', VOL])
    await c.connect('a', 'b', VOL)
    await c.connect('a', 'c', VOL)
    // b and c talk to each other too, and keep each other's store.
    const [b, cc] = [c.get('b'), c.get('c')]
    await c.run('b', ['peer', 'add', cc.key])
    await c.run('c', ['peer', 'add', b.key])
    for (const [x, y] of [['b', cc], ['c', b]] as const) {
      await c.run(x, ['peer', 'storage', 'allow', y.key, 'local'])
      await c.run(x, ['peer', 'volume', 'allow', y.key, VOL])
      await c.run(x, ['volume', 'storage', 'add', VOL, `peerkey:${y.key}`])
    }
    await c.run('a', ['volume', 'copies', VOL, '2'])
    for (const n of NAMES) await c.run(n, ['cache', 'size', '1MiB'])

    /** One collection; false when it refuses to collect (a writer log not applied yet, a manifest it cannot read: spec/gc.md). */
    const gc = async (who: string): Promise<boolean> => {
      try {
        await c.run(who, ['volume', 'gc', '--grace=0', VOL])
        return true
      } catch (err) {
        if (/nothing was collected/.test((err as Error).message)) return false
        throw err
      }
    }

    let serial = 0
    const write = async (who: string): Promise<void> => {
      const reuse = contents.size > 0 && pick(3) === 0
      const data = reuse ? [...contents.values()][pick(contents.size)]! : randomBytes(pick(4) === 0 ? 1_200_000 + pick(900_000) : 1 + pick(200_000))
      contents.set(sha(data), data)
      const over = paths.length > 0 && pick(3) === 0
      const target = over ? paths[pick(paths.length)]! : `${DIRS[pick(DIRS.length)]}/f${serial++}`
      const src = path.join(scratch.dir, `w${serial++}`)
      fs.mkdirSync(src)
      fs.writeFileSync(path.join(src, path.basename(target)), data)
      await c.run(who, ['volume', 'import', `--to=${path.dirname(target)}`, VOL, src])
      if (!paths.includes(target)) paths.push(target)
      steps.push(`${who}: write ${target} (${data.length} bytes${reuse ? ', reused content' : ''})`)
    }

    for (let i = 0; i < stepCount; i++) {
      const live = [...up]
      const who = live[pick(live.length)]!
      const op = pick(10)
      if (op <= 3 || paths.length === 0) await write(who)
      else if (op === 4) {
        const p = paths[pick(paths.length)]!
        const r = await c.run(who, ['volume', 'ls', '--json', VOL, path.dirname(p)]).catch(() => null)
        const here = r ? (JSON.parse(r.stdout) as Entry[]).some((e) => e.path === p) : false
        if (here) await c.run(who, ['volume', 'rm', VOL, p])
        steps.push(`${who}: rm ${p}${here ? '' : ' (not there: skipped)'}`)
      } else if (op === 5) {
        const d = DIRS[pick(DIRS.length)]!
        const r = await c.run(who, ['volume', 'ls', '--json', VOL, '/'])
        if ((JSON.parse(r.stdout) as Entry[]).some((e) => e.path === d)) {
          const key = `${who}:${d}`
          const verb = pinned.has(key) ? 'unpin' : 'pin'
          await c.run(who, [verb, VOL, d])
          if (verb === 'pin') pinned.add(key)
          else pinned.delete(key)
          steps.push(`${who}: ${verb} ${d}`)
        }
      } else if (op === 6) {
        await c.run(who, ['cache', 'size', pick(2) === 0 ? '1MiB' : '4MiB'])
        steps.push(`${who}: cache size`)
      } else if (op === 7) {
        steps.push(`${who}: gc${await gc(who) ? '' : ' (refused)'}`)
      } else if (op === 8 && up.size > 1) {
        await c.stop(who)
        up.delete(who)
        steps.push(`${who}: stop (partitioned)`)
      } else {
        const down = NAMES.filter((n) => !up.has(n))
        if (down.length > 0) {
          const n = down[pick(down.length)]!
          await c.start(n)
          up.add(n)
          steps.push(`${n}: start`)
        } else await write(who)
      }
    }

    // Heal: every peer up; the trees must converge, and then every peer collects once more.
    await c.start(...NAMES)
    steps.push('all: start')
    const listing = async (who: string): Promise<string[]> => {
      const out: string[] = []
      const walk = async (dir: string): Promise<void> => {
        const r = await c.run(who, ['volume', 'ls', '--json', VOL, dir])
        for (const e of JSON.parse(r.stdout) as Entry[]) {
          if (e.kind === 'dir') await walk(e.path)
          else out.push(`${e.path} ${e.hash}`)
        }
      }
      await walk('/')
      return out.sort()
    }
    let trees: string[][] = []
    await eventually('the three trees converge', async () => {
      trees = await Promise.all(NAMES.map(listing))
      return trees.every((t) => t.join('\n') === trees[0]!.join('\n'))
    }, 120_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${trees.map((t, k) => `${NAMES[k]}:\n  ${t.join('\n  ')}`).join('\n')}\n${why()}`))

    for (const n of NAMES) await eventually(`${n} collects`, () => gc(n), 60_000, 500)
    steps.push('all: gc')

    // Every file of the converged tree reads from every peer, as written.
    for (const n of NAMES) {
      const dest = path.join(scratch.dir, `export-${n}`)
      // A peer that just started may not have its sources connected yet: a missing chunk is
      // retried for a while (the property is "readable", not "readable at once").
      let lastErr: Error | null = null
      const deadline = Date.now() + 60_000
      for (;;) {
        fs.rmSync(dest, { recursive: true, force: true })
        lastErr = await c.run(n, ['volume', 'export', VOL, dest]).then(() => null, (err: Error) => err)
        if (!lastErr || !/is not held locally|timed out/.test(lastErr.message) || Date.now() > deadline) break
        retries.push(`${n}: ${lastErr.message.split('\n')[0]}`)
        await new Promise((res) => setTimeout(res, 2000))
      }
      const r = await (lastErr ? Promise.reject(lastErr) : Promise.resolve({ code: 0 })).catch(async (err: Error) => {
        // Where each peer says the failing file's content is: the first thing to look at.
        const bad = /bazil: (\/[^:]+):/.exec(err.message)?.[1]
        const where = bad ? await Promise.all(NAMES.map(async (m) => `${m}: ${await c.run(m, ['where', VOL, bad]).then((x) => x.stdout, (e: Error) => e.message.split('\n')[0])}`)) : []
        const peers = await c.run(n, ['peer', 'list']).then((x) => x.stdout, (e: Error) => e.message.split('\n')[0])
        return assert.fail(`export on ${n} failed: ${err.message.split('\n')[0]}\n${where.join('\n')}\n${n}'s peers:\n${peers}\n${why()}`)
      })
      assert.equal(r.code, 0)
      let files = 0
      const check = (dir: string): void => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, e.name)
          if (e.isDirectory()) check(p)
          else {
            files++
            assert.ok(contents.has(sha(fs.readFileSync(p))), `${n}: ${path.relative(dest, p)} is not content that was written\n${why()}`)
          }
        }
      }
      check(dest)
      assert.equal(files, trees[0]!.length, `${n} exported ${files} files of ${trees[0]!.length}\n${why()}`)
    }
    if (retries.length > 0) process.stderr.write(`lifecycle property: exports retried: ${retries.join('; ')}\n`)
  } finally {
    await c.close()
    scratch.cleanup()
  }
}
