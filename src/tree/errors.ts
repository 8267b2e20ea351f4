export type TreeErrorCode = 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL' | 'EPERM'
  | 'ENODATA' | 'EOPNOTSUPP' | 'ENOSPC' | 'E2BIG' | 'ERANGE'

/** A file-system style error about one path; `code` maps 1:1 to an errno for the mount layer. */
export class TreeError extends Error {
  readonly code: TreeErrorCode
  readonly path: string

  constructor(code: TreeErrorCode, path: string, message?: string) {
    super(`${code}: ${message ?? describe(code)}: ${path === '' ? '/' : path}`)
    this.name = 'TreeError'
    this.code = code
    this.path = path
  }
}

function describe(code: TreeErrorCode): string {
  switch (code) {
    case 'ENOENT': return 'no such file or directory'
    case 'EEXIST': return 'already exists'
    case 'ENOTDIR': return 'not a directory'
    case 'EISDIR': return 'is a directory'
    case 'ENOTEMPTY': return 'directory not empty'
    case 'EINVAL': return 'invalid argument'
    case 'EPERM': return 'operation not permitted'
    case 'ENODATA': return 'no such attribute'
    case 'EOPNOTSUPP': return 'operation not supported'
    case 'ENOSPC': return 'no space left'
    case 'E2BIG': return 'argument list too long'
    case 'ERANGE': return 'result too large'
  }
}

/** A saved shard of a state (spec/tree.md "Starting from a state") that does not load to what the signed logs say. */
export class StateMismatchError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StateMismatchError'
  }
}
