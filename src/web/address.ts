// Where the web view listens (`bazil server run --web=HOST:PORT`): parsed and checked before the
// server starts, so a typo is one line, not a half-started server.
import net from 'node:net'
import { UserError } from '../datadir.js'

export interface WebAddress {
  host: string
  /** 0: any free port (the tests; `bazil web url` tells which). */
  port: number
  /** Only this machine can connect: the default, and the only kind that is quiet. */
  loopback: boolean
}

export function parseWebAddress(text: string): WebAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text)
  const port = m ? Number(m[3]) : NaN
  if (!m || port > 65535) throw new UserError(`--web must be HOST:PORT, e.g. --web=127.0.0.1:8080 (got "${text}")`)
  const host = m[1] ?? m[2]!
  if (m[1] !== undefined && net.isIPv6(host) === false) throw new UserError(`--web: "${host}" is not an IPv6 address`)
  return { host, port, loopback: isLoopback(host) }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'))
}

/** What the server logs when the user asked for an address other machines can reach. */
export function exposureWarning(a: WebAddress): string {
  return `the web view listens on ${hostPort(a.host, a.port)}, which other machines can reach: anyone with its token can read and change your volumes, and plain HTTP carries the token unencrypted; use --web=127.0.0.1:PORT (or an SSH tunnel) unless you mean it`
}

/** HOST:PORT with an IPv6 address in brackets, as URLs and Host headers write it. */
export function hostPort(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`
}
