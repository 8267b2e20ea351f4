// The control API's log ops: a volume's audit trail, and its integrity check.
import { UserError } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import { EntryError } from '../../logs/index.js'
import type { OpFn } from '../context.js'
import type { LogRow } from '../requests.js'

export const show: OpFn<'log.show'> = async (ctx, a) => {
  let writer: Buffer | undefined
  try {
    writer = a.writer === undefined ? undefined : decodeKey(a.writer, 'writer key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  const vol = await (await ctx.node()).volume(a.volume)
  const rows: LogRow[] = []
  let bad = 0
  for await (const entry of vol.entries(writer)) {
    if (entry instanceof EntryError) {
      bad++
      ctx.emit({ message_type: 'warning', message: entry.message })
      continue
    }
    const w = encodeKey(entry.writer)
    const time = new Date(entry.body.time).toISOString()
    const authorised = vol.writerSet.valid(entry.writer.toString('hex'), entry.seq)
    const mark = authorised ? {} : { authorised: false as const }
    for (const op of entry.body.ops) rows.push({ writer: w, seq: entry.seq, time, ...op, ...mark })
    for (const c of entry.control ?? []) {
      rows.push({ writer: w, seq: entry.seq, time, op: c.op, ...('log' in c ? { log: encodeKey(c.log) } : {}), ...('node' in c ? { node: encodeKey(c.node) } : {}), ...('last' in c ? { last: c.last } : {}), ...mark })
    }
  }
  return { rows, bad }
}

export const verify: OpFn<'log.verify'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const r = await vol.verify()
  return { ok: r.errors.length === 0, ...r }
}
