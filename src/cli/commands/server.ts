// server run, status, volume mount|unmount: the long-running side of bazil.
import { Option } from 'clipanion'
import { BazilCommand, type Where } from '../base.js'
import { createLogger, parseLevel } from '../../log.js'
import { parseBootstrap } from '../../net/config.js'
import { serverNetwork } from '../server-network.js'

export class ServerRunCommand extends BazilCommand {
  static override paths = [['server', 'run']]
  static override where: Where = 'local'
  static override usage = BazilCommand.Usage({
    description: 'Run the server in the foreground: owns the data dir, its mounts and the control socket; logs to stderr; SIGINT/SIGTERM stop it cleanly'
  })
  logLevel = Option.String('--log-level', 'info', { description: 'debug, info, warn or error' })
  bootstrap = Option.String('--bootstrap', {
    description: 'DHT bootstrap nodes HOST:PORT[,...] (default: config.json, else the public DHT); `none`: no DHT, direct connections only'
  })

  async run(): Promise<number> {
    const log = createLogger(parseLevel(this.logLevel), this.context.stderr)
    const { buildCli } = await import('../main.js') // the server runs the same commands the CLI does
    const { loadCommands } = await import('../command-table.js')
    const commands = await loadCommands()
    const bootstrap = this.bootstrap === undefined ? undefined : this.bootstrap === 'none' ? [] : parseBootstrap(this.bootstrap)
    const dir = this.openDataDir()
    const { Server, emptyStdin, runUntilSignalled, untilSignalled } = await import('../../server/server.js')
    // Catch SIGINT/SIGTERM from here on: a test (or a user) may signal as soon as the
    // control socket is announced, before start() has returned.
    const signalled = untilSignalled()
    const server = await Server.start(dir, {
      log,
      bootstrap,
      run: (argv, ctx) =>
        buildCli(commands).run(argv, { ...ctx, stdin: emptyStdin(), env: process.env, argv, dataDir: dir.root, colorDepth: 1 })
    })
    await runUntilSignalled(server, signalled)
    return 0
  }
}

export class StatusCommand extends BazilCommand {
  static override paths = [['status']]
  static override usage = BazilCommand.Usage({ description: 'Show whether the server runs, and its volumes and mounts' })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const server = this.context.server
    const dir = server?.dir ?? this.openDataDir()
    const volumes = dir.listVolumes().map((v) => v.name)
    // Content written here not yet held by enough confirmed storage peers (src/placement/where.ts).
    const { notYetSafe } = await import('../../placement/where.js')
    const safety = await this.withNode((node) => notYetSafe(node)).catch(() => null)
    const status = {
      dataDir: dir.root,
      server: server ? { running: true, pid: server.pid, since: new Date(server.startedAt).toISOString() } : { running: false },
      volumes,
      mounts: server ? server.mounts() : [],
      peers: serverNetwork(server)?.peers() ?? [],
      notYetSafe: safety
    }
    if (this.asJson) return this.json(status)
    this.out(`data dir: ${status.dataDir}`)
    this.out(server ? `server: running (pid ${server.pid}, since ${status.server.since})` : 'server: not running (start it with `bazil server run`)')
    this.out(`volumes: ${volumes.length ? volumes.join(', ') : '(none)'}`)
    for (const m of status.mounts) this.out(`mount: ${m.volume} on ${m.mountpoint}`)
    if (safety) this.out(`not yet safe: ${(safety.bytes / 1048576).toFixed(1)} MiB in ${safety.packs} of ${safety.totalPacks} packs written here (held by fewer than ${safety.copies} confirmed peer${safety.copies === 1 ? '' : 's'})`)
    for (const p of status.peers) this.out(`peer: ${p.key} ${p.connected ? 'connected' : 'not connected'}${p.lastSeen ? `, last seen ${new Date(p.lastSeen).toISOString()}` : ''}`)
  }
}

export class VolumeMountCommand extends BazilCommand {
  static override paths = [['volume', 'mount']]
  static override where: Where = 'server'
  static override usage = BazilCommand.Usage({ description: 'Mount a volume on an existing empty directory (needs the server)' })
  volume = Option.String({ required: true })
  mountpoint = Option.String({ required: true })
  allowOther = Option.Boolean('--allow-other', false, {
    description: 'let every user of this machine in, the kernel checking modes and owners (FUSE allow_other; not as root: needs user_allow_other in /etc/fuse.conf)'
  })

  async run(): Promise<void> {
    const server = this.context.server
    if (!server) return
    await server.mount(this.volume, this.resolvePath(this.mountpoint), { allowOther: this.allowOther })
    this.out(`mounted volume "${this.volume}" at ${this.resolvePath(this.mountpoint)}${this.allowOther ? ' (every user may enter)' : ''}`)
  }
}

export class VolumeUnmountCommand extends BazilCommand {
  static override paths = [['volume', 'unmount']]
  static override where: Where = 'server'
  static override usage = BazilCommand.Usage({ description: 'Unmount a mounted volume, committing open files first (needs the server)' })
  mountpoint = Option.String({ required: true })

  async run(): Promise<void> {
    const server = this.context.server
    if (!server) return
    await server.unmount(this.resolvePath(this.mountpoint))
    this.out(`unmounted ${this.resolvePath(this.mountpoint)}`)
  }
}
