// A volume in-process: batching of ops into entries, replay on reopen, snapshots, dedupe across volumes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { tempDir } from './helpers.js'

function canonical(node: Node, name: string): Promise<string[]> {
  return node.volume(name).then((vol) => [...vol.tree.walk('/')].map((s) => `${s.path} ${s.kind} ${s.mode.toString(8)} ${s.content?.hash ?? s.target ?? ''}`))
}

/** `dirs` directories of 100 small files under DIR/src. */
function sourceTree(dir: string, dirs: number): string {
  const src = path.join(dir, 'src')
  for (let d = 0; d < dirs; d++) {
    fs.mkdirSync(path.join(src, `d${d}`), { recursive: true })
    for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}\n`)
  }
  return src
}

test('an import of thousands of files is a handful of log entries, and replays identically', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const src = sourceTree(dir, 30)
    const data = DataDir.create(path.join(dir, 'data'))
    let node = await Node.open(data)
    const vol = await node.createVolume('v', 'default')
    const summary = await importDir(vol, src)
    assert.equal(summary.files, 3000)
    assert.equal(summary.dirs, 30)
    // block 0 + a few entries: ops are batched (FLUSH_EVERY_OPS, cut to the entry limits), not appended one by one
    assert.ok(vol.log.length <= 10, `log has ${vol.log.length} blocks`)
    const before = await canonical(node, 'v')
    await node.close()

    node = await Node.open(DataDir.open(path.join(dir, 'data')))
    try {
      assert.deepEqual(await canonical(node, 'v'), before)
      const again = await node.volume('v')
      assert.equal(again.skipped.length, 0)
      assert.equal(again.tree.readdir('/d7').length, 100)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})

test('the same content in two volumes under one sharing key is stored once', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const node = await Node.open(DataDir.create(path.join(dir, 'data')))
    try {
      const a = await node.createVolume('a', 'default')
      const b = await node.createVolume('b', 'default')
      const content = Buffer.alloc(2_000_000)
      for (let i = 0; i < content.length; i++) content[i] = (i * 7919) % 251
      await a.writeFile('/x', content)
      await a.flush()
      const s1 = await node.chunks.stats()
      await b.writeFile('/y', content)
      await b.flush()
      const s2 = await node.chunks.stats()
      assert.equal(s2.bytes, s1.bytes)
      assert.equal(s2.chunks, s1.chunks)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})

test('edits made while a snapshot is checkpointed are kept: in the tree at once, on disk by the next checkpoint', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const src = sourceTree(dir, 20)
    const data = DataDir.create(path.join(dir, 'data'))
    let node = await Node.open(data)
    const vol = await node.createVolume('v', 'default')
    await importDir(vol, src)
    await vol.snapshot('s0')
    // Many buckets for the next checkpoint to write (the commit runs in steps).
    for (let d = 0; d < 20; d++) for (let f = 0; f < 100; f += 3) vol.rename(`/d${d}/f${f}`, `/d${(d + 1) % 20}/g${f}-${d}`)
    const taken = vol.snapshot('s1')
    const inS1 = await canonical(node, 'v')
    const writes: Promise<unknown>[] = []
    for (let i = 0; i < 30; i++) {
      writes.push(vol.writeFile(`/during-${i}`, Buffer.from(`written while s1 was checkpointed ${i}\n`)))
      vol.unlink(`/d${i % 20}/f${i * 3 + 1}`)
      await new Promise((resolve) => setImmediate(resolve))
    }
    await Promise.all([taken, ...writes])
    const now = await canonical(node, 'v')
    assert.equal(now.filter((l) => l.startsWith('/during-')).length, 30)
    const s1 = (t: typeof vol.tree) => [...t.at('s1').walk('/')].map((s) => `${s.path} ${s.kind} ${s.content?.hash ?? ''}`)
    const s1Before = s1(vol.tree)
    assert.deepEqual(s1Before.filter((l) => l.startsWith('/during-')), [])
    assert.equal(s1Before.length, inS1.length)
    await node.close()

    node = await Node.open(DataDir.open(path.join(dir, 'data')))
    try {
      assert.deepEqual(await canonical(node, 'v'), now)
      const again = await node.volume('v')
      assert.equal(again.skipped.length, 0)
      assert.deepEqual(s1(again.tree), s1Before)
      assert.equal(again.opened.fromCheckpoint, true)
    } finally {
      await node.close()
    }
  } finally {
    cleanup()
  }
})
