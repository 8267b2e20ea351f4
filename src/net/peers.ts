// The peer registry: DATA/peers.json, the nodes this node talks to and what each may see.
//
//   { "version": 1, "peers": [ { "key": "<z-base-32>", "location": "host:port" | null,
//     "storage": false, "volumes": ["<volume id hex>"], "added": <ms>, "lastSeen": <ms> | null } ] }
//
// Volumes are recorded by id, not local name: a rename must not widen or drop access.
// Every change is a synchronous read-modify-write of the whole file (written to a temp
// file and renamed), so the server's lastSeen updates and a command's edits in the same
// process never lose each other.
import fs from 'node:fs'
import path from 'node:path'
import { UserError } from '../datadir.js'
import { decodeKey, encodeKey } from '../crypto.js'
import { parseHostPort } from './config.js'
import { replaceFileSync } from '../atomic-file.js'
import { DataPaths } from '../data-paths.js'

export const PEERS_VERSION = 1

export interface PeerRecord {
  /** The peer's public key, z-base-32. */
  key: string
  /** "host:port" of the peer's DHT UDP socket, for a direct connection without a DHT lookup. */
  location: string | null
  /** May the peer read this node's content store (the cas and cas-index cores)? */
  storage: boolean
  /** Ids (hex) of the volumes the peer may replicate. */
  volumes: string[]
  added: number
  lastSeen: number | null
}

function damaged(file: string, why: string): UserError {
  return new UserError(`${file} is damaged (${why}): fix or remove it`)
}

function checkRecord(value: unknown, file: string): PeerRecord {
  if (typeof value !== 'object' || value === null) throw damaged(file, 'a peer is not an object')
  const r = value as Record<string, unknown>
  if (typeof r.key !== 'string') throw damaged(file, 'a peer has no key')
  let key: Buffer
  try {
    key = decodeKey(r.key, 'peer key')
  } catch {
    throw damaged(file, `bad peer key "${r.key}"`)
  }
  if (r.location !== null && typeof r.location !== 'string') throw damaged(file, `bad location of ${r.key}`)
  if (typeof r.location === 'string') parseHostPort(r.location, `location of ${r.key} in ${file}`)
  if (typeof r.storage !== 'boolean') throw damaged(file, `bad storage flag of ${r.key}`)
  if (!Array.isArray(r.volumes) || r.volumes.some((v) => typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v))) {
    throw damaged(file, `bad volume list of ${r.key}`)
  }
  if (typeof r.added !== 'number') throw damaged(file, `bad added time of ${r.key}`)
  if (r.lastSeen !== null && typeof r.lastSeen !== 'number') throw damaged(file, `bad lastSeen of ${r.key}`)
  return {
    key: encodeKey(key),
    location: r.location as string | null,
    storage: r.storage,
    volumes: [...(r.volumes as string[])],
    added: r.added,
    lastSeen: r.lastSeen as number | null
  }
}

/** A snapshot of the registry; `PeerRegistry.update` is the only way to change the file. */
export class PeerRegistry {
  readonly file: string
  private readonly records: PeerRecord[]

  private constructor(file: string, records: PeerRecord[]) {
    this.file = file
    this.records = records
  }

  static path(root: string): string {
    return new DataPaths(root).peers
  }

  /** Reads the registry of a data dir (no file: no peers). */
  static load(root: string): PeerRegistry {
    const file = PeerRegistry.path(root)
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new PeerRegistry(file, [])
      throw err
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      throw damaged(file, 'not valid JSON')
    }
    const obj = raw as { version?: unknown; peers?: unknown }
    if (typeof obj !== 'object' || obj === null) throw damaged(file, 'not an object')
    if (obj.version !== PEERS_VERSION) throw new UserError(`${file}: version ${String(obj.version)} is not supported (this bazil reads version ${PEERS_VERSION})`)
    if (!Array.isArray(obj.peers)) throw damaged(file, 'no peer list')
    const records = obj.peers.map((p) => checkRecord(p, file))
    return new PeerRegistry(file, records)
  }

  /** Loads, lets `fn` change the records, writes the result atomically; returns what fn returned. */
  static update<T>(root: string, fn: (peers: PeerRegistry) => T): T {
    const reg = PeerRegistry.load(root)
    const result = fn(reg)
    reg.save()
    return result
  }

  private save(): void {
    replaceFileSync(this.file, JSON.stringify({ version: PEERS_VERSION, peers: this.records }, null, 2) + '\n', { mode: 0o600 })
  }

  list(): PeerRecord[] {
    return this.records.map((r) => ({ ...r, volumes: [...r.volumes] }))
  }

  get(key: Buffer): PeerRecord | null {
    const z = encodeKey(key)
    const r = this.records.find((p) => p.key === z)
    return r ? { ...r, volumes: [...r.volumes] } : null
  }

  has(key: Buffer): boolean {
    return this.get(key) !== null
  }

  private must(key: Buffer): PeerRecord {
    const z = encodeKey(key)
    const r = this.records.find((p) => p.key === z)
    if (!r) throw new UserError(`unknown peer ${z}: add it first with \`bazil peer add ${z}\``)
    return r
  }

  /** Adds a peer with no access; false if it was already there. */
  add(key: Buffer, now = Date.now()): boolean {
    if (this.has(key)) return false
    this.records.push({ key: encodeKey(key), location: null, storage: false, volumes: [], added: now, lastSeen: null })
    return true
  }

  remove(key: Buffer): void {
    const r = this.must(key)
    this.records.splice(this.records.indexOf(r), 1)
  }

  setLocation(key: Buffer, location: string | null): void {
    if (location !== null) parseHostPort(location, 'location')
    this.must(key).location = location
  }

  setStorage(key: Buffer, allowed: boolean): void {
    this.must(key).storage = allowed
  }

  /** Allows or denies one volume (by id hex); returns whether anything changed. */
  setVolume(key: Buffer, volumeId: string, allowed: boolean): boolean {
    const r = this.must(key)
    const has = r.volumes.includes(volumeId)
    if (allowed && !has) r.volumes.push(volumeId)
    else if (!allowed && has) r.volumes.splice(r.volumes.indexOf(volumeId), 1)
    else return false
    return true
  }

  /** Records when the peer was last connected; unknown peers (removed meanwhile) are ignored. */
  touch(key: Buffer, when: number): void {
    const z = encodeKey(key)
    const r = this.records.find((p) => p.key === z)
    if (r) r.lastSeen = when
  }
}
