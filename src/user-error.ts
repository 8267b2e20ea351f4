// The error a user can act on, in a module of its own: a CLI process that only talks to the
// server (src/control/client.ts) throws and tells it without loading the data dir's crypto.

/** An error the user can act on: the CLI prints its message as one line. */
export class UserError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UserError'
  }
}
