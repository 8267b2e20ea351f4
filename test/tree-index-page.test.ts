// Page buckets of the index on disk (src/tree/index-page.ts): names apart from rows, rows in
// chunks. A name lookup finds every entry of that name whatever the chunk boundaries; a stat in
// a big directory reads a header and a chunk, not the directory, and answers as the tree in
// memory does (same-name groups, conflict copies); an index of an older version (pages of
// versions 1-3, JSON id buckets) is read and merged into, and its first commit rewrites every
// page and id bucket in the current versions.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { hash } from '../src/crypto.js'
import { Tree, canonicalDump, type ShardChange } from '../src/tree/index.js'
import type { BaseEntry } from '../src/tree/index-layers.js'
import { IDS_VERSION, parseIds } from '../src/tree/index-ids.js'
import { CHUNK_ENTRIES, PAGE_VERSION, PageEntry, chunkNamed, chunksNamed, encodePage, headLength, parseChunk, parseHead, parsePage, type Page } from '../src/tree/index-page.js'
import { INDEX_VERSION, IndexFiles, commitTreeIndex, openTreeIndex, pageBucket } from '../src/tree/index-store.js'
import { ROOT_ID } from '../src/tree/model.js'
import { tempDir } from './helpers.js'
import { rng } from './tree-random.js'

const A = 'a1'.repeat(16)
const B = 'b2'.repeat(16)
const C = 'c3'.repeat(16)

test('a name lookup in a chunked page finds every entry of that name, whatever the chunk boundaries', () => {
  const r = rng(7)
  for (let round = 0; round < 20; round++) {
    // Runs of one name of 1 to 150 entries (a run crosses chunks), some names null (unattached).
    const page: Page = new Map()
    const m = new Map<string, BaseEntry>()
    let k = 0
    for (let run = 0; run < 12; run++) {
      const name = r() < 0.1 ? null : `n${Math.floor(r() * 40)}`
      const len = 1 + Math.floor(r() ** 3 * 150)
      for (let i = 0; i < len; i++, k++) {
        const id = hash(Buffer.from(`${round}/${k}`)).toString('hex')
        m.set(id, { raw: null, parent: 'd1', name, live: Math.floor(r() * 3), versions: 0 })
      }
    }
    page.set('d1', m)
    page.set('d0', new Map([['ab'.repeat(16), { raw: null, parent: 'd0', name: 'n1', live: 1, versions: 0 }]]))
    const { bytes, digest } = encodePage(page, null)
    const hl = headLength(bytes)!
    assert.equal(hash(bytes.subarray(0, hl)).toString('hex'), digest)
    const head = parseHead(bytes.subarray(0, hl), bytes.length)
    const d = head.dirs.get('d1')!
    assert.equal(d.count, m.size)
    assert.equal(d.chunks.length, Math.ceil(m.size / CHUNK_ENTRIES))
    for (const name of [...new Set([...m.values()].map((e) => e.name ?? ''))].concat(['', 'n', 'n99', 'zz'])) {
      const found = chunksNamed(d.chunks, name).flatMap((c) => parseChunk(bytes.subarray(c.offset, c.offset + c.length), c, 'd1', head.actors)).filter(([, e]) => (e.name ?? '') === name)
      const want = [...m].filter(([, e]) => (e.name ?? '') === name).map(([id]) => id).sort()
      assert.deepEqual(found.map(([id]) => id).sort(), want, `round ${round}: name ${name}`)
      // What a lookup decodes: only the entries of that name (a null name is never looked up).
      assert.deepEqual(d.named(name), chunksNamed(d.chunks, name), `round ${round}: chunks named ${name}`)
      const named = parseHead(bytes.subarray(0, hl), bytes.length).dirs.get('d1')!.named(name).flatMap((c) => chunkNamed(bytes.subarray(c.offset, c.offset + c.length), 'd1', head.actors, name))
      assert.deepEqual(named.map(([id, e]) => [id, e.name, e.live, e.parent]).sort(), [...m].filter(([, e]) => e.name === name).map(([id, e]) => [id, e.name, e.live, e.parent]).sort(), `round ${round}: chunkNamed ${name}`)
    }
    // The whole page reads back as written.
    const back = parsePage(bytes).page
    assert.deepEqual([...back.get('d1')!].map(([id, e]) => [id, e.name, e.live, e.parent]).sort(), [...m].map(([id, e]) => [id, e.name, e.live, e.parent]).sort())
  }
})

/** Two writers: a 1,000-entry directory, names both created (a same-name group), a file both wrote (conflict copies). */
function bigTree(): { a: Tree; b: Tree; changes: ShardChange[] } {
  const a = Tree.create(A)
  const b = Tree.create(B)
  a.mkdir('/big')
  a.mkdir('/small')
  for (let i = 0; i < 1000; i++) a.writeFile(`/big/f${i}`, { hash: (i + 1).toString(16).padStart(64, '0'), size: i })
  a.writeFile('/small/x', { hash: 'aa'.repeat(32), size: 1 })
  // A big directory without conflicts (its name table stays partial while the merges below keep it so).
  a.mkdir('/clean')
  for (let i = 0; i < 300; i++) a.writeFile(`/clean/c${i}`, { hash: (i + 5000).toString(16).padStart(64, '0'), size: i })
  const c0 = a.takeChanges()
  b.applyChanges(c0)
  for (const t of [a, b]) {
    t.writeFile('/big/same', { hash: (t === a ? 'a' : 'b').repeat(64), size: 2 })
    t.writeFile('/big/f500', { hash: (t === a ? 'c' : 'd').repeat(64), size: 3 })
    t.mkdir('/big/f700.conflict-00000000')
  }
  const ca = a.takeChanges(), cb = b.takeChanges()
  a.applyChanges(cb)
  b.applyChanges(ca)
  return { a, b, changes: [...c0, ...ca, ...cb] }
}

/** bigTree with writer a's index committed in `dir`; `changes`: all of its changes. */
function committedBigTree(dir: string): { a: Tree; b: Tree; file: string; files: string; changes: ShardChange[] } {
  const { a, b, changes } = bigTree()
  const file = path.join(dir, 'x.ckpt')
  const files = path.join(dir, 'x')
  commitTreeIndex(file, files, a, null)
  return { a, b, file, files, changes }
}

test('a stat in a big directory reads a chunk of its page and answers as the tree in memory does', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION)
    const paths = [...b.walk('/')].map((s) => s.path)
    assert.ok(paths.some((p) => p.includes('.conflict-')), 'the tree shows conflict names')
    const missing = ['/big/nope', '/big/f5000', '/big/same.conflict-ffffffff', '/small/x/y', '/nope/x']
    // Each path from a fresh open, no listing before it: the same stat (or none) as in memory.
    for (const p of [...paths, ...missing]) {
      const { tree } = openTreeIndex(file, files, A)
      assert.deepEqual(tree.lookup(p), b.lookup(p), p)
      tree.free()
    }
    // What one stat reads: the headers and one chunk each, not the 1,000-entry page.
    const { tree } = openTreeIndex(file, files, A)
    const base = tree.view.diskBase as IndexFiles
    const pageBytes = Math.max(...Object.values(base.manifest.pages).map((ref) => ref[2]))
    const before = base.bytesRead
    assert.equal(tree.stat('/big/f321').size, 321)
    const read = base.bytesRead - before
    assert.ok(read < pageBytes / 4, `a stat read ${read} bytes; the big page has ${pageBytes}`)
    // The listing after it is whole.
    assert.equal(tree.readdir('/big').length, b.readdir('/big').length)
    assert.deepEqual(canonicalDump(tree), canonicalDump(b))
    for (const t of [a, b, tree]) t.free()
  } finally {
    cleanup()
  }
})

test('a merge into a big directory of the index on disk answers as the tree in memory, conflicts made in it included, before and after a listing', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files, changes } = committedBigTree(dir)
    // Each case from a fresh open: the merge touches a few names of /big (its name table built
    // from the page's counts, each touched name read alone), then stats without a listing.
    const cases: [string, (t: Tree) => void, (t: Tree) => void][] = [
      ['rewrite, create, rename, remove', (t) => { t.writeFile('/big/f5', { hash: '05'.repeat(32), size: 5 }); t.writeFile('/big/fresh', { hash: '06'.repeat(32), size: 6 }); t.rename('/big/f6', '/big/g6'); t.unlink('/big/f7') }, () => {}],
      ['a same-name group and conflict copies made by the merge', (t) => { t.writeFile('/big/f8', { hash: '08'.repeat(32), size: 8 }); t.writeFile('/big/both', { hash: '09'.repeat(32), size: 9 }) },
        (t) => { t.writeFile('/big/f8', { hash: '18'.repeat(32), size: 18 }); t.writeFile('/big/both', { hash: '19'.repeat(32), size: 19 }) }],
      ['a group undone: the loser renamed away, a copy resolved by a delete', (t) => { t.rename('/big/same', '/small/was-same') }, (t) => { t.unlink('/big/f500') }],
      ['a move of a whole directory into another', (t) => { t.rename('/small', '/big/small-moved') }, () => {}],
      ['edits in a directory without conflicts', (t) => { t.writeFile('/clean/c5', { hash: '25'.repeat(32), size: 5 }); t.rename('/clean/c6', '/clean/d6'); t.unlink('/clean/c7'); t.rename('/clean/c8', '/small/c8') },
        (t) => { t.writeFile('/clean/new', { hash: '26'.repeat(32), size: 6 }); t.rename('/small/x', '/clean/x') }],
      ['a same-name group made in a directory without conflicts', (t) => { t.writeFile('/clean/twice', { hash: '27'.repeat(32), size: 7 }) }, (t) => { t.writeFile('/clean/twice', { hash: '28'.repeat(32), size: 8 }) }],
      ['conflict copies made in a directory without conflicts', (t) => { t.writeFile('/clean/c9', { hash: '29'.repeat(32), size: 9 }) }, (t) => { t.writeFile('/clean/c9', { hash: '30'.repeat(32), size: 10 }) }],
      ['a directory emptied and filled again', (t) => { t.rename('/small/x', '/big/x-from-small'); t.writeFile('/small/y', { hash: '31'.repeat(32), size: 11 }) }, () => {}],
    ]
    for (const [label, remoteOps, localOps] of cases) {
      const ref = Tree.create(C)
      ref.applyChanges(changes)
      const { tree } = openTreeIndex(file, files, A)
      remoteOps(ref)
      localOps(tree)
      const remote = ref.takeChanges()
      const local = tree.takeChanges()
      tree.applyChanges(remote)
      ref.applyChanges(local)
      const paths = [...ref.walk('/')].map((st) => st.path)
      for (const p of [...paths, '/big/f6', '/big/f7', '/big/same', '/big/nope', '/clean/c6', '/clean/c7', '/clean/c9', '/small/x']) assert.deepEqual(tree.lookup(p), ref.lookup(p), `${label}: ${p}`)
      assert.deepEqual(canonicalDump(tree), canonicalDump(ref), label)
      assert.deepEqual(tree.conflicts(), ref.conflicts(), label)
      assert.deepEqual(tree.audit(), [], label)
      // Committed and read again: the counts written are the name tables' (the same answers from a fresh open).
      const sub = path.join(dir, `case-${cases.findIndex((c) => c[0] === label)}`)
      fs.cpSync(files, sub, { recursive: true })
      fs.copyFileSync(file, `${sub}.ckpt`)
      commitTreeIndex(`${sub}.ckpt`, sub, tree, null)
      const back = openTreeIndex(`${sub}.ckpt`, sub, A).tree
      for (const p of paths) assert.deepEqual(back.lookup(p), ref.lookup(p), `${label}, reopened: ${p}`)
      assert.deepEqual(canonicalDump(back), canonicalDump(ref), `${label}, reopened`)
      for (const t of [ref, tree, back]) t.free()
    }
    for (const t of [a, b]) t.free()
  } finally {
    cleanup()
  }
})

function rowString(e: PageEntry): string | null {
  const t = e.rowText
  assert.ok(t !== undefined)
  return t === null || typeof t === 'string' ? t : t.toString('utf8')
}

/** Reads one bucket of a segment. */
function readRef(files: string, [s, offset, length]: [string, number, number, string]): Buffer {
  const b = Buffer.alloc(length)
  const fd = fs.openSync(path.join(files, s), 'r')
  fs.readSync(fd, b, 0, length, offset)
  fs.closeSync(fd)
  return b
}

/** Writes `m` as an index manifest of `version`. */
function writeManifest(file: string, m: unknown, version: number): void {
  const json = Buffer.from(JSON.stringify(m))
  const head = Buffer.alloc(9)
  head.write('BZTC')
  head[4] = version
  head.writeUInt32BE(json.length, 5)
  const body = Buffer.concat([head, json])
  fs.writeFileSync(file, Buffer.concat([body, hash(body)]))
}

/** A page in version 2 (JSON header and chunks): what session 8 wrote. */
function encodeVersion2(page: Page, actors: string[]): { bytes: Buffer; digest: string } {
  const dirs: [string, number, [string, number, string][]][] = []
  const chunks: Buffer[] = []
  for (const dir of [...page.keys()].sort()) {
    const list = [...page.get(dir)!].map(([id, e]) => ({ id, e, key: e.name ?? '' })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1))
    const refs: [string, number, string][] = []
    for (let i = 0; i < list.length; i += CHUNK_ENTRIES) {
      const part = list.slice(i, i + CHUNK_ENTRIES)
      const bytes = Buffer.from(JSON.stringify(part.map(({ id, e }) => [id, e.name, e.live, e.versions, rowString(e as PageEntry)])))
      refs.push([part[0].key, bytes.length, hash(bytes).toString('hex')])
      chunks.push(bytes)
    }
    dirs.push([dir, list.length, refs])
  }
  const json = Buffer.from(JSON.stringify({ actors, dirs }))
  const head = Buffer.alloc(9 + json.length)
  head.write('BZIP')
  head[4] = 2
  head.writeUInt32BE(json.length, 5)
  json.copy(head, 9)
  return { bytes: Buffer.concat([head, ...chunks]), digest: hash(head).toString('hex') }
}

/**
 * Rewrites an index as an older bazil wrote it: its page buckets in `pageVersion` (1: JSON,
 * the digest over the whole bucket; 2: JSON header and chunks; 3: binary without the name
 * tables' counts), its id buckets as JSON `[[id, dir]…]`, under the manifest version of then
 * (4, 5, 7: what sessions 7, 8 and 9-11 wrote).
 */
function toOldIndex(file: string, files: string, pageVersion: 1 | 2 | 3): void {
  const buf = fs.readFileSync(file)
  const m = JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as { segments: Record<string, number>; pages: Record<string, [string, number, number, string]>; ids: Record<string, [string, number, number, string]> }
  const seg = 'seg.999'
  const out: Buffer[] = []
  let size = 0
  const put = (bytes: Buffer, digest = hash(bytes).toString('hex')): [string, number, number, string] => {
    out.push(bytes)
    size += bytes.length
    return [seg, size - bytes.length, bytes.length, digest]
  }
  for (const [k, ref] of Object.entries(m.pages)) {
    const { page, actors } = parsePage(readRef(files, ref))
    if (pageVersion === 3) {
      const v3 = encodePage(page, actors, 3)
      m.pages[k] = put(v3.bytes, v3.digest)
    } else if (pageVersion === 2) {
      const v2 = encodeVersion2(page, actors)
      m.pages[k] = put(v2.bytes, v2.digest)
    } else {
      const dirs = [...page].map(([d, es]) => [d, [...es].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([id, e]) => [id, e.name, e.live, e.versions, rowString(e as PageEntry)])])
      m.pages[k] = put(Buffer.from(JSON.stringify({ actors, dirs })))
    }
  }
  for (const [k, ref] of Object.entries(m.ids)) {
    const list = [...parseIds(readRef(files, ref)).entries()].map(([id, [dir]]) => [id, dir]).sort((x, y) => (x[0] < y[0] ? -1 : 1))
    m.ids[k] = put(Buffer.from(JSON.stringify(list)))
  }
  fs.writeFileSync(path.join(files, seg), Buffer.concat(out))
  m.segments[seg] = size
  writeManifest(file, m, pageVersion === 1 ? 4 : pageVersion === 2 ? 5 : 7)
}

/** The version of each page bucket an index names (1: no magic). */
function pageVersions(files: string, base: IndexFiles): number[] {
  return Object.values(base.manifest.pages).map((ref) => {
    const x = readRef(files, [ref[0], ref[1], 5, ''])
    return x.toString('latin1', 0, 4) === 'BZIP' ? x[4] : 1
  })
}

/** The version of each id bucket an index names (1: JSON). */
function idVersions(files: string, base: IndexFiles): number[] {
  return Object.values(base.manifest.ids).map((ref) => {
    const x = readRef(files, [ref[0], ref[1], 5, ''])
    return x.toString('latin1', 0, 4) === 'BZID' ? x[4] : 1
  })
}

for (const pageVersion of [1, 2, 3] as const) {
  const manifest = pageVersion === 1 ? 4 : pageVersion === 2 ? 5 : 7
  test(`an index of version ${manifest} (pages of version ${pageVersion}, JSON id buckets) is read and merged into; its first commit rewrites every page and id bucket in the current versions`, () => {
    const { dir, cleanup } = tempDir()
    try {
      const { a, b, file, files } = committedBigTree(dir)
      toOldIndex(file, files, pageVersion)
      assert.equal(fs.readFileSync(file)[4], manifest)
      const old = openTreeIndex(file, files, A)
      assert.equal(old.legacy, false)
      assert.deepEqual(pageVersions(files, old.tree.view.diskBase as IndexFiles).filter((v) => v !== pageVersion), [])
      assert.deepEqual(idVersions(files, old.tree.view.diskBase as IndexFiles).filter((v) => v !== 1), [])
      // Name lookups from fresh opens, then the whole tree.
      for (const p of ['/big/f321', '/big/same', '/big/f500', '/small/x', '/big/nope']) {
        const { tree } = openTreeIndex(file, files, A)
        assert.deepEqual(tree.lookup(p), b.lookup(p), p)
        tree.free()
      }
      assert.deepEqual(canonicalDump(old.tree), canonicalDump(b))
      // A merge into the old index (a rename, a write, a same-name create in /big), and an edit of its own.
      b.rename('/big/f10', '/big/g10')
      b.writeFile('/big/f11', { hash: 'ee'.repeat(32), size: 11 })
      b.writeFile('/big/f12.new', { hash: 'ef'.repeat(32), size: 12 })
      b.writeFile('/big/same', { hash: 'ab'.repeat(32), size: 13 })
      old.tree.applyChanges(b.takeChanges())
      old.tree.writeFile('/small/y', { hash: 'bb'.repeat(32), size: 5 })
      b.applyChanges(old.tree.takeChanges())
      assert.deepEqual(canonicalDump(old.tree), canonicalDump(b))
      commitTreeIndex(file, files, old.tree, null)
      assert.equal(fs.readFileSync(file)[4], INDEX_VERSION)
      const back = openTreeIndex(file, files, A).tree
      const base = back.view.diskBase as IndexFiles
      assert.deepEqual(pageVersions(files, base).filter((v) => v !== PAGE_VERSION), [], 'every page rewritten')
      assert.deepEqual(idVersions(files, base).filter((v) => v !== IDS_VERSION), [], 'every id bucket rewritten')
      for (const p of ['/big/f321', '/big/g10', '/big/f10', '/big/f11', '/big/same', '/small/y', '/small/x']) assert.deepEqual(back.lookup(p), b.lookup(p), p)
      assert.deepEqual(canonicalDump(back), canonicalDump(b))
      // Rewritten, a lookup by id reads a header and a chunk, not the 1,000-entry page.
      const pageBytes = Math.max(...Object.values(base.manifest.pages).map((ref) => ref[2]))
      const fresh = openTreeIndex(file, files, A).tree
      const fb = fresh.view.diskBase as IndexFiles
      const before = fb.bytesRead
      const e = fb.entry(b.stat('/big/f321').id)
      assert.equal(e?.name, 'f321')
      assert.ok(fb.bytesRead - before < pageBytes / 4, `a lookup by id read ${fb.bytesRead - before} bytes; the big page has ${pageBytes}`)
      for (const t of [a, b, old.tree, back, fresh]) t.free()
    } finally {
      cleanup()
    }
  })
}

test('a version 4 page rejects bytes it does not know: a later page version, a chunk cut short, a damaged chunk', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    const base = openTreeIndex(file, files, A).tree.view.diskBase as IndexFiles
    const big = Object.values(base.manifest.pages).sort((x, y) => y[2] - x[2])[0]
    const bytes = readRef(files, big)
    const hl = headLength(bytes)!
    const head = parseHead(bytes.subarray(0, hl), bytes.length)
    assert.equal(head.version, 4)
    const later = Buffer.from(bytes)
    later[4] = 5
    assert.throws(() => headLength(later), /page version 5 is not supported/)
    const c = [...head.dirs.values()][0].chunks[0]
    const chunk = bytes.subarray(c.offset, c.offset + c.length)
    assert.throws(() => parseChunk(chunk.subarray(0, chunk.length - 3), { ...c, digest: hash(chunk.subarray(0, chunk.length - 3)).toString('hex') }, 'd', head.actors), /end early|trailing/)
    const bad = Buffer.from(chunk)
    bad[bad.length - 2] ^= 1
    assert.throws(() => parseChunk(bad, c, 'd', head.actors), /chunk digest mismatch/)
    // A damaged chunk on disk: the lookup fails naming the index, and the manifest is removed (rebuilt at the next open).
    const fd = fs.openSync(path.join(files, big[0]), 'r+')
    fs.writeSync(fd, Buffer.from([bytes[c.offset + c.length - 2] ^ 1]), 0, 1, big[1] + c.offset + c.length - 2)
    fs.closeSync(fd)
    const { tree } = openTreeIndex(file, files, A)
    assert.throws(() => { for (const s of b.readdir('/big')) tree.lookup(s.path) }, /on-disk index .* is damaged/)
    assert.equal(fs.existsSync(file), false)
    for (const t of [a, b, tree]) t.free()
  } finally {
    cleanup()
  }
})
