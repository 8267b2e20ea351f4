// History and audit (spec/history.md): log show's filters (a path followed through renames,
// since/until, writer), a file's versions across renames, deletes and conflicts, restoring
// one as a logged op that replicates to the other peer and shows in both FUSE mounts, who
// changed what, and bad arguments refused with one line and no state change.
// One node through the CLI; then two real servers on a loopback DHT testnet with mounts.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import type { HistoryVersion, LogRow, Results } from '../src/control/requests.js'
import { bazil, tempDir, type RunResult } from './helpers.js'
import { PeerCluster, eventually, hasFuse, mountTree, sh } from './peer-setup.js'

const VOL = 'myfiles'

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`)
  return r
}

/** `args` must fail with one line on stderr matching `re`. */
function refused(r: { code: number; stderr: string }, re: RegExp, what: string): void {
  assert.notEqual(r.code, 0, `${what} should fail`)
  assert.match(r.stderr, re, what)
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${what}: ${r.stderr}`)
}

describe('one node: log show filters, history, restore, blame, bad arguments', () => {
  const { dir, cleanup } = tempDir()
  const data = path.join(dir, 'data')
  const src = path.join(dir, 'src')
  const run = async (...args: string[]): Promise<RunResult> => ok(await bazil(data, args), args.join(' '))
  const rows = async (...filters: string[]): Promise<LogRow[]> => JSON.parse((await run('log', 'show', '--json', ...filters, VOL)).stdout) as LogRow[]
  const history = async (p: string): Promise<Results['volume.history']> => JSON.parse((await run('volume', 'history', '--json', VOL, p)).stdout) as Results['volume.history']

  before(async () => {
    await run('create')
    await run('volume', 'create', VOL)
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'a.txt'), 'one\n')
    await run('volume', 'import', VOL, src)
    fs.writeFileSync(path.join(src, 'a.txt'), 'two\n')
    await run('volume', 'import', VOL, src)
    await run('volume', 'mkdir', VOL, '/d')
    await run('volume', 'mv', VOL, '/a.txt', '/d/b.txt')
    await run('volume', 'snapshot', 'create', VOL, 'snap1')
    fs.writeFileSync(path.join(src, 'a.txt'), 'other file\n')
    await run('volume', 'import', VOL, src, '--to=/e')
    await run('volume', 'rm', VOL, '/d/b.txt')
  })
  after(() => cleanup())

  test('log show --path follows the file back through its rename; a directory takes what is below it', async () => {
    const onFile = await rows('--path=/d/b.txt')
    assert.deepEqual(onFile.map((r) => [r.op, r.path, r.to]), [['write', '/a.txt', undefined], ['write', '/a.txt', undefined], ['rename', '/a.txt', '/d/b.txt'], ['unlink', '/d/b.txt', undefined]])
    const onDir = await rows('--path=/d')
    assert.deepEqual(onDir.map((r) => [r.op, r.path]), [['mkdir', '/d'], ['rename', '/a.txt'], ['unlink', '/d/b.txt']])
    // The other /a.txt (imported under /e) is no part of it.
    assert.ok(!onFile.some((r) => r.path === '/e/a.txt'))
    assert.deepEqual(await rows('--path=/nothing/here'), [])
  })

  test('a file\'s history follows the rename of a directory above it', async () => {
    fs.writeFileSync(path.join(src, 'a.txt'), 'in p\n')
    await run('volume', 'import', VOL, src, '--to=/p')
    await run('volume', 'mv', VOL, '/p', '/q')
    const h = await history('/q/a.txt')
    assert.deepEqual(h.versions.map((v) => [v.op, v.path, v.to]), [['write', '/p/a.txt', undefined], ['rename', '/p', '/q']])
    assert.ok(h.versions[0]!.current)
    assert.deepEqual((await rows('--path=/q')).map((r) => [r.op, r.path]), [['mkdir', '/p'], ['write', '/p/a.txt'], ['setattr', '/p'], ['rename', '/p']])
    await run('volume', 'rm', VOL, '-r', '/q')
  })

  test('log show --since/--until take ISO 8601 and times ago, inclusive', async () => {
    const all = await rows()
    const times = [...new Set(all.map((r) => r.time))]
    assert.ok(times.length >= 5, JSON.stringify(times))
    const mid = times[2]!
    assert.deepEqual(await rows(`--since=${mid}`), all.filter((r) => r.time >= mid))
    assert.deepEqual(await rows(`--until=${mid}`), all.filter((r) => r.time <= mid))
    assert.deepEqual(await rows(`--since=${mid}`, `--until=${mid}`), all.filter((r) => r.time === mid))
    assert.deepEqual(await rows('--since=30d'), all)
    assert.deepEqual(await rows('--until=30d'), [])
    assert.deepEqual(await rows('--since=2999-01-01'), [])
    // The text form: one line per row, the same rows.
    assert.equal((await run('log', 'show', `--since=${mid}`, VOL)).stdout.trim().split('\n').length, all.filter((r) => r.time >= mid).length)
  })

  test('volume history of a deleted file, through its rename; restore brings versions back as new ones', async () => {
    const h = await history('/d/b.txt')
    assert.equal(h.exists, false)
    assert.deepEqual(h.versions.map((v) => [v.op, v.path]), [['write', '/a.txt'], ['write', '/a.txt'], ['rename', '/a.txt'], ['delete', '/d/b.txt']])
    const [one, two] = [h.versions[0]!, h.versions[1]!]
    assert.equal(one.size, 4)
    assert.equal(one.writer.self, true)
    // A deleted path is made again with its first version.
    assert.match((await run('volume', 'restore', VOL, '/d/b.txt', `--version=${one.hash!.slice(0, 8)}`)).stdout, /restored \/d\/b\.txt .* made again/)
    assert.equal((await run('volume', 'cat', VOL, '/d/b.txt')).stdout, 'one\n')
    // Over the existing file: a new version; the replaced one stays in the history.
    await run('volume', 'restore', VOL, 'd/b.txt', `--version=${two.hash!}`)
    assert.equal((await run('volume', 'cat', VOL, '/d/b.txt')).stdout, 'two\n')
    const after = await history('/d/b.txt')
    assert.equal(after.exists, true)
    assert.deepEqual(after.versions.slice(4).map((v) => [v.op, v.hash, v.kind, v.current]), [['restore', one.hash, 'version', undefined], ['restore', two.hash, 'version', true]])
    // The same content again logs nothing.
    const before = (await run('log', 'show', '--json', VOL)).stdout
    assert.match((await run('volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1')).stdout, /has this content already/)
    assert.equal((await run('log', 'show', '--json', VOL)).stdout, before)
    // From a snapshot, to another path whose directories do not exist.
    await run('volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1', '--to=/x/y/old.txt')
    assert.equal((await run('volume', 'cat', VOL, '/x/y/old.txt')).stdout, 'two\n')
    const logged = (await rows('--path=/x/y/old.txt')).at(-1)!
    assert.deepEqual([logged.op, logged.kind, logged.target], ['restore', 'snapshot', 'snap1'])
  })

  test('log blame: per entry of a directory, subdirectories summed, renames followed', async () => {
    const b = JSON.parse((await run('log', 'blame', '--json', VOL)).stdout) as Results['log.blame']
    assert.deepEqual(b.rows.map((r) => r.path), ['/d', '/e', '/x'])
    for (const r of b.rows) {
      assert.ok(r.last, r.path)
      assert.equal(r.writers.length, 1)
      assert.equal(r.writers[0]!.changes, r.changes)
      assert.equal(r.writers[0]!.writer.self, true)
    }
    // /d: its mkdir and the two restores of b.txt (the file's earlier life ended at its delete).
    assert.equal(b.rows[0]!.changes, 3)
    assert.equal(b.rows[0]!.last!.op, 'restore')
    const file = JSON.parse((await run('log', 'blame', '--json', VOL, '/e/a.txt')).stdout) as Results['log.blame']
    assert.deepEqual(file.rows.map((r) => [r.path, r.changes, r.last?.op]), [['/e/a.txt', 1, 'write']])
    assert.match((await run('log', 'blame', VOL)).stdout, /^\/d\/\t3 changes\t\S+ restore by \S+ \(this node\)/m)
  })

  test('bad arguments: one line, nothing logged', async () => {
    const before = (await run('log', 'show', '--json', VOL)).stdout
    const cases: [string[], RegExp][] = [
      [['volume', 'restore', VOL, '/d/b.txt', '--version=00000000'], /no version of \/d\/b\.txt has a hash starting with 00000000/],
      [['volume', 'restore', VOL, '/d/b.txt', '--version=abc'], /--version must be 8 or more hex digits/],
      [['volume', 'restore', VOL, '/d/b.txt', '--snapshot=nope'], /no snapshot "nope"/],
      [['volume', 'restore', VOL, '/e/a.txt', '--snapshot=snap1'], /snapshot "snap1" of volume "myfiles" has no \/e\/a\.txt/],
      [['volume', 'restore', VOL, '/d/b.txt'], /--version=HASH .* or --snapshot=NAME/],
      [['volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1', '--version=12345678'], /one of them/],
      [['volume', 'restore', VOL, '../outside', '--snapshot=snap1'], /"\.\." is reserved/],
      [['volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1', '--to=/d/../../x'], /"\.\." is reserved/],
      [['volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1', '--to=/e'], /\/e is a directory: restore to another path with --to/],
      [['volume', 'restore', VOL, '/d/b.txt', '--snapshot=snap1', '--to=/e/a.txt/under'], /not a directory/],
      [['volume', 'history', VOL, '/never/was'], /no op of volume "myfiles" names \/never\/was/],
      [['volume', 'history', 'nosuch', '/a'], /unknown volume "nosuch"/],
      [['log', 'show', '--since=yesterday', VOL], /--since: "yesterday" is neither an ISO 8601 time/],
      [['log', 'show', '--since=2026-13-45', VOL], /not a valid ISO 8601 time/],
      [['log', 'show', '--since=1h', '--until=2h', VOL], /--since .* is after --until/],
      [['log', 'show', '--writer=ybndrfg8ejkmcpqxot1uwisza345h769ybndrfg8ejkmcpqxot1u', VOL], /has no writer log or node/],
      [['log', 'blame', VOL, '/nope'], /nope/]
    ]
    for (const [args, re] of cases) refused(await bazil(data, args), re, args.join(' '))
    assert.equal((await run('log', 'show', '--json', VOL)).stdout, before)
  })

  test('a version whose content is gone (collected by gc) is refused, naming it', async () => {
    fs.writeFileSync(path.join(src, 'a.txt'), 'short-lived\n')
    await run('volume', 'import', VOL, src, '--to=/gone')
    const h = await history('/gone/a.txt')
    await run('volume', 'rm', VOL, '-r', '/gone')
    await run('volume', 'gc', VOL, '--grace=0')
    const before = (await run('log', 'show', '--json', VOL)).stdout
    refused(await bazil(data, ['volume', 'restore', VOL, '/gone/a.txt', `--version=${h.versions[0]!.hash!.slice(0, 12)}`]), /version \S+ of \/gone\/a\.txt is not held on this node and could not be fetched .*: connect a peer that holds it/, 'restore of collected content')
    assert.equal((await run('log', 'show', '--json', VOL)).stdout, before)
  })
})

/** Shell-quotes a string (single quotes). */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

async function shOk(script: string, what: string): Promise<void> {
  const r = await sh(script)
  assert.equal(r.code, 0, `${what}: ${r.out}`)
}

const write = (mnt: string, p: string, content: string): string => `printf %s ${q(content)} > ${q(`${mnt}/${p}`)} && sync ${q(`${mnt}/${p}`)}`

describe('two peers: history and restore across renames, deletes and conflicts, seen in both mounts', { skip: !hasFuse }, () => {
  let c: PeerCluster
  let W = ''
  let B = ''
  const read = async (mnt: string, p: string): Promise<string | null> => {
    const r = await sh(`cat ${q(`${mnt}/${p}`)} 2>/dev/null`)
    return r.code === 0 ? r.out : null
  }
  const history = async (peer: string, p: string): Promise<Results['volume.history']> => JSON.parse((await c.run(peer, ['volume', 'history', '--json', VOL, p])).stdout) as Results['volume.history']
  const inMount = (peer: string, p: string, content: string | null): Promise<void> =>
    eventually(`${p} ${content === null ? 'gone' : `reads ${JSON.stringify(content)}`} in ${peer}'s mount`, async () => (await read(c.get(peer).mnt, p)) === content, 30_000, 100)

  before(async () => {
    c = await PeerCluster.create(['white', 'black'], { env: { BAZIL_REMOTE_TIMEOUT_MS: '3000' } })
    W = c.get('white').key
    B = c.get('black').key
    await c.shareMounted(VOL, 'white', 'black')
  })
  after(async () => {
    await c?.close()
  })

  test('a file written and renamed on white, restored on black: the old content is back in both mounts', { timeout: 120_000 }, async () => {
    const wmnt = c.get('white').mnt
    const bmnt = c.get('black').mnt
    await shOk(`${write(wmnt, 'doc.txt', 'v1\n')} && ${write(wmnt, 'doc.txt', 'v2, longer\n')} && mkdir ${q(`${wmnt}/docs`)} && mv ${q(`${wmnt}/doc.txt`)} ${q(`${wmnt}/docs/doc.txt`)}`, 'white writes and renames')
    await inMount('black', 'docs/doc.txt', 'v2, longer\n')
    const h = await history('black', '/docs/doc.txt')
    // (A file made through a mount is logged as made empty, then written.)
    const writes = h.versions.filter((v) => v.op === 'write' && v.size! > 0)
    assert.deepEqual(writes.map((v) => [v.path, v.size]), [['/doc.txt', 3], ['/doc.txt', 11]], JSON.stringify(h))
    assert.equal(h.versions.at(-1)!.op, 'rename')
    // Black names white's writes by white's node key.
    assert.ok(writes.every((v) => v.writer.node === W && v.writer.self === undefined), JSON.stringify(writes))
    assert.ok(writes[1]!.current)

    await c.run('black', ['volume', 'restore', VOL, '/docs/doc.txt', `--version=${writes[0]!.hash!.slice(0, 10)}`])
    await inMount('black', 'docs/doc.txt', 'v1\n')
    await inMount('white', 'docs/doc.txt', 'v1\n')
    // White's history has black's restore, the version it replaced still there.
    await eventually('the restore in white\'s history', async () => (await history('white', '/docs/doc.txt')).versions.some((v) => v.op === 'restore'), 15_000)
    const hw = await history('white', '/docs/doc.txt')
    const restore = hw.versions.at(-1)!
    assert.deepEqual([restore.op, restore.hash, restore.writer.node, restore.current], ['restore', writes[0]!.hash, B, true])
    assert.ok(hw.versions.some((v) => v.hash === writes[1]!.hash), 'the replaced version stays in the history')

    // log show on white, filtered: the path through its rename; black's ops alone.
    const onPath = JSON.parse((await c.run('white', ['log', 'show', '--json', '--path=/docs/doc.txt', VOL])).stdout) as LogRow[]
    assert.deepEqual(onPath.filter((r) => r.op !== 'write' || r.size !== 0).map((r) => r.op), ['write', 'write', 'rename', 'restore'])
    const byBlack = JSON.parse((await c.run('white', ['log', 'show', '--json', `--writer=${B}`, VOL])).stdout) as LogRow[]
    assert.ok(byBlack.length > 0)
    assert.ok(byBlack.every((r) => r.writer === byBlack[0]!.writer), 'one log: black\'s')
    assert.ok(byBlack.some((r) => r.op === 'restore') && !byBlack.some((r) => r.op === 'write'), JSON.stringify(byBlack))
    const sinceRestore = JSON.parse((await c.run('white', ['log', 'show', '--json', `--since=${restore.time}`, VOL])).stdout) as LogRow[]
    assert.ok(sinceRestore.every((r) => r.time >= restore.time) && sinceRestore.some((r) => r.op === 'restore'))
    // Blame on white: the directory's last change is black's restore; both writers counted.
    const blame = JSON.parse((await c.run('white', ['log', 'blame', '--json', VOL, '/docs'])).stdout) as Results['log.blame']
    const row = blame.rows.find((r) => r.path === '/docs/doc.txt')!
    assert.equal(row.last?.writer.node, B)
    assert.deepEqual(row.writers.map((x) => x.writer.node), [W, B], JSON.stringify(row))
    assert.ok(row.writers[0]!.changes >= 3 && row.writers[1]!.changes === 1, JSON.stringify(row))
  })

  test('a file deleted on white, restored on black: it is back in white\'s mount', { timeout: 120_000 }, async () => {
    const wmnt = c.get('white').mnt
    await shOk(`rm ${q(`${wmnt}/docs/doc.txt`)}`, 'white deletes')
    await inMount('black', 'docs/doc.txt', null)
    const h = await history('black', '/docs/doc.txt')
    assert.equal(h.exists, false)
    assert.equal(h.versions.at(-1)!.op, 'delete')
    const v2 = h.versions.find((v) => v.size === 11)!
    await c.run('black', ['volume', 'restore', VOL, 'docs/doc.txt', `--version=${v2.hash}`])
    await inMount('white', 'docs/doc.txt', 'v2, longer\n')
    await inMount('black', 'docs/doc.txt', 'v2, longer\n')
  })

  test('concurrent edits while apart: the conflict copy is in the history, and its version can be restored', { timeout: 180_000 }, async () => {
    const wmnt = c.get('white').mnt
    const bmnt = c.get('black').mnt
    await inMount('black', 'docs/doc.txt', 'v2, longer\n')
    // Black goes away and restores v1 there (no server: the CLI opens the data dir), while white writes.
    await c.stop('black')
    const v1 = (await history('white', '/docs/doc.txt')).versions.find((v) => v.size === 3)!
    await c.run('black', ['volume', 'restore', VOL, '/docs/doc.txt', `--version=${v1.hash}`])
    await shOk(write(wmnt, 'docs/doc.txt', 'white while apart\n'), 'white writes while apart')
    await c.start('black')
    // They meet again: one version keeps the name, the other is a conflict copy, on both.
    let copy = ''
    await eventually('a conflict copy of doc.txt in white\'s mount', async () => {
      const t = await mountTree(wmnt)
      copy = t.lines.map((l) => /^f (docs\/doc\.txt\.conflict-[0-9a-f]{8}) /.exec(l)?.[1]).find((x) => x !== undefined) ?? ''
      return copy !== ''
    }, 60_000, 200)
    await eventually('the same conflict copy in black\'s mount', async () => (await read(bmnt, copy)) !== null, 30_000)
    const hw = await history('white', '/docs/doc.txt')
    // A conflict copy's history is its file's.
    assert.deepEqual(await history('white', copy), hw)
    const marked: HistoryVersion[] = hw.versions.filter((v) => v.current || v.conflictCopy)
    assert.equal(marked.length, 2, JSON.stringify(hw.versions))
    const asCopy = marked.find((v) => v.conflictCopy)!
    assert.equal(asCopy.conflictCopy, `/${copy}`)
    assert.match(await read(wmnt, copy) ?? '', asCopy.op === 'restore' ? /^v1\n$/ : /^white while apart\n$/)
    // Restoring the copy's version over the file: a new version under the name, on both mounts.
    const copyContent = (await read(wmnt, copy))!
    await c.run('white', ['volume', 'restore', VOL, '/docs/doc.txt', `--version=${asCopy.hash!.slice(0, 8)}`])
    await inMount('white', 'docs/doc.txt', copyContent)
    await inMount('black', 'docs/doc.txt', copyContent)
  })
})
