// Peers for network tests: real data dirs, corestores and PeerNetworks in one process, on
// a DHT testnet bound to 127.0.0.1 (never the public DHT).
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { randomBytes } from '../src/crypto.js'
import { PeerNetwork, PeerRegistry, type HostPort } from '../src/net/index.js'
import type { Log } from '../src/log.js'

export interface TestPeer {
  name: string
  root: string
  dir: DataDir
  node: Node
  net: PeerNetwork
  lines: string[]
  key: Buffer
  /** host:port of its DHT socket on loopback. */
  location(): string
  restart(): Promise<void>
  stop(): Promise<void>
}

export interface PeerOptions {
  bootstrap: HostPort[]
  firewalled?: boolean
}

function makeLog(name: string, lines: string[]): Log {
  return (level, msg) => {
    lines.push(`${level} ${msg}`)
    if (process.env.BAZIL_NET_DEBUG) process.stderr.write(`[${name}] ${level} ${msg}\n`)
  }
}

export async function startPeer(base: string, name: string, opts: PeerOptions): Promise<TestPeer> {
  const root = path.join(base, name)
  const dir = DataDir.create(root)
  const lines: string[] = []
  const open = async (): Promise<{ node: Node; net: PeerNetwork }> => {
    const node = await Node.open(DataDir.open(root))
    const net = new PeerNetwork({ node, log: makeLog(name, lines), bootstrap: opts.bootstrap, firewalled: opts.firewalled ?? false, retryMs: 1000 })
    await net.start()
    return { node, net }
  }
  let current = await open()
  let running = true
  const peer: TestPeer = {
    name,
    root,
    dir,
    get node() {
      return current.node
    },
    get net() {
      return current.net
    },
    lines,
    key: dir.publicKey,
    location() {
      const addr = current.net.address()
      if (!addr) throw new Error(`${name} has no address`)
      return `127.0.0.1:${addr.port}`
    },
    async restart() {
      if (running) await peer.stop()
      current = await open()
      running = true
    },
    async stop() {
      if (!running) return
      running = false
      await current.net.stop()
      await current.node.close()
    }
  }
  return peer
}

/** Adds `b` to `a`'s registry (optionally with a location and access) and refreshes a's network. */
export async function addPeer(a: TestPeer, b: TestPeer, opts: { location?: string; storage?: boolean; volumes?: string[] } = {}): Promise<void> {
  PeerRegistry.update(a.root, (r) => {
    r.add(b.key)
    if (opts.location) r.setLocation(b.key, opts.location)
    if (opts.storage) r.setStorage(b.key, true)
    for (const v of opts.volumes ?? []) r.setVolume(b.key, v, true)
  })
  a.net.refresh()
  await a.net.settled()
}

/** A sharing key both peers hold, so both can open the volume. */
export function shareKey(peers: TestPeer[], name = 'friends'): void {
  const secret = randomBytes(32)
  for (const p of peers) p.dir.addSharingKey(name, secret)
}

/** Gives `to` a record of `from`'s volume (same id), as `volume connect` will. */
export function copyVolumeRecord(from: TestPeer, to: TestPeer, name: string): void {
  const rec = from.dir.volume(name)
  to.dir.addVolume({ ...rec, created: Date.now() })
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, stepMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, stepMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** What the server will do with a 'writer' event: make the log part of the local volume (downloaded live). */
export function followWriters(peer: TestPeer): void {
  peer.net.on('writer', (volumeId: Buffer, key: Buffer) => {
    const rec = peer.dir.listVolumes().find((v) => v.id === volumeId.toString('hex'))
    if (!rec) return
    peer.node
      .volume(rec.name)
      .then((vol) => vol.addWriter(key))
      .catch((err: Error) => peer.lines.push(`test: addWriter failed: ${err.message}`))
  })
}
