// Convergence of several writers: a property test over random schedules (ops, partitions,
// reconnections) at the Tree level, the same through real writer logs and hypercore
// replication, the explicit conflict cases at the volume level, hostile entries, checkpoints.
//
// Replay a failure: BAZIL_PROPERTY_SEED=<seed> BAZIL_PROPERTY_PATH=<path> (printed with the
// shrunk schedule). More schedules (nightly): BAZIL_PROPERTY_RUNS=20000 (Tree level) and
// BAZIL_PROPERTY_VOLUME_RUNS=500 (real logs and replication).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import fs from 'node:fs'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import { encodeKey, randomBytes } from '../src/crypto.js'
import { DataDir, type VolumeRecord } from '../src/datadir.js'
import { PeerRegistry } from '../src/net/peers.js'
import { resyncStalled } from '../src/net/length-resync.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { bazil, tempDir } from './helpers.js'
import { Tree, canonicalDump } from '../src/tree/index.js'
import { PAIRS, Ledger, checkProperty, hashesIn, opArb, runOp, runTreeSchedule, scheduleArb, seedState, stats, type Actor, type Op } from './tree-schedules.js'

const RUNS = Number(process.env.BAZIL_PROPERTY_RUNS ?? 1000)

test(`property: ${RUNS} random schedules of 3 writers converge at the Tree level, nothing lost`, () => {
  checkProperty(fc.property(scheduleArb, (ops) => { runTreeSchedule(ops) }), RUNS)
  console.log(`# schedules: ${JSON.stringify(stats)}`)
})

// ---- writers of one volume, exchanging real logs by hypercore replication ------------------

export class Cluster {
  private links = new Map<string, { a: Duplex; b: Duplex }>()
  private constructor(readonly root: string, readonly nodes: Node[], readonly vols: Volume[], readonly cleanup: () => void) {}

  /**
   * `n` data dirs sharing one sharing key and one volume record; each knows every other's log.
   * Node 0 created the volume (its root writer) and admitted the others' logs (its registry
   * allows them the volume): every node can write when this returns, with no link up.
   */
  static async create(n: number): Promise<Cluster> {
    const { dir, cleanup } = tempDir('bazil-conv-')
    const sharing = randomBytes(32)
    const nodes: Node[] = []
    const vols: Volume[] = []
    let record: VolumeRecord | null = null
    for (let k = 0; k < n; k++) {
      const data = DataDir.create(path.join(dir, `n${k}`))
      data.addSharingKey('shared', sharing)
      if (record) data.addVolume(record)
      nodes.push(await Node.open(data))
      if (!record) {
        await nodes[0].createVolume('v', 'shared')
        record = data.volume('v')
      }
      vols.push(await nodes[k].volume('v'))
    }
    PeerRegistry.update(nodes[0].dir.root, (r) => {
      for (const o of nodes.slice(1)) {
        r.add(o.dir.publicKey)
        r.setVolume(o.dir.publicKey, record!.id, true)
      }
    })
    for (const v of vols) for (const o of vols) if (o !== v) await v.addWriter(o.log.key)
    const c = new Cluster(dir, nodes, vols, cleanup)
    await c.admitted()
    return c
  }

  /** Links everyone until every node can write (node 0 admits the others), then unlinks. */
  async admitted(timeoutMs = 20_000): Promise<void> {
    this.setLinks(this.vols.length === 2 ? 1 : 7)
    const deadline = Date.now() + timeoutMs
    while (!this.vols.every((v) => v.canWrite)) {
      if (Date.now() > deadline) throw new Error(`writers not admitted: ${this.vols.map((v) => v.canWrite).join(',')}`)
      await Promise.all(this.vols.map((v) => v.refresh()))
      await new Promise((r) => setTimeout(r, 10))
    }
    await this.settle()
    this.setLinks(0)
  }

  connect(x: number, y: number): void {
    const key = `${x}-${y}`
    if (this.links.has(key)) return
    const a = this.nodes[x].store.replicate(true)
    const b = this.nodes[y].store.replicate(false)
    a.pipe(b).pipe(a)
    a.on('error', () => {})
    b.on('error', () => {})
    this.links.set(key, { a, b })
  }

  disconnect(x: number, y: number): void {
    const l = this.links.get(`${x}-${y}`)
    if (!l) return
    l.a.destroy()
    l.b.destroy()
    this.links.delete(`${x}-${y}`)
  }

  setLinks(bits: number): void {
    PAIRS.forEach(([x, y], bit) => (bits & (1 << bit) ? this.connect(x, y) : this.disconnect(x, y)))
  }

  /** Waits until every writer holds and has applied everything its component holds. */
  async settle(timeoutMs = 20_000): Promise<void> {
    for (const v of this.vols) await v.flush()
    const comp = this.vols.map((_, k) => k)
    const find = (k: number): number => (comp[k] === k ? k : (comp[k] = find(comp[k])))
    for (const key of this.links.keys()) {
      const [x, y] = key.split('-').map(Number)
      comp[find(x)] = find(y)
    }
    const deadline = Date.now() + timeoutMs
    let nudgeAt = Date.now() + 3_000
    let stallRelinkAt = Date.now() + 5_000
    for (;;) {
      await Promise.all(this.vols.map((v) => v.refresh()))
      const states = this.vols.map((v) => new Map(v.replayState().map((s) => [s.writer, s])))
      let done = true
      for (let k = 0; k < this.vols.length && done; k++) {
        for (const [w, s] of states[k]) {
          let best = 0
          for (let j = 0; j < this.vols.length; j++) if (find(j) === find(k)) best = Math.max(best, states[j].get(w)!.contiguous)
          if (s.contiguous < best || s.applied < best) { done = false; break }
        }
      }
      if (done) return
      if (Date.now() > deadline) throw new Error(`replication did not settle: ${JSON.stringify(states.map((m) => [...m.values()]))}`)
      // A replica that stalls after fast reconnects (seen once in ~1,000 schedules: the last
      // block of a log not fetched for 20 s) is asked again for what its component holds,
      // as `volume sync` does; the stall itself is noted in issue 3.
      if (Date.now() > nudgeAt) {
        nudgeAt = Date.now() + 1_000
        this.vols.forEach((v, k) => {
          for (const [w, log] of v.writers) {
            let best = 0
            for (let j = 0; j < this.vols.length; j++) if (find(j) === find(k)) best = Math.max(best, states[j].get(w)?.contiguous ?? 0)
            if (log.core.contiguousLength < best) log.core.download({ start: log.core.contiguousLength, end: best })
          }
        })
        // A replica that does not even know the log grew (its length short of the component's,
        // seed 1388737315 path 14:4:1:0:0:3:15:3:7:15:15:15:16:15:15): hypercore 11.37.1's sync
        // race (src/net/length-resync.ts) left a peer believing it shorter than it is. These
        // links are corestore's replicate(), not bazil's Replication, which repairs that every
        // second: do what it does. Anything else that stalls a replica still gets new
        // connections after 5 s, as a node reconnects: the handshake tells it the length.
        for (const v of this.vols) for (const [, log] of v.writers) for (const p of log.core.peers as unknown as { protomux: unknown }[]) resyncStalled(log.core, p.protomux)
        if (Date.now() > stallRelinkAt) {
          stallRelinkAt = Date.now() + 3_000
          for (const key of [...this.links.keys()]) {
            const [x, y] = key.split('-').map(Number)
            this.disconnect(x, y)
            this.connect(x, y)
          }
        }
      }
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  async close(): Promise<void> {
    for (const key of [...this.links.keys()]) {
      const [x, y] = key.split('-').map(Number)
      this.disconnect(x, y)
    }
    for (const n of this.nodes) await n.close()
    this.cleanup()
  }
}

class VolumeActor implements Actor {
  constructor(readonly vol: Volume) {}
  walk() { return [...this.vol.tree.walk('/')] }
  versionHashes(p: string) { return this.vol.tree.versions(p).map((v) => v.hash) }
  file(p: string, hash: string) { this.vol.mutate((t) => t.writeFile(p, { hash, size: 1 }), (st) => ({ op: 'write', path: st.path, hash, size: 1 })) }
  mkdir(p: string) { this.vol.mkdir(p) }
  rename(a: string, b: string) { this.vol.rename(a, b) }
  unlink(p: string) { this.vol.unlink(p) }
  rmdir(p: string) { this.vol.rmdir(p) }
  chmod(p: string, mode: number) { this.vol.setattr(p, { mode }) }
  resolve(p: string, keep: 'mine' | 'theirs' | 'both') { this.vol.mutate((t) => t.resolve(p, keep), () => ({ op: 'resolve', path: p })) }
  link(a: string, b: string) { this.vol.mutate((t) => t.link(a, b), () => ({ op: 'link', path: a, to: b })) }
}

async function runVolumeSchedule(c: Cluster, ops: Op[]): Promise<void> {
  const ledger = new Ledger()
  c.setLinks(7)
  seedState(new VolumeActor(c.vols[0]), ledger)
  await c.settle()
  c.setLinks(0)
  await c.settle()
  for (const op of ops) {
    if (op.t === 'net') {
      await c.settle()
      c.setLinks(op.links)
      await c.settle()
    } else {
      runOp(new VolumeActor(c.vols[op.w]), op, ledger)
      await c.vols[op.w].flush() // one entry per op, as a mount commits on close
    }
  }
  c.setLinks(7)
  await c.settle()
  const dumps = c.vols.map((v) => canonicalDump(v.tree))
  for (const [k, v] of c.vols.entries()) {
    assert.deepEqual(dumps[k], dumps[0], `writer ${k} differs from writer 0`)
    assert.deepEqual(v.tree.audit(), [], `writer ${k} view invariants`)
    assert.deepEqual(v.skipped, [], `writer ${k} skipped entries`)
  }
  const present = hashesIn(dumps[0])
  assert.deepEqual(ledger.mustSurvive().filter((h) => !present.has(h)), [], 'file versions lost')
}

const VOLUME_RUNS = Number(process.env.BAZIL_PROPERTY_VOLUME_RUNS ?? 50)

test(`property: ${VOLUME_RUNS} schedules through real writer logs and hypercore replication converge`, async () => {
  await checkProperty(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
    const c = await Cluster.create(3)
    try {
      await runVolumeSchedule(c, ops)
    } finally {
      await c.close()
    }
  }), VOLUME_RUNS)
})

// ---- the explicit cases, at the volume level through real logs ------------------------------

const text = (s: string): Buffer => Buffer.from(s)
const blake = async (v: Volume, s: string): Promise<string> => (await v.cas.writeBuffer(text(s))).hash.toString('hex')
const w8 = (v: Volume): string => v.log.key.toString('hex').slice(0, 8)

/** Two writers: both see `setup`, then each does its part while partitioned, then they reconnect. */
async function concurrently(setup: (a: Volume) => Promise<void>, partA: (a: Volume) => Promise<void>, partB: (b: Volume) => Promise<void>): Promise<{ c: Cluster; a: Volume; b: Volume; dump: string[] }> {
  const c = await Cluster.create(2)
  const [a, b] = c.vols
  c.connect(0, 1)
  await setup(a)
  await c.settle()
  c.disconnect(0, 1)
  await partA(a)
  await partB(b)
  await a.flush(); await b.flush()
  c.connect(0, 1)
  await c.settle()
  const dump = canonicalDump(a.tree)
  assert.deepEqual(canonicalDump(b.tree), dump, 'both writers show the same tree')
  assert.deepEqual(a.tree.audit(), [])
  return { c, a, b, dump }
}

const names = (v: Volume, dir = '/'): string[] => v.tree.readdir(dir).map((s) => s.name)

test('two writers edit one file: one keeps the name, the other is a conflict copy named for its writer', async () => {
  const { c, a, b } = await concurrently(
    async (a) => { await a.writeFile('/f', text('base')) },
    async (a) => { await a.writeFile('/f', text('from a')) },
    async (b) => { await b.writeFile('/f', text('from b')) })
  try {
    const ha = await blake(a, 'from a'), hb = await blake(b, 'from b')
    const main = a.tree.stat('/f').content!.hash
    const [winner, loser] = main === ha ? [a, b] : [b, a]
    const copy = `f.conflict-${w8(loser)}`
    assert.deepEqual(names(a), ['f', copy])
    assert.equal(a.tree.stat('/' + copy).content!.hash, winner === a ? hb : ha)
    const conflicts = b.tree.conflicts()
    assert.equal(conflicts.length, 1)
    assert.deepEqual(conflicts[0].versions.map((v) => v.path), ['/f', '/' + copy])
  } finally { await c.close() }
})

test('edit vs delete: the file survives with the edit', async () => {
  const { c, a, b } = await concurrently(
    async (a) => { await a.writeFile('/f', text('base')) },
    async (a) => { a.unlink('/f') },
    async (b) => { await b.writeFile('/f', text('edited')) })
  try {
    assert.deepEqual(names(a), ['f'])
    assert.equal(a.tree.stat('/f').content!.hash, await blake(b, 'edited'))
  } finally { await c.close() }
})

test('same-name creates survive: file/file, dir/dir (two entries, not merged), file/dir', async () => {
  const { c, a, b } = await concurrently(
    async () => {},
    async (a) => { await a.writeFile('/x', text('a')); a.mkdir('/d'); await a.writeFile('/d/fa', text('a')); await a.writeFile('/m', text('a')) },
    async (b) => { await b.writeFile('/x', text('b')); b.mkdir('/d'); await b.writeFile('/d/fb', text('b')); b.mkdir('/m') })
  try {
    const all = names(a)
    assert.equal(all.length, 6, all.join(' '))
    for (const base of ['x', 'd', 'm']) {
      const group = all.filter((n) => n === base || n.startsWith(base + '.conflict-'))
      assert.equal(group.length, 2, `two entries for ${base}: ${all.join(' ')}`)
      const other = group.find((n) => n !== base)!
      assert.ok(other === `${base}.conflict-${w8(a)}` || other === `${base}.conflict-${w8(b)}`, other)
    }
    const dirs = all.filter((n) => n === 'd' || n.startsWith('d.conflict-')).map((d) => names(a, '/' + d).join(','))
    assert.deepEqual(dirs.sort(), ['fa', 'fb'])
    const kinds = all.filter((n) => n === 'm' || n.startsWith('m.conflict-')).map((m) => a.tree.stat('/' + m).kind)
    assert.deepEqual(kinds.sort(), ['dir', 'file'])
  } finally { await c.close() }
})

test('A moved into B while B moved into A: no cycle, both and their contents reachable, same on both', async () => {
  const { c, a, dump } = await concurrently(
    async (a) => { a.mkdir('/A'); a.mkdir('/B'); await a.writeFile('/A/a', text('a')); await a.writeFile('/B/b', text('b')) },
    async (a) => { a.rename('/A', '/B/A') },
    async (b) => { b.rename('/B', '/A/B') })
  try {
    const paths = dump.map((l) => l.split('\t')[0])
    const find = (name: string): string[] => paths.filter((p) => p.endsWith('/' + name))
    assert.equal(find('A').length, 1); assert.equal(find('B').length, 1)
    assert.equal(find('a').length, 1); assert.equal(find('b').length, 1)
    assert.ok(find('a')[0].startsWith(find('A')[0] + '/'))
    assert.ok(find('b')[0].startsWith(find('B')[0] + '/'))
    assert.equal(a.tree.stat(find('a')[0]).content!.hash, await blake(a, 'a'))
  } finally { await c.close() }
})

test('delete a directory vs create a file inside it: the file survives', async () => {
  const { c, a } = await concurrently(
    async (a) => { a.mkdir('/d') },
    async (a) => { a.rmdir('/d') },
    async (b) => { await b.writeFile('/d/new', text('new')) })
  try {
    assert.deepEqual(names(a, '/d'), ['new'])
    assert.equal(a.tree.stat('/d/new').content!.hash, await blake(a, 'new'))
  } finally { await c.close() }
})

test('rename vs edit: the renamed file carries the edit', async () => {
  const { c, a } = await concurrently(
    async (a) => { await a.writeFile('/f', text('base')) },
    async (a) => { a.mkdir('/sub'); a.rename('/f', '/sub/g') },
    async (b) => { await b.writeFile('/f', text('edited')) })
  try {
    assert.deepEqual(names(a), ['sub'])
    assert.equal(a.tree.stat('/sub/g').content!.hash, await blake(a, 'edited'))
  } finally { await c.close() }
})

test('chmod vs write of one file: both apply', async () => {
  const { c, a } = await concurrently(
    async (a) => { await a.writeFile('/f', text('base')) },
    async (a) => { a.setattr('/f', { mode: 0o600 }) },
    async (b) => { await b.writeFile('/f', text('edited')) })
  try {
    const st = a.tree.stat('/f')
    assert.equal(st.mode, 0o600)
    assert.equal(st.content!.hash, await blake(a, 'edited'))
    assert.deepEqual(a.tree.conflicts(), [])
  } finally { await c.close() }
})

// ---- hostile and corrupt entries -----------------------------------------------------------

test('corrupt and hostile entries are skipped by every writer alike, naming writer and seq; the rest applies', async () => {
  const c = await Cluster.create(3)
  try {
    const [a, b, x] = c.vols
    c.setLinks(7)
    await a.writeFile('/shared', text('base'))
    await c.settle()
    const bad: number[] = []
    // 1. a block that is not a sealed entry at all
    bad.push((await b.log.core.append(Buffer.from('garbage, not an entry'))).length - 1)
    // 2. a sealed entry whose change is not an Automerge change
    const junk = Buffer.concat([Buffer.from([0x85, 0x6f, 0x4a, 0x83]), randomBytes(40)])
    bad.push((await b.log.append([{ time: 1, ops: [], changes: [{ shard: 'ab', change: junk }] }]))[0])
    // 3. a change authored by another writer's actor (forged), sealed into b's log
    const forger = Tree.create(a.log.key.toString('hex'))
    forger.mkdir('/forged')
    bad.push((await b.log.append([{ time: 1, ops: [], changes: forger.takeChanges() }]))[0])
    forger.free()
    // 4. b's own change with a damaged op column (its header still parses): Automerge refuses it
    const probe = Tree.create(b.log.key.toString('hex'))
    probe.mkdir('/damaged')
    const [damaged] = probe.takeChanges()
    const bytes = Uint8Array.from(damaged.change)
    bytes[bytes.length - 3] ^= 0xff
    bytes[4] ^= 0xff // checksum too
    bad.push((await b.log.append([{ time: 1, ops: [], changes: [{ shard: damaged.shard, change: bytes }] }]))[0])
    probe.free()
    // ...and then ordinary entries, which still apply.
    await b.writeFile('/after', text('after'))
    b.setattr('/shared', { mode: 0o600 })
    await b.flush()
    await c.settle()
    await b.refresh()
    const bHex = encodeKey(b.log.key)
    for (const v of [a, x, b]) {
      const skipped = v.skipped.map((s) => `${s.writer}:${s.seq}`).sort()
      assert.deepEqual(skipped, bad.map((s) => `${bHex}:${s}`).sort(), `skipped on ${v.log.key.toString('hex').slice(0, 8)}: ${JSON.stringify(v.skipped)}`)
      assert.equal(v.tree.stat('/after').content!.hash, await blake(v, 'after'))
      assert.equal(v.tree.stat('/shared').mode, 0o600)
      assert.equal(v.tree.lookup('/forged'), null)
      assert.equal(v.tree.lookup('/damaged'), null)
    }
    assert.match(a.skipped.find((s) => s.seq === bad[2])!.reason, /actor/)
    assert.deepEqual(canonicalDump(x.tree), canonicalDump(a.tree))
    // A replica that replays everything from the logs (after reopening) skips the same entries.
    const verify = await x.verify()
    assert.deepEqual(verify.errors.map((e) => e.seq).sort(), [...bad].sort())
  } finally { await c.close() }
})

// ---- checkpoints and lazy shards -----------------------------------------------------------

test('reopening reads the checkpoint and replays only newer entries; deleting it costs only time', async () => {
  const c = await Cluster.create(2)
  try {
    const [a, b] = c.vols
    c.connect(0, 1)
    for (let d = 0; d < 20; d++) {
      a.mkdir(`/d${d}`)
      for (let f = 0; f < 10; f++) a.mutate((t) => t.writeFile(`/d${d}/f${f}`, { hash: (d * 100 + f + 1).toString(16).padStart(64, '0'), size: 1 }), () => ({ op: 'write' }))
      await a.flush()
    }
    await b.writeFile('/from-b', text('b'))
    await c.settle()
    const before = canonicalDump(a.tree)
    const root = path.join(c.root, 'n0')
    await c.nodes[0].close()
    const ckpt = path.join(root, 'index', `${a.record.id}.ckpt`)
    assert.ok(fs.existsSync(ckpt), 'closing writes a checkpoint')

    // b goes on while a is closed: a's replica of b's log gets the entries on reconnect.
    await b.writeFile('/later', text('later'))
    await b.flush()

    const reopen = async (): Promise<{ node: Node; vol: Volume }> => {
      const node = await Node.open(DataDir.open(root))
      return { node, vol: await node.volume('v') }
    }
    let { node, vol } = await reopen()
    assert.equal(vol.opened.fromCheckpoint, true)
    assert.equal(vol.opened.replayedEntries, 0)
    assert.deepEqual(canonicalDump(vol.tree), before)
    assert.equal(vol.tree.shardStats.hot, 0, 'no shard loaded to open')
    assert.ok(vol.tree.shardStats.total > 10)
    // A write loads only the shard of the node it touches.
    vol.setattr('/d3/f3', { mode: 0o600 })
    await vol.flush()
    assert.equal(vol.tree.shardStats.hot, 1)
    assert.equal(vol.tree.evict(0), 1)
    assert.equal(vol.tree.shardStats.hot, 0)

    // Replicate b's newer entry in: only it is applied (merging loads just its shards).
    const s1 = node.store.replicate(true), s2 = c.nodes[1].store.replicate(false)
    s1.pipe(s2).pipe(s1)
    const deadline = Date.now() + 10_000
    while (!vol.tree.lookup('/later')) {
      if (Date.now() > deadline) throw new Error('b\'s entry did not arrive')
      await new Promise((r) => setTimeout(r, 10))
    }
    s1.destroy(); s2.destroy()
    const after = canonicalDump(vol.tree)
    await node.close()

    // The same state from the logs alone, without the checkpoint.
    fs.rmSync(path.join(root, 'index'), { recursive: true })
    ;({ node, vol } = await reopen())
    assert.equal(vol.opened.fromCheckpoint, false)
    assert.ok(vol.opened.replayedEntries > 20)
    assert.deepEqual(canonicalDump(vol.tree), after)
    await node.close()

    // A damaged checkpoint is ignored, never trusted.
    const bytes = fs.readFileSync(ckpt)
    bytes[bytes.length >> 1] ^= 0xff
    fs.writeFileSync(ckpt, bytes)
    ;({ node, vol } = await reopen())
    assert.equal(vol.opened.fromCheckpoint, false)
    assert.deepEqual(canonicalDump(vol.tree), after)
    await node.close()
  } finally {
    await c.nodes[1].close()
    c.cleanup()
  }
})

// ---- conflict UI through the real binary -----------------------------------------------------

test('bazil volume conflicts / resolve on a data dir whose volume got conflicts from a second writer', async () => {
  const { dir, cleanup } = tempDir('bazil-conflict-cli-')
  try {
    const dataA = path.join(dir, 'a'), dataB = path.join(dir, 'b')
    assert.equal((await bazil(dataA, ['create'])).code, 0)
    assert.equal((await bazil(dataA, ['volume', 'create', 'docs'])).code, 0)
    const ddA = DataDir.open(dataA)
    const record = ddA.volume('docs')
    const ddB = DataDir.create(dataB)
    ddB.addSharingKey('from-a', ddA.sharingKey('default'))
    ddB.addVolume({ ...record, sharing: 'from-a' })
    // A lets B write (what `peer volume allow` does): A admits B's log once it sees it.
    PeerRegistry.update(dataA, (r) => { r.add(ddB.publicKey); r.setVolume(ddB.publicKey, record.id, true) })

    /** Both nodes open, each knowing the other's log; `connected` replicates while it runs. */
    const session = async (fn: (a: Volume, b: Volume, sync: () => Promise<void>) => Promise<void>): Promise<void> => {
      const na = await Node.open(DataDir.open(dataA)), nb = await Node.open(DataDir.open(dataB))
      const a = await na.volume('docs'), b = await nb.volume('docs')
      await a.addWriter(b.log.key); await b.addWriter(a.log.key)
      let streams: Duplex[] = []
      const sync = async (): Promise<void> => {
        await a.flush(); await b.flush()
        const s1 = na.store.replicate(true), s2 = nb.store.replicate(false)
        s1.pipe(s2).pipe(s1)
        streams = [s1, s2]
        const want = (): boolean => a.replayState().every((s) => s.applied >= b.writers.get(s.writer)!.length) && b.replayState().every((s) => s.applied >= a.writers.get(s.writer)!.length)
        const deadline = Date.now() + 10_000
        while (!want()) {
          if (Date.now() > deadline) throw new Error('no sync')
          await Promise.all([a.refresh(), b.refresh()])
          await new Promise((r) => setTimeout(r, 10))
        }
        for (const s of streams) s.destroy()
      }
      try { await fn(a, b, sync) } finally { await na.close(); await nb.close() }
    }
    await session(async (a, b, sync) => {
      await a.writeFile('/notes.txt', text('base'))
      await a.writeFile('/g', text('g base'))
      await sync()
      await a.writeFile('/notes.txt', text('mine'))
      await b.writeFile('/notes.txt', text('theirs, longer'))
      await a.writeFile('/g', text('g mine'))
      await b.writeFile('/g', text('g theirs'))
      await sync()
      assert.equal(a.tree.conflicts().length, 2)
      // Content replication is not this test's subject: give a the other writer's bytes directly.
      await a.cas.writeBuffer(text('theirs, longer'))
      await a.cas.writeBuffer(text('g theirs'))
    })
    const nodeA = (await bazil(dataA, ['debug', 'pubkey'])).stdout.trim()
    const nodeB = encodeKey(ddB.publicKey)

    const listed = await bazil(dataA, ['volume', 'conflicts', 'docs', '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    const conflicts = JSON.parse(listed.stdout) as { path: string; versions: { path: string; writer: string; mine: boolean; time: string; size: number; hash: string }[] }[]
    assert.deepEqual(conflicts.map((c) => c.path), ['/g', '/notes.txt'])
    const notes = conflicts[1]
    assert.deepEqual(notes.versions.map((v) => v.writer).sort(), [nodeA, nodeB].sort())
    const theirs = notes.versions.find((v) => !v.mine)!
    assert.equal(theirs.writer, nodeB)
    assert.equal(theirs.size, 'theirs, longer'.length)
    assert.match(theirs.hash, /^[0-9a-f]{64}$/)
    assert.ok(!Number.isNaN(Date.parse(theirs.time)))
    const plain = await bazil(dataA, ['volume', 'conflicts', 'docs'])
    assert.match(plain.stdout, /^\/notes\.txt$/m)
    assert.match(plain.stdout, new RegExp(`${nodeB}.*${'theirs, longer'.length} bytes`))

    const badKeep = await bazil(dataA, ['volume', 'resolve', 'docs', '/notes.txt', '--keep=newest'])
    assert.equal(badKeep.code, 1)
    assert.match(badKeep.stderr, /--keep must be mine, theirs, both or the hash of a version/)
    const resolved = await bazil(dataA, ['volume', 'resolve', 'docs', '/notes.txt', '--keep=theirs'])
    assert.equal(resolved.code, 0, resolved.stderr)
    assert.equal((await bazil(dataA, ['volume', 'cat', 'docs', '/notes.txt'])).stdout, 'theirs, longer')
    const both = await bazil(dataA, ['volume', 'resolve', 'docs', '/g', '--keep=both'])
    assert.equal(both.code, 0, both.stderr)
    assert.match(both.stdout, /other version kept as \/g\.conflict-/)
    assert.equal((await bazil(dataA, ['volume', 'conflicts', 'docs'])).stdout, 'no conflicts in volume "docs"\n')
    const ls = (await bazil(dataA, ['volume', 'ls', 'docs'])).stdout.trim().split('\n')
    assert.equal(ls.length, 3)
    const copy = ls.find((n) => n.startsWith('g.conflict-'))!
    assert.equal((await bazil(dataA, ['volume', 'cat', 'docs', '/g'])).stdout, 'g mine')
    assert.equal((await bazil(dataA, ['volume', 'cat', 'docs', '/' + copy])).stdout, 'g theirs')
    assert.equal((await bazil(dataA, ['volume', 'resolve', 'docs', '/g', '--keep=mine'])).code, 1)

    // The resolutions are logged ops: the other writer receives them like any op.
    await session(async (a, b, sync) => {
      await sync()
      assert.deepEqual(b.tree.conflicts(), [])
      assert.deepEqual(canonicalDump(b.tree), canonicalDump(a.tree))
      assert.equal(b.tree.stat('/notes.txt').content!.hash, await blake(b, 'theirs, longer'))
    })
  } finally {
    cleanup()
  }
})

test('replay counts each applied entry once, whatever the number of writers', async () => {
  const c = await Cluster.create(3)
  try {
    const [a, b, d] = c.vols
    for (let i = 0; i < 5; i++) {
      await a.writeFile(`/f${i}`, text(`a ${i}`))
      await a.flush()
    }
    await b.writeFile('/from-b', text('b'))
    await b.flush()
    c.setLinks(0b111)
    await c.settle()
    assert.equal(d.stats.entries, 6)
    assert.equal(b.stats.entries, 5)
    assert.equal(a.stats.entries, 1)
  } finally { await c.close() }
})
