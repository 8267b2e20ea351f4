// The asking side of a state transfer (spec/protocol.md "States"): a joiner asks one peer for
// its sealed state of a volume, part by part, a window of requests in flight. The parts must
// come in order, each as long as the protocol says, under one total within MAX_STATE_BYTES;
// anything else, a STATE_NONE, a closed link or a silence of `stallMs` ends the transfer with a
// one-line reason (StateFetchError) and the joiner replays the logs instead. Nothing here is
// trusted: the bytes are opened with the volume's state key and checked against the signed
// logs by the caller (volume-state.ts).
import type { Link } from './links.js'
import { FEATURE_STATE, STATE_PART_BYTES, type Message, type StateNone, type StatePart } from './protocol.js'

/** Requests in flight at once (STATE_PART_BYTES each: ~2 MB). */
const WINDOW = 32
const DEFAULT_STALL_MS = 30_000

export class StateFetchError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StateFetchError'
  }
}

interface Pending {
  link: Link
  onPart(m: StatePart): void
  onNone(m: StateNone): void
  onClose(): void
}

export class StateFetcher {
  private nextRequest = 1
  private readonly pending = new Map<number, Pending>()

  constructor(private readonly send: (link: Link, m: Message) => void) {}

  /** A STATE_PART or STATE_NONE from the peer (one for a request not in flight is ignored). */
  receive(link: Link, m: StatePart | StateNone): void {
    const p = this.pending.get(m.request)
    if (!p || p.link !== link) return
    if (m.type === 'state-part') p.onPart(m)
    else p.onNone(m)
  }

  /** The link closed: its transfers fail. */
  closed(link: Link): void {
    for (const p of [...this.pending.values()]) if (p.link === link) p.onClose()
  }

  /** The peer's sealed state of the volume, all of it; throws StateFetchError saying why not. */
  fetch(link: Link, volumeId: Buffer, onBytes?: (done: number, total: number) => void, stallMs = DEFAULT_STALL_MS): Promise<Buffer> {
    if ((link.features & FEATURE_STATE) === 0) return Promise.reject(new StateFetchError(`peer ${link.z} runs an older bazil that serves no states`))
    if (link.closed) return Promise.reject(new StateFetchError(`peer ${link.z} is not connected`))
    const request = this.nextRequest++
    return new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = []
      let total = -1
      let received = 0
      let asked = 0
      let timer: NodeJS.Timeout | null = null
      const done = (err: Error | null): void => {
        if (timer) clearTimeout(timer)
        this.pending.delete(request)
        if (err) reject(err)
        else resolve(Buffer.concat(parts, total))
      }
      const arm = (): void => {
        if (timer) clearTimeout(timer)
        timer = setTimeout(() => done(new StateFetchError(`peer ${link.z} sent no part of its state for ${Math.round(stallMs / 1000)} s`)), stallMs)
        timer.unref()
      }
      const ask = (): void => {
        while (total >= 0 && asked < total && asked - received < WINDOW * STATE_PART_BYTES) {
          this.send(link, { type: 'state-get', volumeId, request, offset: asked })
          asked += STATE_PART_BYTES
        }
      }
      this.pending.set(request, {
        link,
        onPart: (m) => {
          if (m.offset !== received || (total >= 0 && m.total !== total)) return done(new StateFetchError(`peer ${link.z} sent part ${m.offset} of ${m.total} bytes where part ${received} of ${total < 0 ? '?' : total} was due`))
          if (total < 0) {
            total = m.total
            asked = STATE_PART_BYTES
          }
          parts.push(m.data)
          received += m.data.length
          onBytes?.(received, total)
          if (received >= total) return done(null)
          arm()
          ask()
        },
        onNone: (m) => done(new StateFetchError(`peer ${link.z} has no state for us: ${m.reason}`)),
        onClose: () => done(new StateFetchError(`peer ${link.z} disconnected during the state transfer`))
      })
      arm()
      this.send(link, { type: 'state-get', volumeId, request, offset: 0 })
    })
  }
}
