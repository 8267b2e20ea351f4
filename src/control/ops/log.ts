// The control API's log ops: a volume's audit trail, and its integrity check.
import { UserError } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import { parseTime } from '../../duration.js'
import { EntryError, type ControlOp } from '../../logs/index.js'
import { inScope, mergedEntries, readForPath, type EntryOps } from '../../volume/history.js'
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
  const rows: LogRow[] = []
  let bad = 0
  let count = 0
  const put = (row: LogRow): void => {
    count++
    if (a.stream) ctx.emit({ message_type: 'row', row })
    else rows.push(row)
  }
  const warn = (x: EntryError): void => {
    bad++
    ctx.emit({ message_type: 'warning', message: x.message })
  }
  /** The rows of an entry: its audit ops (those `concerns` accepts), then its control ops. */
  const entryRows = (x: EntryOps, control: readonly ControlOp[] | null, concerns?: (index: number) => boolean): void => {
    const writer = encodeKey(Buffer.from(x.log, 'hex'))
    const { seq } = x
    const time = new Date(x.time).toISOString()
    const mark = x.authorised ? {} : { authorised: false as const }
    x.ops.forEach((op, index) => {
      if (!concerns || concerns(index)) put({ writer, seq, time, ...op, ...mark })
    })
    for (const c of control ?? []) {
      put({ writer, seq, time, op: c.op, ...('log' in c ? { log: encodeKey(c.log) } : {}), ...('node' in c ? { node: encodeKey(c.node) } : {}), ...('last' in c ? { last: c.last } : {}), ...mark })
    }
  }
  const scope = { logs, since, until }
  if (a.path !== undefined) {
    // One pass: the entries in scope wait for the renames after them (history.ts readForPath).
    const onError = (e: EntryError): void => { if (!logs || logs.has(e.writer.toString('hex'))) warn(e) }
    const { trail, entries } = await readForPath(vol, a.path, inScope(scope), { signal: ctx.signal, onError })
    for (const x of entries) {
      if (ctx.signal.aborted) break // the caller hung up
      if (a.stream) await ctx.eventsDrained?.()
      // Control ops name logs and nodes, no path: not listed.
      entryRows(x, null, (index) => trail.concerns({ time: x.time, log: x.log, seq: x.seq, index }, x.ops[index]!, true))
    }
    return { rows, bad, count }
  }
  for await (const x of mergedEntries(vol, scope)) {
    if (ctx.signal.aborted) break // the caller hung up
    if (a.stream) await ctx.eventsDrained?.()
    if (x instanceof EntryError) warn(x)
    else entryRows({ log: x.log, seq: x.entry.seq, time: x.entry.body.time, ops: x.entry.body.ops, authorised: x.authorised }, x.entry.control)
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
