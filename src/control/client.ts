// The client of the control API: calls an op in the running server through the control socket,
// or, when none runs, the same op function in this process with the data dir opened directly.
// The CLI uses it for every converted command; tests and later clients (a web view) too.
import type net from 'node:net'
import type { DataDir } from '../datadir.js'
import { UserError } from '../user-error.js'
import type { Node } from '../node.js'
import type { ServerHandle } from '../server/handle.js'
import { TreeError } from '../tree/errors.js'
import type { OpContext } from './context.js'
import { FRAME, FrameReader, connect, encodeFrame } from './frames.js'
import { OPS } from './ops/index.js'
import { BadRequestError, checkRequest, encodeRequest } from './request-codec.js'
import { CONTROL_VERSION, type Args, type ControlEnd, type ControlEvent, type Op, type Results } from './requests.js'

export interface CallHandlers {
  /** An event the op streamed (progress `status`, `warning`, ...). */
  onEvent?(event: ControlEvent): void
  /** Output bytes (a file's content); the next arrive once this resolves. */
  onOutput?(chunk: Buffer): void | Promise<void>
  /** In process: aborts a long op (a watch) when this caller is gone (a web view's page closed). */
  signal?: AbortSignal
}

export interface ClientOptions {
  dataDir: string
  /** Set inside the server: ops run on its node directly. */
  server?: ServerHandle
  /** What the user asked for, for messages (`bazil volume mount`); default the op's name. */
  label?: string
}

/** Calls `op`: in the server when one runs (or we are inside it), else in this process when the op allows it. */
export async function call<O extends Op>(opts: ClientOptions, op: O, args: Args<O>, handlers: CallHandlers = {}): Promise<Results[O]> {
  checkRequest({ version: CONTROL_VERSION, op, args }) // a bad request fails here the same way it would in the server
  if (opts.server) return callInProcess(opts.server.dir.root, opts.server.dir, op, args, handlers, opts.server)
  const where = OPS[op].where
  if (where === 'new') return callInProcess(opts.dataDir, null, op, args, handlers)
  if (where !== 'dir') {
    const sock = await connect(opts.dataDir)
    if (sock) return callRemote(sock, op, args, handlers)
    if (where === 'server') throw new UserError(`\`${opts.label ?? op}\` needs a running server: start \`bazil server run\` (data dir ${opts.dataDir})`)
  }
  // Loaded here, not at the top: a call the server answers needs none of the data dir's modules.
  const { DataDir } = await import('../datadir.js')
  return callInProcess(opts.dataDir, DataDir.open(opts.dataDir), op, args, handlers)
}

/** Runs the op's function here: on the server's node, or on the data dir's opened for the call and always closed. */
async function callInProcess<O extends Op>(root: string, dir: DataDir | null, op: O, args: Args<O>, handlers: CallHandlers, server?: ServerHandle): Promise<Results[O]> {
  const fn = await OPS[op].load()
  let opened = null as Promise<Node> | null
  const dataDir = (): DataDir => {
    if (!dir) throw new Error(`${op} runs before the data dir exists`)
    return dir
  }
  const ctx: OpContext = {
    root,
    get dir() {
      return dataDir()
    },
    server,
    node: () => {
      const dir = dataDir()
      if (server) return Promise.resolve(server.node)
      // Loaded here, not at the top: an op that needs no store loads none of its modules.
      opened ??= import('../node.js').then(({ Node }) => Node.open(dir))
      return opened
    },
    signal: handlers.signal ?? new AbortController().signal,
    emit: (e) => handlers.onEvent?.(e),
    write: async (chunk) => {
      await handlers.onOutput?.(chunk)
    }
  }
  let result: Results[O]
  try {
    result = await fn(ctx, args)
  } catch (err) {
    if (opened) {
      // The op's own error comes first; closing may fail for the same reason (a full disk).
      const closing = await opened.then((n) => n.close()).then(() => null, (e: unknown) => e)
      const why = closing instanceof Error ? closing.message : closing === null ? null : String(closing)
      if (why !== null && err instanceof Error && !err.message.includes(why)) err.message += `; closing the data dir also failed: ${why}`
    }
    throw err
  }
  if (opened) await (await opened).close()
  return result
}

/** Sends one request on `sock` and reads the response to its last frame. */
export async function callRemote<O extends Op>(sock: net.Socket, op: O, args: Args<O>, handlers: CallHandlers = {}): Promise<Results[O]> {
  const reader = new FrameReader()
  sock.write(encodeFrame(FRAME.request, encodeRequest(op, args)))
  let end: ControlEnd<O> | null = null
  try {
    // Frames one at a time: a slow output consumer holds the socket (backpressure to the server).
    read: for await (const data of sock as AsyncIterable<Buffer>) {
      for (const f of reader.push(data)) {
        if (f.type === FRAME.stdout) await handlers.onOutput?.(f.payload)
        else if (f.type === FRAME.event) handlers.onEvent?.(JSON.parse(f.payload.toString('utf8')) as ControlEvent)
        else if (f.type === FRAME.exit) {
          end = JSON.parse(f.payload.toString('utf8')) as ControlEnd<O>
          break read
        }
      }
    }
  } catch (err) {
    throw new Error(`lost the connection to the server: ${(err as Error).message}`)
  } finally {
    sock.destroy()
  }
  if (!end) throw new Error('the server closed the connection before the command finished (see its log)')
  if (end.ok) return end.result
  const msg = end.error.message
  if (end.error.kind === 'request') throw new BadRequestError(msg)
  if (end.error.kind === 'user') throw new UserError(msg)
  throw new Error(`the server failed: ${msg} (see its log)`)
}

/** How an op's failure is told to the client: a request it refused, the user's mistake, or an internal error. */
export function errorKind(err: unknown): 'request' | 'user' | 'internal' {
  if (err instanceof BadRequestError) return 'request'
  if (err instanceof UserError || err instanceof TreeError) return 'user'
  return 'internal'
}
