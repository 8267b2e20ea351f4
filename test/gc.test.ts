// Garbage collection of a volume on one node (spec/gc.md): delete 90% of a volume, drop the
// snapshot that held it, collect: the bytes come back (du of the data dir), and every remaining
// file and kept snapshot reads byte-exact; the grace period keeps what became garbage recently;
// the CLI reports it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { collectGarbage, diskUsage } from '../src/gc.js'
import { toFileRef, type Volume } from '../src/volume/volume.js'
import { bazil, startServer, summaryOf, tempDir } from './helpers.js'
import { withFilledVolume } from './gc-helpers.js'

const MiB = 1024 * 1024
const TOTAL = Number(process.env.BAZIL_GC_TEST_MIB ?? 64) * MiB

async function readBack(vol: Volume, p: string, snapshot?: string): Promise<Buffer> {
  const st = vol.view(snapshot).stat(p)
  const parts: Buffer[] = []
  for await (const c of vol.cas.readFile(toFileRef(st.content!), p)) parts.push(c)
  return Buffer.concat(parts)
}

test(`delete 90% of a ${TOTAL / MiB} MiB volume, drop its snapshot, gc: >= 90% of those bytes come back and the rest reads byte-exact`, async () => {
  const files = new Map<string, Buffer>()
  // Big files (streamed) and small ones (batched), 10% of the bytes in files that stay.
  let written = 0
  for (let i = 0; written < TOTAL * 0.9; i++) {
    const data = randomBytes(i % 3 === 0 ? 300_000 : 4 * MiB)
    files.set(`/gone/f${i}`, data)
    written += data.length
  }
  for (let i = 0; written < TOTAL; i++) {
    const data = randomBytes(i % 2 === 0 ? 200_000 : MiB + 12_345)
    files.set(`/kept/f${i}`, data)
    written += data.length
  }
  await withFilledVolume(async (vol) => {
    vol.mkdir('/gone')
    vol.mkdir('/kept')
    for (const [p, data] of files) await vol.writeFile(p, data)
    vol.snapshot('everything')
  }, async (root) => {
    const full = diskUsage(root)
    let node = await Node.open(DataDir.open(root))
    let deleted = 0
    try {
      const vol = await node.volume('v')
      for (const [p, data] of files) {
        if (!p.startsWith('/gone/')) continue
        vol.unlink(p)
        deleted += data.length
      }
      vol.snapshot('kept-only')
      vol.removeSnapshot('everything')
      await vol.flush()
      assert.deepEqual(vol.tree.snapshots().map((s) => s.name), ['kept-only'])

      // Within the grace period nothing goes; a dry run changes nothing.
      const early = await collectGarbage(node, { graceMs: 3_600_000 })
      assert.equal(early.removed.objects, 0)
      assert.ok(early.unreferenced.bytes >= deleted, `unreferenced ${early.unreferenced.bytes} >= deleted ${deleted}`)
      const dry = await collectGarbage(node, { graceMs: 3_600_000, dryRun: true, now: Date.now() + 2 * 3_600_000 })
      assert.ok(dry.removed.bytes >= deleted * 0.9, `a dry run past the grace says ${dry.removed.bytes} would go`)
      assert.equal(dry.disk.after, null)
      assert.equal((await node.chunks.stats()).bytes, early.stored.bytes, 'the dry run removed nothing')

      const report = await collectGarbage(node, { graceMs: 3_600_000, now: Date.now() + 2 * 3_600_000 })
      assert.ok(report.removed.bytes >= deleted * 0.98, `removed ${report.removed.bytes} of ${deleted}`)
      const freed = report.disk.before - report.disk.after!
      assert.ok(freed >= deleted * 0.9, `du: ${report.disk.before} -> ${report.disk.after}: ${freed} bytes back of ${deleted} deleted (${(100 * freed / deleted).toFixed(1)}%)`)
      for (const [p, data] of files) {
        if (p.startsWith('/gone/')) continue
        assert.ok((await readBack(vol, p)).equals(data), `${p} reads byte-exact`)
        assert.ok((await readBack(vol, p, 'kept-only')).equals(data), `${p} in the kept snapshot reads byte-exact`)
      }
      // A second collection finds nothing more to do.
      const again = await collectGarbage(node, { graceMs: 0 })
      assert.equal(again.removed.objects, 0)
      assert.equal(again.packs.rewritten, 0)
    } finally {
      await node.close()
    }
    const closed = diskUsage(root)
    assert.ok(closed < full - deleted * 0.9, `after close: du ${closed}, full ${full}, deleted ${deleted}`)
    node = await Node.open(DataDir.open(root))
    try {
      const vol = await node.volume('v')
      for (const [p, data] of files) if (!p.startsWith('/gone/')) assert.ok((await readBack(vol, p)).equals(data), `${p} after reopening`)
      // Content written again after its objects were collected is stored again (not deduplicated against a removed object).
      const back = files.get('/gone/f1')!
      await vol.writeFile('/again', back)
      await vol.flush()
      assert.ok((await readBack(vol, '/again')).equals(back))
    } finally {
      await node.close()
    }
  })
})

test('bazil volume gc and volume snapshot rm: what would go, what went, --json', async () => {
  await withFilledVolume(async (vol) => {
    await vol.writeFile('/a', randomBytes(3 * MiB))
    await vol.writeFile('/b', randomBytes(100_000))
    vol.snapshot('s')
    vol.unlink('/a')
  }, async (root) => {
    const dry = await bazil(root, ['volume', 'gc', 'v', '--dry-run', '--grace', '0', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal(summaryOf(dry.stdout).removed.objects, 0, 'the snapshot keeps /a')
    const rm = await bazil(root, ['volume', 'snapshot', 'rm', 'v', 's'])
    assert.equal(rm.code, 0, rm.stderr)
    assert.match(rm.stdout, /snapshot "s" of volume "v" removed/)
    const again = await bazil(root, ['volume', 'snapshot', 'rm', 'v', 's'])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /no such snapshot/)
    const gc = await bazil(root, ['volume', 'gc', 'v', '--grace', '0'])
    assert.equal(gc.code, 0, gc.stderr)
    assert.match(gc.stdout, /removed \d+ objects \(3\.0 MiB\)/)
    assert.match(gc.stdout, /disk: .* -> .* \(data dir\)/)
    const list = await bazil(root, ['volume', 'snapshot', 'list', 'v', '--json'])
    assert.deepEqual(JSON.parse(list.stdout), [])
    const bad = await bazil(root, ['volume', 'gc', 'v', '--grace', 'soon'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /--grace: "soon" is not a duration/)
    const cat = await bazil(root, ['volume', 'cat', 'v', '/b'])
    assert.equal(cat.code, 0, cat.stderr)
  })
})

test('the server collects by itself (BAZIL_GC_INTERVAL, BAZIL_GC_GRACE) and logs what it removed', async () => {
  const saved = { interval: process.env.BAZIL_GC_INTERVAL, grace: process.env.BAZIL_GC_GRACE }
  await withFilledVolume(async (vol) => {
    await vol.writeFile('/a', randomBytes(2 * MiB))
    await vol.writeFile('/b', randomBytes(1000))
    vol.unlink('/a')
  }, async (root) => {
    process.env.BAZIL_GC_INTERVAL = '1s'
    process.env.BAZIL_GC_GRACE = '0'
    const server = await startServer(root)
    try {
      const deadline = Date.now() + 60_000
      while (!/gc: removed [1-9]\d* objects \(2\.0 MiB\)/.test(server.log()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      assert.match(server.log(), /gc: removed [1-9]\d* objects \(2\.0 MiB\) from \d+ packs/)
    } finally {
      assert.equal(await server.stop(), 0, server.log())
    }
    const cat = await bazil(root, ['volume', 'cat', 'v', '/b'])
    assert.equal(cat.code, 0, cat.stderr)
  }).finally(() => {
    for (const [k, v] of [['BAZIL_GC_INTERVAL', saved.interval], ['BAZIL_GC_GRACE', saved.grace]] as const) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
})

test('a running server\'s data dir gives the space back after volume gc (its memtables flushed: no write-ahead log keeps it)', async () => {
  const BIG = 32 * MiB
  const src = tempDir('bazil-gc-wal-')
  try {
    fs.writeFileSync(path.join(src.dir, 'big.bin'), randomBytes(BIG))
    await withFilledVolume(async (vol) => {
      await vol.writeFile('/b', randomBytes(1000))
    }, async (root) => {
      const server = await startServer(root)
      try {
        const imported = await bazil(root, ['volume', 'import', 'v', src.dir])
        assert.equal(imported.code, 0, imported.stderr)
        const before = diskUsage(root)
        const rm = await bazil(root, ['volume', 'rm', 'v', '/big.bin'])
        assert.equal(rm.code, 0, rm.stderr)
        const gc = await bazil(root, ['volume', 'gc', 'v', '--grace', '0', '--json'])
        assert.equal(gc.code, 0, gc.stderr)
        const after = (summaryOf(gc.stdout) as { disk: { after: number } }).disk.after
        assert.ok(before - after >= 0.9 * BIG, `du of the running server's data dir: ${before} -> ${after} bytes, ${BIG} deleted`)
      } finally {
        assert.equal(await server.stop(), 0, server.log())
      }
    })
  } finally {
    src.cleanup()
  }
})
