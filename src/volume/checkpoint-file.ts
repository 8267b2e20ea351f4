// A volume's checkpoint: the manifest of its on-disk index (src/tree/index-store.ts) and, beside
// the tree state, how far into each writer's log it reaches (spec/tree.md "Checkpoints"). A
// cache: deleting it only makes the next open replay the logs; one that does not fit the logs
// held here is ignored.
import fs from 'node:fs'
import path from 'node:path'
import { DataPaths } from '../data-paths.js'
import type { Tree } from '../tree/index.js'
import { commitTreeIndexSliced, openTreeIndex } from '../tree/index-store.js'
import { decodeControl, encodeControl, type ControlRecord } from '../logs/index.js'

/** 2: also the control entries read and how far each log was scanned for them (writer set). */
export const CHECKPOINT_FORMAT = 2

/** An entry that could not be used while replaying, with why. */
export interface SkippedEntry {
  writer: string
  seq: number
  reason: string
}

/** What a checkpoint says it covers, next to the tree state. */
interface CheckpointInfo {
  format: number
  volume: string
  actor: string
  /** Per writer log (key hex): the next seq to apply; everything before it is in the checkpoint. */
  logs: Record<string, number>
  skipped: SkippedEntry[]
  /** Per writer log (key hex): the next seq to scan for control entries. */
  scanned: Record<string, number>
  /** Control entries read (every log, valid or not): log key hex, seq, ops as a control block (hex, spec/oplog.md). */
  control: { log: string; seq: number; ops: string }[]
}

/** How far replay has read the logs: what a checkpoint records and restores. */
export interface LogPositions {
  /** Per writer log (key hex): the next seq to apply. */
  applied: Map<string, number>
  /** Per writer log (key hex): the next seq to scan for control entries. */
  scanned: Map<string, number>
  /** Control entries read so far from every log, by `hex:seq`. */
  control: Map<string, ControlRecord>
  skipped: SkippedEntry[]
}

/** Where a volume's checkpoint (the manifest of its on-disk index) lives in the data dir (see spec/tree.md). */
export function checkpointPath(dataDir: string, volumeId: string): string {
  return new DataPaths(dataDir).index(volumeId).manifest
}

/** The directory of a volume's on-disk index files, beside its checkpoint (spec/tree.md "The index on disk"). */
export function indexFilesPath(dataDir: string, volumeId: string): string {
  return new DataPaths(dataDir).index(volumeId).segments
}

/**
 * Writes the checkpoint of `tree` covering `at`, in slices between which the event loop runs
 * (commitTreeIndexSliced). What it writes is taken from the tree and `at` before this returns
 * its promise; both may change meanwhile (the changes go into the next checkpoint).
 */
export async function writeCheckpoint(dataDir: string, volumeId: string, actor: string, tree: Tree, at: LogPositions): Promise<void> {
  const c = checkpointTarget(dataDir, volumeId, actor, at)
  await commitTreeIndexSliced(c.file, c.files, tree, c.info)
}

function checkpointTarget(dataDir: string, volumeId: string, actor: string, at: LogPositions): { file: string; files: string; info: CheckpointInfo } {
  const info: CheckpointInfo = {
    format: CHECKPOINT_FORMAT, volume: volumeId, actor,
    logs: Object.fromEntries(at.applied), skipped: at.skipped,
    scanned: Object.fromEntries(at.scanned),
    control: [...at.control.values()].map((c) => ({ log: c.log, seq: c.seq, ops: encodeControl({ time: 0, ops: c.ops }).toString('hex') })),
  }
  const file = checkpointPath(dataDir, volumeId)
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  return { file, files: indexFilesPath(dataDir, volumeId), info }
}

/**
 * The checkpoint of a volume if it is readable and consistent with the logs held here
 * (`lengths`: each known log's local length), else null (a full replay is left to do).
 * `legacy`: written by an older version (read whole this once, or an index of an older version:
 * the next checkpoint rewrites it, and should be written even if nothing else changes).
 */
export function readCheckpoint(dataDir: string, volumeId: string, actor: string, lengths: Map<string, number>): { tree: Tree; at: LogPositions; legacy: boolean } | null {
  const file = checkpointPath(dataDir, volumeId)
  if (!fs.existsSync(file)) return null
  let tree: Tree | null = null
  try {
    const opened = openTreeIndex(file, indexFilesPath(dataDir, volumeId), actor)
    tree = opened.tree
    const info = opened.extra as CheckpointInfo
    if (!info || info.format !== CHECKPOINT_FORMAT || info.volume !== volumeId || info.actor !== actor) throw new Error('checkpoint of another volume or writer')
    const at: LogPositions = { applied: new Map(), scanned: new Map(), control: new Map(), skipped: [] }
    for (const [hex, next] of Object.entries(info.logs)) {
      const length = lengths.get(hex)
      if (length === undefined || !Number.isSafeInteger(next) || next < 1 || next > Math.max(1, length)) throw new Error(`checkpoint covers more of log ${hex} than is here`)
      at.applied.set(hex, next)
    }
    for (const [hex, next] of Object.entries(info.scanned)) {
      const length = lengths.get(hex)
      if (length !== undefined && Number.isSafeInteger(next) && next >= 1 && next <= Math.max(1, length)) at.scanned.set(hex, next)
    }
    for (const c of info.control) {
      const ops = decodeControl(Buffer.from(c.ops, 'hex')).ops
      if (lengths.has(c.log) && c.seq < (at.scanned.get(c.log) ?? 1)) at.control.set(`${c.log}:${c.seq}`, { log: c.log, seq: c.seq, ops })
    }
    for (const s of info.skipped ?? []) at.skipped.push(s)
    return { tree, at, legacy: opened.legacy || opened.rewrite }
  } catch {
    // A cache that doesn't fit is ignored: the logs are the truth, replay rebuilds everything.
    tree?.free()
    return null
  }
}
