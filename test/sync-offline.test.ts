// Peers that edit while apart, through their mounts, then meet again: live sync while both
// run, the offline merge (creates, writes, deletes, subdirectories, renames, moves and one
// file edited on both sides), and three peers where one never meets another directly.
// Real servers (`bazil server run`) on a loopback DHT testnet, real FUSE mounts, the CLI.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { decodeKey } from '../src/crypto.js'
import { PeerCluster, eventually, hasFuse, isMounted, mountTree, sh } from './peer-setup.js'
import { summaryOf } from './helpers.js'

if (!hasFuse) console.warn('\n*** /dev/fuse is missing: SKIPPING the offline-merge tests with mounts ***\n')

const VOL = 'myfiles'
const ENV = { BAZIL_REMOTE_TIMEOUT_MS: '3000' }

/** A special file as mountTree lists it: a fifo (`p`), or a device (`c`/`b`) with its numbers `major,minor`. */
interface Special { kind: 'p' | 'c' | 'b'; rdev?: string }

/** What a tree should hold: file path -> content, directory path -> null, special file -> its kind. */
type Expected = Map<string, string | null | Special>

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** The mountTree lines of an expected tree (conflict copies included by their real names). */
function lines(exp: Expected): string[] {
  return [...exp.keys()]
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((p) => {
      const c = exp.get(p)
      if (c === null || c === undefined) return `d ${p}`
      if (typeof c !== 'string') return c.rdev === undefined ? `${c.kind} ${p}` : `${c.kind} ${p} ${c.rdev}`
      return `f ${p} ${Buffer.byteLength(c)} ${sha256(c)}`
    })
}

/** Shell-quotes a string (single quotes). */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** A shell script that writes each file (mkdir -p of its directory first) and syncs it. */
function writeScript(mnt: string, files: Record<string, string>): string {
  return Object.entries(files)
    .map(([p, c]) => `mkdir -p "$(dirname ${q(`${mnt}/${p}`)})" && printf %s ${q(c)} > ${q(`${mnt}/${p}`)} && sync ${q(`${mnt}/${p}`)}`)
    .join(' && ')
}

/** The extended attributes of a file in a mount, `name=value` sorted (python3: no attr package needed). */
async function xattrs(file: string): Promise<string> {
  const r = await sh(`python3 -c 'import os, sys; print(",".join(sorted("%s=%s" % (k, os.getxattr(sys.argv[1], k).decode()) for k in os.listxattr(sys.argv[1]))))' ${q(file)}`)
  return r.code === 0 ? r.out.trim() : `failed: ${r.out}`
}

/** Sets (value) or removes (null) extended attributes of files in a mount. */
function xattrScript(mnt: string, sets: [string, string, string | null][]): string {
  return sets.map(([p, k, v]) => `python3 -c 'import os, sys; (os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode()) if len(sys.argv) > 3 else os.removexattr(sys.argv[1], sys.argv[2]))' ${q(`${mnt}/${p}`)} ${q(k)}${v === null ? '' : ' ' + q(v)}`).join(' && ')
}

async function shOk(script: string, what: string): Promise<void> {
  const r = await sh(script)
  assert.equal(r.code, 0, `${what}: ${r.out}`)
}

/** The conflict copies of `name` in a tree listing (`f name.conflict-<8 hex> ...`). */
function copiesOf(tree: string[], name: string): string[] {
  const re = new RegExp(`^f (${name.replace(/[.]/g, '\\.')}\\.conflict-[0-9a-f]{8}) `)
  return tree.map((l) => re.exec(l)?.[1]).filter((p): p is string => p !== undefined)
}

interface ConflictJson {
  path: string
  versions: { path: string; writer: string; log: string; mine: boolean; time: string; size: number; hash: string }[]
}
/** An attribute conflict in `volume conflicts --json` (spec/tree.md "Conflicts of owners and attributes"). */
interface AttrConflictJson {
  path: string
  attribute: string
  values: { value: number | { base64: string; text?: string }; writer: string; log: string; mine: boolean; won: boolean }[]
}

/** Waits until every named peer's mount lists exactly `want` (the same lines on all of them). */
async function converged(c: PeerCluster, names: string[], want: () => string[], what: string, ms = 30_000): Promise<void> {
  const last = new Map<string, string[]>()
  try {
    for (const n of names) {
      await eventually(`${what}: ${n}'s mount`, async () => {
        const t = await mountTree(c.get(n).mnt)
        last.set(n, t.lines)
        return t.code === 0 && JSON.stringify(t.lines) === JSON.stringify(want())
      }, ms, 200)
    }
  } catch (err) {
    const seen = [...last].map(([n, l]) => `${n}:\n  ${l.join('\n  ')}`).join('\n')
    throw new Error(`${(err as Error).message}\nwanted:\n  ${want().join('\n  ')}\nseen:\n${seen}\n${c.logs()}`)
  }
}

describe('two peers: live sync, then edits on both sides while apart', { skip: !hasFuse }, () => {
  let c: PeerCluster
  let W = ''
  let B = ''

  before(async () => {
    c = await PeerCluster.create(['white', 'black'], { env: ENV })
    W = c.get('white').key
    B = c.get('black').key
    await c.shareMounted(VOL, 'white', 'black')
  })
  after(async () => {
    await c?.close()
  })

  test('live: a write through one mount shows in the other without volume sync', { timeout: 60_000 }, async (t) => {
    const wmnt = c.get('white').mnt
    const bmnt = c.get('black').mnt
    const measure = async (fromMnt: string, toMnt: string, name: string, content: string): Promise<number> => {
      await shOk(writeScript(fromMnt, { [name]: content }), `write ${name}`)
      const t0 = Date.now()
      await eventually(`${name} in the other mount`, async () => (await sh(`cat ${q(`${toMnt}/${name}`)} 2>/dev/null`)).out === content, 15_000, 25)
      return Date.now() - t0
    }
    const w2b = await measure(wmnt, bmnt, 'live-1.txt', 'written on white, live\n')
    const b2w = await measure(bmnt, wmnt, 'live-2.txt', 'written on black, live\n')
    // A second write to an existing file (new content for a name the other side has cached).
    const again = await measure(wmnt, bmnt, 'live-1.txt', 'written on white again, longer than before\n')
    t.diagnostic(`live latency: white->black ${w2b} ms, black->white ${b2w} ms, overwrite white->black ${again} ms`)
    for (const ms of [w2b, b2w, again]) assert.ok(ms < 15_000, `live sync took ${ms} ms`)
    const tw = await mountTree(wmnt)
    const tb = await mountTree(bmnt)
    assert.deepEqual(tb.lines, tw.lines)
    assert.deepEqual(tw.lines, lines(new Map([['live-1.txt', 'written on white again, longer than before\n'], ['live-2.txt', 'written on black, live\n']])))
    await shOk(`rm ${q(`${wmnt}/live-1.txt`)} ${q(`${wmnt}/live-2.txt`)}`, 'clean up')
    await eventually('live files gone on black', async () => (await mountTree(bmnt)).lines.length === 0)
  })

  test('offline merge: both converge, one file edited on both sides becomes a conflict copy, nothing lost', { timeout: 120_000 }, async (t) => {
    const wmnt = c.get('white').mnt
    const bmnt = c.get('black').mnt
    const t0 = Date.now()
    const phase = (what: string): void => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`)

    const base: Record<string, string> = {
      'F.txt': 'F as it was before the split\n',
      'keep.txt': 'kept by both\n',
      'white-deletes.txt': 'white deletes this\n',
      'black-deletes.txt': 'black deletes this\n',
      'olddir/y.txt': 'y, before\n',
      'src/m.txt': 'm moves across directories\n',
      'docs/readme': 'black renames docs/\n',
      'linked.txt': 'linked, before the split\n',
    }
    await shOk(writeScript(wmnt, base), 'base files on white')
    const exp: Expected = new Map()
    for (const [p, v] of Object.entries(base)) exp.set(p, v)
    for (const d of ['olddir', 'src', 'docs']) exp.set(d, null)
    await converged(c, ['black', 'white'], () => lines(exp), 'base tree on both')
    // Extended attributes: one set before the split, replicated like the files.
    await shOk(xattrScript(wmnt, [['keep.txt', 'user.base', 'b0'], ['keep.txt', 'user.k', 'k0']]), 'xattrs on white')
    await eventually('keep.txt\'s attributes on black', async () => (await xattrs(`${bmnt}/keep.txt`)) === 'user.base=b0,user.k=k0', 30_000, 200)
    phase('base tree on both')

    // Black goes away; white works alone.
    await c.stop('black')
    const whiteFiles = {
      'w-new.txt': 'created on white while black was away\n',
      'a/b/c/deep.txt': 'deep, from white\n',
      'same-name.txt': 'white made same-name.txt\n',
    }
    const fWhite = 'F as white wrote it, offline\n'
    const linkedWhite = 'linked, rewritten by white offline\n'
    await shOk([
      writeScript(wmnt, whiteFiles),
      `printf %s 'appended by white\n' >> ${q(`${wmnt}/keep.txt`)} && sync ${q(`${wmnt}/keep.txt`)}`,
      `rm ${q(`${wmnt}/white-deletes.txt`)}`,
      `mkdir -p ${q(`${wmnt}/empty/dir/tree`)}`,
      `mv ${q(`${wmnt}/olddir`)} ${q(`${wmnt}/newdir`)}`,
      `mv ${q(`${wmnt}/src/m.txt`)} ${q(`${wmnt}/a/m.txt`)}`,
      `printf %s ${q(fWhite)} > ${q(`${wmnt}/F.txt`)} && sync ${q(`${wmnt}/F.txt`)}`,
      // Through the one name white knows while black adds a second name to the same file.
      `printf %s ${q(linkedWhite)} > ${q(`${wmnt}/linked.txt`)} && sync ${q(`${wmnt}/linked.txt`)}`,
      `ln ${q(`${wmnt}/a/b/c/deep.txt`)} ${q(`${wmnt}/deep-link.txt`)}`,
      xattrScript(wmnt, [['keep.txt', 'user.k', 'white'], ['w-new.txt', 'user.w', '1']]),
      `sync ${q(`${wmnt}/keep.txt`)}`,
    ].join(' && '), 'white\'s offline edits')
    phase('white edited alone')

    // White goes away before black comes back: black can't reach white at all.
    await c.stop('white')
    await c.start('black')
    assert.ok(isMounted(bmnt), `black's mount did not come back:\n${c.get('black').log()}`)
    const blackFiles = {
      'b-new.txt': 'created on black while white was away\n',
      'x/y/z.txt': 'deep, from black\n',
      'same-name.txt': 'black made same-name.txt, differently\n',
    }
    const fBlack = 'F, black\'s edit (different)\n'
    const yBlack = 'y, edited on black under its old directory name\n'
    await shOk([
      writeScript(bmnt, blackFiles),
      `rm ${q(`${bmnt}/black-deletes.txt`)}`,
      `mv ${q(`${bmnt}/docs`)} ${q(`${bmnt}/papers`)}`,
      `printf %s ${q(yBlack)} > ${q(`${bmnt}/olddir/y.txt`)} && sync ${q(`${bmnt}/olddir/y.txt`)}`,
      `printf %s ${q(fBlack)} > ${q(`${bmnt}/F.txt`)} && sync ${q(`${bmnt}/F.txt`)}`,
      // A hard link, special files and an owner: metadata that must survive the merge too.
      `ln ${q(`${bmnt}/linked.txt`)} ${q(`${bmnt}/linked-2.txt`)}`,
      `mkfifo ${q(`${bmnt}/pipe`)} && mknod ${q(`${bmnt}/null-dev`)} c 1 3`,
      `chown 1234:5678 ${q(`${bmnt}/b-new.txt`)}`,
      xattrScript(bmnt, [['keep.txt', 'user.k', 'black'], ['keep.txt', 'user.base', null]]),
      `sync ${q(`${bmnt}/F.txt`)}`,
    ].join(' && '), 'black\'s offline edits')
    // Black alone sees only its own side.
    assert.equal((await sh(`cat ${q(`${bmnt}/F.txt`)}`)).out, fBlack)
    assert.equal((await sh(`LC_ALL=C ls ${q(bmnt)}`)).out, 'F.txt\nb-new.txt\nkeep.txt\nlinked-2.txt\nlinked.txt\nnull-dev\nolddir\npapers\npipe\nsame-name.txt\nsrc\nwhite-deletes.txt\nx\n')
    phase('black edited alone')

    // Both run again: they find each other by key and merge, with no `volume sync`.
    await c.start('white')
    const want: Expected = new Map<string, string | null | Special>([
      ['a', null], ['a/b', null], ['a/b/c', null], ['a/b/c/deep.txt', whiteFiles['a/b/c/deep.txt']], ['a/m.txt', base['src/m.txt']],
      ['b-new.txt', blackFiles['b-new.txt']],
      ['deep-link.txt', whiteFiles['a/b/c/deep.txt']],
      // One file, two names: black's new name shows white's concurrent rewrite.
      ['linked.txt', linkedWhite], ['linked-2.txt', linkedWhite],
      ['null-dev', { kind: 'c', rdev: '1,3' }], ['pipe', { kind: 'p' }],
      ['empty', null], ['empty/dir', null], ['empty/dir/tree', null],
      ['keep.txt', 'kept by both\nappended by white\n'],
      ['newdir', null], ['newdir/y.txt', yBlack], // renamed by white, edited by black: the edit follows the file
      ['papers', null], ['papers/readme', base['docs/readme']],
      ['src', null],
      ['w-new.txt', whiteFiles['w-new.txt']],
      ['x', null], ['x/y', null], ['x/y/z.txt', blackFiles['x/y/z.txt']],
    ])
    // F.txt and same-name.txt: each side's version, one under the name and one as a conflict
    // copy; which one keeps the name is the merge's (deterministic) choice, read from white.
    let chosen: Expected | null = null
    const wantLines = (): string[] => lines(chosen ?? want)
    await eventually('both versions of F.txt and same-name.txt on white', async () => {
      const tw = await mountTree(wmnt)
      const fCopies = copiesOf(tw.lines, 'F.txt')
      const sCopies = copiesOf(tw.lines, 'same-name.txt')
      if (tw.code !== 0 || fCopies.length !== 1 || sCopies.length !== 1) return false
      const m = new Map(want)
      const read = await Promise.all(['F.txt', fCopies[0]!, 'same-name.txt', sCopies[0]!].map((p) => sh(`cat ${q(`${wmnt}/${p}`)}`)))
      if (read.some((r) => r.code !== 0)) return false // content not reachable yet: retry
      const [f0, f1, s0, s1] = read.map((r) => r.out) as [string, string, string, string]
      assert.deepEqual([f0, f1].sort(), [fWhite, fBlack].sort(), 'F.txt: one version from each side')
      assert.deepEqual([s0, s1].sort(), [whiteFiles['same-name.txt'], blackFiles['same-name.txt']].sort(), 'same-name.txt: both files')
      m.set('F.txt', f0).set(fCopies[0]!, f1).set('same-name.txt', s0).set(sCopies[0]!, s1)
      chosen = m
      return true
    }, 30_000, 200).catch((err: Error) => { throw new Error(`${err.message}\n${c.logs()}`) })
    await converged(c, ['white', 'black'], wantLines, 'merged tree on both')
    phase('converged without volume sync')
    // Attributes merged: black's removal, white's new one, and one of the two concurrent sets
    // of user.k (the same one on both).
    let kept = ''
    await eventually('merged attributes on both', async () => {
      const [w, b, wn, bn] = await Promise.all([xattrs(`${wmnt}/keep.txt`), xattrs(`${bmnt}/keep.txt`), xattrs(`${wmnt}/w-new.txt`), xattrs(`${bmnt}/w-new.txt`)])
      kept = w
      return w === b && /^user\.k=(white|black)$/.test(w) && wn === 'user.w=1' && bn === wn
    }, 30_000, 200).catch((err: Error) => { throw new Error(`${err.message}: keep.txt shows ${kept}\n${c.logs()}`) })
    t.diagnostic(`concurrent user.k: ${kept} on both`)
    // Link counts and black's chown, on both (the kernel keeps a name's attributes up to 1 s).
    const meta = `stat -c '%n %h %u:%g' linked.txt linked-2.txt deep-link.txt b-new.txt`
    const wantMeta = 'linked.txt 2 0:0\nlinked-2.txt 2 0:0\ndeep-link.txt 2 0:0\nb-new.txt 1 1234:5678\n'
    for (const mnt of [wmnt, bmnt]) {
      let seenMeta = ''
      await eventually(`link counts and owners in ${mnt}`, async () => (seenMeta = (await sh(`cd ${q(mnt)} && ${meta}`)).out) === wantMeta, 30_000, 300)
        .catch((err: Error) => { throw new Error(`${err.message}: ${seenMeta}`) })
    }
    for (const l of wantLines()) t.diagnostic(`merged: ${l}`)

    // `volume sync` after the fact: both already have everything.
    const [sw, sb] = await Promise.all([
      c.run('white', ['volume', 'sync', '--json', VOL, B]),
      c.run('black', ['volume', 'sync', '--json', VOL, W]),
    ])
    const jw = summaryOf(sw.stdout) as Record<string, unknown>
    const jb = summaryOf(sb.stdout) as Record<string, unknown>
    for (const [j, peer] of [[jw, B], [jb, W]] as const) {
      assert.deepEqual(Object.keys(j).sort(), ['complete', 'entries', 'entriesApplied', 'ms', 'peer', 'received', 'sent', 'volume', 'writers'])
      assert.equal(j.volume, VOL)
      assert.equal(j.peer, peer)
      assert.equal(j.complete, true)
      assert.equal(j.writers, 2)
      assert.equal(j.entriesApplied, 0, JSON.stringify(j))
      assert.equal(j.received, 0, JSON.stringify(j))
      assert.equal(j.sent, 0, JSON.stringify(j))
    }
    assert.equal(jw.entries, jb.entries, 'both applied the same entries')
    assert.ok((jw.entries as number) >= 15, JSON.stringify(jw))

    // `volume conflicts`: F.txt with both versions, the same on both sides (but `mine`).
    // Beside it keep.txt's user.k, set by both: both values, the one shown first.
    const listAll = async (name: string): Promise<(ConflictJson | AttrConflictJson)[]> => JSON.parse((await c.run(name, ['volume', 'conflicts', '--json', VOL])).stdout) as (ConflictJson | AttrConflictJson)[]
    const conflicts = async (name: string): Promise<ConflictJson[]> => (await listAll(name)).filter((x): x is ConflictJson => !('attribute' in x))
    const attrConflicts = async (name: string): Promise<AttrConflictJson[]> => (await listAll(name)).filter((x): x is AttrConflictJson => 'attribute' in x)
    const [cw, cb] = await Promise.all([conflicts('white'), conflicts('black')])
    const [aw, ab] = await Promise.all([attrConflicts('white'), attrConflicts('black')])
    for (const [list, me] of [[aw, W], [ab, B]] as const) {
      assert.equal(list.length, 1, JSON.stringify(list))
      assert.match(list[0]!.path, /^\/?keep\.txt$/)
      assert.equal(list[0]!.attribute, 'user.k')
      assert.deepEqual(list[0]!.values.map((v) => [(v.value as { text?: string }).text, v.writer, v.won]), [[kept.slice('user.k='.length), kept.endsWith('white') ? W : B, true], [kept.endsWith('white') ? 'black' : 'white', kept.endsWith('white') ? B : W, false]])
      for (const v of list[0]!.values) assert.equal(v.mine, v.writer === me)
    }
    const final = chosen as Expected | null
    assert.ok(final)
    for (const [list, me] of [[cw, W], [cb, B]] as const) {
      assert.equal(list.length, 1, JSON.stringify(list))
      const [f] = list
      assert.match(f!.path, /^\/?F\.txt$/)
      assert.equal(f!.versions.length, 2)
      const names = f!.versions.map((v) => v.path.replace(/^\//, ''))
      assert.equal(names[0], 'F.txt', 'the shown version first')
      assert.deepEqual(names.slice(1), copiesOf(wantLines(), 'F.txt'))
      assert.deepEqual(f!.versions.map((v) => v.writer).sort(), [W, B].sort())
      for (const v of f!.versions) {
        const content = final.get(v.path.replace(/^\//, ''))
        assert.equal(content, v.writer === W ? fWhite : fBlack, `version ${v.path} is ${v.writer}'s`)
        assert.equal(v.size, Buffer.byteLength(content!))
        assert.equal(v.mine, v.writer === me)
        assert.ok(!Number.isNaN(Date.parse(v.time)), v.time)
        if (v.path.includes('.conflict-')) assert.equal(v.path.slice(-8), decodeKey(v.log, 'log').toString('hex').slice(0, 8), 'copy named after its writer log')
      }
    }
    assert.deepEqual(cb.map((x) => x.versions.map((v) => [v.path, v.writer, v.log, v.time, v.size, v.hash])), cw.map((x) => x.versions.map((v) => [v.path, v.writer, v.log, v.time, v.size, v.hash])))
    // The same-name create's copy is named after the writer that made that file (not a conflict of one file's versions).
    const w8 = new Map(cw[0]!.versions.map((v) => [v.writer, decodeKey(v.log, 'log').toString('hex').slice(0, 8)]))
    const [sameCopy] = copiesOf(wantLines(), 'same-name.txt')
    const copyWriter = final.get(sameCopy!) === whiteFiles['same-name.txt'] ? W : B
    assert.equal(sameCopy, `same-name.txt.conflict-${w8.get(copyWriter)}`)
    phase('volume sync and conflicts checked')

    // White keeps its own version: the conflict is gone on both sides.
    const res = await c.run('white', ['volume', 'resolve', VOL, 'F.txt', '--keep=mine'])
    assert.match(res.stdout, /^resolved \/?F\.txt: kept \S+ \(mine\)$/m)
    // And black's user.k, named by black's node key: shown on both once it replicates.
    const resAttr = await c.run('white', ['volume', 'resolve', VOL, 'keep.txt', '--attr=user.k', `--keep=${B.slice(0, 10)}`])
    assert.match(resAttr.stdout, /^resolved user\.k of \/?keep\.txt \(\S+\)$/m)
    const afterResolve = new Map(final)
    afterResolve.set('F.txt', fWhite)
    for (const p of copiesOf(wantLines(), 'F.txt')) afterResolve.delete(p)
    chosen = afterResolve
    const s2 = summaryOf((await c.run('white', ['volume', 'sync', '--json', VOL, B])).stdout) as Record<string, unknown>
    assert.equal(s2.complete, true)
    assert.equal(typeof s2.sent, 'number')
    await converged(c, ['black', 'white'], wantLines, 'resolved tree on both', 15_000)
    await eventually('keep.txt\'s user.k settled on both', async () => {
      const [w, b, rw, rb] = await Promise.all([xattrs(`${wmnt}/keep.txt`), xattrs(`${bmnt}/keep.txt`), listAll('white'), listAll('black')])
      return w === 'user.k=black' && b === w && rw.length === 0 && rb.length === 0
    }, 30_000, 250)
    phase('resolved on both')
  })
})

// White takes red's log from black although it is bound to red: black, a writer, admitted red
// (spec/oplog.md "Admission and revocation"); any other log is taken up only from the node it
// is bound to (spec/protocol.md, "Writer logs").
describe('three peers: edits relayed through the one in the middle', { skip: !hasFuse }, () => {
  test('white and red never meet; all three converge', { timeout: 150_000 }, async (t) => {
    const t0 = Date.now()
    const phase = (what: string): void => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    const c = await PeerCluster.create(['white', 'black', 'red'], { env: ENV })
    try {
      const W = c.get('white').key
      const B = c.get('black').key
      const R = c.get('red').key
      const [wmnt, bmnt, rmnt] = ['white', 'black', 'red'].map((n) => c.get(n).mnt) as [string, string, string]
      await c.start('white', 'black', 'red')
      await c.run('white', ['volume', 'create', '--sharing=friends', VOL])
      await c.connect('white', 'black', VOL)
      await c.connect('black', 'red', VOL) // red gets the volume from black, and never adds white
      await c.mount(VOL, 'white', 'black', 'red')
      phase('set up')

      const base = { 'G.txt': 'G before the partition\n', 'shared/readme': 'in shared/\n' }
      await shOk(writeScript(wmnt, base), 'base files on white')
      const exp: Expected = new Map<string, string | null>([['G.txt', base['G.txt']], ['shared', null], ['shared/readme', base['shared/readme']]])
      // Black first: it caches white's content, which is how red (connected only to black) reads it.
      await converged(c, ['black', 'red'], () => lines(exp), 'base tree')
      phase('base tree on all three')

      // Each alone in turn: white, then red, then black.
      await c.stop('black', 'red')
      const gW = 'G by white\n'
      const gR = 'G by red, a little longer\n'
      const gB = 'G by black, longer still than red\'s\n'
      await shOk([
        writeScript(wmnt, { 'w.txt': 'from white\n', 'wdir/sub/f': 'white, deep\n' }),
        `printf %s ${q(gW)} > ${q(`${wmnt}/G.txt`)} && sync ${q(`${wmnt}/G.txt`)}`,
      ].join(' && '), 'white alone')
      await c.stop('white')
      await c.start('red')
      await shOk([
        writeScript(rmnt, { 'r.txt': 'from red\n' }),
        `mv ${q(`${rmnt}/shared`)} ${q(`${rmnt}/shared-by-red`)}`,
        `printf %s ${q(gR)} > ${q(`${rmnt}/G.txt`)} && sync ${q(`${rmnt}/G.txt`)}`,
      ].join(' && '), 'red alone')
      await c.stop('red')
      await c.start('black')
      await shOk([
        writeScript(bmnt, { 'b.txt': 'from black\n' }),
        `mkdir ${q(`${bmnt}/bdir`)}`,
        `printf %s ${q(gB)} > ${q(`${bmnt}/G.txt`)} && sync ${q(`${bmnt}/G.txt`)}`,
      ].join(' && '), 'black alone')
      phase('each edited alone')

      await c.start('white', 'red')
      const want: Expected = new Map<string, string | null>([
        ['b.txt', 'from black\n'], ['bdir', null],
        ['r.txt', 'from red\n'], ['shared-by-red', null], ['shared-by-red/readme', base['shared/readme']],
        ['w.txt', 'from white\n'], ['wdir', null], ['wdir/sub', null], ['wdir/sub/f', 'white, deep\n'],
      ])
      // G.txt: three versions, one under the name and two conflict copies (read on black).
      let chosen: Expected | null = null
      await eventually('three versions of G.txt on black', async () => {
        const tb = await mountTree(bmnt)
        const copies = copiesOf(tb.lines, 'G.txt')
        if (tb.code !== 0 || copies.length !== 2) return false
        const read = await Promise.all(['G.txt', ...copies].map((p) => sh(`cat ${q(`${bmnt}/${p}`)}`)))
        if (read.some((r) => r.code !== 0)) return false // content not reachable yet: retry
        const texts = read.map((r) => r.out)
        assert.deepEqual([...texts].sort(), [gW, gR, gB].sort(), 'G.txt: one version from each peer')
        const m = new Map(want)
        ;['G.txt', ...copies].forEach((p, i) => m.set(p, texts[i]!))
        chosen = m
        return true
      }, 30_000, 200).catch((err: Error) => { throw new Error(`${err.message}\n${c.logs()}`) })
      // Black (which holds every peer's content by now) first, then the two ends.
      await converged(c, ['black', 'white', 'red'], () => lines(chosen!), 'merged tree on all three')
      phase('converged')

      const conflicts = async (name: string): Promise<ConflictJson[]> => JSON.parse((await c.run(name, ['volume', 'conflicts', '--json', VOL])).stdout) as ConflictJson[]
      const all = await Promise.all(['white', 'black', 'red'].map(conflicts))
      const byWriter = new Map([[W, gW], [B, gB], [R, gR]])
      for (const list of all) {
        assert.equal(list.length, 1, JSON.stringify(list))
        assert.match(list[0]!.path, /^\/?G\.txt$/)
        assert.deepEqual(list[0]!.versions.map((v) => v.writer).sort(), [W, B, R].sort())
        assert.deepEqual(list[0]!.versions.map((v) => v.path), all[0]![0]!.versions.map((v) => v.path))
        assert.equal(list[0]!.versions[0]!.path.replace(/^\//, ''), 'G.txt', 'the shown version first')
        for (const v of list[0]!.versions) {
          const p = v.path.replace(/^\//, '')
          assert.equal((chosen as Expected | null)?.get(p), byWriter.get(v.writer), `${p} holds ${v.writer}'s version`)
          assert.equal(v.size, Buffer.byteLength(byWriter.get(v.writer)!))
          if (p !== 'G.txt') assert.equal(p, `G.txt.conflict-${decodeKey(v.log, 'log').toString('hex').slice(0, 8)}`)
        }
      }
      // White and red never connected: what each has of the other came through black.
      const peersOf = async (n: string): Promise<string[]> => (JSON.parse((await c.run(n, ['peer', 'list', '--json'])).stdout) as { key: string }[]).map((p) => p.key)
      assert.deepEqual(await peersOf('red'), [B])
      assert.deepEqual(await peersOf('white'), [B])
      for (const [n, other] of [['red', W], ['white', R]] as const) assert.doesNotMatch(c.get(n).log(), new RegExp(`net: peer ${other} connected`))
      // Red's log was made after white met black: white learned it from black (red may have
      // had white's log from black's offer at `volume connect`, or learned it later the same way).
      const redLog = all[0]![0]!.versions.find((v) => v.writer === R)!.log
      // Black admitted red (`peer volume allow` records admit-node, and admit by key once it saw
      // red's log): white takes red's log from black, and its writer set lists it.
      assert.match(c.get('white').log(), new RegExp(`net: volume ${VOL}: (candidate )?writer log ${redLog} from peer ${B}`))
      const ws = JSON.parse((await c.run('white', ['volume', 'writers', '--json', VOL])).stdout) as { writers: { log: string; node: string; authorised: boolean }[] }
      assert.ok(ws.writers.some((w) => w.log === redLog && w.node === R && w.authorised), JSON.stringify(ws))
      phase('checked')
    } finally {
      await c.close()
    }
  })
})
