// A volume started from a state (spec/tree.md "Starting from a state"): the saved shards of
// another replica, believed only where they equal what the writers' signed logs say. Every
// covered entry is read, decrypted and its changes' headers checked as replay checks them
// (state-check.ts), but no change is applied: each shard is loaded from its save and must be
// at the heads the logs give. Anything else rejects the whole state (StateRejectedError) and
// the caller replays the logs instead.
import { encodeKey } from '../crypto.js'
import { StateMismatchError, Tree, type TreeOptions } from '../tree/index.js'
import { StateExpectation } from '../tree/state-check.js'
import { encodeState, openSealedState, sealState, type VolumeState } from '../tree/state-file.js'
import { EntryError, type WriterLog, type WriterSet } from '../logs/index.js'

/** A state that is not believed: the message says what did not match (the join goes on by replay). */
export class StateRejectedError extends Error {
  constructor(message: string) {
    super(`state rejected: ${message}`)
    this.name = 'StateRejectedError'
  }
}

export interface StateCheckInput {
  volumeId: string
  actor: string
  writers: ReadonlyMap<string, WriterLog>
  set: WriterSet
  opts?: TreeOptions
  /** Progress; a promise returned while shards load is awaited (the loads wait for it). */
  onProgress?: (phase: 'entries' | 'shards', done: number, total: number) => void | Promise<void>
  /** Slice length of the shard loads (Tree.fromSaved; tests). */
  sliceMs?: number
  /** The tree as soon as the entries are checked, before its first shard: it fills with checked shards (Tree.fromSaved). */
  onTree?: (tree: Tree) => void
}

export interface CheckedState {
  tree: Tree
  /** Per writer log: the next seq to apply after the state. */
  applied: Map<string, number>
  /** Entries replay would have skipped (decode errors, rejected changes), as replay reports them. */
  skipped: { writer: Buffer; seq: number; reason: string }[]
  entries: number
  changes: number
  ms: { entries: number; shards: number }
}

/** What a volume's adoptState reports: `checkpoint` in progress is the commit of the adopted index. */
export type AdoptPhase = 'entries' | 'shards' | 'checkpoint'

/** A state adopted: entries and changes checked, time per phase (ms), and whether its checkpoint was written. */
export interface AdoptedState {
  entries: number
  changes: number
  ms: { entries: number; shards: number; checkpoint: number }
  checkpointed: boolean
}

/** Checks `state` against the logs held here and builds the tree from it; throws StateRejectedError. */
export async function checkState(state: VolumeState, input: StateCheckInput): Promise<CheckedState> {
  const reject = (why: string): never => { throw new StateRejectedError(why) }
  if (state.volume !== input.volumeId) reject(`it is a state of volume ${state.volume.slice(0, 16)}…, not of this volume`)
  const t0 = performance.now()
  const expect = new StateExpectation()
  const skipped: CheckedState['skipped'] = []
  let total = 0
  for (const next of Object.values(state.logs)) total += next - 1
  let entries = 0
  for (const [hex, next] of Object.entries(state.logs).sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const w = input.writers.get(hex)
    if (!w) reject(`it covers log ${encodeKey(Buffer.from(hex, 'hex'))}, which is not a writer log of this volume here`)
    if (next <= 1) continue
    if (!input.set.valid(hex, next - 1)) reject(`it covers entries of log ${encodeKey(Buffer.from(hex, 'hex'))} up to seq ${next - 1}, which the writer set does not accept`)
    if (w!.core.contiguousLength < next) reject(`it covers log ${encodeKey(Buffer.from(hex, 'hex'))} up to seq ${next - 1}, but only ${Math.max(0, w!.core.contiguousLength - 1)} entries of it are here`)
    let seq = 1
    for await (const entry of w!.read({ from: 1, to: next, wait: false })) {
      seq = entry.seq + 1
      entries++
      // Progress only: not awaited, and what it throws is not the check's.
      if (entries % 100 === 0) void Promise.resolve(input.onProgress?.('entries', entries, total)).catch(() => {})
      if (entry instanceof EntryError) {
        skipped.push({ writer: entry.writer, seq: entry.seq, reason: entry.reason })
        continue
      }
      if (entry.control !== null) continue
      if (!expect.addEntry(hex, entry.seq, entry.body.changes)) {
        const r = expect.rejected[expect.rejected.length - 1]!
        skipped.push({ writer: w!.key, seq: entry.seq, reason: `changes do not apply: ${r.reason}` })
      }
    }
    if (seq < next) reject(`log ${encodeKey(Buffer.from(hex, 'hex'))} could not be read up to seq ${next - 1}`)
  }
  const t1 = performance.now()
  const expected = expect.shards()
  const shards = new Map<string, { bytes: Uint8Array; heads: string[] }>()
  const given = new Map(state.shards.map((s) => [s.name, s]))
  const held: { shard: string; change: Uint8Array; tag?: string }[] = []
  for (const [name, e] of expected) {
    if (e.duplicateSeq !== null) reject(`shard ${name} has two changes with one actor and seq (${e.duplicateSeq}): only replay decides which applies`)
    for (const h of e.held) held.push({ shard: name, change: h.change, tag: h.tag })
    if (e.heads.length === 0) continue
    if (name === 'meta') {
      if (!state.meta) reject('it has no meta shard, the logs have one')
      if (!sameSet(state.meta!.heads, e.heads)) reject('shard meta: the state names other heads than its logs give')
      continue
    }
    const s = given.get(name)
    if (!s) reject(`it has no shard ${name}, the logs have one`)
    if (!sameSet(s!.heads, e.heads)) reject(`shard ${name}: the state names other heads than its logs give`)
    shards.set(name, { bytes: s!.bytes, heads: e.heads })
  }
  for (const s of state.shards) if (!shards.has(s.name) && s.heads.length > 0) reject(`shard ${s.name} holds changes its logs do not have`)
  if (state.meta && state.meta.heads.length > 0 && (expected.get('meta')?.heads.length ?? 0) === 0) reject('shard meta holds changes its logs do not have')
  const meta = state.meta && state.meta.heads.length > 0 ? { bytes: state.meta.bytes, heads: expected.get('meta')!.heads } : null
  let tree: Tree
  try {
    tree = await Tree.fromSaved(input.actor, shards, meta, held, input.opts, { onTree: input.onTree, sliceMs: input.sliceMs, onShard: (done) => input.onProgress?.('shards', done, shards.size) })
  } catch (e) {
    if (e instanceof StateMismatchError) reject(e.message)
    throw e
  }
  const applied = new Map<string, number>()
  for (const [hex, next] of Object.entries(state.logs)) applied.set(hex, next)
  return { tree: tree!, applied, skipped, entries, changes: expect.changes, ms: { entries: t1 - t0, shards: performance.now() - t1 } }
}

function sameSet(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false
  const s = new Set(a)
  return b.every((x) => s.has(x))
}

/** What sealing and opening a state needs of a volume (Volume has it). */
export interface StateHolder {
  readonly id: Buffer
  /** The key a state of this volume travels under between peers (spec/keys.md). */
  readonly stateKey: Buffer
  saveState(): Promise<VolumeState>
}

/** Saves of a busy volume are retried this many times (edits not yet logged make saveState refuse). */
const SEAL_TRIES = 5

/** `vol`'s state, sealed for a joiner that asked over the network (spec/tree.md "Starting from a state"). */
export async function sealedState(vol: StateHolder): Promise<Buffer> {
  for (let i = 1; ; i++) {
    try {
      return sealState(encodeState(await vol.saveState()), vol.stateKey, vol.id)
    } catch (err) {
      if (i >= SEAL_TRIES || !/not yet in its log/.test((err as Error).message)) throw err
      await new Promise((r) => setTimeout(r, 200 * i))
    }
  }
}

/** A sealed state from a peer, opened with `vol`'s state key and decoded; StateFileError says what was wrong. */
export function openPeerState(vol: StateHolder, sealed: Buffer): VolumeState {
  return openSealedState(sealed, vol.stateKey, vol.id)
}
