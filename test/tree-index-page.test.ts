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
import type { RawNode } from '../src/tree/model.js'
import { IDS_VERSION, encodeIds, parseIds, patchIds, type IdPlace } from '../src/tree/index-ids.js'
import { CHUNK_ENTRIES, MAX_DIR_SEGMENTS, PAGE_VERSION, PageEntry, checkBucket, checkDigest, chunkNamed, chunksNamed, encodePage, headLength, parseChunk, pageAt, parseHead, parsePage, patchPage, type ChunkRef, type DirEdits, type OldPage, type Page } from '../src/tree/index-page.js'
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
function readRef(files: string, [s, offset, length]: readonly [string, number, number, string, ...unknown[]]): Buffer {
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

test('a page rejects bytes it does not know: a later page version, a chunk cut short, a damaged chunk', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    const base = openTreeIndex(file, files, A).tree.view.diskBase as IndexFiles
    const big = Object.values(base.manifest.pages).sort((x, y) => y[2] - x[2])[0]
    const bytes = readRef(files, big)
    const hl = headLength(bytes)!
    const head = parseHead(bytes.subarray(0, hl), bytes.length)
    assert.equal(head.version, PAGE_VERSION)
    const later = Buffer.from(bytes)
    later[4] = PAGE_VERSION + 1
    assert.throws(() => headLength(later), new RegExp(`page version ${PAGE_VERSION + 1} is not supported`))
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

// ---- a commit's chunk-wise rewrite of a page (patchPage) ------------------------------------

/** An entry of a page model: a row written by `writer` (null: no row). */
function modelEntry(id: string, dir: string, name: string | null, live: number, versions: number, writer: string | null): BaseEntry {
  const raw: RawNode | null = writer === null ? null : {
    id, kind: 'file', loc: { parent: dir, name: name ?? '', writer, time: 7, prev: null }, mode: 0o644, mtime: 9, creator: writer,
    versions: Array.from({ length: Math.max(1, versions) }, (_, i) => ({ hash: (i + 1).toString(16).padStart(64, '0'), size: i, writer, time: 8, ver: `v${i}` })), tombs: [],
  }
  return { raw, parent: dir === '' ? null : dir, name, live, versions }
}

/** Page edits made on a model (`page`, changed in place), as writeEntries makes them: a removal names the entry's old name. */
class PageEditor {
  readonly edits = new Map<string, DirEdits>()
  constructor(readonly page: Page) {}
  private of(dir: string): DirEdits {
    let e = this.edits.get(dir)
    if (!e) this.edits.set(dir, (e = { remove: [], add: [] }))
    return e
  }
  remove(dir: string, id: string): void {
    const e = this.page.get(dir)!.get(id)!
    this.of(dir).remove.push([id, e.name])
    this.page.get(dir)!.delete(id)
    if (this.page.get(dir)!.size === 0) this.page.delete(dir)
  }
  add(dir: string, id: string, e: BaseEntry): void {
    this.of(dir).add.push([id, e])
    let m = this.page.get(dir)
    if (!m) this.page.set(dir, (m = new Map()))
    m.set(id, e)
  }
  /** An entry changed in place (its row, live or versions; a rename when `name` differs). */
  change(dir: string, id: string, name: string | null, live: number, versions: number, writer: string | null): void {
    this.remove(dir, id)
    this.add(dir, id, modelEntry(id, dir, name, live, versions, writer))
  }
}

const idOf = (s: string): string => hash(Buffer.from(s)).toString('hex')

/** A dir of `n` entries named f0…: every 50th name held by 3 entries (a group), every 70th entry with 2 versions, every 90th not visible, every 40th without a row. */
function bigDir(dir: string, n: number, writer = A): Map<string, BaseEntry> {
  const m = new Map<string, BaseEntry>()
  for (let i = 0; i < n; i++) {
    const name = `f${i}`
    for (let c = 0; c < (i % 50 === 0 ? 3 : 1); c++) {
      const id = idOf(`${dir}/${i}/${c}`)
      m.set(id, modelEntry(id, dir, name, i % 90 === 0 ? 0 : 1 + (i % 3), i % 70 === 0 ? 2 : 1, i % 40 === 0 ? null : writer))
    }
  }
  return m
}

/**
 * Where the patch tests' pages lie, by a segment name of their own: a patched page names the
 * chunks it left in place in the pages before it (at offsets in them).
 */
const pageStore = new Map<string, Buffer>()
/** A page as a commit finds it: its bytes, its ref digest, the segment it lies in (at offset 0). */
type Stored = { bytes: Buffer; digest: string; seg: string }
function store(p: { bytes: Buffer; digest: string }): Stored {
  const seg = `t${pageStore.size}`
  pageStore.set(seg, p.bytes)
  return { bytes: p.bytes, digest: p.digest, seg }
}
/** A chunk a page names elsewhere, read from the store. */
const elsewhere = (c: ChunkRef): Buffer => pageStore.get(c.seg!)!.subarray(c.offset, c.offset + c.length)
/** A chunk of page `p`: in its bytes, or elsewhere. */
function chunkIn(p: { bytes: Buffer }, c: ChunkRef): Buffer {
  return c.seg !== undefined ? elsewhere(c) : p.bytes.subarray(c.offset, c.offset + c.length)
}
/** `p` as patchPage reads it (its header checked against its digest). */
function oldOf(p: Stored): OldPage {
  checkDigest(p.bytes.subarray(0, headLength(p.bytes)!), p.digest)
  return pageAt(p.bytes, p.seg, 0, elsewhere)
}

/** The entries of a page as read back: per dir, [id, name, live, versions, parent, row decoded (those of `rows`, the others: whether there is one)] sorted. */
function readBack(bytes: Buffer, rows: (id: string) => boolean): Map<string, unknown[]> {
  return new Map([...parsePage(bytes, elsewhere).page].map(([dir, m]) => [dir, [...m].map(([id, e]) => [id, e.name, e.live, e.versions, e.parent, rows(id) ? e.raw : (e as PageEntry).rowText !== null]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1))]))
}

/**
 * Patches `old` with the editor's edits and checks the result reads back as the model encoded
 * whole does: entries, counts, summaries, lookups by name, chunk order and bounds, digests.
 * Returns the patched page.
 */
function patchAndCheck(old: Stored, ed: PageEditor, label: string): Stored {
  const p = patchPage(oldOf(old), ed.edits)
  assert.ok(p !== null, `${label}: patched`)
  if (ed.page.size === 0) {
    assert.equal(p, 'empty', label)
    return old
  }
  assert.ok(p !== 'empty', label)
  const oldActors = parseHead(old.bytes.subarray(0, headLength(old.bytes)!), old.bytes.length).actors
  const whole = encodePage(ed.page, oldActors)
  checkBucket(p.bytes, p.digest, elsewhere)
  // Rows decoded: those of the entries edited and every 16th other.
  const edited = new Set([...ed.edits.values()].flatMap((e) => e.add.map(([id]) => id)))
  const rows = (id: string): boolean => edited.has(id) || id.endsWith('0')
  assert.deepEqual(readBack(p.bytes, rows), readBack(whole.bytes, rows), `${label}: entries`)
  const ph = parseHead(p.bytes.subarray(0, headLength(p.bytes)!), p.bytes.length)
  const wh = parseHead(whole.bytes.subarray(0, headLength(whole.bytes)!), whole.bytes.length)
  assert.equal(ph.version, PAGE_VERSION)
  assert.deepEqual(ph.actors.slice(0, oldActors.length), oldActors, `${label}: the old actor table is kept`)
  assert.deepEqual([...ph.dirs.keys()], [...wh.dirs.keys()], `${label}: dirs`)
  for (const [dir, d] of ph.dirs) {
    const w = wh.dirs.get(dir)!
    assert.equal(d.count, w.count, `${label}: count of ${dir}`)
    assert.deepEqual(d.summary, w.summary, `${label}: summary of ${dir}`)
    // Chunks: 1..CHUNK_ENTRIES entries each, in (name, id) order, each first name its first entry's.
    const order: string[] = []
    for (const c of d.chunks) {
      const list = parseChunk(chunkIn(p, c), c, dir, ph.actors)
      assert.ok(list.length >= 1 && list.length <= CHUNK_ENTRIES, `${label}: a chunk of ${list.length} entries`)
      assert.equal(c.first, list[0][1].name ?? '', `${label}: first name`)
      for (const [id, e] of list) order.push(`${e.name ?? ''}\u0000${id}`)
    }
    assert.deepEqual(order, [...order].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)), `${label}: ${dir} in order`)
    // Lookups by name (and of names not there) find what the model holds.
    // The names edited, and every 50th other one.
    const names = new Set([...ed.page.get(dir)!.values()].map((e) => e.name ?? '').filter((_, i) => i % 50 === 0))
    for (const e of ed.edits.get(dir)?.remove ?? []) names.add(e[1] ?? '')
    for (const e of ed.edits.get(dir)?.add ?? []) names.add(e[1].name ?? '')
    for (const name of [...names, 'f', 'f10000x', 'zz', '']) {
      const found: string[] = d.named(name).flatMap((c) => parseChunk(chunkIn(p, c), c, dir, ph.actors)).filter(([, e]) => (e.name ?? '') === name).map(([id]) => id).sort()
      const want = [...ed.page.get(dir)!].filter(([, e]) => (e.name ?? '') === name).map(([id]) => id).sort()
      assert.deepEqual(found, want, `${label}: ${dir}/${name}`)
    }
  }
  return store(p)
}

/** A bucket of a 10k-entry dir, a small one and one of entries not attached (no names). */
function bigPage(): Page {
  const page: Page = new Map()
  page.set('big', bigDir('big', 10_000))
  page.set('small', bigDir('small', 5))
  const loose = new Map<string, BaseEntry>()
  for (let i = 0; i < 100; i++) loose.set(idOf(`loose/${i}`), modelEntry(idOf(`loose/${i}`), '', null, i % 2, 1, A))
  page.set('', loose)
  return page
}

/** `page` encoded whole, then read back as a commit would find it (its entries PageEntry objects over its actor table). */
function written(page: Page): Stored {
  return store(encodePage(page, null))
}

test('a page patched chunk-wise reads back as the page encoded whole: edits in the middle of a 10k-entry dir, a rename, a name across chunks, splits, emptied chunks and dirs, a new dir, copies, a new actor', () => {
  const page = bigPage()
  let cur = written(page)
  const big = (): Map<string, BaseEntry> => page.get('big')!
  const idsNamed = (name: string): string[] => [...big()].filter(([, e]) => e.name === name).map(([id]) => id).sort()
  const step = (label: string, f: (ed: PageEditor) => void): void => {
    const ed = new PageEditor(page)
    f(ed)
    cur = patchAndCheck(cur, ed, label)
  }
  const chunkCount = (): number => parseHead(cur.bytes.subarray(0, headLength(cur.bytes)!), cur.bytes.length).dirs.get('big')!.chunks.length
  const k0 = chunkCount()
  assert.equal(k0, Math.ceil(big().size / CHUNK_ENTRIES))
  step('adds and removals in the middle', (ed) => {
    ed.remove('big', idsNamed('f5000')[0])
    ed.remove('big', idsNamed('f5001')[0])
    ed.add('big', idOf('new/1'), modelEntry(idOf('new/1'), 'big', 'f5000x', 1, 1, A))
    ed.add('big', idOf('new/2'), modelEntry(idOf('new/2'), 'big', 'g1', 1, 1, A))
    ed.change('big', idsNamed('f5003')[0], 'f5003', 4, 1, A)
  })
  step('a rename (the entry leaves one name for another far away in the order)', (ed) => ed.change('big', idsNamed('f123')[0], 'z123', 1, 1, A))
  step('a rename into a same-name group, and out of one', (ed) => {
    ed.change('big', idsNamed('f124')[0], 'f200', 1, 1, A)
    ed.change('big', idsNamed('f1000')[1], 'f1000-out', 1, 1, A)
  })
  // A name whose entries span a chunk boundary: 100 entries named "f77".
  step('a name across a chunk boundary', (ed) => { for (let i = 0; i < 100; i++) ed.add('big', idOf(`many/${i}`), modelEntry(idOf(`many/${i}`), 'big', 'f77', 1, 1, A)) })
  assert.ok(chunkCount() > k0, 'the chunk that grew split')
  step('an entry of the name across chunks removed, another changed', (ed) => {
    const ids = idsNamed('f77')
    ed.remove('big', ids[40])
    ed.change('big', ids[70], 'f77', 0, 1, A)
  })
  step('a chunk that splits', (ed) => { for (let i = 0; i < 20; i++) ed.add('big', idOf(`split/${i}`), modelEntry(idOf(`split/${i}`), 'big', `f3000-${i}`, 1, 1, A)) })
  const before = chunkCount()
  // Every entry of a run of names (more than a chunk's): their chunks empty and are dropped.
  step('chunks that empty', (ed) => {
    for (const [id, e] of [...big()]) if (e.name !== null && /^f6[0-9]{3}$/.test(e.name) && Number(e.name.slice(1)) < 6150) ed.remove('big', id)
  })
  assert.ok(chunkCount() < before, 'emptied chunks are dropped')
  step('a new dir in the bucket', (ed) => { for (const [id, e] of bigDir('fresh', 70)) ed.add('fresh', id, e) })
  step('a dir that empties', (ed) => { for (const id of [...page.get('small')!.keys()]) ed.remove('small', id) })
  assert.equal(page.has('small'), false)
  step('entries not attached (no names, one sort key) edited', (ed) => {
    ed.remove('', [...page.get('')!.keys()][10])
    ed.add('', idOf('loose/new'), modelEntry(idOf('loose/new'), '', null, 1, 1, A))
  })
  step('conflict copies made and resolved', (ed) => {
    ed.change('big', idsNamed('f4321')[0], 'f4321', 1, 3, A)
    ed.change('big', idsNamed('f70')[0], 'f70', 1, 1, A)
    ed.change('big', idsNamed('f9000')[0], 'f9000', 0, 2, A)
  })
  const copies = parseHead(cur.bytes.subarray(0, headLength(cur.bytes)!), cur.bytes.length).dirs.get('big')!.summary!.copies
  assert.equal(copies, [...big().values()].filter((e) => e.live > 0 && e.name !== null && e.versions > 1).length)
  step('an actor new to the page', (ed) => {
    ed.add('big', idOf('by-c'), modelEntry(idOf('by-c'), 'big', 'f2500', 1, 1, C))
    ed.change('big', idsNamed('f8000')[0], 'f8000', 1, 1, B)
  })
  const head = parseHead(cur.bytes.subarray(0, headLength(cur.bytes)!), cur.bytes.length)
  assert.deepEqual([...head.actors].sort(), [A, B, C])
  assert.equal(head.actors[0], A)
  const byC = head.dirs.get('big')!.named('f2500').flatMap((c) => chunkNamed(chunkIn(cur, c), 'big', head.actors, 'f2500')).find(([id]) => id === idOf('by-c'))!
  assert.equal(byC[1].raw!.creator, C)
  step('the last entries of the page removed', (ed) => {
    for (const [dir, m] of [...page]) for (const id of [...m.keys()]) ed.remove(dir, id)
  })
})

test('a page patched over many commits of random edits reads back as the page encoded whole; a dir left with many small chunks is cut again', () => {
  const r = rng(11)
  for (let round = 0; round < 4; round++) {
    const page: Page = new Map([['d', bigDir('d', 600)], ['e', bigDir('e', 40)]])
    let cur = written(page)
    let k = 0
    for (let gen = 0; gen < 25; gen++) {
      const ed = new PageEditor(page)
      const n = 1 + Math.floor(r() * 40)
      for (let i = 0; i < n; i++) {
        const dir = r() < 0.8 ? 'd' : r() < 0.5 ? 'e' : `x${Math.floor(r() * 3)}`
        const m = page.get(dir)
        const ids = m ? [...m.keys()] : []
        const pick = ids[Math.floor(r() * ids.length)]
        const op = r()
        // Each id is edited once per commit (writeEntries' edits: one removal and one add per id at most).
        if (pick !== undefined && (ed.edits.get(dir)?.remove.some(([x]) => x === pick) || ed.edits.get(dir)?.add.some(([x]) => x === pick))) continue
        const name = r() < 0.3 ? `f${Math.floor(r() * 700)}` : `n${Math.floor(r() * 3000)}`
        const writer = [A, B, C][Math.floor(r() * 3)]
        if (pick !== undefined && op < 0.45) ed.remove(dir, pick)
        else if (pick !== undefined && op < 0.7) ed.change(dir, pick, r() < 0.5 ? m!.get(pick)!.name : name, Math.floor(r() * 3), 1 + Math.floor(r() * 2), writer)
        else {
          const id = idOf(`r${round}/${k++}`)
          ed.add(dir, id, modelEntry(id, dir, name, Math.floor(r() * 3), 1 + Math.floor(r() * 2), writer))
        }
      }
      cur = patchAndCheck(cur, ed, `round ${round}, commit ${gen}`)
      if (page.size === 0) break
    }
  }
  // Removals leave small chunks; once a dir's chunks average under a third full it is cut again whole.
  const page: Page = new Map([['d', bigDir('d', 2000)]])
  let cur = written(page)
  const ids = [...page.get('d')!.keys()]
  for (let gen = 0; gen < 60; gen++) {
    const ed = new PageEditor(page)
    // One entry in every other chunk's range, each commit.
    for (let i = gen; i < ids.length; i += 64) if (page.get('d')!.has(ids[i])) ed.remove('d', ids[i])
    cur = patchAndCheck(cur, ed, `removals ${gen}`)
    const d = parseHead(cur.bytes.subarray(0, headLength(cur.bytes)!), cur.bytes.length).dirs.get('d')!
    assert.ok(d.chunks.length <= 3 * Math.ceil(d.count / CHUNK_ENTRIES) + 1, `removals ${gen}: ${d.chunks.length} chunks for ${d.count} entries`)
  }
})

test('a patched page carries the chunks it did not touch with their digests: a damaged one is still found when read', () => {
  const page = bigPage()
  const cur = written(page)
  const head = parseHead(cur.bytes.subarray(0, headLength(cur.bytes)!), cur.bytes.length)
  const c = head.dirs.get('big')!.chunks[3]
  const bad = Buffer.from(cur.bytes)
  bad[c.offset + c.length - 2] ^= 1
  const ed = new PageEditor(page)
  ed.add('big', idOf('late'), modelEntry(idOf('late'), 'big', 'f9999', 1, 1, A))
  const badPage = store({ bytes: bad, digest: cur.digest })
  const p = patchPage(oldOf(badPage), ed.edits)
  assert.ok(p !== null && p !== 'empty')
  assert.throws(() => checkBucket(p.bytes, p.digest, elsewhere), /chunk digest mismatch/)
  const ph = parseHead(p.bytes.subarray(0, headLength(p.bytes)!), p.bytes.length)
  const carried = ph.dirs.get('big')!.named(c.first)
  assert.ok(carried.every((x) => x.seg === badPage.seg), 'left where it lies')
  assert.throws(() => carried.map((x) => parseChunk(chunkIn(p, x), x, 'big', ph.actors)), /chunk digest mismatch/)
  // A damaged header, or a damaged chunk the patch decodes, is refused.
  const badHead = Buffer.from(cur.bytes)
  badHead[20] ^= 1
  assert.throws(() => oldOf(store({ bytes: badHead, digest: cur.digest })), /digest mismatch/)
  const ed2 = new PageEditor(page)
  ed2.add('big', idOf('late2'), modelEntry(idOf('late2'), 'big', c.first, 1, 1, A))
  assert.throws(() => patchPage(oldOf(badPage), ed2.edits), /chunk digest mismatch/)
  // A page of version 3 is not patched (the caller encodes it whole, with the summaries).
  const v3 = store(encodePage(page, null, 3))
  assert.equal(patchPage(oldOf(v3), ed.edits), null)
})

test('a commit rewrites only the chunks of the names it touched; a damaged chunk it carried is found when read', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    const base = openTreeIndex(file, files, A).tree.view.diskBase as IndexFiles
    // /clean: 300 entries without conflicts (a change reads the chunks of the names it touches).
    const clean = b.stat('/clean').id
    const big = pageBucket(clean)
    const ref = base.manifest.pages[big]
    const bytes = readRef(files, ref)
    const head = parseHead(bytes.subarray(0, headLength(bytes)!), bytes.length)
    const chunks = head.dirs.get(clean)!.chunks
    // Damage a chunk the commit below does not touch (the first: c0, c1, c10, …).
    const c = chunks[0]
    const fd = fs.openSync(path.join(files, ref[0]), 'r+')
    fs.writeSync(fd, Buffer.from([bytes[c.offset + c.length - 2] ^ 1]), 0, 1, ref[1] + c.offset + c.length - 2)
    fs.closeSync(fd)
    const { tree } = openTreeIndex(file, files, A)
    tree.writeFile('/clean/c299', { hash: '99'.repeat(32), size: 999 })
    b.writeFile('/clean/c299', { hash: '99'.repeat(32), size: 999 })
    commitTreeIndex(file, files, tree, null)
    const next = (openTreeIndex(file, files, A).tree.view.diskBase as IndexFiles).manifest.pages[big]
    const after = readRef(files, next)
    const h2 = parseHead(after.subarray(0, headLength(after)!), after.length)
    const chunks2 = h2.dirs.get(clean)!.chunks
    // Every chunk but the one of c299 carried as it was (the same digest).
    assert.deepEqual(chunks2.map((x) => x.digest).filter((d) => !chunks.some((y) => y.digest === d)).length, 1)
    assert.equal(chunks2[0].digest, c.digest)
    const fresh = openTreeIndex(file, files, A).tree
    assert.deepEqual(fresh.lookup('/clean/c299'), tree.lookup('/clean/c299'))
    assert.throws(() => fresh.lookup('/clean/c1'), /on-disk index .* is damaged/)
    for (const t of [a, b, tree, fresh]) t.free()
  } finally {
    cleanup()
  }
})

test('an id bucket patched gives the bytes of the bucket encoded whole: records added, moved, renamed, removed, dirs no record names any more dropped', () => {
  const r = rng(5)
  const dirs = Array.from({ length: 30 }, (_, i) => (i === 0 ? '' : idOf(`dir${i}`).slice(0, 32)))
  const place = (): IdPlace => [dirs[Math.floor(r() * dirs.length)], r() < 0.1 ? null : r() < 0.1 ? undefined : `n${Math.floor(r() * 100)}é`]
  for (let round = 0; round < 30; round++) {
    const m = new Map<string, IdPlace>()
    for (let i = 0, n = Math.floor(r() * 1500); i < n; i++) m.set(idOf(`${round}/${i}`).slice(0, 32 + (i % 3)), place())
    let bytes = encodeIds(m)
    for (let gen = 0; gen < 5; gen++) {
      const edits = new Map<string, IdPlace | null>()
      const ids = [...m.keys()]
      for (let i = 0, n = Math.floor(r() ** 2 * (round % 5 === 4 ? 3000 : 200)); i < n; i++) {
        const op = r()
        const id = op < 0.5 && ids.length > 0 ? ids[Math.floor(r() * ids.length)] : idOf(`${round}/${gen}/new${i}`).slice(0, 30 + (i % 5))
        const p = op < 0.25 ? null : place()
        edits.set(id, p)
        if (p === null) m.delete(id)
        else m.set(id, p)
      }
      const p = patchIds(bytes, edits)
      if (m.size === 0) {
        assert.equal(p, 'empty')
        break
      }
      assert.ok(Buffer.isBuffer(p))
      assert.ok(p.equals(encodeIds(m)), `round ${round}, commit ${gen}: the bytes encodeIds gives`)
      const back = parseIds(p)
      for (const [id, want] of [...m].filter((_, i) => i % 7 === 0)) assert.deepEqual(back.get(id), want)
      bytes = p
    }
  }
  // Version 1 (JSON) is not patched: the caller rewrites it from its records.
  assert.equal(patchIds(Buffer.from(JSON.stringify([['ab', 'cd']])), new Map([['ab', null]])), null)
  // A record cut short is refused.
  const b = encodeIds(new Map<string, IdPlace>([['ab', ['d', 'name']], ['cd', ['d', 'x']]]))
  assert.throws(() => patchIds(b.subarray(0, b.length - 2), new Map([['zz', null]])), /end early/)
})

test('chunks a commit does not touch stay in the segment they were written in; a dir spread over too many segments, or chunks in a segment mostly garbage, are written into the page again', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'x.ckpt')
    const files = path.join(dir, 'x')
    const t = Tree.create(A)
    const ref = Tree.create(B)
    t.mkdir('/d')
    for (let i = 0; i < 2000; i++) t.writeFile(`/d/f${String(i).padStart(4, '0')}`, { hash: (i + 1).toString(16).padStart(64, '0'), size: i })
    ref.applyChanges(t.takeChanges())
    commitTreeIndex(file, files, t, null)
    const d = t.stat('/d').id
    const pageOf = (): { ref: IndexFiles['manifest']['pages'][string]; chunks: ChunkRef[] } => {
      const m = (t.view.diskBase as IndexFiles).manifest
      const r = m.pages[pageBucket(d)]
      const bytes = readRef(files, r)
      return { ref: r, chunks: parseHead(bytes.subarray(0, headLength(bytes)!), bytes.length).dirs.get(d)!.chunks }
    }
    const first = pageOf()
    assert.equal(first.chunks.every((c) => c.seg === undefined), true, 'a first commit writes every chunk in the page')
    const check = (label: string): void => {
      const back = openTreeIndex(file, files, A).tree
      for (const s of ref.walk('/d')) assert.deepEqual(back.lookup(s.path), ref.lookup(s.path), `${label}: ${s.path}`)
      assert.deepEqual(back.readdir('/d').map((s) => s.path), ref.readdir('/d').map((s) => s.path), `${label}: the listing`)
      back.free()
      assert.deepEqual(fs.readdirSync(files).sort(), Object.keys((t.view.diskBase as IndexFiles).manifest.segments).sort(), `${label}: only the segments named`)
    }
    // One name changed: its chunk is written; every other stays where the first commit put it.
    t.writeFile('/d/f1000', { hash: 'aa'.repeat(32), size: 1 })
    ref.applyChanges(t.takeChanges())
    commitTreeIndex(file, files, t, null)
    const second = pageOf()
    const inPlace = second.chunks.filter((c) => c.seg === first.ref[0])
    assert.equal(inPlace.length, second.chunks.length - 1, 'every chunk but the changed one left in place')
    assert.ok(second.ref[2] < first.ref[2] / 10, `the page written is ${second.ref[2]} bytes, not ${first.ref[2]}`)
    assert.deepEqual(second.ref[4], { [first.ref[0]]: inPlace.reduce((n, c) => n + c.length, 0) }, 'its ref counts the bytes it keeps alive there')
    check('one name changed')
    // One name in another chunk per commit: the dir's chunks spread over more and more segments,
    // until it would lie in more than MAX_DIR_SEGMENTS: then it is written whole into the page.
    let whole = false
    for (let k = 0; k < MAX_DIR_SEGMENTS + 2 && !whole; k++) {
      t.writeFile(`/d/f${String(k * 64 + 5).padStart(4, '0')}`, { hash: 'bb'.repeat(32), size: k })
      ref.applyChanges(t.takeChanges())
      commitTreeIndex(file, files, t, null)
      const p = pageOf()
      const segs = new Set(p.chunks.map((c) => c.seg).filter((s) => s !== undefined))
      assert.ok(segs.size <= MAX_DIR_SEGMENTS, `${segs.size} segments`)
      whole = p.chunks.every((c) => c.seg === undefined)
    }
    assert.ok(whole, 'written whole again once spread too far')
    check('after the spread')
    // Most of the chunks rewritten one commit after another: the first segments become mostly
    // garbage, are emptied, and the pages that left chunks in them take those in.
    for (let k = 0; k < 40; k++) {
      for (let j = 0; j < 2000; j += 40) t.writeFile(`/d/f${String(j + k).padStart(4, '0')}`, { hash: 'cc'.repeat(32), size: k })
      ref.applyChanges(t.takeChanges())
      commitTreeIndex(file, files, t, null)
    }
    check('after many commits')
    assert.equal(fs.existsSync(path.join(files, first.ref[0])), false, 'the first segment was emptied')
    t.free()
    ref.free()
  } finally {
    cleanup()
  }
})
