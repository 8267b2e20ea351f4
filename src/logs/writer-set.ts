// The writer set of a volume: which logs may write, from when to when. A pure, deterministic
// function of (the logs' bindings, the control ops found in the logs with their seqs): same
// inputs, same result on every peer, whatever order they arrived in. The rule, precisely
// enough to reimplement, is in spec/oplog.md ("Writer set").
import type { ControlOp, ControlRecord } from './control.js'

/** One log as its (checked) binding describes it. Keys are lowercase hex. */
export interface LogInfo {
  log: string
  /** The node its binding names; null while block 0 is not held. */
  node: string | null
  /** The genesis node of a version-2 binding (checked against the volume id); else null. */
  genesisNode: string | null
}

export interface WriterSetInput {
  logs: LogInfo[]
  /** Log keys (hex) that are roots by the volume record: legacy volumes (spec/oplog.md, "Migration"). */
  legacyRoots?: string[]
  control: ControlRecord[]
}

export interface OpPlace {
  log: string
  seq: number
}

export interface WriterInfo {
  log: string
  node: string | null
  root: boolean
  /** The admitting op taken as the reference (smallest (log, seq) among the valid ones); null for a root. */
  admittedBy: OpPlace | null
  /** Last accepted seq (from the revocations that are valid or undecided); null = no limit. */
  limit: number | null
  /** Revocations naming this log: valid ones, and undecided ones (which also limit: they count as not valid, and so do the entries after them). */
  revokedBy: (OpPlace & { last: number; undecided: boolean })[]
}

export interface WriterSet {
  /** The root node (hex) from the genesis of the version-2 bindings, if any is known. */
  rootNode: string | null
  /** Authorised logs, by log key hex. */
  writers: Map<string, WriterInfo>
  /** Known logs that are not authorised (never admitted by a valid op, or only by undecided ones). */
  unauthorised: string[]
  /** Logs named by an admit in a valid entry whose binding is not here (not held yet): fetch them. */
  admittedUnknown: string[]
  /** Nodes admitted by node (admit-node valid, no revoke-node valid or undecided): their logs may be taken from any peer. */
  nodesAdmitted: string[]
  /** Whether entry `seq` of log `log` may be applied. */
  valid(log: string, seq: number): boolean
  /**
   * Whether log `log` may take new entries: it is authorised and no revocation (valid or
   * undecided) names it. The one write decision: Volume.canWrite, each edit (before it changes
   * the tree) and each flush (before it appends) ask this, so an edit allowed is an entry every
   * peer that knows this set applies. A revoked log takes nothing more, even below its limit.
   */
  writable(log: string): boolean
  /** A canonical text of the set (for comparing two sets). */
  fingerprint: string
}

type Tri = 0 | 1 | 2 // 0 undecided, 1 valid, 2 not valid
const U = 0
const T = 1
const F = 2

/** The root node of a volume: the genesis node of its version-2 bindings (they all agree once checked). */
export function rootNodeOf(logs: LogInfo[]): string | null {
  let root: string | null = null
  for (const l of logs) if (l.genesisNode !== null && (root === null || l.genesisNode < root)) root = l.genesisNode
  return root
}

export function computeWriterSet(input: WriterSetInput): WriterSet {
  const rootNode = rootNodeOf(input.logs)
  const info = new Map<string, LogInfo>()
  for (const l of input.logs) info.set(l.log, l)
  const legacy = new Set(input.legacyRoots ?? [])
  const isRoot = (log: string): boolean => {
    if (legacy.has(log)) return true
    const i = info.get(log)
    return rootNode !== null && i !== undefined && i.node === rootNode
  }

  // Control entries, in a canonical order (the result does not depend on it; the reference
  // admit does, so it is the smallest (log, seq)).
  const entries = [...input.control].sort((a, b) => (a.log === b.log ? a.seq - b.seq : a.log < b.log ? -1 : 1))
  const key = (log: string, seq: number): string => `${log}:${seq}`
  const status = new Map<string, Tri>()
  for (const e of entries) status.set(key(e.log, e.seq), U)

  // Ops naming each log: admits whose node matches the log's binding, and revocations.
  interface Placed<O> { place: OpPlace; op: O }
  const admits = new Map<string, Placed<Extract<ControlOp, { op: 'admit' }>>[]>()
  const revokes = new Map<string, Placed<Extract<ControlOp, { op: 'revoke' }>>[]>()
  const nodeAdmits = new Map<string, OpPlace[]>()
  const nodeRevokes = new Map<string, OpPlace[]>()
  const push = <V>(m: Map<string, V[]>, k: string, v: V): void => {
    let list = m.get(k)
    if (!list) m.set(k, (list = []))
    list.push(v)
  }
  for (const e of entries) {
    for (const op of e.ops) {
      const place = { log: e.log, seq: e.seq }
      if (op.op === 'admit-node' || op.op === 'revoke-node') {
        push(op.op === 'admit-node' ? nodeAdmits : nodeRevokes, op.node.toString('hex'), place)
        continue
      }
      const target = op.log.toString('hex')
      if (op.op === 'admit') {
        const i = info.get(target)
        if (!i || i.node === null || i.node !== op.node.toString('hex')) continue // names another node, or a log whose binding is not here
        let list = admits.get(target)
        if (!list) admits.set(target, (list = []))
        list.push({ place, op })
      } else {
        let list = revokes.get(target)
        if (!list) revokes.set(target, (list = []))
        list.push({ place, op })
      }
    }
  }
  const st = (p: OpPlace): Tri => status.get(key(p.log, p.seq)) ?? F
  /** Any of these places valid: T; all not valid (or none): F; else U. */
  const any = (places: OpPlace[]): Tri => {
    let undecided = false
    for (const p of places) {
      const s = st(p)
      if (s === T) return T
      if (s === U) undecided = true
    }
    return undecided ? U : F
  }
  /** admit-node(N) counts while no revoke-node(N) is valid or undecided (revocations win). */
  const nodeAdmitted = (node: string | null): Tri => {
    if (node === null) return F
    const a = any(nodeAdmits.get(node) ?? [])
    const r = any(nodeRevokes.get(node) ?? [])
    if (a === F || r === T) return F
    if (a === T && r === F) return T
    return U
  }
  const admitted = (log: string): Tri => {
    if (isRoot(log)) return T
    const byName = any((admits.get(log) ?? []).map((a) => a.place))
    const byNode = nodeAdmitted(info.get(log)?.node ?? null)
    if (byName === T || byNode === T) return T
    if (byName === F && byNode === F) return F
    return U
  }
  const revokedAt = (log: string, seq: number): Tri => {
    if (isRoot(log)) return F
    let undecided = false
    for (const r of revokes.get(log) ?? []) {
      if (r.op.last >= seq) continue
      const s = st(r.place)
      if (s === T) return T
      if (s === U) undecided = true
    }
    return undecided ? U : F
  }
  const entryStatus = (log: string, seq: number): Tri => {
    const a = admitted(log)
    const r = revokedAt(log, seq)
    if (a === F || r === T) return F
    if (a === T && r === F) return T
    return U
  }

  // Kleene iteration from "all undecided": decide what follows from what is decided already
  // (root entries first), until nothing changes. Monotone, so it ends with the least fixpoint
  // whatever the order; what stays undecided is not valid. A worklist re-examines only the
  // entries of the logs a newly decided entry's ops name, so a long admit chain costs
  // O(entries x ops), not one pass per link.
  const entriesOf = new Map<string, ControlRecord[]>()
  for (const e of entries) push(entriesOf, e.log, e)
  const logsOfNode = new Map<string, string[]>()
  for (const l of input.logs) if (l.node !== null) push(logsOfNode, l.node, l.log)
  const queue: ControlRecord[] = [...entries]
  const queued = new Set(entries.map((e) => key(e.log, e.seq)))
  for (let next = 0; next < queue.length; next++) {
    const e = queue[next]
    const k = key(e.log, e.seq)
    queued.delete(k)
    if (status.get(k) !== U) continue
    const s = entryStatus(e.log, e.seq)
    if (s === U) continue
    status.set(k, s)
    for (const op of e.ops) {
      const targets = op.op === 'admit-node' || op.op === 'revoke-node' ? (logsOfNode.get(op.node.toString('hex')) ?? []) : [op.log.toString('hex')]
      for (const t of targets) {
        for (const d of entriesOf.get(t) ?? []) {
          const dk = key(d.log, d.seq)
          if (status.get(dk) === U && !queued.has(dk)) {
            queued.add(dk)
            queue.push(d)
          }
        }
      }
    }
  }

  const writers = new Map<string, WriterInfo>()
  const unauthorised: string[] = []
  const all = new Set<string>([...info.keys(), ...legacy])
  for (const log of [...all].sort()) {
    if (admitted(log) !== T) {
      if (info.has(log)) unauthorised.push(log)
      continue
    }
    const root = isRoot(log)
    let admittedBy: OpPlace | null = null
    if (!root) {
      const node = info.get(log)?.node ?? null
      const candidates = (admits.get(log) ?? []).map((a) => a.place)
      if (nodeAdmitted(node) === T) candidates.push(...(nodeAdmits.get(node!) ?? []))
      for (const p of candidates) {
        if (st(p) !== T) continue
        if (admittedBy === null || p.log < admittedBy.log || (p.log === admittedBy.log && p.seq < admittedBy.seq)) admittedBy = p
      }
    }
    let limit: number | null = null
    const revokedBy: WriterInfo['revokedBy'] = []
    if (!root) {
      for (const r of revokes.get(log) ?? []) {
        const s = st(r.place)
        if (s === F) continue
        revokedBy.push({ ...r.place, last: r.op.last, undecided: s === U })
        if (limit === null || r.op.last < limit) limit = r.op.last
      }
      revokedBy.sort((a, b) => (a.log === b.log ? a.seq - b.seq : a.log < b.log ? -1 : 1))
    }
    writers.set(log, { log, node: info.get(log)?.node ?? null, root, admittedBy, limit, revokedBy })
  }
  const admittedUnknown = new Set<string>()
  for (const e of entries) {
    if (status.get(key(e.log, e.seq)) !== T) continue
    for (const op of e.ops) {
      if (op.op !== 'admit') continue
      const target = op.log.toString('hex')
      if ((info.get(target)?.node ?? null) === null) admittedUnknown.add(target)
    }
  }
  const nodesAdmitted = [...nodeAdmits.keys()].filter((n) => nodeAdmitted(n) === T).sort()
  const fingerprint = JSON.stringify([[...writers.values()].map((w) => [w.log, w.root, w.limit]), [...admittedUnknown].sort(), nodesAdmitted])
  return {
    rootNode,
    writers,
    unauthorised,
    admittedUnknown: [...admittedUnknown].sort(),
    nodesAdmitted,
    fingerprint,
    valid(log: string, seq: number): boolean {
      const w = writers.get(log)
      return w !== undefined && seq >= 1 && (w.limit === null || seq <= w.limit)
    },
    writable(log: string): boolean {
      const w = writers.get(log)
      return w !== undefined && w.limit === null
    }
  }
}
