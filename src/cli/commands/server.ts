// server run, status, volume mount|unmount: the long-running side of bazil.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import type { PeerInfo, StatusResult } from '../../control/requests.js'
import { formatBytes } from '../../format-bytes.js'
import { clock } from '../progress.js'

export class ServerRunCommand extends BazilCommand {
  static override paths = [['server', 'run']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.server,
    description: 'Run the server in the foreground',
    details: 'The server owns the data dir, its mounts and the control socket, and keeps volumes in sync with peers; other commands ask it when it runs. It logs to stderr; SIGINT or SIGTERM stop it cleanly.',
    examples: [
      ['Run it', 'bazil server run'],
      ['Without the public DHT (peers by `bazil peer location set`)', 'bazil server run --bootstrap=none'],
      ['With the web view on this machine (then open `bazil web url`)', 'bazil server run --web=127.0.0.1:8080']
    ]
  })
  logLevel = Option.String('--log-level', 'info', { description: 'debug, info, warn or error' })
  bootstrap = Option.String('--bootstrap', {
    description: 'DHT bootstrap nodes HOST:PORT[,...] (default: config.json, else the public DHT); `none`: no DHT, direct connections only'
  })

  web = Option.String('--web', {
    description: 'serve the local web view on HOST:PORT, e.g. 127.0.0.1:8080 (off by default; an address other machines can reach is served with a warning); `bazil web url` prints its address with the token'
  })

  async run(): Promise<number> {
    // Loaded here: `bazil status` and the mounts, in this module too, answer without them.
    const [{ createLogger, parseLevel }, { parseBootstrap }, { parseWebAddress }, { DataDir }] = await Promise.all([import('../../log.js'), import('../../net/config.js'), import('../../web/address.js'), import('../../datadir.js')])
    const log = createLogger(parseLevel(this.logLevel), this.context.stderr)
    const web = this.web === undefined ? undefined : parseWebAddress(this.web)
    const bootstrap = this.bootstrap === undefined ? undefined : this.bootstrap === 'none' ? [] : parseBootstrap(this.bootstrap)
    const dir = DataDir.open(this.dataDirPath)
    const { Server, runUntilSignalled, untilSignalled } = await import('../../server/server.js')
    // Catch SIGINT/SIGTERM from here on: a test (or a user) may signal as soon as the
    // control socket is announced, before start() has returned.
    const signalled = untilSignalled()
    const server = await Server.start(dir, {
      log,
      bootstrap,
      web
    })
    await runUntilSignalled(server, signalled)
    return 0
  }
}

export class StatusCommand extends BazilCommand {
  static override paths = [['status']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.server,
    description: 'Show the server, its volumes and mounts',
    details: 'Whether the server runs, and its volumes and mounts.',
    examples: [
      ['Show the status', 'bazil status'],
      ['Then watch changes arrive', 'bazil status --watch']
    ]
  })
  asJson = Option.Boolean('--json', false)

  watch = Option.Boolean('--watch', false, { description: 'Then print one line per change applied from other writers (with --json: one object per line), until interrupted (needs the server)' })

  async run(): Promise<void> {
    const status = await this.call('status', {})
    if (this.asJson && this.watch) this.out(JSON.stringify(status))
    else if (this.asJson) this.json(status)
    else this.print(status)
    if (!this.watch) return
    // On a terminal the status is drawn again after each change (the last changes under it);
    // elsewhere one line per change, for logs and scripts.
    const redraw = !this.asJson && (this.context.stdout as { isTTY?: boolean }).isTTY === true
    const recent: string[] = []
    let drawing = Promise.resolve()
    await this.call('watch', { peers: true }, {
      onEvent: (e) => {
        if (this.asJson) return this.out(JSON.stringify(e))
        if (e.message_type !== 'change' && e.message_type !== 'peer') return
        const f: Record<string, unknown> = e
        const line = e.message_type === 'peer'
          ? `${String(f.time)} peer ${String(f.peer)} ${f.connected ? 'connected' : 'went away'}`
          : `${String(f.time)} volume "${String(f.volume)}": ${String(f.entries)} entries applied from other writers`
        if (!redraw) return this.out(line)
        recent.push(line)
        if (recent.length > 5) recent.shift()
        drawing = drawing.then(async () => {
          const now = await this.call('status', {})
          this.context.stdout.write('\x1b[H\x1b[2J')
          this.print(now)
          for (const l of recent) this.out(l)
        }).catch(() => {})
      }
    })
  }

  private print(status: StatusResult): void {
    const safety = status.notYetSafe
    const s = status.server
    this.out(s.running ? `server: running, version ${s.version}, pid ${s.pid}, up ${clock(s.uptimeSeconds)} (since ${s.since})` : 'server: not running (start it with `bazil server run`)')
    this.out(`data dir: ${status.dataDir}`)
    if (status.volumes.length === 0) this.out('volumes: (none)')
    const shared = new Set<string>()
    for (const v of status.volumeStatus) {
      const facts = [
        v.storageOnly ? 'storage-only' : '',
        `${v.writers} writer log${v.writers === 1 ? '' : 's'}, ${v.entries} entries`,
        v.conflicts ? `${v.conflicts} conflict${v.conflicts === 1 ? '' : 's'} (\`bazil volume conflicts ${v.name}\`)` : '',
        v.pins.count ? `${v.pins.count} pin${v.pins.count === 1 ? '' : 's'}${v.pins.bytes !== null ? ` (${formatBytes(v.pins.heldBytes ?? 0)} of ${formatBytes(v.pins.bytes)} held)` : ''}` : ''
      ].filter(Boolean)
      this.out(`volume ${v.name}: ${facts.join(', ')}${v.problem ? ` (cannot read it: ${v.problem})` : ''}`)
      for (const m of v.mounts) this.out(`  mounted at ${m}`)
      for (const p of v.peers) {
        shared.add(p.key)
        this.out(`  peer ${p.key}: ${describePeer(status.peers.find((x) => x.key === p.key))}; ${p.behind === 0 && p.ahead === 0 ? (p.connected ? 'in sync' : 'in sync as last known') : [p.behind ? `${p.behind} entries to fetch` : '', p.ahead ? `${p.ahead} to send` : ''].filter(Boolean).join(', ')}`)
      }
    }
    for (const m of status.mounts) if (!status.volumeStatus.some((v) => v.name === m.volume)) this.out(`mount: ${m.volume} on ${m.mountpoint}`)
    for (const p of status.peers) if (!shared.has(p.key)) this.out(`peer ${p.key}: ${describePeer(p)}`)
    const t = status.transfer
    const moving = [t.fetchBytes ? `${formatBytes(t.fetchBytes)} pinned to fetch` : '', t.pushBytes ? `${formatBytes(t.pushBytes)} to push` : ''].filter(Boolean)
    if (moving.length) this.out(`transfer: ${moving.join(', ')}`)
    if (safety) this.out(`not yet safe: ${(safety.bytes / 1048576).toFixed(1)} MiB in ${safety.packs} of ${safety.totalPacks} packs written here (held by fewer than ${safety.copies} confirmed peer${safety.copies === 1 ? '' : 's'})`)
    const c = status.cache
    if (c) this.out(`cache: ${formatBytes(c.heldBytes)} held (${formatBytes(c.cachedBytes)} cached, ${formatBytes(c.pinnedBytes)} pinned), budget ${c.budget} = ${formatBytes(c.budgetBytes)}`)
  }
}

/** A peer's connection in a few words: since when, where, how; or when it was last seen. */
function describePeer(p: PeerInfo | undefined): string {
  if (!p) return 'not connected'
  if (!p.connected) return `not connected${p.lastSeen ? `, last seen ${new Date(p.lastSeen).toISOString()}` : ''}`
  const how = [p.address, p.relayed === true ? 'relayed' : p.relayed === false ? 'direct' : '', p.direction].filter(Boolean).join(', ')
  return `connected${p.since ? ` since ${p.since}` : ''}${how ? ` (${how})` : ''}`
}

export class VolumeMountCommand extends BazilCommand {
  static override paths = [['volume', 'mount']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Mount a volume (needs the server)',
    details: 'On an existing empty directory; mounting it again on the same path says it is mounted.',
    examples: [['Mount a volume', 'bazil volume mount notes ~/notes']]
  })
  volume = Option.String({ required: true })
  mountpoint = Option.String({ required: true })
  allowOther = Option.Boolean('--allow-other', false, {
    description: 'let every user of this machine in, the kernel checking modes and owners (FUSE allow_other; not as root: needs user_allow_other in /etc/fuse.conf)'
  })

  atime = Option.Boolean('--atime', false, {
    description: 'record when files are read (relatime: at most once a day per file unless it changed; each is a logged op that replicates). Default: reads write nothing (noatime)'
  })

  async run(): Promise<void> {
    const r = await this.call('volume.mount', { volume: this.volume, mountpoint: this.resolvePath(this.mountpoint), ...(this.allowOther ? { allowOther: true } : {}), ...(this.atime ? { atime: true } : {}) })
    const notes = [r.allowOther ? 'every user may enter' : '', r.atime ? 'reads record atime' : ''].filter(Boolean)
    const how = notes.length ? ` (${notes.join('; ')})` : ''
    this.out(r.already ? `volume "${r.volume}" is already mounted at ${r.mountpoint}${how}` : `mounted volume "${r.volume}" at ${r.mountpoint}${how}`)
  }
}

export class VolumeUnmountCommand extends BazilCommand {
  static override paths = [['volume', 'unmount']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.volumes,
    description: 'Unmount a mounted volume',
    details: 'Open files are committed first. Needs the server.',
    examples: [['Unmount it', 'bazil volume unmount ~/notes']]
  })
  mountpoint = Option.String({ required: true })

  async run(): Promise<void> {
    const r = await this.call('volume.unmount', { mountpoint: this.resolvePath(this.mountpoint) })
    this.out(`unmounted ${r.mountpoint}`)
  }
}
