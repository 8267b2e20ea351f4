// The cache's and pins' files and sizes: the budget parser (`bazil cache size`), the ledger's
// encoding (LRU order survives a restart; a damaged file is refused), pins.json, and the
// commands' one-line errors, through the CLI binary (no server).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { CacheLedger } from '../src/cas/cache-ledger.js'
import { formatBudget, formatBytes, parseBudget } from '../src/cas/cache-size.js'
import { addPins, covers, pinPath, readPins, removePins } from '../src/pins/pins-file.js'
import { bazil, tempDir } from './helpers.js'

test('cache sizes: units, percentages, and a clear error for anything else', () => {
  assert.deepEqual(parseBudget('20GiB'), { bytes: 20 * 1024 ** 3 })
  assert.deepEqual(parseBudget('500MiB'), { bytes: 500 * 1024 ** 2 })
  assert.deepEqual(parseBudget('2GB'), { bytes: 2e9 })
  assert.deepEqual(parseBudget('1.5g'), { bytes: 1.5 * 1024 ** 3 })
  assert.deepEqual(parseBudget('4096'), { bytes: 4096 })
  assert.deepEqual(parseBudget('10%'), { percent: 10 })
  for (const bad of ['', 'lots', '10XB', '-1GiB', '0%', '101%', '1e3MiB', '20 GiB of it']) {
    assert.throws(() => parseBudget(bad), (err: Error) => err.message.startsWith(`bad cache size "${bad}"`) && !err.message.includes('\n'), bad)
  }
  assert.equal(formatBudget({ bytes: 500 * 1024 ** 2 }), '500MiB')
  assert.equal(formatBudget({ percent: 7.5 }), '7.5%')
  assert.equal(formatBytes(1536), '1.5KiB')
  assert.deepEqual(parseBudget(formatBudget(parseBudget('1.25GiB'))), parseBudget('1.25GiB'))
})

test('the ledger keeps the order of use across an encode/decode, and refuses a damaged file', () => {
  const a = 'aa'.repeat(32)
  const b = 'bb'.repeat(32)
  const l = new CacheLedger()
  l.add(a, 0, 1000, 1)
  l.add(b, 7, 2000, 2)
  l.add(a, 2 ** 40, 3000, 3)
  assert.ok(l.touch(a, 0, 4))
  assert.equal(l.bytes, 6000)
  const file = l.encode()
  assert.equal(l.dirty, false)
  const back = CacheLedger.decode(file)
  assert.deepEqual(back.oldestFirst(), [
    { core: b, pack: 7, bytes: 2000, at: 2 },
    { core: a, pack: 2 ** 40, bytes: 3000, at: 3 },
    { core: a, pack: 0, bytes: 1000, at: 4 }
  ])
  assert.equal(back.bytes, 6000)
  assert.deepEqual(back.packsOf(a).sort(), [0, 2 ** 40].sort())
  back.remove(b, 7)
  assert.equal(back.bytes, 4000)
  const flipped = Buffer.from(file)
  flipped[40] ^= 1
  assert.throws(() => CacheLedger.decode(flipped), /checksum/)
  assert.throws(() => CacheLedger.decode(file.subarray(0, file.length - 1)), /checksum|length|truncated/)
  const v2 = Buffer.from(file)
  v2.writeUInt32LE(2, 8)
  assert.throws(() => CacheLedger.decode(v2), /version 2/)
  assert.throws(() => CacheLedger.decode(Buffer.from('not a ledger at all, not even close to one')), /not a cache ledger/)
})

test('pins.json: normalized paths, covering directories, a damaged file named', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'pins.json')
    const vol = 'ab'.repeat(32)
    assert.equal(pinPath('a//b/'), '/a/b')
    assert.equal(pinPath('/'), '/')
    assert.throws(() => pinPath('/a/../b'), /without "\." or "\.\."/)
    assert.ok(covers('/a', '/a/b') && covers('/', '/x') && !covers('/a', '/ab'))
    assert.deepEqual(readPins(file), [])
    assert.equal(addPins(file, vol, ['/photos', '/photos/2024', '/docs'], 5).length, 2)
    assert.deepEqual(readPins(file).map((p) => p.path), ['/docs', '/photos'])
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600')
    assert.deepEqual(removePins(file, vol, ['/docs', '/nope']), ['/nope'])
    assert.deepEqual(readPins(file).map((p) => p.path), ['/photos'])
    fs.writeFileSync(file, JSON.stringify({ version: 2, pins: [] }))
    assert.throws(() => readPins(file), (err: Error) => err.message.includes(file) && /version 2/.test(err.message))
    fs.writeFileSync(file, JSON.stringify({ version: 1, pins: [{ volume: vol, path: '/a/', added: 1 }] }))
    assert.throws(() => readPins(file), /not normalized/)
  } finally {
    cleanup()
  }
})

test('bazil cache size and pin without a server: set, show, one-line errors', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const data = path.join(dir, 'data')
    assert.equal((await bazil(data, ['create'])).code, 0)
    const shown = await bazil(data, ['cache', 'size'])
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /^cache budget: 10% of the disk \(default\) = /)
    const set = await bazil(data, ['cache', 'size', '500MiB'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /cache budget set to 500MiB/)
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(data, 'cache.json'), 'utf8')), { version: 1, budget: '500MiB' })
    const json = JSON.parse((await bazil(data, ['cache', 'size', '--json'])).stdout) as { budgetBytes: number; heldBytes: number; default: boolean }
    assert.equal(json.budgetBytes, 500 * 1024 ** 2)
    assert.equal(json.default, false)
    assert.equal(json.heldBytes, 0)
    const bad = await bazil(data, ['cache', 'size', '12 parsecs'])
    assert.equal(bad.code, 1)
    assert.equal(bad.stderr, 'bazil: bad cache size "12 parsecs": use a size like 20GiB, 500MiB, 2GB or 10% (of the disk holding the data dir)\n')
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'mkdir', 'v', '/a'])).code, 0)
    const pinned = await bazil(data, ['pin', 'v', '/a'])
    assert.equal(pinned.code, 0, pinned.stderr)
    assert.match(pinned.stdout, /pinned volume v \/a: fetched once `bazil server run` runs/)
    const missing = await bazil(data, ['pin', 'v', '/b'])
    assert.equal(missing.stderr, 'bazil: volume v has no /b\n')
    const outside = await bazil(data, ['pin', '/tmp'])
    assert.equal(outside.code, 1)
    assert.match(outside.stderr, /^bazil: .*give VOLUME PATH\.\.\.\n$/)
    const list = JSON.parse((await bazil(data, ['pin', '--list', '--json'])).stdout) as { volume: string; path: string }[]
    assert.deepEqual(list.map((p) => [p.volume, p.path]), [['v', '/a']])
    assert.equal((await bazil(data, ['unpin', 'v', '/a/x'])).stderr, 'bazil: volume v /a/x is not pinned itself: it is under the pinned /a (unpin that)\n')
    assert.equal((await bazil(data, ['unpin', 'v', '/a'])).code, 0)
    assert.equal((await bazil(data, ['pin', '--list'])).stdout, 'no pins\n')
  } finally {
    cleanup()
  }
})
