// Garbage collection of the node's own content store (spec/gc.md): what no readable volume of
// this node references (live files, conflict copies, kept snapshots), unreferenced for the
// grace period and not put while the collection ran, is forgotten; packs mostly garbage are
// rewritten (their live objects appended to new packs), then cleared, and RocksDB compacted so
// that the disk space comes back.
import fs from 'node:fs'
import path from 'node:path'
import type { Node } from './node.js'
import { UserError } from './datadir.js'
import { ChunkStore, type RewriteResult } from './cas/chunk-store.js'
import { GcMarks } from './cas/gc-marks.js'
import { addReferences, emptyReferences, volumeTrees, type References } from './cas/reachability.js'

/** A pack is rewritten when at least this share of its bytes is collectable. */
export const DEFAULT_MIN_GARBAGE = 0.2
/** Default grace: an object unreferenced for less than this is kept (spec/gc.md, "Grace"). */
export const DEFAULT_GRACE_MS = 24 * 60 * 60 * 1000
/** Packs rewritten per store turn (puts wait meanwhile; bounds memory to ~this many MiB). */
const PACKS_PER_TURN = 32

export interface GcOptions {
  dryRun?: boolean
  /** Grace period in ms (default DEFAULT_GRACE_MS). */
  graceMs?: number
  /** Share of collectable bytes from which a pack is rewritten (default DEFAULT_MIN_GARBAGE). */
  minGarbage?: number
  /** At most this many packs rewritten in this run (bounded work for automatic GC). */
  maxPacks?: number
  /** Addresses (hex or 16+ bytes) something outside the trees holds: open files of mounts, pins. */
  held?: () => Promise<Iterable<string | Buffer>>
  /** Skip RocksDB's compaction (it is what gives the disk space back). */
  noCompact?: boolean
  /** Progress lines. */
  progress?: (line: string) => void
  /** Progress counts: volumes walked, packs rewritten, then the compaction (0 of 1 while it runs). */
  onStep?: (phase: 'walk' | 'rewrite' | 'compact', done: number, total: number) => void
  /** Now (ms; tests). */
  now?: number
}

export interface GcReport {
  dryRun: boolean
  volumes: string[]
  /** Objects of the own store, and their bytes, when the run started. */
  stored: { objects: number; bytes: number }
  referenced: { objects: number; files: number; missingManifests: number }
  /** Unreferenced objects of the store (candidates), and those past the grace period. */
  unreferenced: { objects: number; bytes: number }
  collectable: { objects: number; bytes: number }
  /** What was (or, dry run, would be) removed. */
  removed: { objects: number; bytes: number }
  /**
   * Packs of the store, packs rewritten (dropped) by this run, and dropped packs whose blocks
   * stay held after it (clearing them would delete Merkle tree nodes peers need, spec/gc.md 3;
   * tried again by each run).
   */
  packs: { total: number; rewritten: number; leftHeld: number }
  moved: { objects: number; bytes: number }
  /** `du` of the data dir, bytes (after: null in a dry run). */
  disk: { before: number; after: number | null }
  ms: number
  /** Where the time went (ms): walking the volumes, rewriting and clearing packs, compacting RocksDB. */
  phases: { walk: number; rewrite: number; compact: number }
}

/** Bytes the files under `dir` take on disk (as du counts them: allocated blocks). */
export function diskUsage(dir: string): number {
  let total = 0
  const walk = (d: string): void => {
    let names: fs.Dirent[]
    try {
      names = fs.readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of names) {
      const p = path.join(d, e.name)
      try {
        if (e.isDirectory()) walk(p)
        else total += fs.lstatSync(p).blocks * 512
      } catch { /* gone meanwhile */ }
    }
  }
  walk(dir)
  return total
}

const running = new WeakMap<Node, Promise<GcReport>>()

/** Runs one collection of the node's own store (one at a time per node). */
export function collectGarbage(node: Node, opts: GcOptions = {}): Promise<GcReport> {
  if (running.has(node)) throw new UserError('a garbage collection is running already on this node')
  const run = doCollect(node, opts).finally(() => running.delete(node))
  running.set(node, run)
  return run
}

/** Every readable volume's references (the store is node-wide: one volume's gc must keep every volume's content). */
export async function nodeReferences(node: Node, progress: (line: string) => void = () => {}, onStep?: GcOptions['onStep']): Promise<{ refs: References; volumes: string[] }> {
  const refs = emptyReferences()
  const volumes: string[] = []
  await node.chunks.tableReady() // mustWalk below looks up synchronously
  const readable = node.dir.listVolumes().filter((v) => !v.storageOnly)
  onStep?.('walk', 0, readable.length)
  for (const entry of readable) {
    const vol = await node.volume(entry.name)
    await vol.refresh()
    // Knowledge of every writer's log position: entries known but not applied may reference anything.
    // (Only authorised logs count, up to their revocation limit: entries past it are never applied.)
    const set = vol.writerSet
    for (const w of vol.replayState()) {
      const auth = set.writers.get(w.writer)
      if (!auth) continue
      const known = auth.limit === null ? w.length : Math.min(w.length, auth.limit + 1)
      if (w.applied < known) {
        throw new UserError(`volume ${entry.name}: writer log ${w.writer.slice(0, 16)}… has ${known - w.applied} entries not applied yet (not downloaded or held); nothing was collected: sync and try again`)
      }
    }
    let trees
    try {
      trees = volumeTrees(vol)
    } catch (err) {
      throw new UserError(`volume ${entry.name}: ${(err as Error).message}; nothing was collected`)
    }
    try {
      await addReferences(vol.cas, trees, refs, { held: (a) => node.chunks.has(a), mustWalk: (a) => node.chunks.inTable(a) })
    } catch (err) {
      throw new UserError(`volume ${entry.name}: ${(err as Error).message}; nothing was collected`)
    }
    volumes.push(entry.name)
    progress(`gc: volume ${entry.name}: ${refs.files} file versions walked, ${refs.addresses.size} objects referenced so far`)
    onStep?.('walk', volumes.length, readable.length)
  }
  return { refs, volumes }
}

async function doCollect(node: Node, opts: GcOptions): Promise<GcReport> {
  const start = Date.now()
  const now = opts.now ?? start
  const graceS = Math.floor((opts.graceMs ?? DEFAULT_GRACE_MS) / 1000)
  const minGarbage = opts.minGarbage ?? DEFAULT_MIN_GARBAGE
  const progress = opts.progress ?? (() => {})
  const chunks = node.chunks
  await chunks.tableReady() // the sync lookups below (objects, isDropped) read it
  const marksFile = node.dir.paths.gcMarks
  const diskBefore = diskUsage(node.dir.root)
  chunks.beginGuard()
  try {
    const { refs, volumes } = await nodeReferences(node, progress, opts.onStep)
    const walked = Date.now()
    const held = new Set<string>()
    // What mounts have open (a file unlinked while open reads on), and whatever else the caller holds.
    const holds: Iterable<string | Buffer>[] = [await node.openFiles.heldAddresses(), (await opts.held?.()) ?? []]
    for (const list of holds) for (const a of list) held.add((typeof a === 'string' ? Buffer.from(a, 'hex') : a).subarray(0, 16).toString('hex'))
    const marks = await GcMarks.read(marksFile, (why) => progress(`gc: ${why}`))
    const nextMarks = GcMarks.empty()
    const nowS = Math.floor(now / 1000)
    const stats = await chunks.stats()
    const report: GcReport = {
      dryRun: opts.dryRun === true,
      volumes,
      stored: { objects: stats.chunks, bytes: stats.bytes },
      referenced: { objects: refs.addresses.size, files: refs.files, missingManifests: refs.missingManifests },
      unreferenced: { objects: 0, bytes: 0 },
      collectable: { objects: 0, bytes: 0 },
      removed: { objects: 0, bytes: 0 },
      packs: { total: chunks.packCount, rewritten: 0, leftHeld: 0 },
      moved: { objects: 0, bytes: 0 },
      disk: { before: diskBefore, after: null },
      ms: 0,
      phases: { walk: walked - start, rewrite: 0, compact: 0 }
    }
    // Per pack: bytes the table places there, and bytes to keep.
    const total = new Map<number, number>()
    const keep = new Map<number, number>()
    const collectable = new Set<string>()
    for (const { key, loc } of chunks.objects()) {
      total.set(loc.pack, (total.get(loc.pack) ?? 0) + loc.length)
      const live = refs.addresses.has(key) || chunks.wasTouched(key) || held.has(key.toString('hex'))
      if (!live) {
        report.unreferenced.objects++
        report.unreferenced.bytes += loc.length
        const since = marks.since(key) ?? nowS
        if (nowS - since >= graceS) {
          collectable.add(key.toString('hex'))
          report.collectable.objects++
          report.collectable.bytes += loc.length
          continue
        }
        nextMarks.mark(key, since)
      }
      keep.set(loc.pack, (keep.get(loc.pack) ?? 0) + loc.length)
    }
    // Packs worth rewriting, most garbage first; and held packs nothing lives in any more that
    // no drop record names (a compaction cut by a crash after its moves). A held pack a drop
    // record names only waits for its clear (clearDropped below), not for a new record.
    const victims: { pack: number; garbage: number }[] = []
    for (const [pack, bytes] of total) {
      const garbage = bytes - (keep.get(pack) ?? 0)
      if (garbage > 0 && garbage >= minGarbage * bytes) victims.push({ pack, garbage })
    }
    for (let p = 0; p < chunks.packCount; p++) {
      if (!total.has(p) && !chunks.isDropped(p) && (await chunks.holdsPack(p)) && !(await chunks.isDropRecord(p))) victims.push({ pack: p, garbage: 0 })
    }
    victims.sort((a, b) => b.garbage - a.garbage || a.pack - b.pack)
    const chosen = victims.slice(0, opts.maxPacks ?? victims.length)
    const isLive = (address: Buffer): boolean => !collectable.has(address.subarray(0, 16).toString('hex')) || chunks.wasTouched(address)
    if (report.dryRun) {
      for (const v of chosen) {
        report.removed.bytes += v.garbage
        report.moved.bytes += (total.get(v.pack) ?? 0) - v.garbage
      }
      const packs = new Set(chosen.map((v) => v.pack))
      for (const { key, loc } of chunks.objects()) {
        if (packs.has(loc.pack) && collectable.has(key.toString('hex'))) report.removed.objects++
      }
      report.packs.rewritten = chosen.length
    } else {
      const rewriting = Date.now()
      opts.onStep?.('rewrite', 0, chosen.length)
      for (let at = 0; at < chosen.length; at += PACKS_PER_TURN) {
        const part = chosen.slice(at, at + PACKS_PER_TURN).map((v) => v.pack)
        const r: RewriteResult = await chunks.rewritePacks(part, isLive)
        report.packs.rewritten += r.packs
        report.moved.objects += r.movedObjects
        report.moved.bytes += r.movedBytes
        report.removed.objects += r.droppedObjects
        report.removed.bytes += r.droppedBytes
        progress(`gc: ${Math.min(at + PACKS_PER_TURN, chosen.length)} of ${chosen.length} packs rewritten, ${report.removed.objects} objects removed`)
        opts.onStep?.('rewrite', Math.min(at + PACKS_PER_TURN, chosen.length), chosen.length)
      }
      // Dropped packs still held (this run's or earlier ones' left clears, a crash before the clear).
      const dropped = await chunks.clearDropped()
      report.packs.leftHeld = dropped.left
      // Collectable objects left in packs not rewritten stay collectable (no new grace).
      for (const { key } of chunks.objects()) if (collectable.has(key.toString('hex'))) nextMarks.mark(key, 0)
      await nextMarks.write(marksFile)
      await chunks.flush()
      const compacting = Date.now()
      report.phases.rewrite = compacting - rewriting
      if (!opts.noCompact && report.packs.rewritten + dropped.cleared > 0) {
        progress('gc: compacting the database (RocksDB) so that the space comes back')
        opts.onStep?.('compact', 0, 1)
        await ChunkStore.compactStorage(node.store)
        opts.onStep?.('compact', 1, 1)
      }
      report.phases.compact = Date.now() - compacting
      report.disk.after = diskUsage(node.dir.root)
    }
    report.ms = Date.now() - start
    return report
  } finally {
    chunks.endGuard()
  }
}
