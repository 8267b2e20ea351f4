// The batched write path: small files sealed whole on the seal workers (many per store put),
// big ones streamed; both must give the same references, round trip byte-exact, and an
// import that fails in the middle must leave every file it reported and none of the batch
// that failed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { exportTree, importDir } from '../src/copy/local-copy.js'
import { BATCH_FILES, MIN_CHUNK, WHOLE_BYTES } from '../src/cas/index.js'
import { tempDir } from './helpers.js'

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of it) parts.push(p)
  return Buffer.concat(parts)
}

async function * pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size)
}

test('a file sealed whole (batched) and the same file streamed in pieces get the same reference', async () => {
  const { dir, cleanup } = tempDir('bazil-batch-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const sizes = [0, 1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, 64 * 1024 + 7, 300_000, WHOLE_BYTES - 1, WHOLE_BYTES]
    const files = sizes.map((n) => crypto.randomBytes(n))
    const whole = await vol.cas.writeFiles(files)
    for (let i = 0; i < files.length; i++) {
      const streamed = await vol.cas.writeFile(pieces(files[i]!, 100_003))
      assert.equal(whole[i]!.size, sizes[i])
      assert.ok(whole[i]!.hash.equals(streamed.hash), `size ${sizes[i]}: same manifest root either way`)
      const back = await readAll(vol.cas.readFile(whole[i]!))
      assert.ok(back.equals(files[i]!), `size ${sizes[i]} reads back`)
    }
    // Paths are read by the worker; writeBuffer calls of one turn share a batch; buffers handed over are not the caller's any more.
    const onDisk = path.join(dir, 'f')
    fs.writeFileSync(onDisk, files[6]!)
    const [byPath] = await vol.cas.writeFiles([onDisk])
    assert.ok(byPath!.hash.equals(whole[6]!.hash))
    const kept = Buffer.from(files[5]!)
    const refs = await Promise.all([vol.cas.writeBuffer(kept), vol.cas.writeBuffer(files[4]!), vol.cas.writeFile(onDisk)])
    assert.ok(kept.equals(files[5]!), 'a buffer not handed over is left as it was')
    assert.deepEqual(refs.map((r) => r.hash.toString('hex')), [whole[5]!, whole[4]!, whole[6]!].map((r) => r.hash.toString('hex')))
    // A path that cannot be read fails the whole batch, naming it.
    await assert.rejects(vol.cas.writeFiles([onDisk, path.join(dir, 'missing')]), /ENOENT.*missing/)
  } finally {
    await node.close()
    cleanup()
  }
})

test('import then export of many small, big, empty and sparse files is byte-exact', async () => {
  const { dir, cleanup } = tempDir('bazil-batch-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const src = path.join(dir, 'src')
    for (let i = 0; i < 2 * BATCH_FILES + 17; i++) {
      const sub = path.join(src, `d${i % 7}`, `e${i % 3}`)
      fs.mkdirSync(sub, { recursive: true })
      fs.writeFileSync(path.join(sub, `f${i}`), crypto.randomBytes(i % 5 === 0 ? 0 : (i * 997) % 20_000))
    }
    fs.writeFileSync(path.join(src, 'exactly-whole'), crypto.randomBytes(WHOLE_BYTES))
    fs.writeFileSync(path.join(src, 'just-over'), crypto.randomBytes(WHOLE_BYTES + 1))
    fs.writeFileSync(path.join(src, 'big'), crypto.randomBytes(5 * 1024 * 1024 + 3))
    const sparse = fs.openSync(path.join(src, 'sparse'), 'w')
    fs.writeSync(sparse, Buffer.from('start'), 0, 5, 0)
    fs.writeSync(sparse, Buffer.from('end'), 0, 3, 3 * 1024 * 1024)
    fs.closeSync(sparse)
    const hole = fs.openSync(path.join(src, 'all-hole'), 'w')
    fs.ftruncateSync(hole, 700_000)
    fs.closeSync(hole)
    fs.symlinkSync('d0/e0/f0', path.join(src, 'link'))
    fs.chmodSync(path.join(src, 'big'), 0o640)
    fs.utimesSync(path.join(src, 'sparse'), 1_600_000_000, 1_600_000_000)

    const summary = await importDir(vol, src, '/in')
    assert.equal(summary.files, 2 * BATCH_FILES + 17 + 5)
    await vol.flush()
    const out = path.join(dir, 'out')
    await exportTree(vol.cas, vol.view(), out)
    const walk = (root: string): string[] => fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).sort()
    assert.deepEqual(walk(path.join(out, 'in')), walk(src))
    for (const rel of walk(src)) {
      const a = path.join(src, rel)
      const b = path.join(out, 'in', rel)
      const sa = fs.lstatSync(a)
      const sb = fs.lstatSync(b)
      if (sa.isSymbolicLink()) {
        assert.equal(fs.readlinkSync(b), fs.readlinkSync(a))
        continue
      }
      assert.equal(sb.mode, sa.mode, `${rel}: mode`)
      if (sa.isFile()) {
        assert.ok(fs.readFileSync(b).equals(fs.readFileSync(a)), `${rel}: content`)
        // The tree keeps whole ms; utimes through a float may land a hair below.
        assert.ok(Math.abs(sb.mtimeMs - Math.floor(sa.mtimeMs)) < 1, `${rel}: mtime`)
      }
    }
  } finally {
    await node.close()
    cleanup()
  }
})

test('an import failing in the middle keeps every file it reported and nothing of the failed batch', async () => {
  const { dir, cleanup } = tempDir('bazil-batch-')
  const data = path.join(dir, 'data')
  const src = path.join(dir, 'src')
  const count = 7 * BATCH_FILES
  fs.mkdirSync(src)
  const names = Array.from({ length: count }, (_, i) => `f${String(i).padStart(5, '0')}`)
  for (const n of names) fs.writeFileSync(path.join(src, n), `content of ${n}`)
  const reported = new Set<number>()
  let node = await Node.open(DataDir.create(data))
  try {
    const vol = await node.createVolume('v', 'default')
    let removed = false
    const failure = await importDir(vol, src, '/', (p) => {
      reported.add(p.files)
      // The last batch is not sent yet when the first one lands: its read will fail.
      if (!removed) {
        fs.rmSync(path.join(src, names[count - 1]!))
        removed = true
      }
    }).then(() => null, (err: Error) => err)
    assert.ok(failure, 'the import fails')
    assert.match(failure.message, /ENOENT/)
    const reportedFiles = Math.max(...reported)
    assert.ok(reportedFiles >= BATCH_FILES && reportedFiles < count, `${reportedFiles} files reported`)
    await vol.flush()
    const present = vol.tree.readdir('/').filter((s) => s.kind === 'file')
    assert.equal(present.length, reportedFiles, 'the tree holds exactly the files reported')
    assert.equal(present.length % BATCH_FILES, 0, 'whole batches only')
    for (const st of present) {
      const back = await readAll(vol.cas.readFile({ hash: Buffer.from(st.content!.hash, 'hex'), size: st.size }))
      assert.equal(back.toString(), `content of ${st.name}`)
    }
    assert.equal(vol.tree.lookup(`/${names[count - 1]}`), null)
    await node.close()
    // Reopened: the same, from the log.
    node = await Node.open(DataDir.open(data))
    const again = await node.volume('v')
    assert.equal(again.tree.readdir('/').filter((s) => s.kind === 'file').length, reportedFiles)
  } finally {
    await node.close()
    cleanup()
  }
})

test('an import flushes before a big directory, not inside one: each directory\'s files reach the log in one flush', async () => {
  const { dir, cleanup } = tempDir('bazil-batch-')
  const src = path.join(dir, 'src')
  const dirs = ['a', 'b', 'c']
  for (const d of dirs) {
    fs.mkdirSync(path.join(src, d), { recursive: true })
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, d, `f${i}`), `${d}/${i}`)
  }
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    // Flushes due every 400 queued ops: a flush at the 400th would split b's 300 files.
    const summary = await importDir(vol, src, '/', undefined, { flushOps: 400 })
    assert.equal(summary.files, 900)
    // A flush's audit ops travel in its last entry: the entries holding a directory's writes.
    const entriesOf = new Map<string, Set<number>>()
    for await (const e of vol.log.read()) {
      if (e instanceof Error) assert.fail(`bad entry: ${e.message}`)
      for (const op of e.body.ops) {
        if (op.op !== 'write' || !op.path) continue
        const d = op.path.split('/')[1]!
        if (!entriesOf.has(d)) entriesOf.set(d, new Set())
        entriesOf.get(d)!.add(e.seq)
      }
    }
    assert.deepEqual([...entriesOf.keys()].sort(), dirs)
    for (const d of dirs) assert.equal(entriesOf.get(d)!.size, 1, `/${d}'s writes are in entries ${[...entriesOf.get(d)!]}`)
    assert.ok(new Set([...entriesOf.values()].map((s) => [...s][0])).size >= 2, 'the import flushed between directories')
    for (const d of dirs) assert.equal(vol.tree.readdir(`/${d}`).length, 300)
  } finally {
    await node.close()
    cleanup()
  }
})
