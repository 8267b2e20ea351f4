// Control requests on the wire (spec/control.md version 2): the check that a request names a
// known version and op with exactly the arguments the op takes (OP_ARGS in requests.ts), well
// typed, before anything runs; decoding a request frame; encoding one. The check rejects an
// unknown version (naming the upgrade), an unknown op, a missing or mistyped argument and an
// argument the op does not take, each with one clear line, and touches no state. The client
// runs the same check before sending, so a bad request fails the same way in and out of the server.
import { CONTROL_VERSION, OP_ARGS, type Args, type ControlRequest, type Field, type Op } from './requests.js'

/** A request the server refuses before running anything: the message says what was wrong. */
export class BadRequestError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BadRequestError'
  }
}

function isOp(op: unknown): op is Op {
  return typeof op === 'string' && Object.prototype.hasOwnProperty.call(OP_ARGS, op)
}

function checkField(op: string, name: string, kind: Field, v: unknown): void {
  const bad = (want: string): BadRequestError => new BadRequestError(`${op}: argument "${name}" must be ${want}, got ${JSON.stringify(v) ?? 'undefined'}`)
  switch (kind.replace('?', '')) {
    case 'string':
      if (typeof v !== 'string') throw bad('a string')
      if (v.includes('\0')) throw bad('a string without NUL')
      break
    case 'path':
      if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0')) throw bad('an absolute path')
      break
    case 'boolean':
      if (typeof v !== 'boolean') throw bad('a boolean')
      break
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad('a non-negative integer')
      break
    case 'strings':
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad('a list of strings')
      break
  }
}

/** Checks a parsed request; returns it typed, or throws BadRequestError naming the problem. */
export function checkRequest(req: unknown): ControlRequest {
  if (!req || typeof req !== 'object' || Array.isArray(req)) throw new BadRequestError('a control request must be a JSON object')
  const r = req as Record<string, unknown>
  if (r.version !== CONTROL_VERSION) {
    if (r.version === 1) throw new BadRequestError(`control request version 1 comes from an older bazil client: this server speaks version ${CONTROL_VERSION}; run the same bazil as the server (upgrade the client)`)
    throw new BadRequestError(`control request version ${JSON.stringify(r.version) ?? 'missing'} is not supported (this server speaks version ${CONTROL_VERSION})`)
  }
  for (const k of Object.keys(r)) if (k !== 'version' && k !== 'op' && k !== 'args') throw new BadRequestError(`control request has an unknown field "${k}"`)
  if (!isOp(r.op)) throw new BadRequestError(`unknown control op ${JSON.stringify(r.op) ?? 'missing'} (this server knows: ${Object.keys(OP_ARGS).join(', ')})`)
  const schema = OP_ARGS[r.op] as Record<string, Field>
  const args = r.args ?? {}
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new BadRequestError(`${r.op}: "args" must be an object`)
  const a = args as Record<string, unknown>
  for (const k of Object.keys(a)) if (!(k in schema)) throw new BadRequestError(`${r.op}: unknown argument "${k}" (it takes: ${Object.keys(schema).join(', ') || 'none'})`)
  for (const [name, kind] of Object.entries(schema)) {
    if (a[name] === undefined) {
      if (!kind.endsWith('?')) throw new BadRequestError(`${r.op}: missing argument "${name}"`)
      continue
    }
    checkField(r.op, name, kind, a[name])
  }
  return { version: CONTROL_VERSION, op: r.op, args: a as Args<Op> }
}

/** Parses and checks a request frame's payload (UTF-8 JSON). */
export function decodeRequest(payload: Buffer): ControlRequest {
  let req: unknown
  try {
    req = JSON.parse(payload.toString('utf8'))
  } catch {
    throw new BadRequestError('control request is not JSON')
  }
  return checkRequest(req)
}

export function encodeRequest<O extends Op>(op: O, args: Args<O>): Buffer {
  return Buffer.from(JSON.stringify({ version: CONTROL_VERSION, op, args }))
}

