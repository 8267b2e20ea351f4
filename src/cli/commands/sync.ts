// volume connect|sync|storage add: volumes shared with peers, and where their content comes
// from. All three need the running server (its network); the registry and volume records
// they write are what the server acts on at its next start too.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'

const DEFAULT_TIMEOUT_S = 30

abstract class PeerVolumeCommand extends BazilCommand {
  timeoutS = Option.String('--timeout', String(DEFAULT_TIMEOUT_S), { description: `Seconds to wait for the peer (default ${DEFAULT_TIMEOUT_S})` })

  protected get timeoutMs(): number {
    const s = Number(this.timeoutS)
    if (!Number.isFinite(s) || s <= 0 || s > 86400) throw new UserError(`invalid --timeout "${this.timeoutS}": give seconds, 0 < N <= 86400`)
    return Math.round(s * 1000)
  }
}

export class VolumeConnectCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'connect']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: "Replicate a peer's volume here",
    details: "Makes a local replica of a peer's volume: this node becomes a writer of it, and the peer may replicate this node's log of it. With --storage-only, hold the volume without its sharing key: keep and serve its (encrypted) logs, and replicas of its peers' stores, never reading a name or a byte of content.",
    examples: [
      ['Replicate the volume "myfiles" a peer allowed us', 'bazil volume connect --sharing=friends KEY myfiles'],
      ['Keep a volume for others on a closet server', 'bazil volume connect --storage-only KEY myfiles']
    ]
  })
  sharing = Option.String('--sharing', { description: 'The local sharing key the volume is encrypted with (default: default)' })
  storageOnly = Option.Boolean('--storage-only', false, { description: 'Hold the ciphertext only: no sharing key, no tree, no writes' })
  asJson = Option.Boolean('--json', false, { description: 'Progress of the first sync as JSON lines (message_type status, then summary)' })
  state = Option.String('--state', { description: 'Start from this state file (`bazil volume state save` on a replica) instead of the state the peer sends: checked against the signed logs, replay if it does not match (for debugging)' })
  replay = Option.Boolean('--replay', false, { description: 'Replay the whole history of the logs instead of starting from the state the peer sends (by default a first sync asks the peer for its state and checks it against the signed logs)' })
  key = Option.String({ required: true })
  volume = Option.String({ required: true })
  localName = Option.String({ required: false })

  async run(): Promise<void> {
    const args = {
      peer: this.key,
      volume: this.volume,
      name: this.localName,
      sharing: this.sharing,
      ...(this.storageOnly ? { storageOnly: true } : {}),
      state: this.state === undefined ? undefined : this.resolvePath(this.state),
      ...(this.replay ? { replay: true } : {}),
      timeoutMs: this.timeoutMs
    }
    const { result: r, view } = await this.callWithProgress('volume.connect', args, this.asJson, (e, v) => {
      // Whether the first sync started from a state: JSON for scripts; a rejected one is said on stderr too.
      if (e.message_type !== 'state') return
      const { message, ...fields } = e
      if (this.asJson) this.out(JSON.stringify(fields))
      if (!this.asJson || fields.adopted !== true) {
        v.end()
        this.context.stderr.write(`${String(message)}\n`)
      }
    })
    if (r.storageOnly) {
      view.finish({ ...r })
      if (!this.asJson) this.out(`holding volume "${r.volume}" from peer ${r.peer} storage-only (${r.writerLogs} writer logs, ciphertext only)`)
      return
    }
    view.finish({ volume: r.volume, peer: r.peer, entries_done: r.entries, entries_total: r.entries, writer_logs: r.writerLogs, complete: r.complete })
    if (!this.asJson) this.out(`connected volume "${r.volume}" from peer ${r.peer} (${r.writerLogs} writer logs, ${r.entries} entries)`)
  }
}

export class VolumeStateSaveCommand extends BazilCommand {
  static override paths = [['volume', 'state', 'save']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Save the state a first sync can start from',
    details: "Writes the volume's directory state (its Automerge shards and how far into each writer log they reach) to a file, for `volume connect --state` on another node: a first sync then skips replaying the history (the file is checked against the signed logs there, so it needs no trust).",
    examples: [['Save the state of "myfiles"', 'bazil volume state save myfiles /tmp/myfiles.state']]
  })
  volume = Option.String({ required: true })
  file = Option.String({ required: true })

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('volume.state.save', { volume: this.volume, file: this.resolvePath(this.file) })
    if (this.asJson) return this.json(r)
    this.out(`saved the state of volume "${r.volume}" to ${r.file}: ${r.shards} shards, ${r.entries} log entries covered, ${r.bytes} bytes`)
  }
}

export class VolumeSyncCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'sync']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.sync,
    description: 'Sync a volume with a peer now',
    details: 'Brings this node up to date with a peer, and the peer with this node, then prints what changed.',
    examples: [['Sync with a peer', 'bazil volume sync myfiles KEY']]
  })
  asJson = Option.Boolean('--json', false, { description: 'Progress as JSON lines (message_type status), then the result as a summary object' })
  volume = Option.String({ required: true })
  key = Option.String({ required: true })

  async run(): Promise<number> {
    const timeoutMs = this.timeoutMs
    const { result: r, view } = await this.callWithProgress('volume.sync', { volume: this.volume, peer: this.key, timeoutMs }, this.asJson)
    view.finish({ ...r })
    if (!this.asJson) {
      const got = r.received === 0 ? 'nothing new since the command started' : r.storageOnly ? `${r.received} new entries` : `${r.received} new entries (${r.entriesApplied} applied)`
      if (r.storageOnly) {
        const kept = r.replica ? `, ${r.replica.blocks} blocks of its store kept` : ''
        this.out(`${got} and ${r.blocks ?? 0} content blocks, sent ${r.sent} entries, in ${r.ms} ms; volume "${r.volume}" (storage-only): ${r.writers} writer logs, ${r.entries} entries held${kept}`)
      } else this.out(`${got}, sent ${r.sent} entries, in ${r.ms} ms; volume "${r.volume}": ${r.writers} writer logs, ${r.entries} entries applied in all`)
      if (!r.complete) this.context.stderr.write(`bazil: sync with ${r.peer} did not finish within ${Math.round(timeoutMs / 1000)} s\n`)
    }
    return r.complete ? 0 : 1
  }
}

export class VolumeStorageAddCommand extends PeerVolumeCommand {
  static override paths = [['volume', 'storage', 'add']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.storage,
    description: "Read missing content from a peer's store",
    details: "Content of the volume this node doesn't hold is read from the peer's store (the peer must allow it: `bazil peer storage allow`), and content written here is stored to it.",
    examples: [['Fetch missing content from a peer', 'bazil volume storage add --sharing=friends myfiles peerkey:KEY']]
  })
  sharing = Option.String('--sharing', { description: "The volume's sharing key (checked against the volume's, if given)" })
  volume = Option.String({ required: true })
  store = Option.String({ required: true })

  asJson = Option.Boolean('--json', false, { description: 'The result as JSON' })

  async run(): Promise<void> {
    const r = await this.call('volume.storage.add', { volume: this.volume, store: this.store, ...(this.sharing !== undefined ? { sharing: this.sharing } : {}) })
    if (this.asJson) return this.json(r)
    const state = {
      'in-use': 'connected: in use now',
      'no-server': 'used once the server runs and the peer is connected',
      'not-offered': 'it does not offer its store to this node yet (`bazil peer storage allow` there)',
      'not-connected': 'not connected: used once it (or a peer holding a replica of its store) is'
    }[r.state]
    this.out(`volume "${r.volume}" ${r.added ? 'now reads' : 'already reads'} missing content from peer ${r.peer} (${state})`)
  }
}
