// A volume at scale (issue 12), quickly: BAZIL_SCALE_FILES (default 50,000) real small files
// imported as the CLI imports them, in directories of 10k entries and a tree 6 deep. Checks
// counts and behaviours that do not depend on timing or memory: every file in the tree once,
// ls/stat/cat right at that size (in-process and from a cold CLI process), a reopen that comes
// from the checkpoint and loads no Automerge shard to list, stat or read, snapshots that list
// what the live tree held. The timings at 1M files live in bench/tree-scale.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { importDir } from '../src/copy/local-copy.js'
import { toFileRef } from '../src/volume/volume.js'
import { bazil, tempDir } from './helpers.js'

const FILES = Number(process.env.BAZIL_SCALE_FILES ?? 50_000)
const DIR_SIZE = 10_000

/** Directories of DIR_SIZE under /flat for 80% of the files, the rest spread over 1024 leaves of a tree 6 deep. */
function layout(files: number): { rel: string; files: number }[] {
  const deep = Math.round(files * 0.2)
  const flat = files - deep
  const dirs: { rel: string; files: number }[] = []
  for (let d = 0; d * DIR_SIZE < flat; d++) dirs.push({ rel: `flat/d${d}`, files: Math.min(DIR_SIZE, flat - d * DIR_SIZE) })
  for (let l = 0; l < 1024; l++) {
    const n = Math.floor(deep / 1024) + (l < deep % 1024 ? 1 : 0)
    const k = [256, 64, 16, 4, 1].map((m) => Math.floor(l / m) % 4)
    if (n > 0) dirs.push({ rel: `deep/a${k[0]}/b${k[1]}/c${k[2]}/d${k[3]}/e${k[4]}`, files: n })
  }
  return dirs
}

const body = (rel: string, f: number): string => `${rel}/f${f}\n`.repeat(1 + (f % 5))

async function readAll(it: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = []
  for await (const p of it) parts.push(p)
  return Buffer.concat(parts).toString()
}

test(`a volume of ${FILES} small files: counts, ls/stat/cat, a reopen that loads no shard, snapshots`, async () => {
  const { dir, cleanup } = tempDir('bazil-scale-')
  try {
    const dirs = layout(FILES)
    const src = path.join(dir, 'src')
    for (const d of dirs) {
      fs.mkdirSync(path.join(src, d.rel), { recursive: true })
      for (let f = 0; f < d.files; f++) fs.writeFileSync(path.join(src, d.rel, `f${f}`), body(d.rel, f))
    }
    const allDirs = new Set<string>()
    for (const d of dirs) for (let p = d.rel; p !== '.'; p = path.dirname(p)) allDirs.add(p)
    const data = path.join(dir, 'data')

    let node = await Node.open(DataDir.create(data))
    let vol = await node.createVolume('v', 'default')
    let progressCalls = 0
    const summary = await importDir(vol, src, '/', () => { progressCalls++ })
    assert.deepEqual({ files: summary.files, dirs: summary.dirs }, { files: FILES, dirs: allDirs.size })
    assert.equal(progressCalls, FILES, 'one progress report per file')
    await node.close()

    // Reopened from the checkpoint: nothing replayed, and listing, stat and reads never load a shard.
    node = await Node.open(DataDir.open(data))
    vol = await node.volume('v')
    assert.ok(vol.opened.fromCheckpoint, 'opened from the checkpoint')
    assert.equal(vol.opened.replayedEntries, 0)
    assert.equal(vol.tree.shardStats.loads, 0, 'open loads no shard')
    let files = 0
    for (const st of vol.tree.walk('/')) if (st.kind === 'file') files++
    assert.equal(files, FILES, 'every file once in the tree')
    const big = vol.tree.readdir('/flat/d0')
    assert.equal(big.length, DIR_SIZE)
    const names = big.map((e) => e.name)
    assert.deepEqual(names, [...names].sort(), 'ls is in name order')
    assert.deepEqual(new Set(names), new Set(Array.from({ length: DIR_SIZE }, (_, f) => `f${f}`)))
    for (const d of [dirs[0]!, dirs[dirs.length - 1]!, dirs[Math.floor(dirs.length / 2)]!]) {
      for (const f of [0, d.files - 1]) {
        const p = `/${d.rel}/f${f}`
        const st = vol.tree.stat(p)
        assert.equal(st.kind, 'file')
        assert.equal(st.size, Buffer.byteLength(body(d.rel, f)), `${p}: size`)
        assert.equal(await readAll(vol.cas.readFile(toFileRef(st.content!), p)), body(d.rel, f), `${p}: content`)
      }
    }
    assert.equal(vol.tree.shardStats.loads, 0, 'ls, stat and cat load no shard')

    // A snapshot lists what the live tree held; a later write changes only the live tree.
    vol.snapshot('s1')
    await vol.writeFile('/flat/d0/f1', Buffer.from('changed\n'))
    await vol.flush()
    const snap = vol.view('s1')
    assert.equal(snap.readdir('/flat/d0').length, DIR_SIZE)
    assert.equal(snap.stat('/flat/d0/f1').size, Buffer.byteLength(body('flat/d0', 1)))
    assert.equal(vol.tree.stat('/flat/d0/f1').size, 8)
    await node.close()

    // From cold CLI processes, as a user runs them.
    const ls = await bazil(data, ['volume', 'ls', 'v', '/flat/d0'])
    assert.equal(ls.code, 0, ls.stderr)
    assert.equal(ls.stdout.trim().split('\n').length, DIR_SIZE)
    const deep = dirs[dirs.length - 1]!
    const cat = await bazil(data, ['volume', 'cat', 'v', `/${deep.rel}/f0`])
    assert.equal(cat.code, 0, cat.stderr)
    assert.equal(cat.stdout, body(deep.rel, 0))
    const snapLs = await bazil(data, ['volume', 'ls', '-l', '--snapshot', 's1', 'v', '/flat/d0/f1'])
    assert.equal(snapLs.code, 0, snapLs.stderr)
    assert.match(snapLs.stdout, new RegExp(` ${Buffer.byteLength(body('flat/d0', 1))} `))
  } finally {
    cleanup()
  }
})
