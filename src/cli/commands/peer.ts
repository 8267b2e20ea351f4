// peer add|list|remove|location set|storage allow|deny|volume allow|deny: who this node
// talks to and what each peer may see. The registry is DATA/peers.json; inside a running
// server the network picks changes up at once (refresh), otherwise at its next start.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { PeerStatus } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { parseHostPort, formatHostPort } from '../../net/config.js'
import { serverNetwork } from '../server-network.js'

abstract class PeerCommand extends BazilCommand {
  protected dir(): DataDir {
    return this.context.server?.dir ?? this.openDataDir()
  }

  protected peerKey(text: string, dir: DataDir): Buffer {
    let key: Buffer
    try {
      key = decodeKey(text, 'peer key')
    } catch (err) {
      throw new UserError((err as Error).message)
    }
    if (key.equals(dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key: give the other node's key (\`bazil debug pubkey\` there)`)
    return key
  }

  protected update<T>(dir: DataDir, fn: (r: PeerRegistry) => T): T {
    const result = PeerRegistry.update(dir.root, fn)
    serverNetwork(this.context.server)?.refresh()
    return result
  }
}

export class PeerAddCommand extends PeerCommand {
  static override paths = [['peer', 'add']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Add a peer by its public key',
    details: 'This adds its firewall entry: it may see nothing until allowed (`bazil peer volume allow`, `bazil peer storage allow`).',
    examples: [['Add a peer (its key: `bazil debug pubkey` there)', 'bazil peer add KEY']]
  })
  key = Option.String({ required: true })

  async run(): Promise<void> {
    const dir = this.dir()
    const key = this.peerKey(this.key, dir)
    const added = this.update(dir, (r) => r.add(key))
    this.out(added ? `added peer ${encodeKey(key)}` : `peer ${encodeKey(key)} was already added`)
  }
}

export class PeerRemoveCommand extends PeerCommand {
  static override paths = [['peer', 'remove']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Remove a peer',
    details: 'It is disconnected and refused from now on.'
  })
  key = Option.String({ required: true })

  async run(): Promise<void> {
    const dir = this.dir()
    const key = this.peerKey(this.key, dir)
    const volumes = PeerRegistry.load(dir.root).get(key)?.volumes ?? []
    // A peer keeping this node's store is told to stop (spec/protocol.md RELEASE) while it is still connected.
    const net = serverNetwork(this.context.server)
    let released: string | null = null
    if (net) await this.withNode(async (node) => {
      if (!node.placement.confirmationOf(encodeKey(key))) return
      node.placement.forgetPeer(key)
      released = await net.releaseStore(key)
    })
    this.update(dir, (r) => r.remove(key))
    this.out(`removed peer ${encodeKey(key)}`)
    // Its writer logs of the volumes it was allowed: revoked (spec/oplog.md "Admission and revocation").
    const names = dir.listVolumes().filter((v) => volumes.includes(v.id)).map((v) => v.name)
    await this.withNode(async (node) => {
      for (const n of names) this.out(await node.revokeWriter(n, key))
      // What it confirmed keeping no longer counts toward the copy rule (spec/protocol.md "Keeping a peer's store").
      if (node.placement.forgetPeer(key) || released !== null) this.out(`its confirmations of holding this node's content no longer count`)
    })
    if (released !== null) this.out(released)
  }
}

export class PeerListCommand extends PeerCommand {
  static override paths = [['peer', 'list']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'List peers and whether each is connected',
    details: 'For each peer: what it may see, and (with a running server) whether it is connected.'
  })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const dir = this.dir()
    const net = serverNetwork(this.context.server)
    const live = new Map<string, PeerStatus>((net?.peers() ?? []).map((p) => [p.key, p]))
    const names = new Map(dir.listVolumes().map((v) => [v.id, v.name]))
    const rows = PeerRegistry.load(dir.root)
      .list()
      .map((r) => {
        const status = live.get(r.key)
        return {
          key: r.key,
          location: r.location,
          storage: r.storage,
          volumes: r.volumes.map((id) => names.get(id) ?? id),
          connected: net ? (status?.connected ?? false) : null,
          lastSeen: status?.lastSeen ?? r.lastSeen
        }
      })
    if (this.asJson) {
      this.json(rows.map((r) => ({ ...r, lastSeen: r.lastSeen === null ? null : new Date(r.lastSeen).toISOString() })))
      return
    }
    if (rows.length === 0) this.out('no peers: add one with `bazil peer add KEY`')
    for (const r of rows) {
      const state = r.connected === null ? 'server not running' : r.connected ? 'connected' : 'not connected'
      const seen = r.lastSeen === null ? 'never seen' : `last seen ${new Date(r.lastSeen).toISOString()}`
      const parts = [r.key, state, seen]
      if (r.location) parts.push(`location=${r.location}`)
      parts.push(`storage=${r.storage ? 'allowed' : 'denied'}`)
      parts.push(`volumes=${r.volumes.length ? r.volumes.join(',') : '(none)'}`)
      this.out(parts.join('\t'))
    }
  }
}

export class PeerLocationSetCommand extends PeerCommand {
  static override paths = [['peer', 'location', 'set']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: "Set a peer's address (no DHT lookup)",
    details: 'Connect to a peer at HOST:PORT (its DHT UDP port) directly, without a DHT lookup.',
    examples: [['Reach a peer on the LAN', 'bazil peer location set KEY 192.168.1.20:49737']]
  })
  key = Option.String({ required: true })
  location = Option.String({ required: true })

  async run(): Promise<void> {
    const dir = this.dir()
    const key = this.peerKey(this.key, dir)
    const location = formatHostPort(parseHostPort(this.location, 'location'))
    this.update(dir, (r) => r.setLocation(key, location))
    this.out(`peer ${encodeKey(key)} is at ${location}`)
  }
}

abstract class AllowDeny extends PeerCommand {
  action = Option.String({ required: true })

  protected allowed(): boolean {
    if (this.action === 'allow') return true
    if (this.action === 'deny') return false
    throw new UserError(`expected "allow" or "deny", got "${this.action}"`)
  }
}

export class PeerStorageCommand extends AllowDeny {
  static override paths = [['peer', 'storage']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Allow or deny a peer reading this store',
    details: "ACTION is allow or deny; STORE is `local`, this node's content store. A peer reads only ciphertext: names and content need the sharing key.",
    examples: [['Let a peer read the local store', 'bazil peer storage allow KEY local']]
  })
  key = Option.String({ required: true })
  store = Option.String({ required: true })

  async run(): Promise<void> {
    const allow = this.allowed()
    const dir = this.dir()
    const key = this.peerKey(this.key, dir)
    if (this.store !== 'local') throw new UserError(`unknown store "${this.store}": this node has one store, "local"`)
    this.update(dir, (r) => r.setStorage(key, allow))
    this.out(`peer ${encodeKey(key)} ${allow ? 'may now read' : 'may no longer read'} the local store`)
  }
}

export class PeerVolumeCommand extends AllowDeny {
  static override paths = [['peer', 'volume']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Allow or deny a peer replicating a volume',
    details: "ACTION is allow or deny. An allowed peer replicates the volume's logs and may become a writer of it (`bazil volume connect` there); denying revokes its writer logs.",
    examples: [['Share a volume with a peer', 'bazil peer volume allow KEY myfiles']]
  })
  key = Option.String({ required: true })
  volume = Option.String({ required: true })

  async run(): Promise<void> {
    const allow = this.allowed()
    const dir = this.dir()
    const key = this.peerKey(this.key, dir)
    const vol = dir.volumeEntry(this.volume) // storage-only volumes are shared like any other
    const changed = this.update(dir, (r) => r.setVolume(key, vol.id, allow))
    const what = allow ? 'may replicate' : 'may no longer replicate'
    this.out(`peer ${encodeKey(key)} ${what} volume "${vol.name}"${changed ? '' : ' (unchanged)'}`)
    // Deny: its writer logs of the volume are revoked; allow: a log of it seen already is admitted now.
    await this.withNode(async (node) => {
      if (!allow) this.out(await node.revokeWriter(vol.name, key))
      else {
        const line = await node.admitWriter(vol.name, key)
        if (line) this.out(line)
      }
    })
  }
}
