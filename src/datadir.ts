// The data dir: a node's identity, sharing keys, volume records and corestore, on disk.
//
// Layout (spec/datadir.md):
//   DATA/                 mode 0700
//     node.json           { version, publicKey (z-base-32) }
//     node.key            ed25519 secret key, 64 raw bytes, mode 0600
//     sharing/NAME.key    32 raw bytes, mode 0600
//     volumes/NAME.json   { version, name, id (hex), sharing, created, storage? }, or for a
//                         volume held without its sharing key { version, name, id, created, storageOnly: true }
//     corestore/          RocksDB corestore holding the CAS and all writer logs
import fs from 'node:fs'
import path from 'node:path'
import { KEY_BYTES, decodeKey, encodeKey, generateKeyPair, randomBytes, sign, verify, type KeyPair } from './crypto.js'
import { replaceFileSync } from './atomic-file.js'
import { DataPaths, defaultDataDir } from './data-paths.js'
import { UserError } from './user-error.js'

export const DATA_DIR_VERSION = 1
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export { UserError, defaultDataDir }

export interface VolumeRecord {
  version: 1
  name: string
  /** 32-byte volume id, hex. */
  id: string
  /** Name of the local sharing key the volume is encrypted with. */
  sharing: string
  created: number
  /**
   * Peers (public keys, z-base-32) whose content store reads of this volume may fetch
   * missing chunks from (`volume storage add`). Absent (older records) = none.
   */
  storage?: string[]
  /** Absent (or false) on a volume this node can read; see StorageOnlyRecord. */
  storageOnly?: false
  /** What the volume id is derived from (volumes created since binding v2; spec/oplog.md "Volume ids"). */
  genesis?: GenesisRecord
  /** Legacy volumes (no genesis): the root writer logs (z-base-32), fixed at migration (spec/oplog.md "Migration"). */
  roots?: string[]
}

/** A volume's genesis as the record keeps it: creator node key (z-base-32) and nonce (hex). */
export interface GenesisRecord {
  node: string
  nonce: string
}

/**
 * A volume this node holds without its sharing key (a "closet" server): it keeps and serves
 * the volume's writer logs, ciphertext it can never read. No sharing key, no own log, no tree.
 */
export interface StorageOnlyRecord {
  version: 1
  name: string
  id: string
  created: number
  storageOnly: true
  sharing?: never
  storage?: never
  genesis?: GenesisRecord
  roots?: string[]
}

/** Any volume record in the data dir. */
export type VolumeEntry = VolumeRecord | StorageOnlyRecord

/** The one line every command that needs plaintext gives on a storage-only volume. */
export function storageOnlyMessage(name: string): string {
  return `volume ${name} is storage-only on this node: it holds ciphertext and has no sharing key`
}

/** Checks a sharing key or volume name; names become file names, so they are restricted. */
export function checkName(name: string, what: string): string {
  if (!NAME_RE.test(name)) {
    throw new UserError(`invalid ${what} name "${name}": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
  return name
}

function writeSecret(file: string, data: Buffer): void {
  // wx: never overwrite an existing secret; mode applies at creation, before any byte is written
  fs.writeFileSync(file, data, { mode: 0o600, flag: 'wx' })
}

export class DataDir {
  readonly root: string
  readonly identity: KeyPair
  /** Every path of the data dir (src/data-paths.ts). */
  readonly paths: DataPaths

  private constructor(root: string, identity: KeyPair) {
    this.root = root
    this.identity = identity
    this.paths = new DataPaths(root)
  }

  /**
   * Moves bazil's files that older versions kept inside `corestore/` to the data dir's root,
   * before the store opens. They can't stay there: a store whose `CORESTORE` file is missing (a
   * restored copy, after the user deleted it as our error says) is taken by hypercore-storage
   * for its old layout, and every file it doesn't know is moved into `corestore/db/`. Picks them
   * up from there too. A file already at the root wins (the others are caches: left alone).
   */
  moveStoreFilesOut(): void {
    for (const [name, to] of [['pack-table', this.paths.packTable], ['gc-marks', this.paths.gcMarks]]) {
      if (fs.existsSync(to)) continue
      for (const from of [path.join(this.paths.corestore, name), path.join(this.paths.db, name)]) {
        if (!fs.existsSync(from)) continue
        fs.renameSync(from, to)
        break
      }
    }
  }

  get publicKey(): Buffer {
    return this.identity.publicKey
  }

  /** Makes a new data dir with a fresh identity and a `default` sharing key. */
  static create(root: string): DataDir {
    root = path.resolve(root)
    const paths = new DataPaths(root)
    if (fs.existsSync(paths.nodeJson)) {
      throw new UserError(`a data dir already exists at ${root}: refusing to replace its identity`)
    }
    if (fs.existsSync(root) && fs.readdirSync(root).length > 0) {
      throw new UserError(`${root} exists and is not empty: choose another --data-dir`)
    }
    fs.mkdirSync(root, { recursive: true, mode: 0o700 })
    fs.chmodSync(root, 0o700)
    for (const sub of [paths.sharingDir, paths.volumesDir]) fs.mkdirSync(sub, { mode: 0o700 })
    const identity = generateKeyPair()
    writeSecret(paths.nodeKey, identity.secretKey)
    fs.writeFileSync(
      paths.nodeJson,
      JSON.stringify({ version: DATA_DIR_VERSION, publicKey: encodeKey(identity.publicKey) }, null, 2) + '\n'
    )
    const dir = new DataDir(root, identity)
    dir.addSharingKey('default', randomBytes(KEY_BYTES))
    return dir
  }

  static open(root: string): DataDir {
    root = path.resolve(root)
    const paths = new DataPaths(root)
    const meta = paths.nodeJson
    if (!fs.existsSync(meta)) throw new UserError(`no bazil data dir at ${root}: run \`bazil create\` first, or pass --data-dir`)
    let info: { version?: unknown }
    try {
      info = JSON.parse(fs.readFileSync(meta, 'utf8'))
    } catch {
      throw new UserError(`${meta} is not valid JSON: the data dir is damaged`)
    }
    if (info.version !== DATA_DIR_VERSION) {
      throw new UserError(`${meta}: data dir version ${String(info.version)} is not supported (this bazil reads version ${DATA_DIR_VERSION})`)
    }
    const secretKey = fs.readFileSync(paths.nodeKey)
    if (secretKey.length !== 64) throw new UserError(`${paths.nodeKey} is damaged: expected 64 bytes`)
    // An ed25519 secret key in sodium's layout carries its public key in the last 32 bytes.
    const identity = { secretKey, publicKey: Buffer.from(secretKey.subarray(32)) }
    // A changed byte in either half would otherwise show only later, as "bound to another
    // node" or as signatures nobody accepts: a signature made with it must verify with it.
    const probe = Buffer.from('bazil node.key check')
    if (!verify(probe, sign(probe, secretKey), identity.publicKey)) {
      throw new UserError(`${paths.nodeKey} is damaged: its secret and public halves do not match`)
    }
    return new DataDir(root, identity)
  }

  // --- sharing keys ---

  private sharingFile(name: string): string {
    return this.paths.sharingKey(checkName(name, 'sharing key'))
  }

  addSharingKey(name: string, key: Buffer): void {
    if (key.length !== KEY_BYTES) {
      throw new UserError(`sharing key "${name}" must be exactly ${KEY_BYTES} bytes, got ${key.length}`)
    }
    const file = this.sharingFile(name)
    if (fs.existsSync(file)) throw new UserError(`sharing key "${name}" already exists`)
    writeSecret(file, key)
  }

  sharingKey(name: string): Buffer {
    const file = this.sharingFile(name)
    if (!fs.existsSync(file)) {
      throw new UserError(`unknown sharing key "${name}": add it with \`bazil sharing add ${name} <FILE\``)
    }
    const key = fs.readFileSync(file)
    if (key.length !== KEY_BYTES) throw new UserError(`${file} is damaged: expected ${KEY_BYTES} bytes`)
    return key
  }

  listSharingKeys(): string[] {
    return fs
      .readdirSync(this.paths.sharingDir)
      .filter((f) => f.endsWith('.key'))
      .map((f) => f.slice(0, -4))
      .sort()
  }

  // --- volume records ---

  private volumeFile(name: string): string {
    return this.paths.volume(checkName(name, 'volume'))
  }

  addVolume(record: VolumeEntry): void {
    checkVolumeRecord(record, `volume record "${record.name}"`)
    const file = this.volumeFile(record.name)
    if (fs.existsSync(file)) throw new UserError(`volume "${record.name}" already exists`)
    fs.writeFileSync(file, JSON.stringify(record, null, 2) + '\n', { flag: 'wx' })
  }

  /** A volume this node can read (it has the sharing key); a storage-only one is refused with one clear line. */
  volume(name: string): VolumeRecord {
    const record = this.volumeEntry(name)
    if (record.storageOnly) throw new UserError(storageOnlyMessage(record.name))
    return record
  }

  /** Any volume record, readable or storage-only. */
  volumeEntry(name: string): VolumeEntry {
    const file = this.volumeFile(name)
    if (!fs.existsSync(file)) throw new UserError(`unknown volume "${name}": see \`bazil volume list\``)
    let record: unknown
    try {
      record = JSON.parse(fs.readFileSync(file, 'utf8'))
    } catch {
      throw new UserError(`${file} is not valid JSON: the volume record is damaged`)
    }
    return checkVolumeRecord(record, file)
  }

  /** Adds a peer (z-base-32 key) to a volume's content sources; false if it was there already. */
  addVolumeStorage(name: string, peer: string): boolean {
    const record = this.volume(name)
    const storage = record.storage ?? []
    if (storage.includes(peer)) return false
    const updated: VolumeRecord = { ...record, storage: [...storage, peer] }
    // Write-then-rename: a crash leaves the old record or the new one, never half of one.
    const file = this.volumeFile(name)
    replaceFileSync(file, JSON.stringify(updated, null, 2) + '\n')
    return true
  }

  /** Removes a peer (z-base-32 key) from a volume's storage list; false if it was not there. */
  removeVolumeStorage(name: string, peer: string): boolean {
    const record = this.volume(name)
    const storage = record.storage ?? []
    if (!storage.includes(peer)) return false
    const updated: VolumeRecord = { ...record, storage: storage.filter((k) => k !== peer) }
    replaceFileSync(this.volumeFile(name), JSON.stringify(updated, null, 2) + '\n')
    return true
  }

  /** Replaces some fields of a volume record (genesis, roots), written whole (temp + rename). */
  updateVolume(name: string, patch: Pick<VolumeRecord, 'genesis' | 'roots'>): VolumeEntry {
    const updated = { ...this.volumeEntry(name), ...patch } as VolumeEntry
    checkVolumeRecord(updated, `volume record "${name}"`)
    replaceFileSync(this.volumeFile(name), JSON.stringify(updated, null, 2) + '\n')
    return updated
  }

  /** Every volume record, readable and storage-only (`storageOnly: true`), by name. */
  listVolumes(): VolumeEntry[] {
    return fs
      .readdirSync(this.paths.volumesDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => this.volumeEntry(f.slice(0, -5)))
      .sort((a, b) => a.name.localeCompare(b.name))
  }
}

/**
 * Checks a volume record read from (or about to be written to) `where`. A record is either
 * readable (a `sharing` key name, no `storageOnly` or `storageOnly: false`) or storage-only
 * (`storageOnly: true`, and then no `sharing` and no `storage`): anything in between is damaged.
 */
function checkVolumeRecord(value: unknown, where: string): VolumeEntry {
  const isKey = (k: unknown): boolean => {
    try {
      decodeKey(k as string, 'key')
      return true
    } catch {
      return false
    }
  }
  if (typeof value !== 'object' || value === null) throw new UserError(`${where} is damaged: not an object`)
  const r = value as Record<string, unknown>
  if (r.version !== 1 || typeof r.id !== 'string' || !/^[0-9a-f]{64}$/.test(r.id)) throw new UserError(`${where} is damaged or from a newer bazil`)
  if (typeof r.name !== 'string') throw new UserError(`${where} is damaged: no name`)
  if (r.genesis !== undefined) {
    const g = r.genesis as Record<string, unknown> | null
    if (typeof g !== 'object' || g === null || typeof g.node !== 'string' || typeof g.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(g.nonce)) throw new UserError(`${where}: "genesis" must be { node, nonce }`)
    if (!isKey(g.node)) throw new UserError(`${where} is damaged: "genesis" names no node key`)
  }
  if (r.roots !== undefined && (!Array.isArray(r.roots) || r.roots.some((k) => typeof k !== 'string' || !isKey(k)))) throw new UserError(`${where}: "roots" must be a list of log keys`)
  if (r.storageOnly !== undefined && typeof r.storageOnly !== 'boolean') throw new UserError(`${where}: "storageOnly" must be true or false`)
  if (r.storageOnly === true) {
    if (r.sharing !== undefined) throw new UserError(`${where} is inconsistent: a storage-only volume has no sharing key`)
    if (r.storage !== undefined) throw new UserError(`${where} is inconsistent: a storage-only volume reads no content, it has no "storage"`)
    return r as unknown as StorageOnlyRecord
  }
  if (typeof r.sharing !== 'string' || !NAME_RE.test(r.sharing)) throw new UserError(`${where} is inconsistent: no sharing key name, and not storage-only`)
  if (r.storage !== undefined && (!Array.isArray(r.storage) || r.storage.some((k) => typeof k !== 'string' || !isKey(k)))) {
    throw new UserError(`${where}: "storage" must be a list of peer keys`)
  }
  return r as unknown as VolumeRecord
}
