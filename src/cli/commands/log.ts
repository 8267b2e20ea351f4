// log show|verify: the audit trail of a volume, and its integrity check.
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { CATEGORY } from '../categories.js'
import type { LogRow } from '../../control/requests.js'
import type { AuditOp } from '../../logs/index.js'

/** The control ops a log entry may carry (spec/oplog.md), told apart from tree ops by name. */
const CONTROL_OPS = new Set(['admit', 'revoke', 'admit-node', 'revoke-node'])

/** One row of `log show` as text: the op, its paths, size/hash/mode; a control op with its keys. */
function describeRow(r: LogRow): string {
  if (CONTROL_OPS.has(r.op)) {
    if (r.op === 'admit') return `admit log=${String(r.log)} node=${String(r.node)}`
    if (r.op === 'revoke') return `revoke log=${String(r.log)} last=${String(r.last)}`
    return `${r.op} node=${String(r.node)}`
  }
  return describeOp(r as unknown as AuditOp)
}

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
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: "Show a volume's op log",
    details: 'One line per op, oldest first: writer, seq, time, op, paths, size/hash. The op log is the audit trail of every change from every device.',
    examples: [
      ['Show the log', 'bazil log show photos'],
      ["One writer's ops", 'bazil log show --writer=KEY photos']
    ]
  })
  volume = Option.String({ required: true })
  writer = Option.String('--writer', { description: 'Only this writer (public log key, z-base-32 or hex)' })
  asJson = Option.Boolean('--json', false)

  static override where: Where = 'api'

  async run(): Promise<number> {
    const { rows, bad } = await this.call('log.show', { volume: this.volume, writer: this.writer })
    if (this.asJson) this.json(rows)
    else for (const r of rows) this.out(`${r.writer.slice(0, 8)} ${String(r.seq).padStart(5)} ${r.time} ${describeRow(r)}${r.authorised === false ? ' [not authorised: not applied]' : ''}`)
    return bad > 0 ? 1 : 0
  }
}

export class LogVerifyCommand extends BazilCommand {
  static override paths = [['log', 'verify']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.history,
    description: "Verify a volume's op logs",
    details: 'Checks signatures, binding, decryption and decoding of every entry, and that every change applies.',
    examples: [['Verify a volume', 'bazil log verify photos']]
  })
  volume = Option.String({ required: true })
  asJson = Option.Boolean('--json', false)

  static override where: Where = 'api'

  async run(): Promise<number> {
    const r = await this.call('log.verify', { volume: this.volume })
    const notAuth = r.unauthorised.length > 0 ? `; ${r.unauthorised.length} entr${r.unauthorised.length === 1 ? 'y' : 'ies'} not authorised (not applied), first: writer ${r.unauthorised[0].writer} seq ${r.unauthorised[0].seq}: ${r.unauthorised[0].reason}` : ''
    if (this.asJson) this.json(r)
    else if (r.ok) this.out(`ok: ${r.writers} writer log(s), ${r.entries} entries, ${r.ops} ops verified${notAuth}`)
    else {
      const e = r.errors[0]
      this.out(`FAILED: ${r.errors.length} bad entr${r.errors.length === 1 ? 'y' : 'ies'} in ${r.writers} writer log(s); first: writer ${e.writer} seq ${e.seq}: ${e.reason}`)
    }
    return r.ok ? 0 : 1
  }
}
