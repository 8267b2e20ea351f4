// The web view's way to the server: the typed control ops (src/control/ops), through the same
// client and dispatch the CLI and the control socket use, run on the server's node. Never argv.
import { call, type CallHandlers } from '../control/client.js'
import { OPS } from '../control/ops/index.js'
import type { Args, Op, Results } from '../control/requests.js'
import type { ServerHandle } from '../server/handle.js'

export class WebOps {
  constructor(readonly server: ServerHandle) {}

  call<O extends Op>(op: O, args: Args<O>, handlers: CallHandlers = {}): Promise<Results[O]> {
    return call({ dataDir: this.server.dir.root, server: this.server, label: `the web view's ${op}` }, op, args, handlers)
  }

  /** Whether this build has the op (a page whose op has not landed is left out). */
  has(op: string): boolean {
    return Object.prototype.hasOwnProperty.call(OPS, op)
  }
}
