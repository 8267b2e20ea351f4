// A volume on this node: its directory state (fs/tree), replayed from every writer's op log
// (logs/), with content in the node's content store (fs/cas).
//
// Every mutation goes through `mutate`: the tree op runs, its audit description is queued,
// and `flush` writes everything queued as ONE op-log entry (the Automerge changes plus the
// audit ops), so that an import of thousands of files is a handful of appends.
import { CONTEXT, deriveKey, encodeKey } from './crypto.js'
import type { VolumeRecord } from './datadir.js'
import type { Node } from './node.js'
import type { Cas, FileRef } from './fs/cas/index.js'
import { Tree, TreeError, type ContentRef, type ReadTree, type Stat } from './fs/tree/index.js'
import { EntryError, WriterLog, type AuditOp, type LogEntry } from './logs/index.js'

/** Ops queued before an automatic flush during bulk work. */
export const FLUSH_EVERY_OPS = 2000

export function toContentRef(ref: FileRef): ContentRef {
  return { hash: ref.hash.toString('hex'), size: ref.size }
}

export function toFileRef(ref: ContentRef): FileRef {
  return { hash: Buffer.from(ref.hash, 'hex'), size: ref.size }
}

/** An entry that could not be used while replaying, with why. */
export interface SkippedEntry {
  writer: string
  seq: number
  reason: string
}

export class Volume {
  readonly record: VolumeRecord
  readonly id: Buffer
  readonly cas: Cas
  readonly tree: Tree
  /** This node's own writer log of the volume. */
  readonly log: WriterLog
  /** Every known writer log (this node's included), by log key hex. */
  readonly writers = new Map<string, WriterLog>()
  readonly skipped: SkippedEntry[] = []
  private readonly volumeKey: Buffer
  private pending: AuditOp[] = []

  private constructor(record: VolumeRecord, cas: Cas, volumeKey: Buffer, log: WriterLog) {
    this.record = record
    this.id = Buffer.from(record.id, 'hex')
    this.cas = cas
    this.volumeKey = volumeKey
    this.log = log
    this.tree = Tree.create(log.key.toString('hex'))
    this.writers.set(log.key.toString('hex'), log)
  }

  get name(): string {
    return this.record.name
  }

  static async open(node: Node, record: VolumeRecord): Promise<Volume> {
    const volumeId = Buffer.from(record.id, 'hex')
    const volumeKey = deriveKey(node.dir.sharingKey(record.sharing), CONTEXT.volume, volumeId)
    const log = await WriterLog.create(node.store, { volumeId, identity: node.dir.identity, volumeKey })
    const vol = new Volume(record, node.cas(record.sharing), volumeKey, log)
    await vol.replay()
    return vol
  }

  /** Applies every entry of every known writer log to the tree. */
  private async replay(): Promise<void> {
    for (const writer of this.writers.values()) {
      for await (const entry of writer.read({ wait: false })) this.applyEntry(entry)
    }
  }

  private applyEntry(entry: LogEntry | EntryError): void {
    if (entry instanceof EntryError) {
      this.skipped.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: entry.reason })
      return
    }
    try {
      this.tree.applyChanges(entry.body.changes)
    } catch (err) {
      this.skipped.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: `changes do not apply: ${(err as Error).message}` })
    }
  }

  /**
   * Runs one tree operation and queues its audit description for the next entry. A tree
   * error leaves nothing queued (tree operations validate before they change anything).
   */
  mutate<T>(op: (tree: Tree) => T, audit: (result: T) => AuditOp): T {
    const result = op(this.tree)
    this.pending.push(audit(result))
    return result
  }

  get pendingOps(): number {
    return this.pending.length
  }

  /** Writes everything queued as one op-log entry. */
  async flush(): Promise<void> {
    const changes = this.tree.takeChanges()
    if (this.pending.length === 0 && changes.length === 0) return
    const ops = this.pending
    this.pending = []
    await this.log.append([{ time: Date.now(), ops, changes }])
  }

  /** Flushes when enough ops are queued; for loops doing bulk work. */
  async maybeFlush(): Promise<void> {
    if (this.pending.length >= FLUSH_EVERY_OPS) await this.flush()
  }

  /** The live tree, or a snapshot of it. */
  view(snapshot?: string): ReadTree {
    if (snapshot === undefined) return this.tree
    try {
      return this.tree.at(snapshot)
    } catch (err) {
      if (err instanceof TreeError && err.code === 'ENOENT') {
        throw new TreeError('ENOENT', snapshot, `volume "${this.name}" has no snapshot "${snapshot}"`)
      }
      throw err
    }
  }

  // --- operations shared by the CLI and the mount ---

  async writeFile(path: string, source: string | AsyncIterable<Buffer> | Buffer, attrs: { mode?: number; mtime?: number } = {}): Promise<Stat> {
    const ref = Buffer.isBuffer(source) ? await this.cas.writeBuffer(source) : await this.cas.writeFile(source)
    return this.mutate(
      (t) => t.writeFile(path, toContentRef(ref), attrs),
      (st) => ({ op: 'write', path: st.path, size: ref.size, hash: ref.hash.toString('hex'), mode: st.mode, mtime: st.mtime })
    )
  }

  mkdir(path: string, attrs: { mode?: number; mtime?: number } = {}): Stat {
    return this.mutate(
      (t) => t.mkdir(path, attrs),
      (st) => ({ op: 'mkdir', path: st.path, mode: st.mode, mtime: st.mtime })
    )
  }

  /** mkdir -p: creates the missing directories of `path`; fails if a component is not a directory. */
  mkdirp(path: string): Stat {
    const parts = path.split('/').filter((p) => p.length > 0)
    let st = this.tree.stat('/')
    let cur = ''
    for (const part of parts) {
      cur += '/' + part
      const found = this.tree.lookup(cur)
      if (found && found.kind !== 'dir') throw new TreeError('ENOTDIR', cur, `${cur} exists and is not a directory`)
      st = found ?? this.mkdir(cur)
    }
    return st
  }

  symlink(path: string, target: string, attrs: { mtime?: number } = {}): Stat {
    return this.mutate(
      (t) => t.symlink(path, target, attrs),
      (st) => ({ op: 'symlink', path: st.path, target, mtime: st.mtime })
    )
  }

  rename(from: string, to: string): void {
    this.mutate(
      (t) => t.rename(from, to),
      () => ({ op: 'rename', path: normalize(from), to: normalize(to) })
    )
  }

  unlink(path: string): void {
    this.mutate(
      (t) => t.unlink(path),
      () => ({ op: 'unlink', path: normalize(path) })
    )
  }

  rmdir(path: string): void {
    this.mutate(
      (t) => t.rmdir(path),
      () => ({ op: 'rmdir', path: normalize(path) })
    )
  }

  setattr(path: string, attrs: { mode?: number; mtime?: number }): Stat {
    return this.mutate(
      (t) => t.setattr(path, attrs),
      (st) => ({ op: 'setattr', path: st.path, mode: attrs.mode, mtime: attrs.mtime })
    )
  }

  snapshot(name: string): void {
    this.mutate(
      (t) => t.snapshot(name),
      () => ({ op: 'snapshot', path: name })
    )
  }

  /** Every entry of every writer, oldest first per writer. */
  async *entries(writer?: Buffer): AsyncIterable<LogEntry | EntryError> {
    for (const log of this.writers.values()) {
      if (writer && !log.key.equals(writer)) continue
      yield* log.read({ wait: false })
    }
  }

  /** Verifies every writer log and that every entry's changes apply to a fresh tree. */
  async verify(): Promise<{ writers: number; entries: number; ops: number; errors: SkippedEntry[] }> {
    const errors: SkippedEntry[] = []
    let entries = 0
    let ops = 0
    const fresh = Tree.create(this.log.key.toString('hex'))
    try {
      for (const log of this.writers.values()) {
        const result = await log.verify()
        for (const e of result.errors) errors.push({ writer: encodeKey(e.writer), seq: e.seq, reason: e.reason })
        for await (const entry of log.read({ wait: false })) {
          if (entry instanceof EntryError) continue // reported by verify() above
          entries++
          ops += entry.body.ops.length
          try {
            fresh.applyChanges(entry.body.changes)
          } catch (err) {
            errors.push({ writer: encodeKey(entry.writer), seq: entry.seq, reason: `changes do not apply: ${(err as Error).message}` })
          }
        }
      }
    } finally {
      fresh.free()
    }
    errors.sort((a, b) => (a.writer === b.writer ? a.seq - b.seq : a.writer < b.writer ? -1 : 1))
    return { writers: this.writers.size, entries, ops, errors }
  }

  async close(): Promise<void> {
    await this.flush()
    for (const log of this.writers.values()) await log.close()
    this.tree.free()
  }
}

/** A volume path in its canonical form, for audit records: leading '/', no trailing '/'. */
export function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0)
  return '/' + parts.join('/')
}
