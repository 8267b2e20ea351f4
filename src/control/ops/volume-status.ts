// What `status` says per volume: each peer it is shared with and how far apart the two nodes
// are, log by log (from hypercore's per-peer state: what the peer last announced), the
// conflicts, the pins. Read-only, and a volume that cannot be read says why instead of failing
// the whole status.
import type { Hypercore } from 'hypercore'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { VolumeEntry } from '../../datadir.js'
import type { Node } from '../../node.js'
import type { MountInfo } from '../../server/handle.js'
import { PeerRegistry } from '../../net/peers.js'
import { corePosition } from '../../net/catch-up.js'
import { readPins } from '../../pins/pins-file.js'
import type { PeerInfo, VolumePeerStatus, VolumeStatus } from '../requests.js'

/** A volume's writer logs: key (hex), core, a revoked writer's last entry, and whether it is this node's own. */
interface LogOf {
  hex: string
  core: Hypercore
  last: number | null
  mine: boolean
}

async function logsOf(node: Node, rec: VolumeEntry): Promise<{ logs: LogOf[]; conflicts: number | null }> {
  if (rec.storageOnly) {
    const held = await node.heldVolume(rec.name)
    const logs: LogOf[] = []
    for (const w of held.writers()) {
      const core = held.core(w)
      const hex = w.toString('hex')
      if (core) logs.push({ hex, core, last: held.writerSet.writers.get(hex)?.limit ?? null, mine: false })
    }
    return { logs, conflicts: null }
  }
  const vol = await node.volume(rec.name)
  const own = vol.log.key.toString('hex')
  const logs = [...vol.writers].map(([hex, w]) => ({ hex, core: w.core, last: vol.writerSet.writers.get(hex)?.limit ?? null, mine: hex === own }))
  return { logs, conflicts: vol.tree.conflicts().length + vol.tree.attrConflicts().length }
}

export async function volumeStatus(node: Node, peers: PeerInfo[], mounts: MountInfo[], inServer: boolean): Promise<VolumeStatus[]> {
  const registry = PeerRegistry.load(node.dir.root)
  const pins = readPins(node.dir.paths.pins)
  const pinStates = inServer ? node.pins.list() : []
  const out: VolumeStatus[] = []
  for (const rec of node.dir.listVolumes()) {
    const mine = pins.filter((p) => p.volume === rec.id)
    const states = pinStates.filter((s) => s.pin.volume === rec.id)
    const sum = (f: (s: (typeof states)[number]) => number): number | null => (inServer ? states.reduce((n, s) => n + f(s), 0) : null)
    const row: VolumeStatus = {
      name: rec.name,
      id: rec.id,
      ...(rec.storageOnly ? { storageOnly: true as const } : {}),
      mounts: mounts.filter((m) => m.volume === rec.name).map((m) => m.mountpoint),
      writers: 0,
      entries: 0,
      conflicts: null,
      peers: [],
      pins: { count: mine.length, files: sum((s) => s.files), bytes: sum((s) => s.bytes), heldBytes: sum((s) => s.heldBytes) }
    }
    out.push(row)
    try {
      const { logs, conflicts } = await logsOf(node, rec)
      row.writers = logs.length
      row.entries = logs.reduce((n, l) => n + Math.max(0, l.core.contiguousLength - 1), 0)
      row.conflicts = conflicts
      for (const r of registry.list()) {
        if (!r.volumes.includes(rec.id)) continue
        const key = decodeKey(r.key, 'peer key')
        const p: VolumePeerStatus = { key: r.key, connected: peers.find((x) => x.key === r.key)?.connected ?? false, behind: 0, ahead: 0, writers: [] }
        for (const l of logs) {
          const pos = corePosition(l.core, key, l.last)
          p.writers.push({ log: encodeKey(Buffer.from(l.hex, 'hex')), mine: l.mine, ...pos })
          p.behind += pos.behind
          p.ahead += pos.ahead
        }
        row.peers.push(p)
      }
    } catch (err) {
      row.problem = (err as Error).message.split('\n')[0]
    }
  }
  return out
}
