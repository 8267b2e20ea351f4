// Errors of the op log. Format errors are the codecs' own type (so fuzzing can tell a clean
// rejection from a crash); EntryError is what readers hand to callers for one bad entry.
import { encodeKey } from '../crypto.js'

/** A block that does not parse as the format it claims (or claims a version we don't know). */
export class LogFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LogFormatError'
  }
}

/** One entry of one writer's log could not be used; reading goes on with the next one. */
export class EntryError extends Error {
  readonly writer: Buffer
  readonly seq: number
  readonly reason: string

  constructor(writer: Buffer, seq: number, reason: string) {
    super(`log ${encodeKey(writer)} entry ${seq}: ${reason}`)
    this.name = 'EntryError'
    this.writer = writer
    this.seq = seq
    this.reason = reason
  }
}

/** Block 0 of a log is missing, malformed, signed wrongly or binds the log to something else. */
export class LogBindingError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LogBindingError'
  }
}
