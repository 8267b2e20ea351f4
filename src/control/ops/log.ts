// The control API's log ops: a volume's audit trail, and its integrity check.
import { UserError } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import { parseTime } from '../../duration.js'
import { EntryError } from '../../logs/index.js'
import { PathTrail, canonicalPath, mergedEntries } from '../../volume/history.js'
import type { OpFn } from '../context.js'
import type { LogRow } from '../requests.js'
import { OpProgress } from '../progress.js'

export const show: OpFn<'log.show'> = async (ctx, a) => {
  let writer: Buffer | undefined
  try {
    writer = a.writer === undefined ? undefined : decodeKey(a.writer, 'writer key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  const since = a.since === undefined ? undefined : parseTime(a.since, '--since')
  const until = a.until === undefined ? undefined : parseTime(a.until, '--until')
  if (since !== undefined && until !== undefined && since > until) throw new UserError(`--since (${new Date(since).toISOString()}) is after --until (${new Date(until).toISOString()}): nothing to show`)
  const vol = await (await ctx.node()).volume(a.volume)
  // A writer is a log key or a node key (every log bound to that node).
  let logs: Set<string> | undefined
  if (writer) {
    const hex = writer.toString('hex')
    logs = new Set(vol.knownLogs().filter((k) => k.log === hex || k.node === hex).map((k) => k.log))
    if (vol.log.key.equals(writer) || (await ctx.node()).dir.publicKey.equals(writer)) logs.add(vol.log.key.toString('hex'))
    if (logs.size === 0) throw new UserError(`volume "${vol.name}" has no writer log or node ${a.writer} (\`bazil volume writers ${vol.name}\` lists them)`)
  }
  const trail = a.path === undefined ? null : await PathTrail.of(vol, canonicalPath(a.path))
  const rows: LogRow[] = []
  let bad = 0
  let count = 0
  const put = (row: LogRow): void => {
    count++
    if (a.stream) ctx.emit({ message_type: 'row', row })
    else rows.push(row)
  }
  for await (const x of mergedEntries(vol, { logs, since, until, ...(trail ? { ends: trail.ends } : {}) })) {
    if (ctx.signal.aborted) break // the caller hung up
    if (a.stream) await ctx.eventsDrained?.()
    if (x instanceof EntryError) {
      bad++
      ctx.emit({ message_type: 'warning', message: x.message })
      continue
    }
    const { entry } = x
    const w = encodeKey(entry.writer)
    const time = new Date(entry.body.time).toISOString()
    const mark = x.authorised ? {} : { authorised: false as const }
    entry.body.ops.forEach((op, index) => {
      if (trail && !trail.concerns({ time: entry.body.time, log: x.log, seq: entry.seq, index }, op, true)) return
      put({ writer: w, seq: entry.seq, time, ...op, ...mark })
    })
    if (trail) continue // control ops name logs and nodes, no path
    for (const c of entry.control ?? []) {
      put({ writer: w, seq: entry.seq, time, op: c.op, ...('log' in c ? { log: encodeKey(c.log) } : {}), ...('node' in c ? { node: encodeKey(c.node) } : {}), ...('last' in c ? { last: c.last } : {}), ...mark })
    }
  }
  return { rows, bad, count }
}

export const verify: OpFn<'log.verify'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const progress = new OpProgress((e) => ctx.emit(e), { unit: 'entries' })
  progress.update({ done: 0, total: 0 })
  const r = await vol.verify((done, total) => progress.update({ done, total }))
  progress.end()
  return { ok: r.errors.length === 0, ...r }
}
