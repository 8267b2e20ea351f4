// fsync through the mount means durable (issue 9, finding 7): the data dir lives on an ext4
// on a loop device; right after fsync returns, the loop's backing image is copied (what the
// disk holds at that instant: an OS crash image, without anything only in the page cache).
// That image, mounted and opened, must hold every fsynced file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { VolumeMount } from '../src/mount/index.js'
import { toFileRef } from '../src/volume/volume.js'
import { replaceFile, replaceFileSync } from '../src/atomic-file.js'
import { tempDir } from './helpers.js'
import { makeLoopFs, mountImage, smallFsUnavailable } from './small-fs.js'

const run = promisify(execFile)
const why = smallFsUnavailable('loop') ?? (fs.existsSync('/dev/fuse') ? null : '/dev/fuse is missing')
if (why) console.warn(`durable-fsync.test: ${why}: SKIPPING the crash-image tests`)

const FILES = 12

test('files fsynced through the mount are in a crash image taken the moment fsync returns', { skip: why ?? false }, async () => {
  const { dir, cleanup } = tempDir()
  const disk = await makeLoopFs(path.join(dir, 'disk.img'), path.join(dir, 'disk'), 256)
  let crashed: Awaited<ReturnType<typeof mountImage>> | null = null
  try {
    const data = path.join(disk.dir, 'data')
    const node = await Node.open(DataDir.create(data))
    const vol = await node.createVolume('v', 'default')
    await vol.checkpoint()
    // Everything so far on the disk: what follows is what fsync must make durable.
    await run('sync')
    const mnt = path.join(dir, 'mnt')
    fs.mkdirSync(mnt)
    const mount = new VolumeMount(vol, mnt, { spoolDir: path.join(data, 'spool', vol.record.id) })
    await mount.mount()
    const contents: string[] = []
    try {
      // One process: writes and fsyncs FILES files (the last one also left open), then signals.
      for (let i = 0; i < FILES; i++) contents.push(`file ${i} `.repeat(500 + i * 97))
      const py = `
import os, sys, json
d = sys.argv[1]; contents = json.loads(sys.stdin.read())
for i, c in enumerate(contents):
    fd = os.open(f'{d}/f{i}', os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, c.encode()); os.fsync(fd)
    if i < len(contents) - 1: os.close(fd)
print('synced', flush=True)
`
      const child = execFile('python3', ['-c', py, mnt])
      const exited = new Promise((r) => child.on('exit', r))
      child.stdin!.end(JSON.stringify(contents))
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('synced')) resolve() })
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))))
      })
      await disk.crashImage(path.join(dir, 'crash.img'))
      await exited
    } finally {
      await mount.unmount()
      await node.close()
      await disk.destroy()
    }

    crashed = await mountImage(path.join(dir, 'crash.img'), path.join(dir, 'after'))
    const again = await Node.open(DataDir.open(path.join(crashed.dir, 'data')))
    try {
      const v = await again.volume('v')
      for (let i = 0; i < FILES; i++) {
        const st = v.tree.lookup(`/f${i}`)
        assert.ok(st?.content, `/f${i} was fsynced but is not in the volume after the crash`)
        const chunks: Buffer[] = []
        for await (const c of v.cas.readFile(toFileRef(st.content), st.path)) chunks.push(c)
        assert.equal(Buffer.concat(chunks).toString(), contents[i], `/f${i} content`)
      }
      assert.deepEqual((await v.verify()).errors, [])
    } finally {
      await again.close()
    }
  } finally {
    await crashed?.destroy()
    await disk.destroy()
    cleanup()
  }
})

test('a replaced file (peers.json, mounts.json, checkpoints) is in a crash image taken when the call returns', { skip: why ?? false }, async () => {
  const { dir, cleanup } = tempDir()
  const disk = await makeLoopFs(path.join(dir, 'disk.img'), path.join(dir, 'disk'), 64)
  let crashed: Awaited<ReturnType<typeof mountImage>> | null = null
  try {
    await run('sync')
    replaceFileSync(path.join(disk.dir, 'a.json'), 'sync content\n')
    await replaceFile(path.join(disk.dir, 'b.json'), 'async content\n')
    await disk.crashImage(path.join(dir, 'crash.img'))
    await disk.destroy()
    crashed = await mountImage(path.join(dir, 'crash.img'), path.join(dir, 'after'))
    assert.equal(fs.readFileSync(path.join(crashed.dir, 'a.json'), 'utf8'), 'sync content\n')
    assert.equal(fs.readFileSync(path.join(crashed.dir, 'b.json'), 'utf8'), 'async content\n')
  } finally {
    await crashed?.destroy()
    await disk.destroy()
    cleanup()
  }
})
