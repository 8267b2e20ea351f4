// log show|verify: the audit trail of a volume, and its integrity check.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import { EntryError, describeControl, type AuditOp } from '../../logs/index.js'

function describeOp(op: AuditOp): string {
  const parts = [op.op, op.path ?? '']
  if (op.to !== undefined) parts.push(`-> ${op.to}`)
  if (op.target !== undefined) parts.push(`-> ${op.target}`)
  if (op.size !== undefined) parts.push(`size=${op.size}`)
  if (op.hash !== undefined) parts.push(`hash=${op.hash.slice(0, 16)}`)
  if (op.mode !== undefined) parts.push(`mode=${op.mode.toString(8).padStart(4, '0')}`)
  return parts.join(' ')
}

export class LogShowCommand extends BazilCommand {
  static override paths = [['log', 'show']]
  static override usage = BazilCommand.Usage({ description: "Show a volume's op log: one line per op, oldest first (writer, seq, time, op, paths, size/hash)" })
  volume = Option.String({ required: true })
  writer = Option.String('--writer', { description: 'Only this writer (public log key, z-base-32 or hex)' })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<number> {
    const writer = this.writer === undefined ? undefined : decodeKey(this.writer, 'writer key')
    return this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const rows: object[] = []
      let bad = 0
      for await (const entry of vol.entries(writer)) {
        if (entry instanceof EntryError) {
          bad++
          this.context.stderr.write(`bazil: ${entry.message}\n`)
          continue
        }
        const w = encodeKey(entry.writer)
        const time = new Date(entry.body.time).toISOString()
        const authorised = vol.writerSet.valid(entry.writer.toString('hex'), entry.seq)
        const mark = authorised ? '' : ' [not authorised: not applied]'
        for (const op of entry.body.ops) {
          if (this.asJson) rows.push({ writer: w, seq: entry.seq, time, ...op, ...(authorised ? {} : { authorised: false }) })
          else this.out(`${w.slice(0, 8)} ${String(entry.seq).padStart(5)} ${time} ${describeOp(op)}${mark}`)
        }
        for (const c of entry.control ?? []) {
          const row = { op: c.op, ...('log' in c ? { log: encodeKey(c.log) } : {}), ...('node' in c ? { node: encodeKey(c.node) } : {}), ...('last' in c ? { last: c.last } : {}) }
          if (this.asJson) rows.push({ writer: w, seq: entry.seq, time, ...row, ...(authorised ? {} : { authorised: false }) })
          else this.out(`${w.slice(0, 8)} ${String(entry.seq).padStart(5)} ${time} ${describeControl(c, encodeKey)}${mark}`)
        }
      }
      if (this.asJson) this.json(rows)
      return bad > 0 ? 1 : 0
    })
  }
}

export class LogVerifyCommand extends BazilCommand {
  static override paths = [['log', 'verify']]
  static override usage = BazilCommand.Usage({ description: "Verify a volume's op logs: signatures, binding, decryption, decoding, and that every change applies" })
  volume = Option.String({ required: true })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<number> {
    return this.withNode(async (node) => {
      const vol = await node.volume(this.volume)
      const r = await vol.verify()
      const notAuth = r.unauthorised.length > 0 ? `; ${r.unauthorised.length} entr${r.unauthorised.length === 1 ? 'y' : 'ies'} not authorised (not applied), first: writer ${r.unauthorised[0].writer} seq ${r.unauthorised[0].seq}: ${r.unauthorised[0].reason}` : ''
      if (this.asJson) this.json({ ok: r.errors.length === 0, ...r })
      else if (r.errors.length === 0) this.out(`ok: ${r.writers} writer log(s), ${r.entries} entries, ${r.ops} ops verified${notAuth}`)
      else {
        const e = r.errors[0]
        this.out(`FAILED: ${r.errors.length} bad entr${r.errors.length === 1 ? 'y' : 'ies'} in ${r.writers} writer log(s); first: writer ${e.writer} seq ${e.seq}: ${e.reason}`)
      }
      return r.errors.length === 0 ? 0 : 1
    })
  }
}
