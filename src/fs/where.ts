// Where a volume's content lives (`bazil where`, `bazil volume du`, the "not yet safe" figure of
// `bazil status`): the objects files are made of (manifest nodes and chunks), located in the
// own store (written here; held elsewhere by the peers that confirmed it: placement.ts) or in
// the local tables of the stores this node reads from (held by their owners), and whether
// this node holds each one now. Local lookups only: a manifest node that is neither here nor
// reachable within the remote timeout is counted as unknown, with its file.
import type { Node } from '../node.js'
import type { Volume } from '../volume.js'
import { toFileRef } from '../volume.js'
import type { ReadTree, Stat } from './tree/index.js'
import type { Cas, FileRef } from './cas/index.js'
import type { ManifestEntry } from './cas/manifest.js'
import { decodeIndexBlock, packLength } from './cas/pack-codec.js'
import { encodeKey } from '../crypto.js'

/** Objects of one file: addresses (hex) of its manifest nodes and chunks; `missing` manifest nodes could not be read. */
export interface FileObjects {
  addresses: string[]
  missing: number
}

/**
 * Every object a file is made of: its manifest nodes (read through the store: the own store,
 * local copies, then peers) and its chunks. Shared walk for reports; gc's reachability walk
 * (src/fs/cas/reachability.ts) is the one home for what must be kept.
 */
export async function fileObjects(cas: Cas, ref: FileRef): Promise<FileObjects> {
  const addresses: string[] = []
  let missing = 0
  let wave: ManifestEntry[] = [{ hash: ref.hash, size: ref.size }]
  while (wave.length > 0) {
    const next: ManifestEntry[] = []
    for (const e of wave) {
      addresses.push(cas.objectAddress(e.hash).toString('hex'))
      try {
        const node = await cas.manifestNode(e)
        if (node.level > 0) next.push(...node.entries)
        else for (const c of node.entries) addresses.push(cas.objectAddress(c.hash).toString('hex'))
      } catch {
        missing++
      }
    }
    wave = next
  }
  return { addresses, missing }
}

/** Where one object is: its stored length and who holds it. */
interface Placed {
  bytes: number
  /** In the own store: written (or relayed) here. */
  own: boolean
  /** This node holds its pack now. */
  here: boolean
  /** Own store: held by >= copies confirmed peers. */
  safe: boolean
  /** Peers holding it (z-base-32): confirmed keepers of the own store, or the owners of the stores that index it. */
  peers: string[]
}

export interface PeerHolding {
  key: string
  bytes: number
  state: 'whole' | 'partly'
  /** confirmed: it confirmed keeping this node's store (HOLDS); owner: its own store indexes the content. */
  as: 'confirmed' | 'owner'
}

export interface WhereReport {
  volume: string
  path: string
  files: number
  /** Sum of the files' sizes. */
  logicalBytes: number
  objects: number
  /** Stored bytes of the distinct objects (ciphertext, as held). */
  storedBytes: number
  /** Objects no store known here indexes, or manifest nodes that could not be read (their chunks are not counted). */
  unknownObjects: number
  copiesWanted: number
  /** The fewest peers holding any object of it (0 if some object is held by no peer). */
  copies: number
  here: { bytes: number; written: number; cached: number; pinned: number; notSafe: number }
  peers: PeerHolding[]
}

/** What cache's PinSet offers (src/fs/cas/cache*.ts), if it is there. */
interface PinSource {
  pinnedAddresses(): Promise<Set<string>>
}

interface SourceLookup {
  packsOf?(addresses: Iterable<Buffer>): Promise<Map<string, Set<number>>>
}

/** The report for the files under `path` of `vol`'s live tree. */
export async function where(node: Node, vol: Volume, path: string, tree: ReadTree = vol.tree): Promise<WhereReport> {
  const st = tree.stat(path)
  const files: Stat[] = st.kind === 'file' ? [st] : st.kind === 'dir' ? [...tree.walk(st.path)].filter((e) => e.kind === 'file') : []
  const all = new Set<string>()
  let logical = 0
  let unknown = 0
  for (const f of files) {
    logical += f.size
    if (!f.content) continue
    const o = await fileObjects(vol.cas, toFileRef(f.content))
    unknown += o.missing
    for (const a of o.addresses) all.add(a)
  }
  const placed = await place(node, [...all])
  const pins = (node as unknown as { cache?: { pins?: PinSource } }).cache?.pins
  const pinned = pins ? await pins.pinnedAddresses().catch(() => new Set<string>()) : new Set<string>()
  const here = { bytes: 0, written: 0, cached: 0, pinned: 0, notSafe: 0 }
  const byPeer = new Map<string, { bytes: number; as: 'confirmed' | 'owner' }>()
  let stored = 0
  let copies = Infinity
  for (const [hex, p] of placed) {
    if (!p) {
      unknown++
      copies = 0
      continue
    }
    stored += p.bytes
    if (p.here) {
      here.bytes += p.bytes
      if (p.own) here.written += p.bytes
      else here.cached += p.bytes
      if (pinned.has(hex)) here.pinned += p.bytes
    }
    if (p.own && !p.safe) here.notSafe += p.bytes
    copies = Math.min(copies, p.peers.length)
    for (const k of p.peers) {
      const e = byPeer.get(k) ?? { bytes: 0, as: p.own ? 'confirmed' : 'owner' }
      e.bytes += p.bytes
      byPeer.set(k, e)
    }
  }
  const peers = [...byPeer].map(([key, e]) => ({ key, bytes: e.bytes, state: e.bytes >= stored ? ('whole' as const) : ('partly' as const), as: e.as })).sort((a, b) => b.bytes - a.bytes || (a.key < b.key ? -1 : 1))
  return {
    volume: vol.record.name,
    path: st.path,
    files: files.length,
    logicalBytes: logical,
    objects: all.size,
    storedBytes: stored,
    unknownObjects: unknown,
    copiesWanted: node.placement.copies(),
    copies: copies === Infinity ? 0 : copies,
    here,
    peers
  }
}

/** Locates objects (address hex) in the own store and in the stores this node reads from. */
async function place(node: Node, addresses: string[]): Promise<Map<string, Placed | null>> {
  const out = new Map<string, Placed | null>()
  const own = node.chunks.casKey
  const safe = node.safety.safePacks(own)
  const packs = node.store.get({ key: own })
  const cores = new Map<string, Awaited<ReturnType<typeof openCore>>>()
  try {
    await packs.ready()
    const rest: Buffer[] = []
    for (const hex of addresses) {
      const a = Buffer.from(hex, 'hex')
      const loc = await node.chunks.locate(a)
      if (!loc) {
        rest.push(a)
        continue
      }
      out.set(hex, { bytes: loc.length, own: true, here: await packs.has(loc.pack), safe: loc.pack < safe, peers: node.placement.holders(loc.pack) })
    }
    // Objects of other nodes' stores: their owners hold them (the index says so); here if our copy holds the pack.
    const lookup = node.remoteStores as unknown as SourceLookup
    const owners = new Map(node.remoteStores.stores().map((s) => [s.cas.toString('hex'), s.owner]))
    for (const a of rest) {
      const hex = a.toString('hex')
      const found = lookup.packsOf ? await lookup.packsOf([a]) : new Map<string, Set<number>>()
      let placed: Placed | null = null
      for (const [packsHex, set] of found) {
        const pack = [...set][0]!
        let core = cores.get(packsHex)
        if (!core) cores.set(packsHex, (core = await openCore(node, packsHex)))
        const block = await node.remoteStores.localBlock(a)
        const owner = owners.get(packsHex)
        placed ??= { bytes: block?.length ?? 0, own: false, here: false, safe: false, peers: [] }
        if (core && (await core.has(pack))) placed.here = true
        if (block) placed.bytes = block.length
        if (owner && !placed.peers.includes(owner)) placed.peers.push(owner)
      }
      out.set(hex, placed)
    }
  } finally {
    await packs.close().catch(() => {})
    for (const c of cores.values()) await c?.close().catch(() => {})
  }
  return out
}

async function openCore(node: Node, packsHex: string): Promise<{ has(i: number): Promise<boolean>; close(): Promise<void> } | null> {
  const core = node.store.get({ key: Buffer.from(packsHex, 'hex') })
  try {
    await core.ready()
    return core
  } catch {
    return null
  }
}

/** Node-wide: bytes of the own store not yet held by enough confirmed peers (packs [safe, length)). */
export async function notYetSafe(node: Node): Promise<{ packs: number; bytes: number; safePacks: number; totalPacks: number; copies: number; confirmations: { node: string; packs: number }[] }> {
  const own = node.chunks.casKey
  const safe = node.safety.safePacks(own)
  const index = node.store.get({ key: node.chunks.indexKey })
  try {
    await index.ready()
    let bytes = 0
    for (let i = safe; i < index.length; i++) bytes += await packBytes(node, index, i)
    return { packs: Math.max(0, index.length - safe), bytes, safePacks: safe, totalPacks: index.length, copies: node.placement.copies(), confirmations: node.placement.confirmations().map((c) => ({ node: c.node, packs: c.packs })) }
  } finally {
    await index.close().catch(() => {})
  }
}

const packSizes = new Map<string, number>()

/** A pack's length in bytes, from its index block (cached: packs never change). */
async function packBytes(node: Node, index: { get(i: number, o: { wait: boolean }): Promise<unknown> }, i: number): Promise<number> {
  const k = `${encodeKey(node.chunks.indexKey)}:${i}`
  const known = packSizes.get(k)
  if (known !== undefined) return known
  const block = (await index.get(i, { wait: false })) as Buffer | null
  if (!block) return 0
  const n = packLength(decodeIndexBlock(block).entries)
  packSizes.set(k, n)
  return n
}
