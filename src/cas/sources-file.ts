// The sources file, DATA/corestore/cas-sources (spec/cas.md section 6): the peers' stores this
// node made sources, so that its copies of their cores (what it fetched) are found again after
// a restart, before or without their peer connecting. Its encoding and strict decoding only;
// remote-store.ts decides what is listed and when the file is written.

/** A peer's store as its hello offers it: its `packs` core (field `cas`) and `pack-index` core (field `index`). */
export interface RemoteStoreKeys {
  cas: Buffer
  index: Buffer
}

/** One listed store. */
export interface SourceRecord {
  /** The peer's name for log lines. */
  name: string
  /** The node whose store it is (z-base-32), or null when not known. */
  owner: string | null
  keys: RemoteStoreKeys
}

/** The file's name, in the corestore's directory. */
export const SOURCES_FILE_NAME = 'cas-sources'
/** Version 2: records name pack stores. Version 1 named the old cas/cas-index stores (no longer read). */
const SOURCES_FILE_VERSION = 2
const MAX_SOURCES = 4096

/** The file's text for these records (UTF-8 JSON, version 2). */
export function encodeSources(records: SourceRecord[]): string {
  const sources = records.map((r) => ({ name: r.name, owner: r.owner ?? undefined, packs: r.keys.cas.toString('hex'), index: r.keys.index.toString('hex') }))
  return JSON.stringify({ version: SOURCES_FILE_VERSION, sources }, null, 2) + '\n'
}

/** The file's records ('old': a version 1 file); throws on anything but the format of spec/cas.md §6. */
export function parseSources(text: string): SourceRecord[] | 'old' {
  const obj = JSON.parse(text) as { version?: unknown; sources?: unknown }
  if (typeof obj !== 'object' || obj === null) throw new Error('not a sources file')
  if (obj.version === 1) return 'old'
  if (obj.version !== SOURCES_FILE_VERSION) throw new Error(`not a sources file of version ${SOURCES_FILE_VERSION}`)
  if (!Array.isArray(obj.sources) || obj.sources.length > MAX_SOURCES) throw new Error('bad source list')
  const hex32 = (v: unknown): Buffer => {
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new Error('bad core key')
    return Buffer.from(v, 'hex')
  }
  return obj.sources.map((r: unknown) => {
    const rec = r as { name?: unknown; owner?: unknown; packs?: unknown; index?: unknown }
    if (typeof rec !== 'object' || rec === null || typeof rec.name !== 'string') throw new Error('bad source record')
    if (rec.owner !== undefined && typeof rec.owner !== 'string') throw new Error('bad source owner')
    return { name: rec.name, owner: rec.owner ?? null, keys: { cas: hex32(rec.packs), index: hex32(rec.index) } }
  })
}
