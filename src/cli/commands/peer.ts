// peer add|list|remove|location set|storage allow|deny|volume allow|deny: who this node
// talks to and what each peer may see. The registry is DATA/peers.json; inside a running
// server the network picks changes up at once (refresh), otherwise at its next start.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'

abstract class PeerCommand extends BazilCommand {
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('peer.add', { key: this.key })
    if (this.asJson) return this.json(r)
    this.out(r.added ? `added peer ${r.key}` : `peer ${r.key} was already added`)
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('peer.remove', { key: this.key })
    if (this.asJson) return this.json(r)
    this.out(`removed peer ${r.key}`)
    for (const line of r.revoked) this.out(line)
    if (r.confirmationsDropped) this.out(`its confirmations of holding this node's content no longer count`)
    if (r.released !== null) this.out(r.released)
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
    const { peers } = await this.call('peer.list', {})
    if (this.asJson) {
      this.json(peers)
      return
    }
    if (peers.length === 0) this.out('no peers: add one with `bazil peer add KEY`')
    for (const r of peers) {
      const state = r.connected === null ? 'server not running' : r.connected ? 'connected' : 'not connected'
      const seen = r.lastSeen === null ? 'never seen' : `last seen ${r.lastSeen}`
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('peer.location.set', { key: this.key, location: this.location })
    if (this.asJson) return this.json(r)
    this.out(`peer ${r.key} is at ${r.location}`)
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('peer.storage', { key: this.key, store: this.store, allow: this.allowed() })
    if (this.asJson) return this.json(r)
    this.out(`peer ${r.key} ${r.allow ? 'may now read' : 'may no longer read'} the local store`)
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

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('peer.volume', { key: this.key, volume: this.volume, allow: this.allowed() })
    if (this.asJson) return this.json(r)
    const what = r.allow ? 'may replicate' : 'may no longer replicate'
    this.out(`peer ${r.key} ${what} volume "${r.volume}"${r.changed ? '' : ' (unchanged)'}`)
    for (const line of r.writers) this.out(line)
  }
}
