// bazil's own files of the content store (pack table, grace marks) live at the data dir's root,
// never inside corestore/: a store whose CORESTORE file was deleted (a restored copy, as our
// "was copied or moved" error tells the user) is taken by hypercore-storage for its old layout,
// which moves every file it doesn't know into corestore/db/. Files older versions kept in
// corestore/ (or that were moved into corestore/db/) are moved to the root at open.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { bazil, tempDir } from './helpers.js'

/** A data dir whose store holds one imported file (so a pack table is saved at close). */
async function dataDirWithContent(dir: string): Promise<DataDir> {
  const data = path.join(dir, 'data')
  const src = path.join(dir, 'src')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'a.txt'), 'some content\n')
  assert.equal((await bazil(data, ['create'])).code, 0)
  assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
  assert.equal((await bazil(data, ['volume', 'import', 'v', src])).code, 0)
  return DataDir.open(data)
}

/** Opens the node, loads the pack table, says where it came from, closes. */
async function tableSource(dd: DataDir): Promise<string> {
  const node = await Node.open(dd)
  try {
    await node.chunks.tableReady()
    return node.chunks.load.source
  } finally {
    await node.close()
  }
}

test('the pack table is saved at the data dir root and read back from there', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const dd = await dataDirWithContent(dir)
    assert.ok(fs.existsSync(dd.paths.packTable), 'the table is saved at the root')
    assert.ok(!fs.existsSync(path.join(dd.paths.corestore, 'pack-table')), 'nothing of ours inside corestore/')
    assert.equal(await tableSource(dd), 'file')
  } finally {
    cleanup()
  }
})

test('a copy opened after deleting CORESTORE keeps its pack table; files of older versions move out of corestore/', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const dd = await dataDirWithContent(dir)
    // An older version's layout: the table inside corestore/.
    fs.renameSync(dd.paths.packTable, path.join(dd.paths.corestore, 'pack-table'))
    assert.equal(await tableSource(dd), 'file', 'moved to the root at open and used')
    assert.ok(fs.existsSync(dd.paths.packTable))
    assert.ok(!fs.existsSync(path.join(dd.paths.corestore, 'pack-table')))

    // An older version's table, then CORESTORE deleted (a restored copy): opening must not lose it.
    fs.renameSync(dd.paths.packTable, path.join(dd.paths.corestore, 'pack-table'))
    fs.rmSync(path.join(dd.paths.corestore, 'CORESTORE'))
    assert.equal(await tableSource(dd), 'file', 'the table still serves the open')
    assert.ok(fs.existsSync(dd.paths.packTable))

    // One that hypercore-storage already moved into corestore/db/ is picked up from there.
    fs.renameSync(dd.paths.packTable, path.join(dd.paths.corestore, 'db', 'pack-table'))
    assert.equal(await tableSource(dd), 'file', 'picked up from corestore/db/')
    assert.ok(!fs.existsSync(path.join(dd.paths.corestore, 'db', 'pack-table')))
  } finally {
    cleanup()
  }
})
