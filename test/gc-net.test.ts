// GC with peers (spec/gc.md, rule W): a writer that is offline while another node collects,
// and writes a new file whose content equals content that node deletes and collects meanwhile
// (the same chunks, which the writer held only in its copy of the other node's store), keeps
// that file readable everywhere: the writer stored it in its own store.
// Real servers on a loopback DHT testnet, the CLI.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { PeerCluster, eventually } from './peer-setup.js'
import { bazil, summaryOf } from './helpers.js'

const VOL = 'docs'
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

test('an offline writer\'s new file that reuses content collected elsewhere meanwhile survives the collection', async () => {
  const c = await PeerCluster.create(['desk', 'lap'], { env: { BAZIL_REMOTE_TIMEOUT_MS: '5000' } })
  try {
    const src = path.join(c.dir, 'src')
    const again = path.join(c.dir, 'again')
    fs.mkdirSync(src)
    fs.mkdirSync(again)
    const content = randomBytes(1_500_000).toString('hex') // 3 MB of text (stdout of `volume cat` is text here)
    fs.writeFileSync(path.join(src, 'old.txt'), content)
    fs.writeFileSync(path.join(src, 'keep.txt'), 'kept\n')
    fs.writeFileSync(path.join(again, 'new.txt'), content)
    await c.start('desk', 'lap')
    await c.run('desk', ['volume', 'create', '--sharing=friends', VOL])
    await c.connect('desk', 'lap', VOL)
    const imp = await c.run('desk', ['volume', 'import', VOL, src])
    assert.match(imp.stdout, /imported 2 files/)
    // The laptop reads old.txt: its chunks are now in its copy of the desk's store.
    await eventually('lap sees old.txt', async () => (await c.run('lap', ['volume', 'ls', VOL])).stdout.includes('old.txt'), 30_000)
    assert.equal(sha((await c.run('lap', ['volume', 'cat', VOL, '/old.txt'])).stdout), sha(content))

    // The laptop goes offline and writes new.txt with the same content (deduplicated chunks).
    await c.stop('lap')
    const imported = await bazil(c.get('lap').data, ['volume', 'import', '--to', '/later', VOL, again])
    assert.equal(imported.code, 0, imported.stderr)

    // Meanwhile the desk deletes old.txt and collects: the content goes from its store.
    await c.run('desk', ['volume', 'rm', VOL, '/old.txt'])
    const gc = summaryOf((await c.run('desk', ['volume', 'gc', VOL, '--grace', '0', '--json'])).stdout) as { removed: { bytes: number } }
    assert.ok(gc.removed.bytes >= content.length, `desk removed ${gc.removed.bytes} bytes`)

    // The laptop comes back: the desk sees new.txt and reads it (from the laptop's own store).
    await c.start('lap')
    await eventually('desk sees /later/new.txt', async () => (await bazil(c.get('desk').data, ['volume', 'ls', VOL, '/later'])).stdout.includes('new.txt'), 30_000)
    assert.equal(sha((await c.run('desk', ['volume', 'cat', VOL, '/later/new.txt'])).stdout), sha(content), c.logs())
    assert.equal((await c.run('desk', ['volume', 'cat', VOL, '/keep.txt'])).stdout, 'kept\n')
    // And a collection on the desk now keeps it (it is referenced).
    const second = summaryOf((await c.run('desk', ['volume', 'gc', VOL, '--grace', '0', '--json'])).stdout) as { removed: { objects: number } }
    assert.equal(second.removed.objects, 0)
  } finally {
    await c.close()
  }
})
