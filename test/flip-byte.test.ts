// One flipped byte in the data dir (found by the flip-byte torture section): damage is found
// and named, nothing else is lost, the node does not fall over. Real data dirs, the real
// `bazil` binary; the byte to flip is found by searching the store's files for the bytes of
// one stored log block (RocksDB keeps them uncompressed here).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { encodeKey } from '../src/crypto.js'
import { bazil, summaryOf, tempDir } from './helpers.js'

/** Every file under `dir` with the offsets where `needle` starts. */
function find(dir: string, needle: Buffer): { file: string; offset: number }[] {
  const hits: { file: string; offset: number }[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const file = path.join(e.parentPath, e.name)
    const buf = fs.readFileSync(file)
    for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + 1)) hits.push({ file, offset: at })
  }
  return hits
}

function flip(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, offset)
  b[0] ^= 0x55
  fs.writeSync(fd, b, 0, 1, offset)
  fs.closeSync(fd)
}

test('a log block that fails its storage checksum: log verify names the writer and seq, the rest of the volume still reads', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-flip-')
  try {
    const data = path.join(dir, 'd')
    const src = path.join(dir, 'src')
    fs.mkdirSync(src)
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    // Entry 1: a file; entry 2: 40 more (its block is the one damaged: over 4 KiB, so RocksDB
    // keeps it alone in a blob file with its own checksum); entry 3: one more file.
    for (const [i, name] of ['one', 'two', 'three'].entries()) {
      fs.mkdirSync(path.join(src, name))
      fs.writeFileSync(path.join(src, name, `${name}.txt`), `${name}\n`.repeat(200 + i))
      if (name === 'two') for (let k = 0; k < 40; k++) fs.writeFileSync(path.join(src, name, `more-${k}.txt`), `more ${k}\n`)
      const r = await bazil(data, ['volume', 'import', 'v', path.join(src, name)])
      assert.equal(r.code, 0, r.stderr)
    }
    // The stored bytes of entry 2 (seq 2), read through the public API before closing.
    const node = await Node.open(DataDir.open(data))
    const vol = await node.volume('v')
    const block = await vol.log.core.get(2)
    assert.ok(block && block.length > 4096, `entry 2 is ${block?.length} bytes`)
    const logKey = encodeKey(vol.log.key)
    await node.close()
    const hits = find(path.join(data, 'corestore'), block.subarray(0, 64))
    assert.equal(hits.length, 1, `the block is stored once, uncompressed: ${JSON.stringify(hits)}`)
    assert.match(hits[0]!.file, /\.blob$/)
    flip(hits[0]!.file, hits[0]!.offset + Math.floor(block.length / 2))

    const verify = await bazil(data, ['log', 'verify', '--json', 'v'])
    assert.doesNotMatch(verify.stderr, /^\s+at /m, 'no stack trace')
    assert.equal(verify.code, 1, `verify fails: ${verify.stdout}${verify.stderr}`)
    assert.match(verify.stdout, /^\{/, `verify reports in JSON, not: ${verify.stderr}`)
    const report = summaryOf(verify.stdout) as { ok: boolean; errors: { writer: string; seq: number; reason: string }[] }
    assert.equal(report.ok, false)
    assert.deepEqual(report.errors.map((e) => [e.writer, e.seq]), [[logKey, 2]], JSON.stringify(report.errors))

    // The entry before it still applies: its file reads, from the checkpoint and from a full
    // replay (the checkpoint is a cache: without it, replay skips the bad entry, naming it).
    for (const replay of [false, true]) {
      if (replay) fs.rmSync(path.join(data, 'index'), { recursive: true, force: true })
      const one = await bazil(data, ['volume', 'cat', 'v', 'one.txt'])
      assert.equal(one.code, 0, `${replay ? 'after a full replay: ' : ''}${one.stderr}`)
      assert.equal(one.stdout, 'one\n'.repeat(200))
    }
  } finally {
    cleanup()
  }
})

test('a damaged RocksDB table is reported as damage naming the file, not as "in use by another bazil process"', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-flip-')
  try {
    const data = path.join(dir, 'd')
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    fs.mkdirSync(path.join(dir, 'src'))
    fs.writeFileSync(path.join(dir, 'src', 'f.txt'), 'f\n')
    assert.equal((await bazil(data, ['volume', 'import', 'v', path.join(dir, 'src')])).code, 0)
    // One byte of the first data block of every table: the store cannot even open.
    const db = path.join(data, 'corestore', 'db')
    const tables = fs.readdirSync(db).filter((f) => f.endsWith('.sst'))
    assert.ok(tables.length > 0)
    for (const t of tables) flip(path.join(db, t), 100)
    const r = await bazil(data, ['volume', 'ls', 'v'])
    assert.equal(r.code, 1)
    assert.doesNotMatch(r.stderr, /in use by another bazil process/)
    assert.match(r.stderr, /^bazil: cannot open the store in .*: .*\.sst/)
  } finally {
    cleanup()
  }
})

test('a flipped byte in node.key (either half) is reported naming node.key, before anything is signed with it', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-flip-')
  try {
    const data = path.join(dir, 'd')
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    const keyFile = path.join(data, 'node.key')
    for (const offset of [5, 40]) {
      flip(keyFile, offset)
      const r = await bazil(data, ['volume', 'mkdir', 'v', `d${offset}`])
      assert.equal(r.code, 1, `offset ${offset}: ${r.stdout}`)
      assert.match(r.stderr, /^bazil: .*node\.key is damaged/, `offset ${offset}`)
      flip(keyFile, offset) // back as it was
      const ok = await bazil(data, ['volume', 'mkdir', 'v', `d${offset}`])
      assert.equal(ok.code, 0, ok.stderr)
    }
    const v = await bazil(data, ['log', 'verify', 'v'])
    assert.equal(v.code, 0, v.stdout + v.stderr)
  } finally {
    cleanup()
  }
})

test('a damaged key in a volume record is reported naming the record file', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir('bazil-flip-')
  try {
    const data = path.join(dir, 'd')
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    const file = path.join(data, 'volumes', 'v.json')
    const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as { genesis?: { node: string } }
    assert.ok(rec.genesis, 'the record names its genesis')
    const at = fs.readFileSync(file, 'utf8').indexOf(rec.genesis.node) + 7
    fs.writeFileSync(file, Buffer.concat([fs.readFileSync(file).subarray(0, at), Buffer.from('@'), fs.readFileSync(file).subarray(at + 1)]))
    const r = await bazil(data, ['volume', 'ls', 'v'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^bazil: .*volumes\/v\.json is damaged/)
  } finally {
    cleanup()
  }
})
