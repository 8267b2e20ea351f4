// What every bazil command shares: finding the data dir, calling its op of the control API
// (src/control: in the server when one runs, else in this process), printing, and turning
// failures into one line on stderr and a non-zero exit. Only `server run`, `dht run` and the
// shell helpers (completion, man, help) run without an op.
import path from 'node:path'
import { Command, Option, type BaseContext } from 'clipanion'
import { defaultDataDir } from '../data-paths.js'
import { UserError } from '../user-error.js'
import { TreeError } from '../tree/errors.js'
import { call, type CallHandlers } from '../control/client.js'
import { BadRequestError } from '../control/request-codec.js'
import type { Args, ControlEvent, Op, Results } from '../control/requests.js'
import type { ServerHandle } from '../server/handle.js'
import { ProgressView } from './progress.js'

export interface BazilContext extends BaseContext {
  /** --data-dir given before the command name (bazil --data-dir=X volume list). */
  dataDir?: string
  env: NodeJS.ProcessEnv
  /** The caller's working directory (relative paths the user gives are resolved against it). */
  cwd: string
  /** Set when the command runs in a process that holds the node (tests): its ops run on that node. */
  server?: ServerHandle
}

export abstract class BazilCommand extends Command<BazilContext> {
  dataDirOption = Option.String('--data-dir', { description: 'The data dir (default $BAZIL_DATA_DIR, $XDG_DATA_HOME/bazil, ~/.local/share/bazil)' })

  protected get dataDirPath(): string {
    return this.dataDirOption ?? this.context.dataDir ?? defaultDataDir(this.context.env)
  }

  /** A path the user gave, resolved against their working directory. */
  protected resolvePath(p: string): string {
    return path.resolve(this.context.cwd, p)
  }

  /**
   * Calls an op of the control API (in the server if one runs, else here). Warnings the op
   * streams go to stderr unless `handlers` takes events.
   */
  protected call<O extends Op>(op: O, args: Args<O>, handlers: CallHandlers = {}): Promise<Results[O]> {
    const onEvent = handlers.onEvent ?? ((e: ControlEvent) => {
      if (e.message_type === 'warning') this.context.stderr.write(`bazil: ${String(e.message)}\n`)
    })
    return call({ dataDir: this.dataDirPath, server: this.context.server, label: `bazil ${this.path.join(' ')}` }, op, args, { ...handlers, onEvent })
  }

  /**
   * Calls an op that streams progress: its `status` events drawn on a terminal (or printed as
   * JSON lines with `json`), warnings on stderr, other events to `onEvent`. The view is
   * returned with the result for the summary (`view.finish`); on failure the bar is ended.
   */
  protected async callWithProgress<O extends Op>(op: O, args: Args<O>, json: boolean, onEvent?: (e: ControlEvent, view: ProgressView) => void): Promise<{ result: Results[O]; view: ProgressView }> {
    const view = new ProgressView(this.context.stdout, this.context.stderr, { json })
    try {
      const result = await this.call(op, args, {
        onEvent: (e) => {
          if (view.event(e)) return
          if (e.message_type === 'warning') view.note(`bazil: ${String(e.message)}`, e)
          else onEvent?.(e, view)
        }
      })
      return { result, view }
    } catch (err) {
      view.end()
      throw err
    }
  }

  /** Writes to stdout, waiting when the reader is slower (a large `cat` into a pipe). */
  protected async outBytes(chunk: Buffer): Promise<void> {
    if (!this.context.stdout.write(chunk)) await new Promise((r) => this.context.stdout.once('drain', r))
  }

  protected out(line: string): void {
    this.context.stdout.write(line + '\n')
  }

  protected json(value: unknown): void {
    this.context.stdout.write(JSON.stringify(value, null, 2) + '\n')
  }

  abstract run(): Promise<number | void>

  async execute(): Promise<number> {
    try {
      return (await this.run()) ?? 0
    } catch (err) {
      this.context.stderr.write(`bazil: ${err instanceof BadRequestError ? 'bad control request: ' : ''}${describeError(err)}\n`)
      if (this.context.env.BAZIL_DEBUG && err instanceof Error) this.context.stderr.write(`${err.stack}\n`)
      return err instanceof BadRequestError ? 2 : 1
    }
  }
}

/** One line for the user: what failed (and, where we know, what to do). */
export function describeError(err: unknown): string {
  if (err instanceof UserError || err instanceof TreeError || err instanceof BadRequestError) return err.message
  if (err instanceof Error) return err.message.split('\n')[0]
  return String(err)
}

/** Reads stdin to its end, or until more than `limit` bytes came (then the result is longer than limit). */
export async function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
    size += buf.length
    parts.push(buf)
    if (size > limit) break
  }
  return Buffer.concat(parts)
}
