// `bazil server run`: one process owns a data dir (the corestore's lock), its mounts and,
// later, its peers; the CLI reaches it through a control socket (mode 0600) in the data dir.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { type DataDir, UserError } from '../datadir.js'
import { Node } from '../node.js'
import { connect, socketPath } from '../control/frames.js'
import { serveConnection } from './control.js'
import type { MountOpts, ServerHandle, WebView } from './handle.js'
import type { WebAddress } from '../web/address.js'
import type { Log } from '../log.js'
import { MountManager } from './mounts.js'
import { AutoGc, autoGcOptions } from './auto-gc.js'
import { PeerNetwork, readNetConfig, type HostPort } from '../net/index.js'

export interface ServerOptions {
  log: Log
  /** DHT bootstrap nodes (`--bootstrap`); overrides config.json; [] = no DHT, direct connections only. */
  bootstrap?: HostPort[]
  /** `--web`: serve the local web view there (src/web); off when unset. */
  web?: WebAddress
}


export class Server implements ServerHandle {
  readonly pid = process.pid
  readonly startedAt = Date.now()
  private readonly listener: net.Server
  private readonly mountManager: MountManager
  private readonly inflight = new Set<Promise<unknown>>()
  private stopping: Promise<void> | null = null
  /** Aborted at stop: long control ops (a watch) end so the stop need not wait for their clients. */
  private readonly stopSignal = new AbortController()
  /** The peer network (swarm, protocol, replication); peer commands reach it through here. */
  net: PeerNetwork | null = null

  /** The local web view (src/web), when started with `--web`. */
  web: WebView | null = null

  /** Automatic garbage collection (src/server/auto-gc.ts), unless BAZIL_GC_INTERVAL=off. */
  autoGc: AutoGc | null = null

  private constructor(
    readonly dir: DataDir,
    readonly node: Node,
    readonly log: Log
  ) {
    this.mountManager = new MountManager(node, log)
    this.listener = net.createServer((conn) => this.serve(conn))
  }

  /** Takes the data dir (refusing a second server), restores mounts, listens. */
  static async start(dir: DataDir, opts: ServerOptions): Promise<Server> {
    const sockFile = socketPath(dir.root)
    const existing = await connect(dir.root)
    if (existing) {
      existing.destroy()
      throw new UserError(`a bazil server is already running on ${dir.root}${pidNote(dir)}: use it, or stop it first`)
    }
    let node: Node
    try {
      node = await Node.open(dir, { log: opts.log })
    } catch (err) {
      if (err instanceof UserError && /in use/.test(err.message)) {
        throw new UserError(`the data dir ${dir.root} is in use by another bazil process${pidNote(dir)}: stop it first`)
      }
      throw err
    }
    const server = new Server(dir, node, opts.log)
    try {
      fs.writeFileSync(dir.paths.serverPid, `${process.pid}\n`)
      await server.mountManager.restore()
      await server.startNetwork(opts.bootstrap)
      fs.rmSync(sockFile, { force: true }) // a stale socket of a crashed server: nobody answered on it above
      await server.listen(sockFile)
      if (opts.web) {
        // Loaded only when asked for: a server without --web loads no HTTP code.
        const { startWeb } = await import('../web/server.js')
        server.web = await startWeb(server, opts.web, opts.log)
      }
    } catch (err) {
      await server.stop()
      throw err
    }
    const gc = autoGcOptions(process.env)
    if (gc) {
      server.autoGc = new AutoGc(node, opts.log, gc)
      server.autoGc.start()
    }
    opts.log('info', `bazil server for ${dir.root} listening on ${sockFile} (pid ${process.pid})`)
    return server
  }

  /** Joins the swarm; the network talks to the node through its NetHost (src/net/host.ts). */
  private async startNetwork(bootstrap: HostPort[] | undefined): Promise<void> {
    const cfg = readNetConfig(this.dir.root)
    this.node.remoteStores.log = this.log
    this.node.cache.log = this.log
    this.node.pins.log = this.log
    const net = new PeerNetwork({ node: this.node, log: this.log, bootstrap: bootstrap ?? cfg.bootstrap, firewalled: cfg.firewalled, port: cfg.port })
    // A volume's writer set changed (a log admitted or revoked): the network recomputes access.
    this.node.onWritersChanged = (id) => net.writersChanged(id)
    await net.start()
    this.net = net
    // Pinned paths: fetched in the background and kept (src/pins/pin-keeper.ts).
    this.node.pins.start()
  }

  private listen(sockFile: string): Promise<void> {
    // The socket is created with the process umask: make it 0600 from its first moment.
    const old = process.umask(0o177)
    return new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject)
      this.listener.listen(sockFile, () => {
        this.listener.off('error', reject)
        resolve()
      })
    }).finally(() => process.umask(old))
  }

  mount(volume: string, mountpoint: string, opts?: MountOpts): Promise<void> {
    return this.mountManager.mount(volume, mountpoint, opts)
  }

  unmount(mountpoint: string): Promise<void> {
    return this.mountManager.unmount(mountpoint)
  }

  mounts() {
    return this.mountManager.list()
  }

  /** One connection = one request (src/server/control.ts); a stop waits for those running. */
  private serve(conn: net.Socket): void {
    const job = serveConnection(conn, { server: this, log: this.log, stopping: this.stopSignal.signal })
    this.inflight.add(job)
    void job.finally(() => this.inflight.delete(job))
  }

  /** Stops accepting commands, lets running ones finish, commits and unmounts, closes the store. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.shutdown()
    return this.stopping
  }

  private async shutdown(): Promise<void> {
    this.log('info', 'shutting down')
    await new Promise<void>((resolve) => this.listener.close(() => resolve()))
    await this.web?.close().catch((err: Error) => this.log('error', `stopping the web view: ${err.message}`))
    this.stopSignal.abort()
    await Promise.allSettled([...this.inflight])
    await this.autoGc?.stop()
    await this.mountManager.closeAll()
    if (this.net) await this.net.stop().catch((err: Error) => this.log('error', `stopping the network: ${err.message}`))
    await this.node.close()
    fs.rmSync(socketPath(this.dir.root), { force: true })
    fs.rmSync(this.dir.paths.serverPid, { force: true })
    this.log('info', 'stopped')
  }
}

function pidNote(dir: DataDir): string {
  try {
    const pid = fs.readFileSync(dir.paths.serverPid, 'utf8').trim()
    return pid ? ` (pid ${pid})` : ''
  } catch {
    return ''
  }
}

/** Resolves at the first SIGINT or SIGTERM (with its name), for foreground processes. */
export function untilSignalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(sig)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

/**
 * Runs the server until `signalled` (from untilSignalled(), taken before the server
 * started, so a signal that arrives while it starts is not fatal), then stops it cleanly.
 */
export async function runUntilSignalled(server: Server, signalled: Promise<NodeJS.Signals>): Promise<void> {
  server.log('info', `received ${await signalled}`)
  await server.stop()
}
