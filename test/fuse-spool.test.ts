// The spool's lazy copy of old content, against a plain buffer, without a mount.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { APPEND_BYTES, BLOCK, MemBudget, SpoolFile, decodeSpoolMeta } from '../src/mount/spool.js'
import { tempDir } from './helpers.js'

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

// Even seeds give the file a memory budget: appends are then gathered in memory before they reach the data file.
for (const seed of [42, 7, 1234, 99]) test(`random writes, appends, truncates and reads through a SpoolFile match a plain buffer (seed ${seed})`, async () => {
  const { dir, cleanup } = tempDir('bazil-spool-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const rand = rng(seed)
    let model = Buffer.alloc(Math.floor(3.5 * BLOCK) + 123)
    for (let i = 0; i < model.length; i++) model[i] = Math.floor(rand() * 256)
    const base = await vol.cas.writeBuffer(model)
    let baseReads = 0
    const sf = new SpoolFile({
      spoolDir: dir, volumeId: vol.id.toString('hex'), nodeId: 'n1', base, mtime: 1,
      budget: seed % 2 === 0 ? new MemBudget(3 * APPEND_BYTES) : undefined,
      readBase: (ref, offset, length) => {
        baseReads++
        return vol.cas.read(ref, offset, length)
      },
    })
    // Reads before any change come from the old content, and copy nothing in.
    const first = Buffer.alloc(1000)
    assert.equal(await sf.read(first, 1000, BLOCK - 500), 1000)
    assert.ok(first.equals(model.subarray(BLOCK - 500, BLOCK + 500)))
    assert.equal(sf.hasData, false)

    for (let step = 0; step < 300; step++) {
      const r = rand()
      const size = model.length
      if (r < 0.45) {
        const pos = rand() < 0.5 ? size : Math.floor(rand() * (size + BLOCK))
        const len = 1 + Math.floor(rand() * 2 * BLOCK)
        const data = Buffer.alloc(len, step & 0xff)
        await sf.write(data, len, pos)
        if (pos + len > model.length) model = Buffer.concat([model, Buffer.alloc(pos + len - model.length)])
        data.copy(model, pos)
      } else if (r < 0.55) {
        const to = Math.floor(rand() * 5 * BLOCK)
        await sf.truncate(to)
        model = to <= model.length ? Buffer.from(model.subarray(0, to)) : Buffer.concat([model, Buffer.alloc(to - model.length)])
      } else {
        const pos = Math.floor(rand() * (size + 100))
        const len = 1 + Math.floor(rand() * 3 * BLOCK)
        const out = Buffer.alloc(len, 0xee)
        const n = await sf.read(out, len, pos)
        const want = model.subarray(Math.min(pos, model.length), Math.min(pos + len, model.length))
        assert.equal(n, want.length, `read at ${pos}+${len} (step ${step})`)
        assert.ok(out.subarray(0, n).equals(want), `content at ${pos}+${len} (step ${step})`)
      }
      assert.equal(sf.size, model.length)
    }
    assert.equal(await sf.content(), sf.dataPath)
    assert.ok(fs.readFileSync(sf.dataPath).equals(model), 'at commit the data file is the whole file')
    assert.ok(baseReads > 0)

    await sf.sync({ volume: vol.id.toString('hex'), path: '/f' })
    const meta = decodeSpoolMeta(fs.readFileSync(sf.metaPath, 'utf8'), sf.metaPath)
    assert.equal(meta.fsynced, true)
    assert.equal(meta.size, model.length)
    assert.throws(() => decodeSpoolMeta(JSON.stringify({ ...meta, version: 2 }), 'x.json'), /unknown spool metadata version 2/)
    await sf.discard()
    assert.equal(fs.existsSync(sf.dataPath) || fs.existsSync(sf.metaPath), false)
  } finally {
    await node.close()
    cleanup()
  }
})

test('overwriting whole blocks of a big file copies none of its old content', async () => {
  const { dir, cleanup } = tempDir('bazil-spool-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const base = await vol.cas.writeBuffer(Buffer.alloc(8 * BLOCK, 1))
    let baseBytes = 0
    const sf = new SpoolFile({
      spoolDir: dir, volumeId: vol.id.toString('hex'), nodeId: 'n1', base, mtime: 1,
      readBase: (ref, offset, length) => {
        baseBytes += length
        return vol.cas.read(ref, offset, length)
      },
    })
    for (let b = 0; b < 8; b++) await sf.write(Buffer.alloc(BLOCK, 2), BLOCK, b * BLOCK)
    await sf.fillAll()
    assert.equal(baseBytes, 0)
    await sf.truncate(0)
    await sf.write(Buffer.from('x'), 1, 0)
    assert.equal(baseBytes, 0)
    assert.equal(fs.readFileSync(sf.dataPath).toString(), 'x')
    await sf.discard()
  } finally {
    await node.close()
    cleanup()
  }
})

test('a small new file lives in memory, moves to a data file when it grows, and matches a plain buffer', async () => {
  const { dir, cleanup } = tempDir('bazil-spool-')
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    const budget = new MemBudget(16 * 1024) // room for one small file
    const mk = (id: string) => new SpoolFile({
      spoolDir: dir, volumeId: vol.id.toString('hex'), nodeId: id, base: null, mtime: 1, budget,
      readBase: () => Promise.reject(new Error('a new file has no old content')),
    })
    const a = mk('a')
    const b = mk('b')
    await a.write(Buffer.from('hello'), 5, 0)
    await b.write(Buffer.from('world'), 5, 0)
    assert.equal(a.hasData, true)
    assert.equal(fs.existsSync(a.dataPath), false, 'a is in memory')
    assert.equal(fs.existsSync(b.dataPath), true, 'no budget left: b has a data file')
    await a.truncate(2)
    await a.truncate(4)
    assert.deepEqual(await a.content(), Buffer.from('he\0\0'))
    // Growing past what the budget allows moves it to a data file, content kept; memory is given back.
    const rand = rng(5)
    let model = Buffer.from('he\0\0')
    for (let step = 0; step < 200; step++) {
      const r = rand()
      if (r < 0.5) {
        const pos = Math.floor(rand() * 1.2 * 16 * 1024)
        const len = 1 + Math.floor(rand() * 3000)
        const data = Buffer.alloc(len, (step % 250) + 1)
        await a.write(data, len, pos)
        if (pos + len > model.length) model = Buffer.concat([model, Buffer.alloc(pos + len - model.length)])
        data.copy(model, pos)
      } else if (r < 0.6) {
        const to = Math.floor(rand() * 1.1 * 16 * 1024)
        await a.truncate(to)
        model = to <= model.length ? Buffer.from(model.subarray(0, to)) : Buffer.concat([model, Buffer.alloc(to - model.length)])
      } else {
        const pos = Math.floor(rand() * model.length)
        const len = 1 + Math.floor(rand() * 9000)
        const out = Buffer.alloc(len)
        const n = await a.read(out, len, pos)
        assert.ok(out.subarray(0, n).equals(model.subarray(pos, Math.min(pos + len, model.length))), `step ${step}`)
      }
    }
    const content = await a.content()
    assert.ok((typeof content === 'string' ? fs.readFileSync(content) : content).equals(model))
    await a.discard()
    await b.discard()
    const c = mk('c')
    await c.write(Buffer.from('x'), 1, 0)
    assert.equal(fs.existsSync(c.dataPath), false, 'the budget came back')
    await c.sync({ volume: vol.id.toString('hex'), path: '/c' })
    assert.equal(fs.readFileSync(c.dataPath).toString(), 'x', 'fsync moves it to a durable data file')
    await c.discard()
  } finally {
    await node.close()
    cleanup()
  }
})
