// log show|verify: the audit trail of a volume, and its integrity check.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
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
  if (op.op === 'restore') parts.push(op.kind === 'snapshot' ? `from snapshot ${String(op.target)}` : 'from its history')
  else if (op.target !== undefined) parts.push(`-> ${op.target}`)
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
    details: 'One line per op, oldest first: writer, seq, time, op, paths, size/hash. The op log is the audit trail of every change from every device; the writers\' logs are merged by entry time. `--path` keeps the ops on a file or directory (and below it), following renames back: the rename that moved it there and its earlier ops under its old name count. `--since`/`--until` take ISO 8601 (`2026-12-06`, `2026-12-06T09:30:00Z`) or a time ago (`90s`, `30m`, `2h`, `3d`).',
    examples: [
      ['Show the log', 'bazil log show photos'],
      ["One writer's ops", 'bazil log show --writer=KEY photos'],
      ['What happened to one file in the last two days', 'bazil log show photos --path=/notes.txt --since=2d']
    ]
  })
  volume = Option.String({ required: true })
  writer = Option.String('--writer', { description: 'Only this writer: its log key or its node key (z-base-32 or hex)' })
  volPath = Option.String('--path', { description: 'Only ops on this path or below it, renames followed' })
  since = Option.String('--since', { description: 'Only entries at or after this time (ISO 8601, or a time ago: 2h, 3d)' })
  until = Option.String('--until', { description: 'Only entries at or before this time (ISO 8601, or a time ago)' })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<number> {
    // Rows stream as they are read: a large log is never one result in memory. --json is still one array.
    let first = true
    const print = (r: LogRow): void => {
      if (!this.asJson) return this.out(`${r.writer.slice(0, 8)} ${String(r.seq).padStart(5)} ${r.time} ${describeRow(r)}${r.authorised === false ? ' [not authorised: not applied]' : ''}`)
      this.context.stdout.write(`${first ? '[\n' : ',\n'}${JSON.stringify(r, null, 2).replace(/^/gm, '  ')}`)
      first = false
    }
    const { bad } = await this.call('log.show', { volume: this.volume, writer: this.writer, path: this.volPath, since: this.since, until: this.until, stream: true }, {
      onEvent: (e) => {
        if (e.message_type === 'row') print(e.row as LogRow)
        else if (e.message_type === 'warning') this.context.stderr.write(`bazil: ${String(e.message)}\n`)
      }
    })
    if (this.asJson) this.out(first ? '[]' : '\n]')
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
  asJson = Option.Boolean('--json', false, { description: 'Progress as JSON lines (message_type status), then the report as a summary object' })

  async run(): Promise<number> {
    const { result: r, view } = await this.callWithProgress('log.verify', { volume: this.volume }, this.asJson)
    view.finish({ ...r })
    const notAuth = r.unauthorised.length > 0 ? `; ${r.unauthorised.length} entr${r.unauthorised.length === 1 ? 'y' : 'ies'} not authorised (not applied), first: writer ${r.unauthorised[0].writer} seq ${r.unauthorised[0].seq}: ${r.unauthorised[0].reason}` : ''
    if (this.asJson) return r.ok ? 0 : 1
    if (r.ok) this.out(`ok: ${r.writers} writer log(s), ${r.entries} entries, ${r.ops} ops verified${notAuth}`)
    else {
      const e = r.errors[0]
      this.out(`FAILED: ${r.errors.length} bad entr${r.errors.length === 1 ? 'y' : 'ies'} in ${r.writers} writer log(s); first: writer ${e.writer} seq ${e.seq}: ${e.reason}`)
    }
    return r.ok ? 0 : 1
  }
}
