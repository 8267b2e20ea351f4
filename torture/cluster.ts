// Peers for the sync-cut section: data dirs made with `bazil create`, a DHT testnet bound to
// 127.0.0.1 (never the public DHT), real servers (torture/cut-server.js: `bazil server run`
// plus a hook that drops its connections on SIGUSR2) with FUSE mounts, driven through the
// CLI. A server can be stopped (SIGTERM), killed (SIGKILL), paused (SIGSTOP/SIGCONT), have
// its connections cut, and started again.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import createTestnet from '@hyperswarm/testnet'
import { bazil, runInProcess, type RunResult } from '../test/helpers.js'
import { isMounted, sh } from '../test/peer-setup.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const cutServer = path.join(here, 'cut-server.js')

export interface TorturePeer {
  name: string
  data: string
  mnt: string
  key: string
  proc: ChildProcess | null
  paused: boolean
  /** Every server run's output, oldest first. */
  logs: string[]
  /** Exits nobody asked for: `exit CODE/SIGNAL` with the log tail. */
  crashes: string[]
}

export class Cluster {
  readonly peers: TorturePeer[] = []
  private constructor(
    readonly dir: string,
    private readonly testnet: { bootstrap: { host: string; port: number }[]; destroy(): Promise<void> }
  ) {}

  static async create(dir: string, names: string[], env: Record<string, string> = {}): Promise<Cluster> {
    fs.mkdirSync(dir, { recursive: true })
    for (const [k, v] of Object.entries(env)) process.env[k] = v
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const c = new Cluster(dir, testnet)
    const secret = Buffer.from('0123456789abcdef0123456789abcdef')
    try {
      for (const name of names) {
        const data = path.join(dir, name)
        const mnt = path.join(dir, `${name}-mnt`)
        fs.mkdirSync(mnt)
        const created = must(await bazil(data, ['create']), `create ${name}`)
        const key = /node public key: (\S+)/.exec(created.stdout)?.[1]
        if (!key) throw new Error(`create ${name} printed no key: ${created.stdout}`)
        fs.writeFileSync(path.join(data, 'config.json'), JSON.stringify({ firewalled: false }))
        must(await bazil(data, ['sharing', 'add', 'friends'], secret), `sharing add on ${name}`)
        c.peers.push({ name, data, mnt, key, proc: null, paused: false, logs: [], crashes: [] })
      }
    } catch (err) {
      await c.close()
      throw err
    }
    return c
  }

  get(name: string): TorturePeer {
    const p = this.peers.find((x) => x.name === name)
    if (!p) throw new Error(`no peer ${name}`)
    return p
  }

  running(): TorturePeer[] {
    return this.peers.filter((p) => p.proc !== null && !p.paused)
  }

  /** `bazil ARGS` on a peer, through its server when it runs; must exit 0. */
  async run(name: string, args: string[], input?: Buffer): Promise<RunResult> {
    const p = this.get(name)
    const r: RunResult = p.proc && input === undefined
      ? await runInProcess(p.data, args).then((x) => ({ ...x, stdoutBuf: Buffer.from(x.stdout) }))
      : await bazil(p.data, args, input)
    return must(r, `${name}: bazil ${args.join(' ')}`)
  }

  /** Starts a peer's server and waits for its control socket (its mount comes back by itself). */
  async start(name: string): Promise<void> {
    const p = this.get(name)
    if (p.proc) return
    // An edit that raced the server's exit may have written into the bare mount point, which
    // FUSE then refuses to mount over ("mountpoint is not empty"): a harness artifact, cleared.
    if (!isMounted(p.mnt)) {
      for (const e of fs.readdirSync(p.mnt)) fs.rmSync(path.join(p.mnt, e), { recursive: true, force: true })
    }
    const port = this.testnet.bootstrap[0]!.port
    const child = spawn(process.execPath, [cutServer, `--data-dir=${p.data}`, 'server', 'run', '--log-level=debug', `--bootstrap=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BAZIL_DATA_DIR: '' }
    })
    const idx = p.logs.push('') - 1
    const append = (d: Buffer): void => {
      p.logs[idx] += d.toString()
    }
    child.stdout!.on('data', append)
    child.stderr!.on('data', append)
    ;(child as ChildProcess & { expectedExit?: boolean }).expectedExit = false
    child.on('exit', (code, signal) => {
      if (!(child as ChildProcess & { expectedExit?: boolean }).expectedExit) p.crashes.push(`${p.name}'s server exited by itself (code ${code}, signal ${signal}):\n${p.logs[idx]!.slice(-3000)}`)
      if (p.proc === child) p.proc = null
    })
    p.proc = child
    p.paused = false
    const deadline = Date.now() + 30_000
    while (!/listening on .*control\.sock/.test(p.logs[idx]!)) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        ;(child as ChildProcess & { expectedExit?: boolean }).expectedExit = true
        child.kill('SIGKILL')
        p.proc = null
        throw new Error(`${name}'s server did not start:\n${p.logs[idx]}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /**
   * Stops a server: SIGTERM (must exit 0; its mount goes with it) or SIGKILL (the mount is
   * left dead until the next start clears it).
   */
  async stop(name: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const p = this.get(name)
    const child = p.proc
    if (!child) return
    ;(child as ChildProcess & { expectedExit?: boolean }).expectedExit = true
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve([child.exitCode, child.signalCode])
      else child.on('exit', (code, sig) => resolve([code, sig]))
    })
    if (p.paused) child.kill('SIGCONT')
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    const [code, sig] = await exited
    clearTimeout(timer)
    p.proc = null
    p.paused = false
    if (signal === 'SIGTERM' && code !== 0) p.crashes.push(`${name}'s server exited ${code ?? sig} on SIGTERM:\n${p.logs.at(-1)!.slice(-3000)}`)
  }

  /** Drops every connection the peer's server has now (it reconnects on its own). */
  cut(name: string): void {
    this.get(name).proc?.kill('SIGUSR2')
  }

  /** Freezes a server (SIGSTOP): its peers see a link that went silent. */
  pause(name: string): void {
    const p = this.get(name)
    if (!p.proc || p.paused) return
    p.proc.kill('SIGSTOP')
    p.paused = true
  }

  resume(name: string): void {
    const p = this.get(name)
    if (!p.proc || !p.paused) return
    p.proc.kill('SIGCONT')
    p.paused = false
  }

  /**
   * Makes `to` a replica and writer of `from`'s volume, as the walkthrough does (mutual peer
   * add and storage allow, volume allow, volume connect, storage add both ways).
   */
  async connect(from: string, to: string, volume: string): Promise<void> {
    const f = this.get(from)
    const t = this.get(to)
    await this.run(from, ['peer', 'add', t.key])
    await this.run(from, ['peer', 'storage', 'allow', t.key, 'local'])
    await this.run(from, ['peer', 'volume', 'allow', t.key, volume])
    await this.run(to, ['peer', 'add', f.key])
    await this.run(to, ['peer', 'storage', 'allow', f.key, 'local'])
    await this.run(to, ['volume', 'connect', '--sharing=friends', f.key, volume])
    await this.run(to, ['volume', 'storage', 'add', volume, `peerkey:${f.key}`])
    await this.run(from, ['volume', 'storage', 'add', volume, `peerkey:${t.key}`])
  }

  /** Links two replicas of a volume directly: mutual peer add, storage allow, volume allow and storage add. */
  async link(a: string, b: string, volume: string): Promise<void> {
    const pa = this.get(a)
    const pb = this.get(b)
    for (const [x, y] of [[pa, pb], [pb, pa]] as const) {
      await this.run(x.name, ['peer', 'add', y.key])
      await this.run(x.name, ['peer', 'storage', 'allow', y.key, 'local'])
      await this.run(x.name, ['peer', 'volume', 'allow', y.key, volume])
    }
    await this.run(a, ['volume', 'storage', 'add', volume, `peerkey:${pb.key}`])
    await this.run(b, ['volume', 'storage', 'add', volume, `peerkey:${pa.key}`])
  }

  /** Every server stopped (SIGKILL if it will not stop), mounts gone, testnet down. */
  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => this.stop(p.name, 'SIGTERM').catch(() => {})))
    for (const p of this.peers) if (isMounted(p.mnt)) await sh(`fusermount -uz "${p.mnt}"`)
    await this.testnet.destroy().catch(() => {})
  }

  log(name: string): string {
    return this.get(name).logs.join(`\n---- ${name} restarted ----\n`)
  }
}

function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr.trim()}`)
  return r
}
