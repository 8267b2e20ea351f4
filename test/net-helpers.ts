// Peers for network tests: real data dirs, corestores and PeerNetworks in one process, on
// a DHT testnet bound to 127.0.0.1 (never the public DHT).
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { randomBytes } from '../src/crypto.js'
import { PeerNetwork, PeerRegistry, type HostPort, type NetHost } from '../src/net/index.js'
import type { Log } from '../src/log.js'
import Corestore from 'corestore'
import Hypercore, { type Hypercore as Core } from 'hypercore'
import DHT, { type SecretStream } from 'hyperdht'
import type Protomux from 'protomux'
import c from 'compact-encoding'
import { generateKeyPair } from '../src/crypto.js'
import { CHANNEL_PROTOCOL, decodeMessage, encodeMessage, type Message } from '../src/net/protocol.js'

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
  /** The node's side of the network (default: the Node itself). */
  host?: (node: Node, net: () => PeerNetwork) => NetHost
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
    let net: PeerNetwork | null = null
    const host = opts.host?.(node, () => net!)
    net = new PeerNetwork({ node, log: makeLog(name, lines), bootstrap: opts.bootstrap, firewalled: opts.firewalled, retryMs: 1000, host })
    const started = net
    node.onWritersChanged = (id) => started.writersChanged(id) // as the server wires it
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

/**
 * A registered peer that misbehaves: its own corestore and hyperdht node, a direct connection
 * to a peer's DHT socket, bazil's channel (any message, valid or not) and hypercore
 * replication on which it can attach any core it knows the key of (a thief's replicate()).
 */
export interface Rogue {
  key: Buffer
  identity: { publicKey: Buffer; secretKey: Buffer }
  store: Corestore
  /** `handshake`: bytes of bazil's channel handshake (default none, as the first v1 nodes). */
  connect(to: TestPeer, opts?: { handshake?: Buffer }): Promise<RogueLink>
  close(): Promise<void>
}

export interface RogueLink {
  conn: SecretStream
  mux: Protomux
  /** Messages the peer sent us, decoded (undecodable ones as errors). */
  received: Message[]
  send(m: Message | Buffer): void
  /** Opens `key` in the rogue's store and asks the peer for it on this connection (a thief's replicate). */
  steal(key: Buffer): Promise<Core>
  closed: Promise<void>
  close(): Promise<void>
}

export async function startRogue(base: string, name: string, identity = generateKeyPair(), store?: Corestore): Promise<Rogue> {
  const own = store ?? new Corestore(path.join(base, `${name}-rogue-store`))
  await own.ready()
  const dht = new DHT({ bootstrap: [], firewalled: false, host: '127.0.0.1' })
  const links: RogueLink[] = []
  const opened: Core[] = []
  return {
    key: identity.publicKey,
    identity,
    store: own,
    async connect(to: TestPeer, opts: { handshake?: Buffer } = {}): Promise<RogueLink> {
      const port = Number(to.location().split(':')[1])
      const conn = dht.connect(to.key, { keyPair: identity, relayAddresses: [{ host: '127.0.0.1', port }] })
      conn.on('error', () => {})
      const closed = new Promise<void>((r) => conn.once('close', () => r()))
      await new Promise<void>((resolve, reject) => {
        conn.once('open', () => resolve())
        conn.once('close', () => reject(new Error(`${name} could not connect to ${to.name}`)))
      })
      // No ondiscoverykey hook: a core is attached only by steal().
      Hypercore.createProtocolStream(conn, { ondiscoverykey: () => {} })
      const mux = Hypercore.getProtocolMuxer(conn) as Protomux
      const received: Message[] = []
      const channel = mux.createChannel({ protocol: CHANNEL_PROTOCOL, ...(opts.handshake ? { handshake: c.raw } : {}) })
      if (!channel) throw new Error('no bazil channel')
      const msg = channel.addMessage<Buffer>({
        encoding: c.raw,
        onmessage: (buf: Buffer) => {
          try {
            received.push(decodeMessage(buf))
          } catch {
            // the node under test sent something we can't read: the test will notice via received
          }
        }
      })
      channel.open(opts.handshake)
      const link: RogueLink = {
        conn,
        mux,
        received,
        send: (m) => msg.send(Buffer.isBuffer(m) ? m : encodeMessage(m)),
        async steal(key: Buffer): Promise<Core> {
          const core = own.get({ key })
          await core.ready()
          opened.push(core)
          ;(core as unknown as { replicate(m: unknown): void }).replicate(mux)
          return core
        },
        closed,
        async close() {
          conn.destroy()
          await closed
        }
      }
      links.push(link)
      return link
    },
    async close() {
      for (const l of links) await l.close().catch(() => {})
      for (const core of opened) await core.close().catch(() => {})
      await dht.destroy().catch(() => {})
      if (!store) await own.close().catch(() => {})
    }
  }
}

/** Blocks of `core` held locally (what a thief got), without waiting for more. */
export async function heldBlocks(core: Core): Promise<number> {
  let n = 0
  for (let i = 0; i < core.length; i++) if (await core.has(i)) n++
  return n
}
