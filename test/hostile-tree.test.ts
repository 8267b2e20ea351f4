// Hostile changes against the directory state (issue 9, findings 5, 6 and 8): a record put in
// another node's shard, values claiming another writer, names that are not well-formed Unicode.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import * as A from '@automerge/automerge'
import { ROOT_ID, Tree, TreeError, TreeIndex, type ShardChange } from '../src/tree/index.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { exportTree } from '../src/copy/local-copy.js'
import { tempDir } from './helpers.js'

const OWNER = 'aa'.repeat(32)
const HOSTILE = 'bb'.repeat(32)
const REPLICA = 'cc'.repeat(32)
const h = (n: number): string => n.toString(16).padStart(64, '0')

/** A raw Automerge document of one shard, as a hostile writer holds it: `changes` applied, actor `actor`. */
function rawShard(actor: string, changes: ShardChange[], shard: string): ReturnType<typeof A.getBackend> {
  const handle = A.getBackend(A.init<unknown>({ actor }))
  const mine = changes.filter((c) => c.shard === shard).map((c) => c.change)
  if (mine.length > 0) handle.applyChanges(mine)
  return handle
}

test('a record put in another shard under a node\'s id is ignored, in any order: the real node stays', () => {
  const owner = Tree.create(OWNER, { random: (n) => '1'.repeat(n * 2) }) // node ids 1111…, shard "11"
  owner.writeFile('/secret', { hash: h(1), size: 1 })
  const id = owner.stat('/secret').id
  const ownerChanges = owner.takeChanges()
  // The hostile writer puts a complete-looking (deleted) record under that id, in shard "22".
  const handle = rawShard(HOSTILE, [], '22')
  handle.putObject('_root', id, { v: 1, kind: 'file', loc: JSON.stringify([1, '0'.repeat(32), 'secret', HOSTILE, 1, null, null]), mode: 0o644, mtime: 1, by: HOSTILE, del: JSON.stringify([1, HOSTILE, 2, [] ]) })
  handle.commit(null, null)
  const foreign = { shard: '22', change: handle.getLastLocalChange()! }
  for (const order of [[...ownerChanges, foreign], [foreign, ...ownerChanges]]) {
    for (const batched of [true, false]) {
      const r = Tree.create(REPLICA)
      try {
        if (batched) r.applyChanges(order)
        else for (const c of order) r.applyChanges([c])
        assert.equal(r.stat('/secret').content!.hash, h(1), `order ${order[0] === foreign ? 'foreign first' : 'owner first'}, ${batched ? 'one batch' : 'one at a time'}`)
        assert.deepEqual(r.readdir('/').map((s) => s.name), ['secret'])
        assert.ok(r.problems().some((p) => p.shard === '22' && p.id === id && /not a node id of this shard/.test(p.reason)))
        // Later edits of the real node still show.
        r.applyChanges([foreign])
        assert.equal(r.stat('/secret').content!.hash, h(1))
      } finally { r.free() }
    }
  }
  owner.free()
})

test('a value naming another writer than its change\'s actor is rejected: versions and names show who really wrote them', () => {
  const owner = Tree.create(OWNER)
  const hostile = Tree.create(HOSTILE)
  try {
    owner.writeFile('/f', { hash: h(1), size: 1 })
    const base = owner.takeChanges()
    hostile.applyChanges(base)
    const id = owner.stat('/f').id
    const shard = id.slice(0, 2)
    // Concurrently: the owner writes a version; the hostile writer writes one that claims the owner wrote it.
    owner.writeFile('/f', { hash: h(2), size: 2 })
    const ownerEdit = owner.takeChanges()
    const raw = rawShard(HOSTILE, base, shard)
    const obj = raw.getWithType('_root', id)![1] as string
    raw.put(obj, 'content', JSON.stringify([1, h(3), 3, OWNER, Date.now(), 'f0f0f0f0f0f0f0f0']), 'str')
    raw.commit(null, null)
    const forged = { shard, change: raw.getLastLocalChange()! }
    // So does a forged name (loc) and a forged tombstone.
    const raw2 = rawShard(HOSTILE, [...base, { shard, change: forged.change }], shard)
    raw2.put(raw2.getWithType('_root', id)![1] as string, 'loc', JSON.stringify([1, '0'.repeat(32), 'g', OWNER, Date.now(), '0'.repeat(32), 'f']), 'str')
    raw2.commit(null, null)
    const forgedLoc = { shard, change: raw2.getLastLocalChange()! }

    // And a text object under `content`, which reads back as a string that no op carried.
    const raw3 = rawShard(HOSTILE, base, shard)
    raw3.putObject(raw3.getWithType('_root', id)![1] as string, 'content', JSON.stringify([1, h(4), 4, OWNER, Date.now(), 'e0e0e0e0e0e0e0e0']))
    raw3.commit(null, null)
    const forgedText = { shard, change: raw3.getLastLocalChange()! }

    const rejected = owner.apply([{ ...forged, writer: HOSTILE, tag: 'content' }, { ...forgedLoc, writer: HOSTILE, tag: 'loc' }, { ...forgedText, writer: HOSTILE, tag: 'text' }])
    assert.deepEqual(rejected.map((r) => r.tag).sort(), ['content', 'loc', 'text'])
    assert.match(rejected.find((r) => r.tag === 'text')!.reason, /writes an object to key content/)
    assert.match(rejected.find((r) => r.tag === 'content')!.reason, /writes a content value naming writer aaaaaaaa/)
    assert.deepEqual(owner.conflicts(), [])
    assert.equal(owner.stat('/f').content!.hash, h(2))

    // The honest way: the hostile writer's version is its own, and shows as such.
    hostile.writeFile('/f', { hash: h(3), size: 3 })
    owner.applyChanges(hostile.takeChanges())
    hostile.applyChanges(ownerEdit)
    for (const t of [owner, hostile]) {
      const [c] = t.conflicts()
      assert.deepEqual(c.versions.map((v) => [v.hash, v.writer]).sort(), [[h(2), OWNER], [h(3), HOSTILE]])
      assert.ok(c.versions.some((v) => v.path === `/f.conflict-${v.writer.slice(0, 8)}` && v.writer !== c.versions[0].writer))
    }
    // Resolving keeps a version and writes it again as the resolver's (same content, same ver).
    owner.resolve('/f', 'theirs')
    assert.deepEqual(owner.versions('/f').map((v) => [v.hash, v.writer]), [[h(3), OWNER]])
    const replica = Tree.create(REPLICA)
    try {
      replica.applyChanges([...base, ...ownerEdit])
      assert.deepEqual(replica.apply(owner.takeChanges().map((c) => ({ ...c, writer: OWNER }))), [])
    } finally { replica.free() }
  } finally {
    owner.free()
    hostile.free()
  }
})

test('names that are not well-formed Unicode are refused by every tree op, and records holding one are invalid', () => {
  const t = Tree.create(OWNER)
  try {
    const lone = ['a\uD800', '\uDC00b', 'x\uDBFFy']
    for (const name of lone) {
      for (const op of [() => t.mkdir('/' + name), () => t.writeFile('/' + name, { hash: h(1), size: 1 }), () => t.symlink('/' + name, 'x'), () => t.snapshot(name)]) {
        assert.throws(op, (e: unknown) => e instanceof TreeError && e.code === 'EINVAL' && /not well-formed Unicode/.test(e.message))
      }
    }
    t.mkdir('/ok')
    assert.throws(() => t.rename('/ok', '/\uD800'), (e: unknown) => e instanceof TreeError && e.code === 'EINVAL')
    assert.throws(() => t.lookup('/\uDFFF'), (e: unknown) => e instanceof TreeError && e.code === 'EINVAL')
    // A peer's record whose name is not well-formed is invalid (ignored, listed as a problem).
    const raw = rawShard(HOSTILE, [], '33')
    raw.putObject('_root', '3'.repeat(32), { v: 1, kind: 'dir', loc: JSON.stringify([1, '0'.repeat(32), 'bad\uD800', HOSTILE, 1, null, null]), mode: 0o755, mtime: 1, by: HOSTILE })
    raw.commit(null, null)
    assert.deepEqual(t.apply([{ shard: '33', change: raw.getLastLocalChange()!, writer: HOSTILE }]), [])
    assert.deepEqual(t.readdir('/').map((s) => s.name), ['ok'])
    assert.ok(t.problems().some((p) => p.id === '3'.repeat(32) && /bad name/.test(p.reason)))
  } finally { t.free() }
})

test('volume export skips (and reports) entries whose names it cannot write, and exports the rest', async () => {
  const { dir, cleanup } = tempDir()
  const node = await Node.open(DataDir.create(path.join(dir, 'data')))
  try {
    const vol = await node.createVolume('v', 'default')
    await vol.writeFile('/a', Buffer.from('alpha'))
    vol.mkdir('/d')
    await vol.writeFile('/d/b', Buffer.from('beta'))
    // Names that reached a tree before they were refused (a checkpoint of an older version):
    // both become "x\uFFFD" in UTF-8, so on 322f4e8 the second failed with EEXIST and the export stopped.
    const nodes = [...vol.tree.exportState().nodes]
    const d = nodes.find((n) => n.loc.name === 'd')!
    const bad = (id: string, name: string, parent = ROOT_ID) => ({ ...d, id, loc: { ...d.loc, parent, name } })
    nodes.push(bad('e1'.repeat(16), 'x\uD800'), bad('e2'.repeat(16), 'x\uDBFF'), bad('e3'.repeat(16), 'inside', 'e1'.repeat(16)))
    const index = new TreeIndex()
    index.load(nodes)
    assert.equal(index.readdir('/').length, 4)
    const dest = path.join(dir, 'out')
    const s = await exportTree(vol.cas, index, dest)
    assert.equal(fs.readFileSync(path.join(dest, 'a'), 'utf8'), 'alpha')
    assert.equal(fs.readFileSync(path.join(dest, 'd', 'b'), 'utf8'), 'beta')
    assert.deepEqual(s.skipped!.map((x) => x.path).sort(), ['/x\uD800', '/x\uDBFF'])
    for (const x of s.skipped!) assert.match(x.reason, /not well-formed Unicode/)
    assert.deepEqual(fs.readdirSync(dest).sort(), ['a', 'd'])
  } finally {
    await node.close()
    cleanup()
  }
})
