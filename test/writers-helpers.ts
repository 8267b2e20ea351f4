// Helpers for the writer-set tests: data dirs with real corestores in one process, linked by
// hypercore replication streams (no network), and a poll that refreshes volumes.
import path from 'node:path'
import type { Duplex } from 'node:stream'
import { randomBytes } from '../src/crypto.js'
import { DataDir, type VolumeRecord } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { PeerRegistry } from '../src/net/peers.js'
import { tempDir } from './helpers.js'

export const SHARING = randomBytes(32)

export class Nodes {
  private links = new Map<string, Duplex[]>()
  private constructor(readonly root: string, readonly nodes: Node[], readonly cleanup: () => void) {}

  /** `n` data dirs sharing one sharing key (`shared`), no volume yet. */
  static async create(n: number): Promise<Nodes> {
    const { dir, cleanup } = tempDir('bazil-writers-vol-')
    const nodes: Node[] = []
    for (let k = 0; k < n; k++) {
      const data = DataDir.create(path.join(dir, `n${k}`))
      data.addSharingKey('shared', SHARING)
      nodes.push(await Node.open(data))
    }
    return new Nodes(dir, nodes, cleanup)
  }

  /**
   * `n` nodes holding volume `v` (created by node 0, which allows the others), every log a
   * writer of every volume, every pair linked; resolves once all are admitted.
   */
  static async writers(n: number): Promise<{ c: Nodes; vols: Volume[] }> {
    const c = await Nodes.create(n)
    const vols = [await c.nodes[0].createVolume('v', 'shared')]
    const record = c.nodes[0].dir.volume('v')
    for (let k = 1; k < n; k++) c.allow(0, k, record.id)
    for (let k = 1; k < n; k++) vols.push(await c.join(k, record))
    for (const v of vols) for (const o of vols) if (o !== v) await v.addWriter(o.log.key)
    for (let x = 0; x < n; x++) for (let y = x + 1; y < n; y++) c.link(x, y)
    await until('all admitted', vols, () => vols.every((v) => v.canWrite))
    return { c, vols }
  }

  /** Node `k` gets the volume record (the same id) and opens it. */
  async join(k: number, record: VolumeRecord): Promise<Volume> {
    const { storage: _s, ...rest } = record
    this.nodes[k].dir.addVolume({ ...rest, genesis: undefined, roots: undefined } as VolumeRecord)
    return this.nodes[k].volume(record.name)
  }

  /** Lets node `b` write to the volume in node `a`'s registry (what `peer volume allow` does). */
  allow(a: number, b: number, volumeId: string): void {
    PeerRegistry.update(this.nodes[a].dir.root, (r) => {
      r.add(this.nodes[b].dir.publicKey)
      r.setVolume(this.nodes[b].dir.publicKey, volumeId, true)
    })
  }

  link(x: number, y: number): void {
    const key = `${x}-${y}`
    if (this.links.has(key)) return
    const a = this.nodes[x].store.replicate(true)
    const b = this.nodes[y].store.replicate(false)
    a.pipe(b).pipe(a)
    a.on('error', () => {})
    b.on('error', () => {})
    this.links.set(key, [a, b])
  }

  unlink(x: number, y: number): void {
    for (const s of this.links.get(`${x}-${y}`) ?? []) s.destroy()
    this.links.delete(`${x}-${y}`)
  }

  /** Closes node `k` (its links go) and opens its data dir again; links are not restored. */
  async restart(k: number): Promise<Node> {
    for (const key of [...this.links.keys()]) if (key.split('-').map(Number).includes(k)) this.unlink(...(key.split('-').map(Number) as [number, number]))
    await this.nodes[k].close()
    this.nodes[k] = await Node.open(DataDir.open(this.nodes[k].dir.root))
    return this.nodes[k]
  }

  async close(): Promise<void> {
    for (const k of [...this.links.keys()]) this.unlink(...(k.split('-').map(Number) as [number, number]))
    for (const n of this.nodes) await n.close().catch(() => {})
    this.cleanup()
  }
}

/** Refreshes the volumes until `cond` holds (the generous limit is for a loaded CI machine: a rebuild took over 15 s once at load 15). */
export async function until(what: string, vols: Volume[], cond: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    await Promise.all(vols.map((v) => v.refresh()))
    if (cond()) return
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

