// A volume whose index is deleted is rebuilt from its logs with a progress line (issue 12):
// redrawn in place on a terminal, plain lines elsewhere once it takes a while, nothing for a
// short one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { checkpointPath, indexFilesPath } from '../src/volume/checkpoint-file.js'
import { LINE_EVERY_MS, QUIET_MS, rebuildProgress } from '../src/volume/rebuild-progress.js'
import { bazilBin, tempDir } from './helpers.js'

function sink(isTTY: boolean): { stream: { isTTY: boolean; write(s: string): boolean }; out: string[] } {
  const out: string[] = []
  return { stream: { isTTY, write: (s: string) => out.push(s) > 0 }, out }
}

test('on a terminal: one line redrawn in place for a rebuild of 100 entries or more, ended by a newline', () => {
  let now = 0
  const small = sink(true)
  const p0 = rebuildProgress('v', small.stream, () => now)
  p0(10, 50)
  p0(-1, 0)
  assert.deepEqual(small.out, [], 'a rebuild of a few entries draws nothing')
  const big = sink(true)
  const p = rebuildProgress('v', big.stream, () => now)
  p(1, 500)
  now += 50
  p(20, 500) // within the redraw interval: not drawn
  now += 500
  p(300, 500)
  p(-1, 0)
  assert.deepEqual(big.out, ['\rrebuilding the index of volume v from its logs: 1/500 entries', '\rrebuilding the index of volume v from its logs: 300/500 entries', '\n'])
})

test('elsewhere (a log, a pipe): nothing for a short rebuild; plain lines once it takes a while, and one at the end', () => {
  let now = 0
  const quick = sink(false)
  const q = rebuildProgress('v', quick.stream, () => now)
  q(5000, 10_000)
  now += QUIET_MS - 1
  q(10_000, 10_000)
  q(-1, 0)
  assert.deepEqual(quick.out, [])
  now = 0
  const slow = sink(false)
  const p = rebuildProgress('v', slow.stream, () => now)
  now = QUIET_MS
  p(100, 1000)
  now += LINE_EVERY_MS - 1
  p(500, 1000) // throttled
  now += 1
  p(600, 1000)
  now += 500
  p(1000, 1000)
  p(-1, 0)
  assert.deepEqual(slow.out, [
    'rebuilding the index of volume v from its logs: 100/1000 entries\n',
    'rebuilding the index of volume v from its logs: 600/1000 entries\n',
    `rebuilding the index of volume v from its logs: done, 1000 entries in ${((QUIET_MS + LINE_EVERY_MS + 500) / 1000).toFixed(1)} s\n`,
  ])
})

test('a cold CLI command on a volume whose index was deleted shows the rebuild on its terminal, then answers', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    const node = await Node.open(DataDir.create(root))
    const vol = await node.createVolume('v', 'default')
    for (let i = 0; i < 120; i++) {
      vol.mkdir(`/d${i}`)
      await vol.flush() // an entry each: a rebuild of 100 entries or more draws its line
    }
    const id = vol.record.id
    await node.close()
    fs.rmSync(checkpointPath(root, id))
    fs.rmSync(indexFilesPath(root, id), { recursive: true, force: true })
    const r = spawnSync('script', ['-qfec', `${process.execPath} ${bazilBin} --data-dir=${root} volume ls v /`, path.join(dir, 'typescript')], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /\rrebuilding the index of volume v from its logs: \d+\/1\d\d entries/)
    assert.match(r.stdout, /d119/, 'the listing follows')
    // The rebuilt index is kept: the next command opens from it, without the line.
    const again = spawnSync('script', ['-qfec', `${process.execPath} ${bazilBin} --data-dir=${root} volume ls v /`, path.join(dir, 'typescript2')], { encoding: 'utf8' })
    assert.equal(again.status, 0)
    assert.doesNotMatch(again.stdout, /rebuilding/)
  } finally {
    cleanup()
  }
})
