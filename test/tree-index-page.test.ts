// Page buckets of the index on disk (src/tree/index-page.ts): names apart from rows, rows in
// chunks. A name lookup finds every entry of that name whatever the chunk boundaries; a stat in
// a big directory reads a header and a chunk, not the directory, and answers as the tree in
// memory does (same-name groups, conflict copies); an index whose pages are of version 1
// (manifest version 4) is read, and a commit rewrites only the pages it touches.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { hash } from '../src/crypto.js'
import { Tree, canonicalDump } from '../src/tree/index.js'
import type { BaseEntry } from '../src/tree/index-layers.js'
import { CHUNK_ENTRIES, PageEntry, chunkNamed, chunksNamed, encodePage, headLength, parseChunk, parseHead, parsePage, type Page } from '../src/tree/index-page.js'
import { INDEX_VERSION, IndexFiles, commitTreeIndex, openTreeIndex, pageBucket } from '../src/tree/index-store.js'
import { ROOT_ID } from '../src/tree/model.js'
import { tempDir } from './helpers.js'
import { rng } from './tree-random.js'

const A = 'a1'.repeat(16)
const B = 'b2'.repeat(16)

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
function bigTree(): { a: Tree; b: Tree } {
  const a = Tree.create(A)
  const b = Tree.create(B)
  a.mkdir('/big')
  a.mkdir('/small')
  for (let i = 0; i < 1000; i++) a.writeFile(`/big/f${i}`, { hash: (i + 1).toString(16).padStart(64, '0'), size: i })
  a.writeFile('/small/x', { hash: 'aa'.repeat(32), size: 1 })
  b.applyChanges(a.takeChanges())
  for (const t of [a, b]) {
    t.writeFile('/big/same', { hash: (t === a ? 'a' : 'b').repeat(64), size: 2 })
    t.writeFile('/big/f500', { hash: (t === a ? 'c' : 'd').repeat(64), size: 3 })
    t.mkdir('/big/f700.conflict-00000000')
  }
  const ca = a.takeChanges(), cb = b.takeChanges()
  a.applyChanges(cb)
  b.applyChanges(ca)
  return { a, b }
}

/** bigTree with writer a's index committed in `dir`. */
function committedBigTree(dir: string): { a: Tree; b: Tree; file: string; files: string } {
  const { a, b } = bigTree()
  const file = path.join(dir, 'x.ckpt')
  const files = path.join(dir, 'x')
  commitTreeIndex(file, files, a, null)
  return { a, b, file, files }
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

/** Rewrites an index's page buckets in version 2 under a version 5 manifest: what session 8 wrote. */
function toVersion2(file: string, files: string): void {
  const buf = fs.readFileSync(file)
  const m = JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as { segments: Record<string, number>; pages: Record<string, [string, number, number, string]> }
  const seg = 'seg.998'
  const out: Buffer[] = []
  let size = 0
  for (const [k, ref] of Object.entries(m.pages)) {
    const { page, actors } = parsePage(readRef(files, ref))
    const v2 = encodeVersion2(page, actors)
    m.pages[k] = [seg, size, v2.bytes.length, v2.digest]
    out.push(v2.bytes)
    size += v2.bytes.length
  }
  fs.writeFileSync(path.join(files, seg), Buffer.concat(out))
  m.segments[seg] = size
  writeManifest(file, m, 5)
}

/** The version of each page bucket an index names (1: no magic). */
function pageVersions(files: string, base: IndexFiles): number[] {
  return Object.values(base.manifest.pages).map((ref) => {
    const x = readRef(files, [ref[0], ref[1], 5, ''])
    return x.toString('latin1', 0, 4) === 'BZIP' ? x[4] : 1
  })
}

/**
 * After a file was added in /small: /small's page is of version 3; /big's page keeps version
 * `old` unless it shares a bucket with a page the edit rewrote.
 */
function assertRewritten(files: string, tree: Tree, old: number): void {
  const base = tree.view.diskBase as IndexFiles
  const versionOf = (dir: string): number => {
    const ref = base.manifest.pages[pageBucket(dir)]
    const x = readRef(files, [ref[0], ref[1], 5, ''])
    return x.toString('latin1', 0, 4) === 'BZIP' ? x[4] : 1
  }
  const big = tree.lookup('/big')!.id, small = tree.lookup('/small')!.id
  assert.equal(versionOf(small), 3)
  // The root's page holds /small's entry (rewritten when its mtime changed): /big's page may share it.
  if (pageBucket(big) === pageBucket(small)) assert.equal(versionOf(big), 3)
  else if (pageBucket(big) !== pageBucket(ROOT_ID)) assert.equal(versionOf(big), old, `/big's page`)
}

/** Rewrites an index's page buckets in version 1 (JSON, digest over the whole bucket) under a version 4 manifest: what session 7 wrote. */
function toVersion1(file: string, files: string): void {
  const buf = fs.readFileSync(file)
  const m = JSON.parse(buf.toString('utf8', 9, buf.length - 32)) as { segments: Record<string, number>; pages: Record<string, [string, number, number, string]> }
  const seg = 'seg.999'
  const out: Buffer[] = []
  let size = 0
  for (const [k, [s, offset, length]] of Object.entries(m.pages)) {
    const b = Buffer.alloc(length)
    const fd = fs.openSync(path.join(files, s), 'r')
    fs.readSync(fd, b, 0, length, offset)
    fs.closeSync(fd)
    const { page, actors } = parsePage(b)
    const dirs = [...page].map(([d, es]) => [d, [...es].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([id, e]) => [id, e.name, e.live, e.versions, rowString(e as PageEntry)])])
    const v1 = Buffer.from(JSON.stringify({ actors, dirs }))
    m.pages[k] = [seg, size, v1.length, hash(v1).toString('hex')]
    out.push(v1)
    size += v1.length
  }
  fs.writeFileSync(path.join(files, seg), Buffer.concat(out))
  m.segments[seg] = size
  const json = Buffer.from(JSON.stringify(m))
  const head = Buffer.alloc(9)
  head.write('BZTC')
  head[4] = 4
  head.writeUInt32BE(json.length, 5)
  const body = Buffer.concat([head, json])
  fs.writeFileSync(file, Buffer.concat([body, hash(body)]))
}

test('an index of version 4 (pages of version 1) is read; a commit rewrites only the pages it touches, in version 3', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    toVersion1(file, files)
    assert.equal(fs.readFileSync(file)[4], 4)
    const old = openTreeIndex(file, files, A)
    assert.equal(old.legacy, false)
    assert.deepEqual(old.tree.lookup('/big/f321'), b.lookup('/big/f321'))
    assert.deepEqual(canonicalDump(old.tree), canonicalDump(b))
    // An edit in /small: its page is rewritten in version 2, /big's stays version 1.
    old.tree.writeFile('/small/y', { hash: 'bb'.repeat(32), size: 5 })
    b.applyChanges(old.tree.takeChanges())
    commitTreeIndex(file, files, old.tree, null)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION)
    const back = openTreeIndex(file, files, A).tree
    assertRewritten(files, back, 1)
    for (const p of ['/big/f321', '/big/same', '/small/y', '/small/x']) assert.deepEqual(back.lookup(p), b.lookup(p), p)
    assert.deepEqual(canonicalDump(back), canonicalDump(b))
    for (const t of [a, b, old.tree, back]) t.free()
  } finally {
    cleanup()
  }
})

test('an index of version 5 (pages of version 2: JSON header and chunks) is read; a commit rewrites only the pages it touches, in version 3', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    toVersion2(file, files)
    assert.equal(fs.readFileSync(file)[4], 5)
    const old = openTreeIndex(file, files, A)
    assert.deepEqual(pageVersions(files, old.tree.view.diskBase as IndexFiles).filter((v) => v !== 2), [])
    // Name lookups from fresh opens (header and one chunk), then the whole tree.
    for (const p of ['/big/f321', '/big/same', '/big/f500', '/small/x', '/big/nope']) {
      const { tree } = openTreeIndex(file, files, A)
      assert.deepEqual(tree.lookup(p), b.lookup(p), p)
      tree.free()
    }
    assert.deepEqual(canonicalDump(old.tree), canonicalDump(b))
    old.tree.writeFile('/small/y', { hash: 'bb'.repeat(32), size: 5 })
    b.applyChanges(old.tree.takeChanges())
    commitTreeIndex(file, files, old.tree, null)
    assert.equal(fs.readFileSync(file)[4], INDEX_VERSION)
    const back = openTreeIndex(file, files, A).tree
    assertRewritten(files, back, 2)
    for (const p of ['/big/f321', '/big/same', '/small/y', '/small/x']) assert.deepEqual(back.lookup(p), b.lookup(p), p)
    assert.deepEqual(canonicalDump(back), canonicalDump(b))
    for (const t of [a, b, old.tree, back]) t.free()
  } finally {
    cleanup()
  }
})

test('a version 3 page rejects bytes it does not know: a later page version, a chunk cut short, a damaged chunk', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { a, b, file, files } = committedBigTree(dir)
    const base = openTreeIndex(file, files, A).tree.view.diskBase as IndexFiles
    const big = Object.values(base.manifest.pages).sort((x, y) => y[2] - x[2])[0]
    const bytes = readRef(files, big)
    const hl = headLength(bytes)!
    const head = parseHead(bytes.subarray(0, hl), bytes.length)
    assert.equal(head.version, 3)
    const later = Buffer.from(bytes)
    later[4] = 4
    assert.throws(() => headLength(later), /page version 4 is not supported/)
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
