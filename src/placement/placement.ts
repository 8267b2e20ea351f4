// Where this node's own content is safe: the copy rule (`bazil volume copies`, replicated with
// each volume: spec/tree.md `placement.copies`) and the confirmations storage peers sent that
// they keep this node's store (spec/protocol.md, KEEP and HOLDS), persisted in
// DATA/holdings.json (spec/datadir.md) so that safety survives restarts. Content written here
// may leave this node's disk only through SafetyOracle: the packs held elsewhere often enough.
import fs from 'node:fs'
import { replaceFileSync } from '../atomic-file.js'
import { UserError } from '../datadir.js'
import { decodeKey, encodeKey } from '../crypto.js'

/** Which packs of a store are held by at least `copies` peers that confirmed holding them. */
export interface SafetyOracle {
  /**
   * Packs [0, n) of the store whose `packs` core has this key are held by >= copies confirmed
   * peers (a confirmation covers a prefix of the packs, so safety is a prefix too). 0 for a
   * store this node knows no confirmations of.
   */
  safePacks(storeKey: Buffer): number
}

/** Nothing is safe elsewhere (before confirmations are known). */
export const NOTHING_SAFE: SafetyOracle = { safePacks: () => 0 }

/** Copies a volume asks for when no rule was set: one peer besides this node. */
export const DEFAULT_COPIES = 1
export const HOLDINGS_VERSION = 1

/** A peer's word that it keeps packs [0, packs) of this node's store (and their index blocks). */
export interface Confirmation {
  /** The peer, z-base-32. */
  node: string
  packs: number
  /** When it was received, ms. */
  at: number
}

/** A volume's copy rule as this node knows it. */
export interface VolumeRule {
  id: string
  copies: number | null
}

/**
 * The confirmations received for the own store and the copy rules of the node's volumes.
 * The rule for the own store is the largest of the volumes' rules (the store is shared by
 * every volume and a pack does not say which volume wrote it). Rules of volumes not open now
 * are the last ones seen (kept in the file), so a restart never lowers the rule.
 */
export class Placement implements SafetyOracle {
  private store: string
  private readonly confirmed = new Map<string, Confirmation>()
  private readonly rules = new Map<string, number | null>()

  constructor(
    private readonly file: string,
    private readonly ownStore: Buffer,
    /** The rules of the volumes open now (read at every question: a rule replicated from a peer counts at once). */
    private readonly openRules: () => VolumeRule[] = () => []
  ) {
    this.store = encodeKey(ownStore)
    this.read()
  }

  private read(): void {
    let text: string
    try {
      text = fs.readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    const bad = (why: string): UserError => new UserError(`${this.file} is damaged (${why}): fix or remove it (this node then waits for its storage peers to confirm again)`)
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      throw bad('not valid JSON')
    }
    const o = raw as { version?: unknown; store?: unknown; confirmations?: unknown; copies?: unknown }
    if (typeof o !== 'object' || o === null) throw bad('not an object')
    if (o.version !== HOLDINGS_VERSION) throw new UserError(`${this.file}: version ${String(o.version)} is not supported (this bazil reads version ${HOLDINGS_VERSION})`)
    if (typeof o.store !== 'string' || !Array.isArray(o.confirmations) || typeof o.copies !== 'object' || o.copies === null || Array.isArray(o.copies)) throw bad('missing fields')
    for (const [id, n] of Object.entries(o.copies as Record<string, unknown>)) {
      if (!/^[0-9a-f]{64}$/.test(id) || !(n === null || (Number.isInteger(n) && (n as number) >= 1))) throw bad(`bad copy rule of volume ${id}`)
      this.rules.set(id, n as number | null)
    }
    // Confirmations of another store (this node's store was replaced) say nothing about this one.
    if (o.store !== this.store) return
    for (const c of o.confirmations as unknown[]) {
      const r = c as Record<string, unknown>
      if (typeof r !== 'object' || r === null || typeof r.node !== 'string' || !Number.isSafeInteger(r.packs) || (r.packs as number) < 0 || typeof r.at !== 'number') throw bad('a confirmation is not {node, packs, at}')
      try {
        decodeKey(r.node)
      } catch {
        throw bad(`bad node key "${r.node}"`)
      }
      if (this.confirmed.has(r.node)) throw bad(`node ${r.node} listed twice`)
      this.confirmed.set(r.node, { node: r.node, packs: r.packs as number, at: r.at })
    }
  }

  private write(): void {
    const confirmations = [...this.confirmed.values()].sort((a, b) => (a.node < b.node ? -1 : 1))
    const copies = Object.fromEntries([...this.rules.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
    replaceFileSync(this.file, JSON.stringify({ version: HOLDINGS_VERSION, store: this.store, confirmations, copies }, null, 2) + '\n', { mode: 0o600 })
  }

  /** The copies the own store must have elsewhere: the largest rule of the node's volumes (DEFAULT_COPIES when none is set). */
  copies(): number {
    let changed = false
    for (const r of this.openRules()) {
      if (this.rules.get(r.id) !== r.copies || !this.rules.has(r.id)) {
        this.rules.set(r.id, r.copies)
        changed = true
      }
    }
    if (changed) this.write()
    let n = DEFAULT_COPIES
    for (const c of this.rules.values()) if (c !== null && c > n) n = c
    return n
  }

  /** Forgets the rule of a volume no longer on this node. */
  forgetVolume(id: string): void {
    if (this.rules.delete(id)) this.write()
  }

  /**
   * Records a peer's HOLDS: it keeps packs [0, packs) of the store whose packs core is
   * `storeKey`. Only the own store's count; a smaller count than before replaces it (the peer
   * says what it holds now). Returns whether anything changed.
   */
  confirm(peer: Buffer, storeKey: Buffer, packs: number): boolean {
    if (!storeKey.equals(this.ownStore)) return false
    const node = encodeKey(peer)
    const old = this.confirmed.get(node)
    if (old && old.packs === packs) return false
    this.confirmed.set(node, { node, packs, at: Date.now() })
    this.write()
    this.onConfirmed?.()
    return true
  }

  /** Called after a confirmation changed (the node evicts what became safe: own-eviction.ts). Must not throw. */
  onConfirmed: (() => void) | null = null

  /** Forgets a peer's confirmation (`peer remove`: content only it holds is not reachable any more). */
  forgetPeer(peer: Buffer): boolean {
    if (!this.confirmed.delete(encodeKey(peer))) return false
    this.write()
    return true
  }

  /** Every confirmation of the own store, by peer. */
  confirmations(): Confirmation[] {
    return [...this.confirmed.values()].sort((a, b) => b.packs - a.packs || (a.node < b.node ? -1 : 1))
  }

  /** The peers that confirmed holding pack `pack` of the own store. */
  holders(pack: number): string[] {
    return this.confirmations().filter((c) => c.packs > pack).map((c) => c.node)
  }

  /**
   * The peers whose confirmations count: those this node stores to now (a volume's `storage`
   * list, z-base-32; set by the node). A keeper removed from every list no longer counts (it
   * is about to be told to stop keeping: RELEASE). Null: every confirmation counts.
   */
  storesTo: (() => Set<string>) | null = null

  /** The confirmation of this peer (z-base-32), if any. */
  confirmationOf(node: string): Confirmation | null {
    return this.confirmed.get(node) ?? null
  }

  safePacks(storeKey: Buffer): number {
    if (!storeKey.equals(this.ownStore)) return 0
    const n = this.copies()
    const counted = this.storesTo?.() ?? null
    const lengths = [...this.confirmed.values()].filter((c) => !counted || counted.has(c.node)).map((c) => c.packs).sort((a, b) => b - a)
    return lengths.length >= n ? lengths[n - 1]! : 0
  }
}

/** The peers a data dir's volumes store to: every volume's `storage` list (z-base-32). */
export function storagePeers(dir: { listVolumes(): { storage?: string[] }[] }): Set<string> {
  const out = new Set<string>()
  for (const v of dir.listVolumes()) for (const k of v.storage ?? []) out.add(k)
  return out
}
