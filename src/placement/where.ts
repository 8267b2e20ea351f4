// Where a volume's content lives (`bazil where`, `bazil volume du`, the "not yet safe" figure of
// `bazil status`): the objects files are made of (manifest nodes and chunks), located in the
// own store (written here; held elsewhere by the peers that confirmed it: placement.ts) or in
// the local tables of the stores this node reads from (held by their owners), and whether
// this node holds each one now. The walk is gc's (reachability.ts); a manifest node that is
// neither here nor fetched from a peer within the remote timeout is counted as unknown.
import type { Node } from '../node.js'
import type { Volume } from '../volume/volume.js'
import type { ReadTree } from '../tree/index.js'
import { AddressSet, addReferences, emptyReferences } from '../cas/reachability.js'
import { decodeIndexBlock, packLength } from '../cas/pack-codec.js'
import { encodeKey } from '../crypto.js'
import { PeerRegistry } from '../net/peers.js'
import type { Hypercore } from 'hypercore'

/** An AddressSet that also lists what it holds, in the order added. */
class CollectingSet extends AddressSet {
  readonly list: Buffer[] = []
  override add(address: Buffer): boolean {
    const fresh = super.add(address)
    if (fresh) this.list.push(address)
    return fresh
  }
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
  /** Peers holding it (z-base-32) and why (see PeerHolding.as). */
  peers: { key: string; as: HoldingKind }[]
}

/**
 * owner: its own store indexes the content; confirmed: it confirmed keeping this node's store
 * (HOLDS, counted by the copy rule); copy: a connected peer whose copy holds the pack now (its
 * hypercore bitfield: no promise to keep it, e.g. a cache).
 */
export type HoldingKind = 'owner' | 'confirmed' | 'copy'
const STRENGTH: Record<HoldingKind, number> = { owner: 2, confirmed: 1, copy: 0 }

export interface PeerHolding {
  key: string
  bytes: number
  state: 'whole' | 'partly'
  /** The strongest reason over its objects (HoldingKind). */
  as: HoldingKind
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
  /** Objects no store known here indexes. */
  unknownObjects: number
  /** Manifest nodes neither held here nor fetched from a peer: what they name is not counted. */
  unreadManifests: number
  copiesWanted: number
  /** The fewest peers keeping any object of it (owners and confirmed keepers; 0 if some object is kept by no peer). */
  copies: number
  here: { bytes: number; written: number; cached: number; pinned: number; notSafe: number }
  peers: PeerHolding[]
}

/** The report for the files under `path` of `vol`'s live tree. */
export async function where(node: Node, vol: Volume, path: string, tree: ReadTree = vol.tree): Promise<WhereReport> {
  const st = tree.stat(path)
  // gc's reachability walk (src/cas/reachability.ts), collecting the addresses it adds.
  const all = new CollectingSet()
  const held = async (a: Buffer): Promise<boolean> => (await node.chunks.has(a)) || (await node.chunks.fetchMissing(a).catch(() => null)) !== null
  const refs = await addReferences(vol.cas, [tree], { ...emptyReferences(), addresses: all }, { paths: [st.path], held })
  const files = refs.files
  const logical = refs.logicalBytes
  let unknown = 0
  const placed = await place(node, all.list.map((a) => a.toString('hex')))
  const pinned = await node.pins.pinnedAddresses().catch(() => new Set<string>())
  const here = { bytes: 0, written: 0, cached: 0, pinned: 0, notSafe: 0 }
  const byPeer = new Map<string, { bytes: number; as: HoldingKind }>()
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
    copies = Math.min(copies, p.peers.filter((h) => h.as !== 'copy').length)
    for (const h of p.peers) {
      const e = byPeer.get(h.key) ?? { bytes: 0, as: h.as }
      e.bytes += p.bytes
      if (STRENGTH[h.as] > STRENGTH[e.as]) e.as = h.as
      byPeer.set(h.key, e)
    }
  }
  const peers = [...byPeer].map(([key, e]) => ({ key, bytes: e.bytes, state: e.bytes >= stored ? ('whole' as const) : ('partly' as const), as: e.as })).sort((a, b) => b.bytes - a.bytes || (a.key < b.key ? -1 : 1))
  return {
    volume: vol.record.name,
    path: st.path,
    files,
    logicalBytes: logical,
    objects: all.list.length,
    storedBytes: stored,
    unknownObjects: unknown,
    unreadManifests: refs.missingManifests,
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
  const me = encodeKey(node.dir.publicKey)
  const packs = node.store.get({ key: own })
  const sources = new Map<string, Hypercore>()
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
      const confirmed = node.placement.holders(loc.pack)
      const peers: { key: string; as: HoldingKind }[] = confirmed.map((key) => ({ key, as: 'confirmed' }))
      for (const key of peersWith(packs, loc.pack)) if (!confirmed.includes(key)) peers.push({ key, as: 'copy' })
      out.set(hex, { bytes: loc.length, own: true, here: await packs.has(loc.pack), safe: loc.pack < safe, peers })
    }
    // Objects of other nodes' stores: their owners hold them (their index says so); here if our copy holds the pack.
    const found = await node.remoteStores.locate(rest)
    for (const a of rest) {
      const hex = a.toString('hex')
      const locs = found.get(hex) ?? []
      if (locs.length === 0) {
        out.set(hex, null)
        continue
      }
      const peers: { key: string; as: HoldingKind }[] = []
      const add = (key: string, as: HoldingKind): void => {
        if (key !== me && !peers.some((h) => h.key === key)) peers.push({ key, as })
      }
      for (const l of locs) if (l.owner) add(l.owner, 'owner')
      for (const l of locs) {
        const hexKey = l.packs.toString('hex')
        let core = sources.get(hexKey)
        if (!core) {
          core = node.store.get({ key: l.packs })
          await core.ready()
          sources.set(hexKey, core)
        }
        for (const key of peersWith(core, l.pack)) add(key, 'copy')
      }
      out.set(hex, { bytes: locs[0]!.length, own: false, here: locs.some((l) => l.held), safe: false, peers })
    }
  } finally {
    await packs.close().catch(() => {})
    for (const c of sources.values()) await c.close().catch(() => {})
  }
  return out
}

/** What hypercore keeps per replicating peer of a core (the fields read here: its announced bitfield). */
interface CorePeer {
  remotePublicKey: Uint8Array | null
  remoteContiguousLength: number
  remoteBitfield?: { get(i: number): boolean }
}

/** The connected peers whose copy of `core` holds block `i`, by what they announced (z-base-32). */
function peersWith(core: Hypercore, i: number): string[] {
  const out: string[] = []
  for (const p of core.peers as CorePeer[]) {
    if (!p.remotePublicKey) continue
    if (i < p.remoteContiguousLength || p.remoteBitfield?.get(i) === true) out.push(encodeKey(Buffer.from(p.remotePublicKey)))
  }
  return out
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

/** A peer that keeps (or is asked to keep) this node's store. */
export interface Keeper {
  key: string
  /** Packs of the own store it confirmed holding (HOLDS). */
  confirmedPacks: number
  /** Listed as storage of the volume asked about: this node asks it to keep its store. */
  storesTo: boolean
  /** This node lets it read its store (`peer storage allow`): without it, it cannot keep it. */
  mayRead: boolean
}

/** The volume's storage peers and every peer that confirmed holding the own store. */
export function keepers(node: Node, storage: string[]): Keeper[] {
  const mayRead = new Map(PeerRegistry.load(node.dir.root).list().map((r) => [r.key, r.storage]))
  const confirmed = new Map(node.placement.confirmations().map((c) => [c.node, c.packs]))
  return [...new Set([...storage, ...confirmed.keys()])]
    .map((key) => ({ key, confirmedPacks: confirmed.get(key) ?? 0, storesTo: storage.includes(key), mayRead: mayRead.get(key) ?? false }))
    .sort((a, b) => b.confirmedPacks - a.confirmedPacks || (a.key < b.key ? -1 : 1))
}
