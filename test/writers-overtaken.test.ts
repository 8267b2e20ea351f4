// Edits a revocation overtakes (spec/oplog.md "Edits a revocation overtakes"), through real data
// dirs, corestores and hypercore replication: the writers-property counterexample (seed
// 679311807 path 13: a node acts on a writer set that does not show its own revocation yet)
// as fixed cases. One write decision (WriterSet.writable) for canWrite, each edit and each
// flush: an edit the log can't take is refused before it changes the tree, and edits made
// before the revocation arrived are removed from the view and listed, never silently lost.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { UserError } from '../src/datadir.js'
import type { Volume } from '../src/volume/volume.js'
import { EditsRefusedError } from '../src/volume/flush.js'
import { Nodes, until } from './writers-helpers.js'

const has = (v: Volume, p: string): boolean => v.tree.lookup(p) !== null
const dump = (v: Volume): string => [...v.tree.walk('/')].map((s) => s.path).sort().join(' ')
const own = (v: Volume): string => v.log.key.toString('hex')
const sees = (v: Volume): boolean => (v.writerSet.writers.get(own(v))?.limit ?? null) !== null

/** Two writers a (root) and b; b wrote /kept and a applied it. */
async function keptByB(t: { after: (fn: () => Promise<void>) => void }): Promise<{ c: Nodes; a: Volume; b: Volume }> {
  const { c, vols: [a, b] } = await Nodes.writers(2)
  t.after(() => c.close())
  b.mkdir('/kept')
  await b.flush()
  await until('a applies /kept', [a, b], () => has(a, '/kept'))
  return { c, a, b }
}

test('a revocation that arrives between an edit and its flush: the flush appends nothing, says why (EROFS), the edit leaves the view and is listed', async (t) => {
  const { c, a, b } = await keptByB(t)
  b.mkdir('/overtaken') // allowed: b knows of no revocation yet
  await a.revokeNode(c.nodes[1].dir.publicKey)
  await until('b sees its revocation', [a, b], () => sees(b))
  assert.ok(has(b, '/overtaken'), 'still in the view until the flush')
  assert.equal(b.canWrite, false)
  const length = b.log.length
  await assert.rejects(b.flush(), (err: Error) => {
    assert.ok(err instanceof EditsRefusedError, String(err))
    assert.equal((err as EditsRefusedError).code, 'EROFS')
    assert.match(err.message, /1 edit \(mkdir \/overtaken\) not written to the op log and removed from this node's view: .*was revoked \(entries after \d+ are not accepted\)/)
    return true
  })
  assert.equal(b.log.length, length, 'nothing appended past the revocation')
  assert.ok(!has(b, '/overtaken') && has(b, '/kept'), 'the refused edit is out of the view, the logged one stays')
  assert.deepEqual(b.refused.map((r) => ({ ops: r.ops.map((o) => `${o.op} ${o.path}`), seqs: r.seqs })), [{ ops: ['mkdir /overtaken'], seqs: [] }])
  assert.deepEqual(b.unloggedCount, { ops: 0, changes: 0, error: null }, 'nothing left queued')
  // From now on an edit is refused before it changes the tree.
  assert.throws(() => b.mkdir('/after'), (err: Error & { code?: string }) => err.code === 'EROFS' && /was revoked/.test(err.message))
  assert.ok(!has(b, '/after'))
  await b.flush() // nothing queued: nothing to refuse
  assert.equal(b.log.length, length)
  await until('same tree', [a, b], () => dump(a) === dump(b))
})

test('a node acting on a set that does not show its revocation yet (stale canWrite) is refused before it appends anything', async (t) => {
  const { c, vols: [a, b, cc] } = await Nodes.writers(3)
  t.after(() => c.close())
  await a.revokeNode(c.nodes[1].dir.publicKey)
  // b's set may or may not show it yet: whatever b decided before, revokeNode refreshes and decides again.
  await until('b holds a\'s revocation', [a, cc], () => b.writers.get(own(a))!.core.contiguousLength === a.log.length)
  const length = b.log.length
  await assert.rejects(b.revokeNode(c.nodes[2].dir.publicKey), (err: Error) => err instanceof UserError && /was revoked/.test(err.message))
  assert.equal(b.log.length, length)
  assert.equal(b.canWrite, false)
  assert.ok(cc.canWrite)
})

test('entries a node wrote before its revocation arrived (partitioned): dropped by the rebuild everywhere, and listed as refused on that node', async (t) => {
  const { c, a, b } = await keptByB(t)
  c.unlink(0, 1)
  await a.revokeNode(c.nodes[1].dir.publicKey)
  b.mkdir('/late')
  await b.flush() // b knows of no revocation: appended
  const seq = b.log.length - 1
  c.link(0, 1)
  await until('b rebuilt without /late', [a, b], () => sees(b) && !has(b, '/late'))
  assert.deepEqual(b.refused.map((r) => ({ ops: r.ops.map((o) => `${o.op} ${o.path}`), seqs: r.seqs })), [{ ops: ['mkdir /late'], seqs: [seq] }])
  assert.match(b.refused[0].reason, /written before the revocation arrived here, not accepted/)
  await until('same tree', [a, b], () => dump(a) === dump(b))
  assert.ok(has(a, '/kept') && !has(a, '/late'))
})
