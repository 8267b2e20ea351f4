// bazil's own messages between peers, on a protomux channel beside hypercore replication.
// Wire format: spec/protocol.md. Decoding is strict (versions, types, limits, canonical
// form): anything else is a ProtocolError, and the caller drops the peer.
import c, { type State } from 'compact-encoding'

/** The protomux channel; a new major protocol gets a new channel name, never a changed meaning. */
export const CHANNEL_PROTOCOL = 'bazil/v1'
export const MESSAGE_VERSION = 1
/** Largest message either side sends or accepts, in bytes. */
export const MAX_MESSAGE_BYTES = 64 * 1024
export const MAX_VOLUMES = 1024
export const MAX_WRITERS = 1024
export const MAX_STORES = 256
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export const TYPE_HELLO = 1
export const TYPE_WRITERS = 2
export const TYPE_STORES = 3
export const TYPE_KEEP = 4
export const TYPE_HOLDS = 5
export const TYPE_RELEASE = 6
export const TYPE_STATE_GET = 7
export const TYPE_STATE_PART = 8
export const TYPE_STATE_NONE = 9

/**
 * Feature bits of the channel handshake (spec/protocol.md "Channel handshake"): what the
 * sender understands beyond the first v1 nodes. A message type a peer did not announce is
 * never sent to it (older nodes drop the connection on an unknown type).
 */
export const FEATURE_RELEASE = 1
/** STATE_GET / STATE_PART / STATE_NONE: a joiner asks for a volume's sealed state (spec/protocol.md "States"). */
export const FEATURE_STATE = 2
/** What this bazil understands. */
export const LOCAL_FEATURES = FEATURE_RELEASE | FEATURE_STATE
/** Bytes of a sealed state one STATE_PART carries (the last part: what is left). */
export const STATE_PART_BYTES = 60_000
/** Largest sealed state a joiner accepts, in bytes (a 1M-file volume's is ~100 MiB). */
export const MAX_STATE_BYTES = 1 << 30
/** Longest reason a STATE_NONE carries, in UTF-8 bytes. */
export const MAX_REASON_BYTES = 256

const HELLO_FLAG_STORAGE = 1

export interface VolumeOffer {
  id: Buffer
  /** The volume's local name on the sender (what `volume connect KEY NAME` refers to). */
  name: string
}

export interface StorageOffer {
  cas: Buffer
  index: Buffer
}

/** What the sender lets the receiver see: the whole set, replacing any earlier hello. */
export interface Hello {
  type: 'hello'
  storage: StorageOffer | null
  volumes: VolumeOffer[]
}

/** Writer logs of one volume the sender holds and the receiver may replicate. */
export interface Writers {
  type: 'writers'
  volumeId: Buffer
  writers: Buffer[]
}

/** A replica this node holds of another node's content store. */
export interface StoreReplica extends StorageOffer {
  /** The public key of the node whose store it is. */
  node: Buffer
}

/**
 * Replicas of other nodes' content stores the sender holds and lets the receiver read (a
 * storage-only "closet" node mirrors the stores of the peers it keeps volumes for). The
 * whole set: it replaces any earlier STORES.
 */
export interface Stores {
  type: 'stores'
  stores: StoreReplica[]
}

/**
 * "Keep a full replica of my store (the one my HELLO offers you)": sent by a node to the peers
 * it stores to (a volume's `storage` list), after its HELLO. No body.
 */
export interface Keep {
  type: 'keep'
}

/**
 * "I keep a full replica of your store whose packs core is `packs`, and hold its packs
 * [0, length) and their index blocks, durably": the answer to KEEP, sent again as it grows.
 */
export interface Holds {
  type: 'holds'
  packs: Buffer
  length: number
}

/**
 * "Stop keeping my store whose packs core is `packs`": sent by a node to a peer that kept its
 * store (KEEP) and is no longer in any of its volumes' storage lists, once nothing this node
 * evicted depends on that peer's replica. Only to peers whose handshake announced
 * FEATURE_RELEASE.
 */
export interface Release {
  type: 'release'
  packs: Buffer
}

/**
 * "Send me bytes [offset, offset + STATE_PART_BYTES) of your sealed state of volume V": a
 * joiner's request (spec/protocol.md "States"). Offset 0 starts request `request` (the
 * sender's number): the answerer seals its state then and answers every later offset of that
 * request from the same bytes. Only to peers whose handshake announced FEATURE_STATE.
 */
export interface StateGet {
  type: 'state-get'
  volumeId: Buffer
  request: number
  offset: number
}

/** Bytes of a sealed state, the answer to STATE_GET: `total` is the state's whole length. */
export interface StatePart {
  type: 'state-part'
  request: number
  total: number
  offset: number
  data: Buffer
}

/** "No state for that request": why, in one line (the joiner replays the logs instead). */
export interface StateNone {
  type: 'state-none'
  request: number
  reason: string
}

export type Message = Hello | Writers | Stores | Keep | Holds | Release | StateGet | StatePart | StateNone

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

function checkKey(buf: Buffer, what: string): void {
  if (!Buffer.isBuffer(buf) || buf.length !== 32) throw new TypeError(`${what} must be a 32-byte Buffer`)
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what}: bad number ${n}`)
}

function checkMessage(m: Message): void {
  if (m.type === 'hello') {
    if (m.volumes.length > MAX_VOLUMES) throw new RangeError(`hello: at most ${MAX_VOLUMES} volumes`)
    if (m.storage) {
      checkKey(m.storage.cas, 'cas key')
      checkKey(m.storage.index, 'cas index key')
    }
    const seen = new Set<string>()
    for (const v of m.volumes) {
      checkKey(v.id, 'volume id')
      if (!NAME_RE.test(v.name)) throw new RangeError(`hello: bad volume name "${v.name}"`)
      const hex = v.id.toString('hex')
      if (seen.has(hex)) throw new RangeError(`hello: volume ${hex} listed twice`)
      seen.add(hex)
    }
  } else if (m.type === 'keep') {
    // no body
  } else if (m.type === 'holds') {
    checkKey(m.packs, 'packs key')
    if (!Number.isSafeInteger(m.length) || m.length < 0) throw new RangeError(`holds: bad length ${m.length}`)
  } else if (m.type === 'release') {
    checkKey(m.packs, 'packs key')
  } else if (m.type === 'state-get') {
    checkKey(m.volumeId, 'volume id')
    checkCount(m.request, 'state-get request')
    checkCount(m.offset, 'state-get offset')
    if (m.offset % STATE_PART_BYTES !== 0 || m.offset >= MAX_STATE_BYTES) throw new RangeError(`state-get: offset ${m.offset} is not a part boundary below ${MAX_STATE_BYTES}`)
  } else if (m.type === 'state-part') {
    checkCount(m.request, 'state-part request')
    checkCount(m.total, 'state-part total')
    checkCount(m.offset, 'state-part offset')
    if (m.total > MAX_STATE_BYTES) throw new RangeError(`state-part: total ${m.total} is over ${MAX_STATE_BYTES}`)
    if (m.offset % STATE_PART_BYTES !== 0 || m.offset >= m.total) throw new RangeError(`state-part: offset ${m.offset} is not a part boundary below its total ${m.total}`)
    if (m.data.length !== Math.min(STATE_PART_BYTES, m.total - m.offset)) throw new RangeError(`state-part: ${m.data.length} bytes at offset ${m.offset} of ${m.total}`)
  } else if (m.type === 'state-none') {
    checkCount(m.request, 'state-none request')
    if (Buffer.byteLength(m.reason) > MAX_REASON_BYTES || /[\x00-\x1f]/.test(m.reason)) throw new RangeError(`state-none: a reason of one line, at most ${MAX_REASON_BYTES} bytes`)
  } else if (m.type === 'stores') {
    if (m.stores.length > MAX_STORES) throw new RangeError(`stores: at most ${MAX_STORES} stores`)
    const seen = new Set<string>()
    for (const st of m.stores) {
      checkKey(st.node, 'node key')
      checkKey(st.cas, 'cas key')
      checkKey(st.index, 'cas index key')
      const hex = st.node.toString('hex')
      if (seen.has(hex)) throw new RangeError(`stores: node ${hex} listed twice`)
      seen.add(hex)
    }
  } else {
    checkKey(m.volumeId, 'volume id')
    if (m.writers.length < 1 || m.writers.length > MAX_WRITERS) throw new RangeError(`writers: 1-${MAX_WRITERS} keys per message`)
    const seen = new Set<string>()
    for (const w of m.writers) {
      checkKey(w, 'writer log key')
      const hex = w.toString('hex')
      if (seen.has(hex)) throw new RangeError(`writers: key ${hex} listed twice`)
      seen.add(hex)
    }
  }
}

function encodeBody(state: State, m: Message): void {
  c.uint8.encode(state, MESSAGE_VERSION)
  if (m.type === 'hello') {
    c.uint8.encode(state, TYPE_HELLO)
    c.uint.encode(state, m.storage ? HELLO_FLAG_STORAGE : 0)
    if (m.storage) {
      c.fixed32.encode(state, m.storage.cas)
      c.fixed32.encode(state, m.storage.index)
    }
    c.uint.encode(state, m.volumes.length)
    for (const v of m.volumes) {
      c.fixed32.encode(state, v.id)
      c.string.encode(state, v.name)
    }
  } else if (m.type === 'keep') {
    c.uint8.encode(state, TYPE_KEEP)
  } else if (m.type === 'holds') {
    c.uint8.encode(state, TYPE_HOLDS)
    c.fixed32.encode(state, m.packs)
    c.uint.encode(state, m.length)
  } else if (m.type === 'release') {
    c.uint8.encode(state, TYPE_RELEASE)
    c.fixed32.encode(state, m.packs)
  } else if (m.type === 'state-get') {
    c.uint8.encode(state, TYPE_STATE_GET)
    c.fixed32.encode(state, m.volumeId)
    for (const n of [m.request, m.offset]) c.uint.encode(state, n)
  } else if (m.type === 'state-part') {
    c.uint8.encode(state, TYPE_STATE_PART)
    for (const n of [m.request, m.total, m.offset]) c.uint.encode(state, n)
    c.buffer.encode(state, m.data)
  } else if (m.type === 'state-none') {
    c.uint8.encode(state, TYPE_STATE_NONE)
    c.uint.encode(state, m.request)
    c.string.encode(state, m.reason)
  } else if (m.type === 'stores') {
    c.uint8.encode(state, TYPE_STORES)
    c.uint.encode(state, m.stores.length)
    for (const st of m.stores) {
      c.fixed32.encode(state, st.node)
      c.fixed32.encode(state, st.cas)
      c.fixed32.encode(state, st.index)
    }
  } else {
    c.uint8.encode(state, TYPE_WRITERS)
    c.fixed32.encode(state, m.volumeId)
    c.uint.encode(state, m.writers.length)
    for (const w of m.writers) c.fixed32.encode(state, w)
  }
}

function preencodeBody(state: State, m: Message): void {
  c.uint8.preencode(state, MESSAGE_VERSION)
  c.uint8.preencode(state, 0)
  if (m.type === 'hello') {
    c.uint.preencode(state, m.storage ? HELLO_FLAG_STORAGE : 0)
    if (m.storage) state.end += 64
    c.uint.preencode(state, m.volumes.length)
    for (const v of m.volumes) {
      state.end += 32
      c.string.preencode(state, v.name)
    }
  } else if (m.type === 'keep') {
    // no body
  } else if (m.type === 'holds') {
    state.end += 32
    c.uint.preencode(state, m.length)
  } else if (m.type === 'release') {
    state.end += 32
  } else if (m.type === 'state-get') {
    state.end += 32
    for (const n of [m.request, m.offset]) c.uint.preencode(state, n)
  } else if (m.type === 'state-part') {
    for (const n of [m.request, m.total, m.offset]) c.uint.preencode(state, n)
    c.buffer.preencode(state, m.data)
  } else if (m.type === 'state-none') {
    c.uint.preencode(state, m.request)
    c.string.preencode(state, m.reason)
  } else if (m.type === 'stores') {
    c.uint.preencode(state, m.stores.length)
    state.end += 96 * m.stores.length
  } else {
    state.end += 32
    c.uint.preencode(state, m.writers.length)
    state.end += 32 * m.writers.length
  }
}

/** Encodes a message; throws (a bug on our side) if it breaks the limits. */
export function encodeMessage(m: Message): Buffer {
  checkMessage(m)
  const state = c.state()
  preencodeBody(state, m)
  state.buffer = Buffer.alloc(state.end)
  encodeBody(state, m)
  if (state.buffer.length > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${state.buffer.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  return state.buffer
}

/** Splits our offer of writer logs of one volume into messages within the limits. */
export function writersMessages(volumeId: Buffer, writers: Buffer[]): Writers[] {
  const out: Writers[] = []
  for (let i = 0; i < writers.length; i += MAX_WRITERS) {
    out.push({ type: 'writers', volumeId, writers: writers.slice(i, i + MAX_WRITERS) })
  }
  return out
}

function count(state: State, max: number, each: number, what: string): number {
  const n = c.uint.decode(state)
  if (n > max) throw new ProtocolError(`${what}: ${n} is over the limit of ${max}`)
  if (n * each > state.end - state.start) throw new ProtocolError(`${what}: ${n} entries do not fit in the message`)
  return n
}

function copy(buf: Buffer): Buffer {
  return Buffer.from(buf) // never keep a view into the connection's receive buffer
}

/** Decodes one message; every problem is a ProtocolError naming what was wrong. */
export function decodeMessage(buf: Buffer): Message {
  if (!Buffer.isBuffer(buf)) throw new ProtocolError('message is not bytes')
  if (buf.length > MAX_MESSAGE_BYTES) throw new ProtocolError(`message of ${buf.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  if (buf.length < 2) throw new ProtocolError(`message of ${buf.length} bytes is too short`)
  const version = buf[0]
  if (version !== MESSAGE_VERSION) throw new ProtocolError(`unknown message version ${version} (this bazil speaks ${MESSAGE_VERSION})`)
  const type = buf[1]
  const state = c.state(2, buf.length, buf)
  let m: Message
  try {
    if (type === TYPE_HELLO) {
      const flags = c.uint.decode(state)
      if ((flags & ~HELLO_FLAG_STORAGE) !== 0) throw new ProtocolError(`hello: unknown flags ${flags}`)
      const storage = flags & HELLO_FLAG_STORAGE ? { cas: copy(c.fixed32.decode(state)), index: copy(c.fixed32.decode(state)) } : null
      const n = count(state, MAX_VOLUMES, 33, 'hello volumes')
      const volumes: VolumeOffer[] = []
      for (let i = 0; i < n; i++) {
        const id = copy(c.fixed32.decode(state))
        const name = c.string.decode(state)
        if (!NAME_RE.test(name)) throw new ProtocolError(`hello: invalid volume name ${JSON.stringify(name.slice(0, 80))}`)
        volumes.push({ id, name })
      }
      m = { type: 'hello', storage, volumes }
    } else if (type === TYPE_WRITERS) {
      const volumeId = copy(c.fixed32.decode(state))
      const n = count(state, MAX_WRITERS, 32, 'writers')
      if (n === 0) throw new ProtocolError('writers: empty list')
      const writers: Buffer[] = []
      for (let i = 0; i < n; i++) writers.push(copy(c.fixed32.decode(state)))
      m = { type: 'writers', volumeId, writers }
    } else if (type === TYPE_STORES) {
      const n = count(state, MAX_STORES, 96, 'stores')
      const stores: StoreReplica[] = []
      for (let i = 0; i < n; i++) stores.push({ node: copy(c.fixed32.decode(state)), cas: copy(c.fixed32.decode(state)), index: copy(c.fixed32.decode(state)) })
      m = { type: 'stores', stores }
    } else if (type === TYPE_KEEP) {
      m = { type: 'keep' }
    } else if (type === TYPE_HOLDS) {
      const packs = copy(c.fixed32.decode(state))
      const length = c.uint.decode(state)
      if (!Number.isSafeInteger(length)) throw new ProtocolError(`holds: length ${length} is over 2^53 - 1`)
      m = { type: 'holds', packs, length }
    } else if (type === TYPE_RELEASE) {
      m = { type: 'release', packs: copy(c.fixed32.decode(state)) }
    } else if (type === TYPE_STATE_GET) {
      m = { type: 'state-get', volumeId: copy(c.fixed32.decode(state)), request: c.uint.decode(state), offset: c.uint.decode(state) }
    } else if (type === TYPE_STATE_PART) {
      const request = c.uint.decode(state)
      const total = c.uint.decode(state)
      const offset = c.uint.decode(state)
      const data = c.buffer.decode(state)
      if (data === null) throw new ProtocolError('state-part: no data')
      m = { type: 'state-part', request, total, offset, data: copy(data) }
    } else if (type === TYPE_STATE_NONE) {
      m = { type: 'state-none', request: c.uint.decode(state), reason: c.string.decode(state) }
    } else {
      throw new ProtocolError(`unknown message type ${type}`)
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err
    throw new ProtocolError(`malformed message: ${(err as Error).message}`)
  }
  if (state.start !== state.end) throw new ProtocolError(`${state.end - state.start} trailing bytes after a ${m.type} message`)
  try {
    checkMessage(m)
  } catch (err) {
    throw new ProtocolError((err as Error).message)
  }
  // One encoding per message: a non-minimal varint or a non-canonical string is refused, so
  // equal messages are equal bytes.
  if (!encodeMessage(m).equals(buf)) throw new ProtocolError(`${m.type} message is not in canonical form`)
  return m
}

/**
 * The bazil/v1 channel's handshake (protomux's open message carries it after the protocol
 * name): `uint features`, the FEATURE_ bits the sender understands; later fields may follow
 * and are ignored. Nodes before it send nothing there (features 0) and ignore what we send
 * (their channel has no handshake encoding), so both directions stay compatible.
 */
export function encodeHandshake(features: number): Buffer {
  return c.encode(c.uint, features)
}

/** The features a peer's handshake announces (0: none sent, an older node). A malformed one is a ProtocolError. */
export function decodeHandshake(buf: Buffer | null | undefined): number {
  if (!buf || buf.length === 0) return 0
  const state = c.state(0, buf.length, buf)
  let features: number
  try {
    features = c.uint.decode(state)
  } catch (err) {
    throw new ProtocolError(`malformed channel handshake: ${(err as Error).message}`)
  }
  if (!Number.isSafeInteger(features)) throw new ProtocolError(`channel handshake: features ${features} over 2^53 - 1`)
  if (!c.encode(c.uint, features).equals(buf.subarray(0, state.start))) throw new ProtocolError('channel handshake is not in canonical form')
  return features
}
