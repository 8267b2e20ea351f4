// Several `bazil server run` peers on this host, driven through the CLI as a user would: data
// dirs made with `bazil create`, a DHT testnet on loopback (never the public DHT), config
// no config.json (defaults, as a user's), one shared sharing key, FUSE mounts. Servers can be stopped and
// started again (SIGTERM; the mount goes with the server and comes back at its next start).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import { bazil, runInProcess, startServer, tempDir, type RunResult, type ServerProcess } from './helpers.js'

export const hasFuse = fs.existsSync('/dev/fuse')

export function isMounted(mp: string): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mp)
}

/** A shell in a child process: this process must never touch a mount its child serves synchronously. */
export function sh(script: string, timeoutMs = 20_000): Promise<{ code: number; out: string; ms: number }> {
  const t0 = Date.now()
  return new Promise((resolve) => {
    execFile('sh', ['-c', script], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr, ms: Date.now() - t0 })
    )
  })
}

export function ok<R extends Pick<RunResult, 'code' | 'stderr' | 'stdout'>>(r: R, what: string, log = ''): R {
  assert.equal(r.code, 0, `${what}: ${r.stderr}\n${log}`)
  return r
}

export async function eventually(what: string, fn: () => Promise<boolean>, ms = 15_000, stepMs = 100): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, stepMs))
  }
}

export interface Peer {
  name: string
  /** Its data dir. */
  data: string
  /** Its mount point (a directory that exists). */
  mnt: string
  /** Its node key, z-base-32. */
  key: string
  server: ServerProcess | null
  /** The logs of its servers that stopped, oldest first. */
  pastLogs: string[]
  /** Everything its servers logged, every run, oldest first. */
  log(): string
}

export interface ClusterOptions {
  /** The sharing key every peer gets (name `friends`); default: fixed test bytes. */
  secret?: Buffer
  /** Environment for the servers (and CLI runs), e.g. BAZIL_REMOTE_TIMEOUT_MS. */
  env?: Record<string, string>
  /** More `bazil server run` flags for every peer's server (e.g. `--web=127.0.0.1:0`). */
  serverArgs?: string[]
}

export class PeerCluster {
  readonly peers = new Map<string, Peer>()
  private readonly savedEnv = new Map<string, string | undefined>()

  private constructor(
    readonly dir: string,
    private readonly cleanupDir: () => void,
    private readonly testnet: { bootstrap: { host: string; port: number }[]; destroy(): Promise<void> },
    private readonly serverArgs: string[] = []
  ) {}

  /** Data dirs (`bazil create`, sharing key `friends`, no config.json) and a testnet; no server runs yet. */
  static async create(names: string[], opts: ClusterOptions = {}): Promise<PeerCluster> {
    const { dir, cleanup } = tempDir('bazil-peers-')
    const testnet = await createTestnet(4, { host: '127.0.0.1' }) // a bootstrapper and 3 DHT nodes, as `bazil dht run` starts
    const c = new PeerCluster(dir, cleanup, testnet, opts.serverArgs)
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      c.savedEnv.set(k, process.env[k])
      process.env[k] = v
    }
    const secret = opts.secret ?? Buffer.from('0123456789abcdef0123456789abcdef')
    // Every peer's setup runs to its end before a failure tears the cluster down: Promise.all
    // would reject at the first failure while the other `bazil create`s still write into the
    // directory, and the teardown's rmSync then failed with ENOTEMPTY instead of the real error.
    const setups = await Promise.allSettled(names.map(async (name) => {
      const data = path.join(dir, name)
      const mnt = path.join(dir, `${name}-mnt`)
      fs.mkdirSync(mnt)
      const created = ok(await bazil(data, ['create']), `create ${name}`)
      const key = /node public key: (\S+)/.exec(created.stdout)?.[1]
      assert.ok(key, `create ${name} printed no key: ${created.stdout}`)
      ok(await bazil(data, ['sharing', 'add', 'friends'], secret), `sharing add on ${name}`)
      const peer: Peer = {
        name, data, mnt, key, server: null, pastLogs: [],
        log: () => [...peer.pastLogs, ...(peer.server ? [peer.server.log()] : [])].join(`\n---- ${name} restarted ----\n`)
      }
      c.peers.set(name, peer)
    }))
    const failed = setups.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) {
      await c.close()
      throw failed.reason
    }
    return c
  }

  get(name: string): Peer {
    const p = this.peers.get(name)
    if (!p) throw new Error(`no peer ${name}`)
    return p
  }

  /** Every peer's server log, for assertion messages. */
  logs(): string {
    return [...this.peers.values()].map((p) => `==== ${p.name} ====\n${p.log()}`).join('\n')
  }

  /**
   * `bazil ARGS` on that peer, which must exit 0. While its server runs the command is
   * forwarded to the server over the control socket from this process (runInProcess: the
   * same client code as the binary's, without a node start per command); otherwise it is
   * the real binary.
   */
  async run(name: string, args: string[], input?: Buffer | string): Promise<RunResult> {
    const t0 = Date.now()
    const p = this.get(name)
    const r: RunResult = p.server && input === undefined
      ? await runInProcess(p.data, args).then((x) => ({ ...x, stdoutBuf: Buffer.from(x.stdout) }))
      : await bazil(p.data, args, input)
    if (process.env.BAZIL_PEERS_DEBUG) process.stderr.write(`[${name}] bazil ${args.join(' ')}: exit ${r.code} in ${Date.now() - t0} ms\n`)
    return ok(r, `${name}: bazil ${args.join(' ')}`, this.logs())
  }

  /** Starts the named peers' servers (at once), each on the testnet. */
  async start(...names: string[]): Promise<void> {
    const port = this.testnet.bootstrap[0]!.port
    await Promise.all(names.map(async (name) => {
      const p = this.get(name)
      if (p.server) return
      p.server = await startServer(p.data, [`--bootstrap=127.0.0.1:${port}`, ...this.serverArgs])
    }))
  }

  /** Stops the named peers' servers with SIGTERM (their mounts go away) and waits for exit 0. */
  async stop(...names: string[]): Promise<void> {
    await Promise.all(names.map(async (name) => {
      const p = this.get(name)
      if (!p.server) return
      const s = p.server
      const code = await s.stop('SIGTERM')
      p.pastLogs.push(s.log())
      p.server = null
      assert.equal(code, 0, `${name}'s server exited ${code}:\n${s.log()}`)
      assert.ok(!isMounted(p.mnt), `${name}'s mount is still there after its server stopped`)
    }))
  }

  /**
   * Makes `to` a replica and writer of `from`'s volume, as the walkthrough does: mutual
   * `peer add` and `peer storage allow`, `peer volume allow` on `from`, `volume connect` on
   * `to`, and `volume storage add` both ways. Both servers must run.
   */
  async connect(from: string, to: string, volume: string): Promise<void> {
    const f = this.get(from)
    const t = this.get(to)
    await Promise.all([
      (async () => {
        await this.run(from, ['peer', 'add', t.key])
        await Promise.all([this.run(from, ['peer', 'storage', 'allow', t.key, 'local']), this.run(from, ['peer', 'volume', 'allow', t.key, volume])])
      })(),
      (async () => {
        await this.run(to, ['peer', 'add', f.key])
        await this.run(to, ['peer', 'storage', 'allow', f.key, 'local'])
      })()
    ])
    await this.run(to, ['volume', 'connect', '--sharing=friends', f.key, volume])
    await Promise.all([
      this.run(to, ['volume', 'storage', 'add', volume, `peerkey:${f.key}`]),
      this.run(from, ['volume', 'storage', 'add', volume, `peerkey:${t.key}`])
    ])
  }

  /**
   * As connect(), but only `reader` reads from `owner`'s store (`volume storage add` on the
   * reader alone): the owner does not store to the reader (that would make the reader keep a
   * full replica of the owner's store for its copy rule): the reader's copy is a cache.
   */
  async readFrom(reader: string, owner: string, volume: string): Promise<void> {
    const o = this.get(owner)
    const r = this.get(reader)
    await this.run(owner, ['peer', 'add', r.key])
    await this.run(owner, ['peer', 'storage', 'allow', r.key, 'local'])
    await this.run(owner, ['peer', 'volume', 'allow', r.key, volume])
    await this.run(reader, ['peer', 'add', o.key])
    await this.run(reader, ['peer', 'storage', 'allow', o.key, 'local'])
    await this.run(reader, ['volume', 'connect', '--sharing=friends', o.key, volume])
    await this.run(reader, ['volume', 'storage', 'add', volume, `peerkey:${o.key}`])
  }

  /**
   * Starts the named peers, creates `volume` (sharing key `friends`) on the first, makes every
   * other one a replica and writer of it (connect()) and mounts it on all of them.
   */
  async shareMounted(volume: string, first: string, ...others: string[]): Promise<void> {
    await this.start(first, ...others)
    await this.run(first, ['volume', 'create', '--sharing=friends', volume])
    for (const o of others) await this.connect(first, o, volume)
    await this.mount(volume, first, ...others)
  }

  /** `volume mount VOLUME MNT` on each named peer (the server remounts it at every later start). */
  async mount(volume: string, ...names: string[]): Promise<void> {
    await Promise.all(names.map((n) => this.run(n, ['volume', 'mount', volume, this.get(n).mnt])))
  }

  /** Stops every server, lazily unmounts what is left, destroys the testnet, removes the dirs. */
  async close(): Promise<void> {
    await Promise.all([...this.peers.values()].map(async (p) => {
      if (p.server) await p.server.stop('SIGTERM').catch(() => null)
      p.server = null
    }))
    for (const p of this.peers.values()) if (isMounted(p.mnt)) await sh(`fusermount -uz "${p.mnt}"`)
    await this.testnet.destroy().catch(() => {})
    for (const [k, v] of this.savedEnv) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    this.cleanupDir()
  }
}

/**
 * A mounted tree, canonically: one line per entry, sorted by path, `d PATH` for directories,
 * `f PATH SIZE SHA256` for files, `l PATH -> TARGET` for symlinks (`.snap` left out). Read in
 * a child shell, so content on demand is fetched as any reader's would be.
 */
export async function mountTree(mnt: string): Promise<{ code: number; lines: string[]; out: string }> {
  const script = `cd "${mnt}" && find . -path ./.snap -prune -o -mindepth 1 -print | LC_ALL=C sort | while IFS= read -r p; do
  p=\${p#./}
  if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")"
  elif [ -d "$p" ]; then echo "d $p"
  elif [ -p "$p" ]; then echo "p $p"
  elif [ -S "$p" ]; then echo "s $p"
  elif [ -c "$p" ] || [ -b "$p" ]; then echo "$(stat -c %A "$p" | cut -c1) $p $((0x$(stat -c %t "$p"))),$((0x$(stat -c %T "$p")))"
  else s=$(stat -c %s "$p") && h=$(sha256sum < "$p") && echo "f $p $s \${h%% *}" || echo "ERROR $p"; fi
done`
  const r = await sh(script, 30_000)
  const lines = r.out.split('\n').filter((l) => l !== '')
  return { code: r.code, lines, out: r.out }
}
