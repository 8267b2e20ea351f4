// The answering side of a state transfer (spec/protocol.md "States"): a peer allowed a volume
// asks for this node's state of it (STATE_GET at offset 0), the node seals its state once
// (NetHost.volumeState: the shard saves and log positions, encrypted under the volume's state
// key, so a storage-only peer learns nothing from it) and answers that request's parts from
// those bytes, in the order asked. Whether the peer may have it is access.ts's decision.
// A few states are kept per link, each for a while after its last request, then dropped.
import type { Log } from '../log.js'
import type { AccessControl } from './access.js'
import type { NetHost } from './host.js'
import type { Link } from './links.js'
import { message } from './links.js'
import { MAX_REASON_BYTES, MAX_STATE_BYTES, STATE_PART_BYTES, type Message, type StateGet } from './protocol.js'

/** States kept per link at once (a newer request drops the oldest). */
const MAX_PER_LINK = 2
/** A state nobody asked a part of for this long is dropped. */
const IDLE_MS = 60_000

interface Served {
  request: number
  bytes: Promise<Buffer | { refused: string }>
  timer: NodeJS.Timeout
}

export class StateServer {
  private readonly byLink = new WeakMap<Link, Served[]>()
  /** Per link: requests answered one after another (a state being sealed does not hold up the link's other messages). */
  private readonly queues = new WeakMap<Link, Promise<void>>()

  constructor(
    private readonly access: AccessControl,
    private readonly host: NetHost,
    private readonly log: Log,
    private readonly send: (link: Link, m: Message) => void
  ) {}

  /** A STATE_GET from the peer: answered in order, never throws. */
  get(link: Link, m: StateGet): void {
    const prev = this.queues.get(link) ?? Promise.resolve()
    const next = prev.then(() => this.answer(link, m)).catch((err) => this.log('error', `net: peer ${link.z}: answering a state request: ${message(err)}`))
    this.queues.set(link, next)
  }

  private async answer(link: Link, m: StateGet): Promise<void> {
    if (link.closed) return
    const list = this.byLink.get(link) ?? []
    this.byLink.set(link, list)
    let served = list.find((s) => s.request === m.request)
    if (m.offset === 0) {
      if (served) this.drop(link, served)
      while (list.length >= MAX_PER_LINK) this.drop(link, list[0]!)
      served = { request: m.request, bytes: this.seal(link, m.volumeId), timer: setTimeout(() => {}, 0) }
      list.push(served)
    }
    if (!served) return this.none(link, m.request, 'no such state request here (it expired, or was never started)')
    clearTimeout(served.timer)
    const s = served
    s.timer = setTimeout(() => this.drop(link, s), IDLE_MS)
    s.timer.unref()
    const bytes = await served.bytes
    if (!Buffer.isBuffer(bytes)) {
      this.drop(link, served)
      return this.none(link, m.request, bytes.refused)
    }
    if (m.offset >= bytes.length) return this.none(link, m.request, `offset ${m.offset} is past the state's ${bytes.length} bytes`)
    const data = bytes.subarray(m.offset, Math.min(bytes.length, m.offset + STATE_PART_BYTES))
    this.send(link, { type: 'state-part', request: m.request, total: bytes.length, offset: m.offset, data })
    if (m.offset + data.length >= bytes.length) this.drop(link, served)
  }

  /** The link closed: its states go. */
  closed(link: Link): void {
    for (const s of [...(this.byLink.get(link) ?? [])]) this.drop(link, s)
  }

  private async seal(link: Link, volumeId: Buffer): Promise<Buffer | { refused: string }> {
    const why = this.access.stateRefused(link.key, volumeId.toString('hex'))
    if (why !== null) return { refused: why }
    if (!this.host.volumeState) return { refused: 'this node serves no states' }
    try {
      const t0 = performance.now()
      const bytes = await this.host.volumeState(volumeId)
      if (bytes.length > MAX_STATE_BYTES) return { refused: `the state is ${bytes.length} bytes, over the ${MAX_STATE_BYTES} a joiner takes` }
      this.log('info', `net: peer ${link.z}: sealed the state of volume ${volumeId.toString('hex').slice(0, 16)}… for it (${bytes.length} bytes in ${Math.round(performance.now() - t0)} ms)`)
      return bytes
    } catch (err) {
      return { refused: message(err) }
    }
  }

  private drop(link: Link, s: Served): void {
    clearTimeout(s.timer)
    const list = this.byLink.get(link)
    const i = list?.indexOf(s) ?? -1
    if (i >= 0) list!.splice(i, 1)
  }

  private none(link: Link, request: number, reason: string): void {
    this.send(link, { type: 'state-none', request, reason: oneLine(reason) })
  }
}

/** A reason as STATE_NONE carries it: one line, at most MAX_REASON_BYTES bytes of UTF-8. */
export function oneLine(reason: string): string {
  let r = reason.replace(/[\x00-\x1f]+/g, ' ')
  while (Buffer.byteLength(r) > MAX_REASON_BYTES) r = r.slice(0, -1)
  return r
}
