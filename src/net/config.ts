// The network settings in DATA/config.json: which DHT to use and how this node is reached.
//
//   { "bootstrap": ["127.0.0.1:49737", ...], "firewalled": false, "port": 49737 }
//
// Every field is optional. No `bootstrap` means hyperswarm's public DHT; `firewalled`
// defaults to hyperswarm's own default (true: assume a NAT, holepunch). Set it to false
// only where peers reach each other's UDP port directly (loopback, a LAN).
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { UserError } from '../datadir.js'
import { DataPaths } from '../data-paths.js'


export interface HostPort {
  host: string
  port: number
}

export interface NetConfig {
  bootstrap?: HostPort[]
  firewalled?: boolean
  port?: number
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** Parses "HOST:PORT" (an IPv4 address or a host name; hyperdht speaks IPv4 only). */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const m = /^(.+):(\d{1,5})$/.exec(text.trim())
  if (!m) throw new UserError(`invalid ${what} "${text}": expected HOST:PORT, e.g. 192.168.1.5:49737`)
  const host = m[1]
  const port = Number(m[2])
  if (port < 1 || port > 65535) throw new UserError(`invalid ${what} "${text}": port must be 1-65535`)
  if (net.isIPv6(host) || host.startsWith('[')) throw new UserError(`invalid ${what} "${text}": IPv6 is not supported by the DHT transport, use an IPv4 address or a host name`)
  if (!net.isIPv4(host) && !HOSTNAME_RE.test(host)) throw new UserError(`invalid ${what} "${text}": "${host}" is not an IPv4 address or host name`)
  return { host, port }
}

export function formatHostPort(hp: HostPort): string {
  return `${hp.host}:${hp.port}`
}

/** Parses a comma-separated bootstrap list ("H:P,H:P"). */
export function parseBootstrap(text: string): HostPort[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (parts.length === 0) throw new UserError(`invalid bootstrap list "${text}": expected HOST:PORT[,HOST:PORT...]`)
  return parts.map((p) => parseHostPort(p, 'bootstrap node'))
}

function checkPort(value: unknown, file: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new UserError(`${file}: "port" must be an integer 1-65535`)
  }
  return value
}

/** Reads DATA/config.json; a missing file means all defaults. Unknown keys are rejected (likely typos). */
export function readNetConfig(root: string): NetConfig {
  const file = new DataPaths(root).netConfig
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new UserError(`${file} is not valid JSON`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: expected a JSON object`)
  const obj = raw as Record<string, unknown>
  const config: NetConfig = {}
  for (const key of Object.keys(obj)) {
    if (!['bootstrap', 'firewalled', 'port'].includes(key)) throw new UserError(`${file}: unknown setting "${key}" (known: bootstrap, firewalled, port)`)
  }
  if (obj.bootstrap !== undefined) {
    if (!Array.isArray(obj.bootstrap) || obj.bootstrap.some((b) => typeof b !== 'string')) {
      throw new UserError(`${file}: "bootstrap" must be a list of "HOST:PORT" strings`)
    }
    config.bootstrap = (obj.bootstrap as string[]).map((b) => parseHostPort(b, `bootstrap node in ${file}`))
  }
  if (obj.firewalled !== undefined) {
    if (typeof obj.firewalled !== 'boolean') throw new UserError(`${file}: "firewalled" must be true or false`)
    config.firewalled = obj.firewalled
  }
  if (obj.port !== undefined) config.port = checkPort(obj.port, file)
  return config
}
