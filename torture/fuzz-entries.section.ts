// Torture section: fuzzed log entries. A real writer log gets N hostile entries (random blocks,
// mutated sealed entries, sealed garbage bodies, random and mutated Automerge changes, op bombs,
// deflate bombs, the largest blocks, oversized changes, forged authorship, records in the wrong shard,
// changes by another actor) among honest ones; a volume replays them, `log verify` checks them,
// then the volume must keep working: 0 crashes, every hostile entry skipped with a reason
// (counted by reason), the same skips after a reopen and after a replay from scratch.
//
// Sizes (env): BAZIL_TORTURE_ENTRIES (default 10000) fuzzed entries;
// BAZIL_TORTURE_SEED (default 1) for the pseudo-random choices.
import fs from 'node:fs'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import * as A from '@automerge/automerge'
import { CONTEXT, NONCE_BYTES, deriveKey, randomBytes, seal } from '../src/crypto.js'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { checkpointPath } from '../src/volume/checkpoint-file.js'
import { MAX_BLOCK_BYTES, encodeEntry, encodeEntryBody, entryAssociatedData, type EntryBody } from '../src/logs/index.js'
import { CHANGE_LIMITS, Tree, type ShardChange } from '../src/tree/index.js'
import { deflateBomb, nestedBomb, opBomb, wideChange } from '../test/hostile-changes.js'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'

/** A small deterministic generator (mulberry32): the same seed gives the same entries. */
function rng(seed: number): { int: (n: number) => number; pick: <T>(xs: readonly T[]) => T; bytes: (n: number) => Buffer } {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return {
    int,
    pick: (xs) => xs[int(xs.length)],
    bytes: (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = int(256); return b },
  }
}

type Kind = 'random block' | 'mutated block' | 'sealed garbage' | 'mutated body' | 'random change' | 'mutated change' | 'op bomb' | 'nested bomb'
  | 'deflate bomb' | 'oversized change' | 'largest block' | 'forged writer' | 'foreign shard' | 'other actor' | 'honest'
const KINDS: Kind[] = ['random block', 'mutated block', 'sealed garbage', 'mutated body', 'random change', 'mutated change', 'op bomb', 'nested bomb',
  'deflate bomb', 'oversized change', 'forged writer', 'foreign shard', 'other actor', 'honest']

/** The reason of a skipped entry, without the parts that name this entry (for counting). */
function reasonClass(reason: string): string {
  return reason.replace(/\(shard \w+\)/g, '(shard S)').replace(/[0-9a-f]{8,}…?/g, 'X').replace(/\d+/g, 'N').slice(0, 100)
}

async function maxStall(fn: () => Promise<unknown>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 5 })
  h.enable()
  try { await fn() } finally { h.disable() }
  return h.max / 1e6
}

const section: Section = {
  name: 'fuzz-entries',
  async run(env: TortureEnv): Promise<SectionResult> {
    const total = envInt('BAZIL_TORTURE_ENTRIES', 10_000)
    const r = rng(envInt('BAZIL_TORTURE_SEED', 1))
    const failures: string[] = []
    const figures: Record<string, number | string> = {}
    const dataDir = path.join(env.tmpDir, 'data')
    let node = await Node.open(DataDir.create(dataDir))
    try {
      let vol: Volume = await node.createVolume('v', 'default')
      await vol.writeFile('/before', Buffer.from('written before the fuzz'))
      vol.mkdir('/dir')
      await vol.flush()
      const me = vol.log.key
      const meHex = me.toString('hex')
      const volumeId = Buffer.from(vol.record.id, 'hex')
      const volumeKey = deriveKey(node.dir.sharingKey(vol.record.sharing), CONTEXT.volume, volumeId)
      const place = (seq: number) => ({ volumeKey, volumeId, logKey: me, seq })

      // Material: honest changes of a scratch tree with our actor, continuing our own history
      // (so only what is done to them is hostile); a second one's changes are mutated.
      // Records put in the wrong shard go to a shard nothing else here writes (FOREIGN), as
      // well-formed changes one after another, so they are applied and their keys ignored.
      const used = new Set([...vol.tree.walk('/')].map((st) => st.id.slice(0, 2)))
      const FOREIGN = ['cd', 'ce', 'cf', 'd0'].find((x) => !used.has(x))!
      const avoid = (n: number): string => { for (;;) { const id = r.bytes(n).toString('hex'); if (!id.startsWith(FOREIGN)) return id } }
      const foreignDoc = A.getBackend(A.init<unknown>({ actor: meHex }))
      const scratch = Tree.create(meHex, { random: avoid })
      for await (const e of vol.log.read({ wait: false })) if (!('reason' in e)) scratch.applyChanges(e.body.changes)
      const scratch2 = Tree.create(meHex, { random: avoid })
      const changesOf = (t: Tree): ShardChange[] => {
        t.writeFile(`/h${r.int(1e9)}`, { hash: r.bytes(32).toString('hex'), size: r.int(1000) })
        return t.takeChanges()
      }
      const honestChanges = (): ShardChange[] => changesOf(scratch)
      const bombs = [deflateBomb(me, 64 * 1024 * 1024), deflateBomb(me, 5 * 1024 * 1024), opBomb(me, 4096, { compress: true })]
      const mutate = (b: Uint8Array): Buffer => {
        const out = Buffer.from(b)
        const n = 1 + r.int(4)
        for (let i = 0; i < n; i++) {
          const op = r.int(3)
          const at = r.int(out.length)
          if (op === 0) out[at] ^= 1 + r.int(255)
          else if (op === 1) return Buffer.concat([out.subarray(0, at), r.bytes(1 + r.int(8)), out.subarray(at)])
          else return out.subarray(0, Math.max(1, at)) // a change must stay non-empty to be encoded
        }
        return out
      }
      const shard = (): string => r.int(256).toString(16).padStart(2, '0')
      const counts = new Map<Kind, number>()
      const allKinds: Kind[] = []
      const expectSkip = new Set<number>()
      let honest = 0
      const fuzzStart = vol.log.length
      const t0 = performance.now()
      for (let done = 0; done < total;) {
        const batch: (Buffer | EntryBody)[] = []
        const kinds: Kind[] = []
        for (let i = 0; i < 200 && done < total; i++, done++) {
          const kind: Kind = done === 7 || done === total - 3 ? 'largest block' : r.pick(KINDS)
          kinds.push(kind)
          allKinds.push(kind)
          counts.set(kind, (counts.get(kind) ?? 0) + 1)
          const body = (changes: ShardChange[]): EntryBody => ({ time: r.int(2 ** 40), ops: [{ op: 'fuzz', path: `/${kind}` }], changes })
          switch (kind) {
            case 'random block': batch.push(r.bytes(r.int(300))); break
            // Hypercore refuses to append a block over MAX_BLOCK_BYTES (a peer's bigger block is
            // refused by the decoder: test/oplog.test.ts); the largest one that can be appended:
            case 'largest block': batch.push(Buffer.concat([Buffer.from([1]), r.bytes(1024), Buffer.alloc(MAX_BLOCK_BYTES - 1025, 7)])); break
            case 'mutated block': batch.push(body(changesOf(scratch2))); break // sealed below, then mutated
            case 'sealed garbage': batch.push(r.bytes(1 + r.int(400))); break // sealed below
            case 'mutated body': batch.push(mutate(encodeEntryBody(body(changesOf(scratch2))))); break // sealed below
            case 'random change': batch.push(body([{ shard: shard(), change: Buffer.concat([Buffer.from([0x85, 0x6f, 0x4a, 0x83]), r.bytes(r.int(200))]) }])); break
            case 'mutated change': batch.push(body(changesOf(scratch2).map((c) => ({ shard: c.shard, change: mutate(c.change) })))); break
            case 'op bomb': batch.push(body([{ shard: shard(), change: opBomb(me, CHANGE_LIMITS.entryOps + r.int(2 ** 40), { seq: 1 + r.int(5) }) }])); break
            case 'nested bomb': batch.push(body([{ shard: shard(), change: nestedBomb(me, CHANGE_LIMITS.entryOps + r.int(2 ** 30)) }])); break
            case 'deflate bomb': batch.push(body([{ shard: shard(), change: r.pick(bombs) }])); break
            case 'oversized change': batch.push(body([{ shard: shard(), change: wideChange(me, Array.from({ length: 8 }, (_, k) => `k${k}`), { valueBytes: CHANGE_LIMITS.entryBytes / 8 + r.int(1000) }) }])); break
            case 'forged writer': {
              const s = shard()
              const h = A.getBackend(A.init<unknown>({ actor: meHex }))
              h.putObject('_root', s + r.bytes(15).toString('hex'), { v: 1, kind: 'file', loc: JSON.stringify([1, '0'.repeat(32), 'forged', 'ee'.repeat(32), 1, null, null]), mode: 420, mtime: 1, by: meHex })
              h.commit(null, null)
              batch.push(body([{ shard: s, change: h.getLastLocalChange()! }]))
              break
            }
            case 'foreign shard': {
              // The id of a node elsewhere (or a made-up one): ignored, never hiding that node.
              const victim = r.int(2) === 0 ? [...vol.tree.walk('/')].find((st) => st.id !== '0'.repeat(32))?.id ?? avoid(16) : avoid(16)
              foreignDoc.putObject('_root', victim, { v: 1, kind: 'dir', loc: JSON.stringify([1, '0'.repeat(32), 'x', meHex, 1, null, null]), mode: 493, mtime: 1, by: meHex, del: JSON.stringify([1, meHex, 1, []]) })
              foreignDoc.commit(null, null)
              batch.push(body([{ shard: FOREIGN, change: foreignDoc.getLastLocalChange()! }]))
              break
            }
            case 'other actor': {
              const other = Tree.create('ee'.repeat(32))
              other.mkdir(`/o${r.int(1e9)}`)
              batch.push(body(other.takeChanges()))
              other.free()
              break
            }
            case 'honest': batch.push(body(honestChanges())); honest++; break
          }
        }
        // Seal what needs sealing at the seq it will have; raw blocks as they are.
        const start = vol.log.length
        const blocks = batch.map((x, i) => {
          const kind = kinds[i]
          if (!Buffer.isBuffer(x)) {
            const sealed = encodeEntry(x, place(start + i))
            return kind === 'mutated block' ? mutate(sealed) : sealed
          }
          if (kind === 'sealed garbage' || kind === 'mutated body') {
            const nonce = randomBytes(NONCE_BYTES)
            return Buffer.concat([Buffer.from([1]), nonce, seal(volumeKey, nonce, x, entryAssociatedData(volumeId, me, start + i))])
          }
          return x
        })
        // Mutations may leave an entry valid; a record in the wrong shard is ignored, not skipped.
        kinds.forEach((k, i) => { if (!['honest', 'mutated change', 'mutated block', 'mutated body', 'foreign shard'].includes(k)) expectSkip.add(start + i) })
        await vol.log.core.append(blocks)
      }
      scratch.free()
      scratch2.free()
      figures['entries appended'] = total
      figures['append s'] = ((performance.now() - t0) / 1000).toFixed(1)
      for (const [k, n] of [...counts].sort()) figures[`kind: ${k}`] = n
      env.log(`appended ${total} fuzzed entries (${honest} honest); replaying`)

      // Replay by the volume (the longest single tree apply is noted, with the kinds it held).
      const kindOf = new Map<number, Kind>()
      let seqAt = fuzzStart
      for (const k of allKinds) kindOf.set(seqAt++, k)
      let slowest = { ms: 0, what: '' }
      const tree = vol.tree
      const applyOrig = tree.apply.bind(tree)
      tree.apply = (changes) => {
        const t1 = performance.now()
        const out = applyOrig(changes)
        const ms = performance.now() - t1
        if (ms > slowest.ms) {
          const kinds = new Map<string, number>()
          for (const c of changes) { const k = kindOf.get(Number(c.tag?.split(':')[1])) ?? 'before'; kinds.set(k, (kinds.get(k) ?? 0) + 1) }
          slowest = { ms, what: [...kinds].map(([k, n]) => `${k} x${n}`).join(', ') }
        }
        return out
      }
      let t = performance.now()
      let crashed = false
      const stall = await maxStall(async () => {
        try { await vol.refresh() } catch (e) { crashed = true; failures.push(`replay threw: ${(e as Error).stack}`) }
      })
      figures['replay s'] = ((performance.now() - t) / 1000).toFixed(1)
      figures['replay longest block ms'] = stall.toFixed(0)
      figures['replay longest apply ms'] = slowest.ms.toFixed(0)
      figures['replay longest apply held'] = slowest.what
      tree.apply = applyOrig
      figures['ignored keys (records in the wrong shard)'] = vol.tree.problems().filter((p) => /not a node id of this shard/.test(p.reason)).length
      const skipped = new Map(vol.skipped.map((s) => [s.seq, s.reason]))
      for (const seq of expectSkip) if (!skipped.has(seq)) failures.push(`hostile entry ${seq} was not skipped`)
      const byReason = new Map<string, number>()
      for (const reason of skipped.values()) byReason.set(reasonClass(reason), (byReason.get(reasonClass(reason)) ?? 0) + 1)
      figures['skipped'] = skipped.size
      figures['applied'] = vol.log.length - fuzzStart - [...skipped.keys()].filter((s) => s >= fuzzStart).length
      for (const [reason, n] of [...byReason].sort((a, b) => b[1] - a[1]).slice(0, 25)) figures[`reason: ${reason}`] = n
      for (const reason of skipped.values()) if (!reason || reason.trim() === '') failures.push('an entry was skipped without a reason')

      // log verify: the same entries are bad.
      t = performance.now()
      let verifyErrors: number[] = []
      const vstall = await maxStall(async () => {
        try { verifyErrors = (await vol.verify()).errors.map((e) => e.seq) } catch (e) { crashed = true; failures.push(`verify threw: ${(e as Error).stack}`) }
      })
      figures['verify s'] = ((performance.now() - t) / 1000).toFixed(1)
      figures['verify longest block ms'] = vstall.toFixed(0)
      const sameAsReplay = verifyErrors.length === skipped.size && verifyErrors.every((s) => skipped.has(s))
      if (!sameAsReplay) failures.push(`log verify found ${verifyErrors.length} bad entries, the replay skipped ${skipped.size}`)

      // The volume keeps working: a write, a read, a reopen (checkpoint), a replay from scratch.
      await vol.writeFile('/after', Buffer.from('written after the fuzz'))
      await vol.flush()
      const check = async (v: Volume, what: string): Promise<void> => {
        for (const p of ['/before', '/after', '/dir']) if (!v.tree.lookup(p)) failures.push(`${what}: ${p} is missing`)
        const got = new Set(v.skipped.map((s) => s.seq))
        if (got.size !== skipped.size || [...skipped.keys()].some((s) => !got.has(s))) failures.push(`${what}: skipped ${got.size} entries, not the same ${skipped.size}`)
        const audit = v.tree.audit()
        if (audit.length > 0) failures.push(`${what}: view invariants: ${audit.slice(0, 3).join('; ')}`)
      }
      await check(vol, 'live')
      const dump = [...vol.tree.walk('/')].map((s) => `${s.path} ${s.kind}`).join('\n')
      await node.close()
      node = await Node.open(DataDir.open(dataDir))
      vol = await node.volume('v')
      await check(vol, 'reopened')
      await node.close()
      fs.rmSync(checkpointPath(dataDir, vol.record.id), { force: true })
      node = await Node.open(DataDir.open(dataDir))
      t = performance.now()
      vol = await node.volume('v')
      figures['replay from scratch s'] = ((performance.now() - t) / 1000).toFixed(1)
      await check(vol, 'replayed from scratch')
      if ([...vol.tree.walk('/')].map((s) => `${s.path} ${s.kind}`).join('\n') !== dump) failures.push('replay from scratch shows another tree')
      figures.crashes = crashed ? 1 : 0
      return { rounds: total, failures, figures }
    } finally {
      await node.close().catch(() => {})
    }
  },
}

export default section
