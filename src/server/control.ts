// The server's end of the control socket (spec/control.md): one request per connection,
// checked before anything runs, then dispatched to the op's function on the server's node
// (src/control/ops). Bad input is answered and logged; it never stops the server.
import type net from 'node:net'
import type { Writable } from 'node:stream'
import { FRAME, FrameReader, MAX_REQUEST_BYTES, drained, encodeFrame, frameWriter } from '../control/frames.js'
import { errorKind } from '../control/client.js'
import type { OpContext } from '../control/context.js'
import { OPS } from '../control/ops/index.js'
import { BadRequestError, decodeRequest } from '../control/request-codec.js'
import type { Args, ControlEnd, ControlRequest, Op } from '../control/requests.js'
import type { Log } from '../log.js'
import type { ServerHandle } from './handle.js'

export interface ControlDeps {
  server: ServerHandle
  log: Log
  /** Aborted when the server stops: long ops (a watch) end. */
  stopping: AbortSignal
}

/** Serves one connection; resolves once its response is sent (the server waits for it at stop). */
export function serveConnection(conn: net.Socket, deps: ControlDeps): Promise<void> {
  return new Promise((resolve) => {
    const reader = new FrameReader(MAX_REQUEST_BYTES)
    let started = false
    conn.on('error', (err) => deps.log('debug', `control connection error: ${err.message}`))
    conn.on('close', () => {
      if (!started) resolve()
    })
    conn.on('data', (data: Buffer) => {
      if (started) return // a client sends one request and nothing else
      let req: ControlRequest
      try {
        const frames = reader.push(data)
        if (frames.length === 0) return
        started = true
        if (frames[0].type !== FRAME.request) throw new BadRequestError('the first control frame must be a request')
        req = decodeRequest(frames[0].payload)
      } catch (err) {
        started = true
        refuse(conn, deps, frameVersion(data), (err as Error).message)
        return resolve()
      }
      void execute(conn, req, deps).finally(resolve)
    })
  })
}

/** The version a refused request claimed, if it parses that far (a version 1 client is answered in version 1's terms). */
function frameVersion(data: Buffer): unknown {
  try {
    return (JSON.parse(data.subarray(5).toString('utf8')) as { version?: unknown }).version
  } catch {
    return undefined
  }
}

function refuse(conn: net.Socket, deps: ControlDeps, version: unknown, message: string): void {
  deps.log('warn', `bad control request: ${message}`)
  if (version === 1) {
    // A version 1 client reads stderr frames and an exit code: tell it in its own terms.
    conn.write(encodeFrame(FRAME.stderr, Buffer.from(`bazil: bad control request: ${message}\n`)))
    conn.end(encodeFrame(FRAME.exit, Buffer.from(JSON.stringify({ code: 2 }))))
    return
  }
  const end: ControlEnd = { ok: false, error: { kind: 'request', message } }
  conn.end(encodeFrame(FRAME.exit, Buffer.from(JSON.stringify(end))))
}

async function execute(conn: net.Socket, req: ControlRequest, deps: ControlDeps): Promise<void> {
  deps.log('debug', `control: ${req.op}`)
  const stdout = frameWriter(conn, FRAME.stdout)
  const events = frameWriter(conn, FRAME.event)
  let end: ControlEnd
  try {
    const result = await runOp(conn, req.op, req.args, stdout, events, deps)
    end = { ok: true, result } as ControlEnd
  } catch (err) {
    const kind = errorKind(err)
    if (kind === 'internal') deps.log('error', `control ${req.op} failed: ${(err as Error).stack ?? String(err)}`)
    end = { ok: false, error: { kind, message: kind === 'internal' ? String((err as Error).message ?? err) : (err as Error).message.split('\n')[0] } }
  }
  // All output before the last frame: the client stops reading there.
  await Promise.all([drained(stdout), drained(events)])
  if (!conn.destroyed) conn.end(encodeFrame(FRAME.exit, Buffer.from(JSON.stringify(end))))
}

async function runOp(conn: net.Socket, op: Op, args: unknown, stdout: Writable, events: Writable, deps: ControlDeps): Promise<unknown> {
  const fn = (await OPS[op].load()) as (ctx: OpContext, a: unknown) => Promise<unknown>
  // The op ends early when the client hangs up or the server stops.
  const hangUp = new AbortController()
  conn.once('close', () => hangUp.abort())
  const ctx: OpContext = {
    signal: AbortSignal.any([hangUp.signal, deps.stopping]),
    root: deps.server.dir.root,
    dir: deps.server.dir,
    server: deps.server,
    node: async () => deps.server.node,
    emit: (e) => events.write(JSON.stringify(e)),
    eventsDrained: () => (events.writableNeedDrain ? new Promise<void>((resolve) => events.once('drain', resolve)) : Promise.resolve()),
    write: (chunk) => new Promise<void>((resolve, reject) => stdout.write(chunk, (err) => (err ? reject(err) : resolve())))
  }
  return fn(ctx, args)
}
