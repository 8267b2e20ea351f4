// What every bazil command shares: finding the data dir, opening the node, printing, and
// turning failures into one line on stderr and a non-zero exit.
import { Command, Option, type BaseContext } from 'clipanion'
import { DataDir, UserError, defaultDataDir } from '../datadir.js'
import { Node } from '../node.js'
import { TreeError } from '../fs/tree/index.js'

export interface BazilContext extends BaseContext {
  /** --data-dir given before the command name (bazil --data-dir=X volume list). */
  dataDir?: string
  env: NodeJS.ProcessEnv
}

export abstract class BazilCommand extends Command<BazilContext> {
  dataDirOption = Option.String('--data-dir', { description: 'The data dir (default $BAZIL_DATA_DIR, $XDG_DATA_HOME/bazil, ~/.local/share/bazil)' })

  protected get dataDirPath(): string {
    return this.dataDirOption ?? this.context.dataDir ?? defaultDataDir(this.context.env)
  }

  protected openDataDir(): DataDir {
    return DataDir.open(this.dataDirPath)
  }

  /** Opens the node for the duration of `fn`, always closing it (and flushing volumes). */
  protected async withNode<T>(fn: (node: Node) => Promise<T>): Promise<T> {
    const node = await Node.open(this.openDataDir())
    try {
      return await fn(node)
    } finally {
      await node.close()
    }
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
      this.context.stderr.write(`bazil: ${describeError(err)}\n`)
      if (this.context.env.BAZIL_DEBUG && err instanceof Error) this.context.stderr.write(`${err.stack}\n`)
      return 1
    }
  }
}

/** One line for the user: what failed (and, where we know, what to do). */
export function describeError(err: unknown): string {
  if (err instanceof UserError || err instanceof TreeError) return err.message
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
