// What an operation of the control API runs with: the data dir, the node (the server's, or
// opened on first use in the CLI process), the server when inside it, and the two streams a
// response may carry before its result (events, output bytes).
import type { DataDir } from '../datadir.js'
import type { Node } from '../node.js'
import type { ServerHandle } from '../server/handle.js'
import type { Args, ControlEvent, Op, Results } from './requests.js'

export interface OpContext {
  /** The data dir's path (the only thing an op that creates it has). */
  readonly root: string
  /** The data dir (an op that runs `new`, before it exists, must not touch it). */
  readonly dir: DataDir
  /** The node: the server's, or the data dir's opened on first use (the caller closes it). */
  node(): Promise<Node>
  /** Set when the op runs inside the server. */
  readonly server?: ServerHandle
  /** Streams one event to the caller (progress `status`, `warning`, ...). */
  emit(event: ControlEvent): void
  /** Resolves once the caller can take more events (a long stream of them: `log.show` rows); absent: no need to wait. */
  eventsDrained?(): Promise<void>
  /** Streams output bytes (a file's content); resolves when the caller can take more. */
  write(chunk: Buffer): Promise<void>
  /** Aborted when the caller hangs up or the server stops: long ops (a watch) end then. */
  readonly signal: AbortSignal
}

export type OpFn<O extends Op> = (ctx: OpContext, args: Args<O>) => Promise<Results[O]>
