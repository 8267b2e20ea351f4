// The control API's `volume.sync`: bring this node up to date with a peer and the peer with
// this node, and say what this node now holds that it did not hold when the op started,
// whoever delivered it (live replication often delivers before or during the command).
import { UserError, type DataDir } from '../../datadir.js'
import { decodeKey, encodeKey } from '../../crypto.js'
import type { Node } from '../../node.js'
import type { HeldVolume } from '../../net/closet.js'
import type { PeerNetwork } from '../../net/index.js'
import { PeerRegistry } from '../../net/peers.js'
import { POLL_MS, catchUp, corePosition, peerCatchUp, peerOf, sleep } from '../../net/catch-up.js'
import type { Hypercore } from 'hypercore'
import type { Volume } from '../../volume/volume.js'
import type { OpContext, OpFn } from '../context.js'
import type { SyncResult } from '../requests.js'
import { OpProgress, type ProgressCounts } from '../progress.js'

export const DEFAULT_SYNC_TIMEOUT_MS = 30_000

/** A peer key the user gave (z-base-32 or hex, `peerkey:` optional), known to this node and not its own. */
export function knownPeer(text: string, dir: DataDir): Buffer {
  let key: Buffer
  try {
    key = decodeKey(text.startsWith('peerkey:') ? text.slice('peerkey:'.length) : text, 'peer key')
  } catch (err) {
    throw new UserError((err as Error).message)
  }
  if (key.equals(dir.publicKey)) throw new UserError(`${encodeKey(key)} is this node's own key: give the other node's key`)
  if (!PeerRegistry.load(dir.root).has(key)) throw new UserError(`unknown peer ${encodeKey(key)}: add it with \`bazil peer add ${encodeKey(key)}\``)
  return key
}

export function network(ctx: OpContext): PeerNetwork {
  if (!ctx.server) throw new UserError(`syncing needs a running server: start \`bazil server run\` (data dir ${ctx.dir.root})`)
  if (!ctx.server.net) throw new UserError('the server runs without a peer network')
  return ctx.server.net
}

export async function reach(net: PeerNetwork, key: Buffer, timeoutMs: number): Promise<void> {
  try {
    await net.waitConnected(key, timeoutMs)
  } catch (err) {
    throw new UserError((err as Error).message)
  }
}

export const sync: OpFn<'volume.sync'> = async (ctx, a) => {
  const t0 = Date.now()
  const net = network(ctx)
  const dir = ctx.dir
  const node = await ctx.node()
  const key = knownPeer(a.peer, dir)
  const timeoutMs = a.timeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
  if (timeoutMs <= 0 || timeoutMs > 86_400_000) throw new UserError(`invalid timeout ${timeoutMs} ms: 0 < timeout <= 1 day`)
  const deadline = t0 + timeoutMs
  const rec = dir.volumeEntry(a.volume)
  if (!PeerRegistry.load(dir.root).get(key)?.volumes.includes(rec.id)) {
    throw new UserError(`volume "${rec.name}" is not shared with peer ${encodeKey(key)}: \`bazil peer volume allow ${encodeKey(key)} ${rec.name}\` (or \`bazil volume connect\`)`)
  }
  if (rec.storageOnly) return syncHeld(ctx, net, node, key, await node.heldVolume(rec.name), t0, deadline)
  const vol = await node.volume(a.volume)
  // What this node holds and has applied of the other writers' logs now, before anything moves.
  const before = positions(vol)
  await reach(net, key, timeoutMs)
  await vol.flush() // our pending ops into our log, so the peer can have them
  // Progress: entries to receive and to send, as they move (status events).
  const { gotAll, sent } = await withProgress(ctx, movement(key, incoming(vol), vol.log.core), async () => ({
    gotAll: await receive(net, key, vol, deadline),
    sent: await send(key, vol, deadline)
  }))
  await vol.refresh()
  const after = positions(vol)
  let received = 0
  let entriesApplied = 0
  for (const [w, now] of after) {
    const was = before.get(w) ?? { held: 0, applied: 0 }
    received += Math.max(0, now.held - was.held)
    entriesApplied += Math.max(0, now.applied - was.applied)
  }
  return {
    volume: vol.name,
    peer: encodeKey(key),
    entriesApplied,
    received,
    sent: sent.entries,
    complete: gotAll && sent.complete,
    ms: Date.now() - t0,
    // Where the volume stands.
    writers: vol.writers.size,
    entries: vol.replayState().reduce((n, w) => n + Math.max(0, w.applied - 1), 0)
  }
}

/** A writer log a sync receives: its key (hex), core, and a revoked writer's last entry. */
interface Incoming {
  hex: string
  core: Hypercore
  last: number | null
}

/** The logs of `vol` a sync receives: every writer's but this node's own. */
function incoming(vol: Volume): () => Incoming[] {
  const own = vol.log.key.toString('hex')
  return () => [...vol.writers].filter(([hex]) => hex !== own).map(([hex, log]) => ({ hex, core: log.core, last: vol.writerSet.writers.get(hex)?.limit ?? null }))
}

/**
 * What a sync moves from now on, as progress counts: entries of the logs `logs` gives to
 * receive (up to the peer's lengths) and of this node's log `own` (if any) to send (up to its
 * length), and how many of each have moved since this was called.
 */
function movement(key: Buffer, logs: () => Incoming[], own: Hypercore | null): () => ProgressCounts {
  const start = new Map<string, number>()
  const sentFrom = own ? (corePosition(own, key).peerHeld ?? 0) : 0
  return () => {
    let got = 0, toGet = 0
    for (const l of logs()) {
      const pos = corePosition(l.core, key, l.last)
      // A log that appears while the sync runs starts from what it held when first seen.
      if (!start.has(l.hex)) start.set(l.hex, pos.held)
      const from = start.get(l.hex)!
      const want = Math.max(0, pos.held + pos.behind - from)
      toGet += want
      got += Math.min(want, Math.max(0, pos.held - from))
    }
    const toSend = own ? Math.max(0, own.length - sentFrom) : 0
    const sent = own ? Math.min(toSend, Math.max(0, (corePosition(own, key).peerHeld ?? 0) - sentFrom)) : 0
    return { done: got + sent, total: toGet + toSend, extra: { entries_received: got, entries_to_receive: toGet, entries_sent: sent, entries_to_send: toSend } }
  }
}

/** Status events of `moved` every 100 ms while `work` runs, and where it ended. */
async function withProgress<T>(ctx: OpContext, moved: () => ProgressCounts, work: () => Promise<T>): Promise<T> {
  const progress = new OpProgress((e) => ctx.emit(e), { unit: 'entries' })
  progress.update(moved(), true)
  const ticker = setInterval(() => progress.update(moved()), 100)
  try {
    return await work()
  } finally {
    clearInterval(ticker)
    progress.end(moved())
  }
}

/** Per writer log other than this node's: entries held contiguously and applied (block 0 is the log's header, not an entry). */
function positions(vol: Volume): Map<string, { held: number; applied: number }> {
  const own = vol.log.key.toString('hex')
  const m = new Map<string, { held: number; applied: number }>()
  for (const s of vol.replayState()) if (s.writer !== own) m.set(s.writer, { held: Math.max(0, s.contiguous - 1), applied: Math.max(0, s.applied - 1) })
  return m
}

/** Waits until every writer log the peer offers is held here up to the peer's length; false if the deadline came first. */
async function receive(net: PeerNetwork, key: Buffer, vol: Volume, deadline: number): Promise<boolean> {
  // Only logs of the writer set (a candidate is the network's and the node's business).
  const offered = await net.writersFrom(key, vol.id)
  let complete = true
  for (const w of offered) {
    if (w.equals(vol.log.key)) continue
    const log = await vol.addWriter(w)
    const r = await catchUp(log.core, key, deadline, vol.writerSet.writers.get(w.toString('hex'))?.limit ?? null)
    complete &&= r.complete
  }
  return complete
}

/** Waits until the peer holds this node's log of the volume up to its length. */
async function send(key: Buffer, vol: Volume, deadline: number): Promise<{ entries: number; complete: boolean }> {
  const core = vol.log.core
  const peerHas = (): number | null => peerOf(core, key)?.remoteContiguousLength ?? null
  const done = (): boolean => core.length === 0 || (peerHas() ?? -1) >= core.length
  const before = peerHas() ?? 0
  while (!done() && Date.now() < deadline) await sleep(POLL_MS)
  return { entries: Math.max(0, (peerHas() ?? 0) - before), complete: done() }
}

/**
 * A storage-only volume has no tree to apply: hold every log the peer offers up to its
 * length, the replica of the peer's store (if this node keeps one) up to its length, and
 * wait until the peer holds every log we hold as far as we do.
 */
async function syncHeld(ctx: OpContext, net: PeerNetwork, node: Node, key: Buffer, held: HeldVolume, t0: number, deadline: number): Promise<SyncResult> {
  const before = heldEntries(held)
  await reach(net, key, Math.max(1, deadline - Date.now()))
  // Only logs of the writer set (a candidate is the network's and the node's business).
  const offered = await net.writersFrom(key, held.id)
  const logs = (): Incoming[] => held.writers().flatMap((w) => {
    const core = held.core(w)
    const hex = w.toString('hex')
    return core ? [{ hex, core, last: held.writerSet.writers.get(hex)?.limit ?? null }] : []
  })
  return withProgress(ctx, movement(key, logs, null), () => holdAll(ctx, net, node, key, held, offered, t0, deadline, before))
}

/** Entries held of a storage-only volume's logs (block 0 of each is its header). */
function heldEntries(held: HeldVolume): number {
  return held.writers().reduce((n, w) => n + Math.max(0, (held.core(w)?.contiguousLength ?? 0) - 1), 0)
}

/** syncHeld's work: the offered logs, the peer's store replica, and the peer holding our logs. */
async function holdAll(ctx: OpContext, net: PeerNetwork, node: Node, key: Buffer, held: HeldVolume, offered: Buffer[], t0: number, deadline: number, before: number): Promise<SyncResult> {
  const heldNow = (): number => heldEntries(held)
  let complete = true
  const trace = (what: string): void => ctx.server?.log('debug', `sync ${held.name} with ${encodeKey(key)}: ${what} after ${Date.now() - t0} ms`)
  for (const w of offered) {
    const core = await held.addWriter(w)
    const r = await catchUp(core, key, deadline, held.writerSet.writers.get(w.toString('hex'))?.limit ?? null)
    complete &&= r.complete
  }
  trace(`${offered.length} offered logs held`)
  // The peer's store, if we keep a replica of it (the server starts one right after the peer's hello: give it a moment).
  let blocks = 0
  const startBy = Math.min(deadline, Date.now() + 5000)
  while (!node.mirrors.get(key) && net.remote(key)?.storage && Date.now() < startBy) await sleep(POLL_MS)
  const replica = node.mirrors.get(key)
  if (replica) {
    for (const core of [replica.cas, replica.index]) {
      const r = await catchUp(core, key, deadline)
      blocks += r.blocks
      complete &&= r.complete
    }
    trace('the store replica is up to date')
  }
  // What we hold that the peer replicates from us: wait until it has as much.
  let sent = 0
  for (const w of held.writers()) {
    const core = held.core(w)
    if (!core || core.contiguousLength === 0) continue
    const r = await peerCatchUp(core, key, deadline)
    sent += r.blocks
    complete &&= r.complete
  }
  trace('the peer holds our logs')
  return {
    volume: held.name,
    peer: encodeKey(key),
    storageOnly: true,
    entriesApplied: 0,
    received: Math.max(0, heldNow() - before),
    sent,
    blocks,
    // The replica of the peer's store this node keeps, as it stands (null: none).
    replica: replica ? { blocks: replica.cas.contiguousLength + replica.index.contiguousLength, length: replica.cas.length + replica.index.length } : null,
    complete,
    ms: Date.now() - t0,
    writers: held.writers().length,
    entries: heldNow()
  }
}
