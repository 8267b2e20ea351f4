// A flush is all or nothing (issue 9, finding 3): a failed append leaves the changes and ops
// queued and the next flush writes them; no checkpoint covers unlogged changes; batches over
// the entry limit are split; imports flush in bounded batches.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import type { Volume } from '../src/volume/volume.js'
import { checkpointPath } from '../src/volume/checkpoint-file.js'
import { MAX_BODY_BYTES } from '../src/logs/index.js'
import { tempDir } from './helpers.js'

function paths(vol: Volume): string[] {
  return [...vol.tree.walk('/')].map((s) => s.path)
}

/** Makes the next `times` appends of the volume's own log fail the way a full disk does. */
function failNextAppend(vol: Volume, times = 1): void {
  const log = vol.log
  const real = log.append.bind(log)
  log.append = async () => {
    if (--times === 0) log.append = real
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
  }
}

async function newVolume(dir: string): Promise<{ data: string; node: Node; vol: Volume }> {
  const data = path.join(dir, 'data')
  const node = await Node.open(DataDir.create(data))
  return { data, node, vol: await node.createVolume('v', 'default') }
}

/** Opens the data dir again, runs `check` on the volume, verifies its logs (no errors) and closes. */
async function reopened(data: string, check: (vol: Volume) => Promise<void>): Promise<void> {
  const node = await Node.open(DataDir.open(data))
  try {
    const vol = await node.volume('v')
    await check(vol)
    assert.deepEqual((await vol.verify()).errors, [])
  } finally {
    await node.close()
  }
}

test('a failed append keeps its edits queued: the next flush logs them and a replay rebuilds the live tree', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const { data, node, vol } = await newVolume(dir)
    await vol.writeFile('/a', Buffer.from('a'))
    await vol.flush()
    await vol.writeFile('/b', Buffer.from('b'))
    failNextAppend(vol, 2)
    await assert.rejects(vol.flush(), /no space left on device.*kept and written by the next flush/)
    assert.equal(vol.unloggedCount.ops, 1)
    // A checkpoint now would cover /b, which no log holds: not written.
    await assert.rejects(vol.checkpoint(), /no space left/)
    assert.equal(fs.existsSync(checkpointPath(data, vol.record.id)), false)
    await vol.writeFile('/c', Buffer.from('c'))
    await vol.flush()
    assert.deepEqual(vol.unloggedCount, { ops: 0, changes: 0, error: null })
    assert.deepEqual(paths(vol), ['/', '/a', '/b', '/c'])
    await node.close()
    fs.rmSync(checkpointPath(data, vol.record.id))

    await reopened(data, async (again) => {
      assert.equal(again.opened.fromCheckpoint, false)
      assert.deepEqual(paths(again), ['/', '/a', '/b', '/c'])
      assert.deepEqual(again.skipped, [])
    })
  } finally {
    cleanup()
  }
})

test('a volume closed while its edits cannot be logged says so and writes no checkpoint covering them', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const { data, node, vol } = await newVolume(dir)
    await vol.writeFile('/a', Buffer.from('a'))
    await vol.checkpoint()
    await vol.writeFile('/b', Buffer.from('b'))
    failNextAppend(vol)
    await assert.rejects(node.close(), /1 ops were never written to the op log and are lost/)

    await reopened(data, async (again) => {
      // The checkpoint (from before /b) and the log agree: /b is gone everywhere, nothing half-there.
      assert.deepEqual(paths(again), ['/', '/a'])
      await again.writeFile('/c', Buffer.from('c'))
      await again.flush()
    })
  } finally {
    cleanup()
  }
})

test('an import whose batch is over the entry limit is split into entries, and replays whole', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const src = path.join(dir, 'src')
    fs.mkdirSync(src)
    const N = 3000
    for (let i = 0; i < N; i++) {
      const target = `t${i}-`.padEnd(4000, String.fromCharCode(97 + (i % 26)))
      fs.symlinkSync(target, path.join(src, `l${String(i).padStart(4, '0')}`))
    }
    const { data, node, vol } = await newVolume(dir)
    const summary = await importDir(vol, src)
    assert.equal(summary.symlinks, N)
    await vol.writeFile('/after', Buffer.from('after'))
    await vol.flush()
    const live = paths(vol)
    assert.equal(live.length, N + 2)
    // Several entries, each under the limit.
    let entries = 0
    for await (const e of vol.entries()) {
      if (e instanceof Error) assert.fail(`bad entry: ${e.message}`)
      entries++
    }
    assert.ok(entries >= 3, `${entries} entries`)
    for (let seq = 1; seq < vol.log.length; seq++) {
      const block = (await vol.log.core.get(seq))!
      assert.ok(block.length <= MAX_BODY_BYTES, `entry ${seq} is ${block.length} bytes`)
    }
    await node.close()
    fs.rmSync(checkpointPath(data, vol.record.id))

    await reopened(data, async (again) => {
      assert.deepEqual(paths(again), live)
      assert.equal(again.tree.lookup('/l2999')?.target?.length, 4000)
    })
  } finally {
    cleanup()
  }
})
