// The server's end of the control socket (spec/control.md): one request per connection,
// checked before anything runs, then dispatched to the op's function on the server's node
// (src/control/ops), or, for `cli.run`, to the server's copy of the CLI. Bad input is answered
// and logged; it never stops the server.
import type net from 'node:net'
import type { Writable } from 'node:stream'
import { FRAME, FrameReader, MAX_REQUEST_BYTES, drained, encodeFrame, frameWriter } from '../control/frames.js'
import { errorKind } from '../control/client.js'
import type { OpContext } from '../control/context.js'
import { OPS } from '../control/ops/index.js'
import { BadRequestError, decodeRequest, type Args, type ControlEnd, type ControlRequest, type Op } from '../control/requests.js'
import type { Log } from '../log.js'
import type { ServerHandle } from './handle.js'

/** Runs one command line as the CLI would, with the server's context; resolves to its exit code. */
export type CommandRunner = (argv: string[], ctx: { stdout: Writable; stderr: Writable; cwd: string; server: ServerHandle }) => Promise<number>

export interface ControlDeps {
  server: ServerHandle
  runCli: CommandRunner
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
  deps.log('debug', `control: ${req.op}${req.op === 'cli.run' ? ` ${(req.args as Args<'cli.run'>).argv.join(' ')}` : ''}`)
  const stdout = frameWriter(conn, FRAME.stdout)
  const events = frameWriter(conn, FRAME.event)
  let end: ControlEnd
  try {
    const result = req.op === 'cli.run' ? await runCli(conn, req.args as Args<'cli.run'>, stdout, deps) : await runOp(conn, req.op, req.args, stdout, events, deps)
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

async function runOp(conn: net.Socket, op: Exclude<Op, 'cli.run'>, args: unknown, stdout: Writable, events: Writable, deps: ControlDeps): Promise<unknown> {
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

/** A command not yet converted to a typed op: the server runs its command line as the CLI would. */
async function runCli(conn: net.Socket, a: Args<'cli.run'>, stdout: Writable, deps: ControlDeps): Promise<{ code: number }> {
  const stderr = frameWriter(conn, FRAME.stderr)
  // The client's stderr is a terminal: commands draw progress as they would in the CLI.
  if (a.stderrTTY) Object.assign(stderr, { isTTY: true })
  let code = 1
  try {
    code = await deps.runCli(a.argv, { stdout, stderr, cwd: a.cwd, server: deps.server })
  } catch (err) {
    deps.log('error', `command ${a.argv.join(' ')} failed: ${(err as Error).stack ?? String(err)}`)
    stderr.write(`bazil: internal error: ${(err as Error).message}\n`)
  }
  await drained(stderr)
  return { code }
}
