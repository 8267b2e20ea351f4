// Errors of the content store. Both name the file (`what`) so a user learns which file is
// affected, not just that some chunk is.

/** Stored content failed verification (or the storage failed reading it): never returned as data. */
export class CorruptContentError extends Error {
  readonly what: string
  readonly chunk: string
  constructor(what: string, chunk: string, reason: string, options?: { cause?: unknown }) {
    super(`${what}: corrupt content in ${chunk}: ${reason}`, options)
    this.name = 'CorruptContentError'
    this.what = what
    this.chunk = chunk
  }
}

/** Content this node does not hold (never stored here, or evicted): fetch it from a peer. */
export class MissingContentError extends Error {
  readonly what: string
  readonly chunk: string
  constructor(what: string, chunk: string) {
    super(`${what}: ${chunk} is not held locally`)
    this.name = 'MissingContentError'
    this.what = what
    this.chunk = chunk
  }
}
