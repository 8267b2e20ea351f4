// The typed control API (spec/control.md version 2): one request and one result type per
// operation. The CLI, the tests and any later client (a web view, a script) speak these; argv
// stays a CLI concern. A request is `{"version": 2, "op": OP, "args": {...}}`, checked before
// anything runs by request-codec.ts.

import type { CacheStatus } from '../cas/cache.js'
import type { GcReport } from '../gc.js'
import type { Keeper, WhereReport } from '../placement/where.js'
import type { RetentionRule } from '../retention.js'

import type { HistoryEvent } from '../volume/history.js'

export const CONTROL_VERSION = 2

/** The kinds of an argument: `?` marks an optional one; `path` is an absolute local path. */
export type Field = 'string' | 'string?' | 'boolean' | 'boolean?' | 'int' | 'int?' | 'path' | 'path?' | 'strings'

type FieldValue<F> = F extends 'string' | 'string?' | 'path' | 'path?' ? string : F extends 'boolean' | 'boolean?' ? boolean : F extends 'int' | 'int?' ? number : F extends 'strings' ? string[] : never
type Optional<S> = { [K in keyof S]: S[K] extends `${string}?` ? K : never }[keyof S]
type Required<S> = Exclude<keyof S, Optional<S>>
/** The arguments an op's schema describes. */
export type ArgsOf<S> = { [K in Required<S>]: FieldValue<S[K]> } & { [K in Optional<S>]?: FieldValue<S[K]> }

/** Every operation and the arguments it takes (in the order `spec/control.md` lists them). */
export const OP_ARGS = {
  status: {},
  'volume.list': {},
  'volume.create': { name: 'string', sharing: 'string?' },
  'volume.ls': { volume: 'string', path: 'string?', snapshot: 'string?' },
  'volume.cat': { volume: 'string', path: 'string', snapshot: 'string?' },
  'volume.mkdir': { volume: 'string', path: 'string', parents: 'boolean?' },
  'volume.rm': { volume: 'string', path: 'string', recursive: 'boolean?' },
  'volume.mv': { volume: 'string', from: 'string', to: 'string', force: 'boolean?' },
  'volume.snapshot.create': { volume: 'string', name: 'string' },
  'volume.snapshot.list': { volume: 'string' },
  'volume.mount': { volume: 'string', mountpoint: 'path', allowOther: 'boolean?', atime: 'boolean?' },
  'volume.unmount': { mountpoint: 'path' },
  'volume.sync': { volume: 'string', peer: 'string', timeoutMs: 'int?' },
  // Long ops that stream progress (`status` events, spec/control.md "Progress").
  'volume.import': { volume: 'string', src: 'path', to: 'string?' },
  'volume.export': { volume: 'string', dest: 'path', snapshot: 'string?' },
  /** `graceMs`: keep what became unreferenced less than this long ago (default 24 h). */
  'volume.gc': { volume: 'string', dryRun: 'boolean?', graceMs: 'int?' },
  /** `volume`: `paths` are the volume's; without it, local paths inside the server's mounts. `wait`: follow the fetch (progress) until it ends. */
  pin: { volume: 'string?', paths: 'strings', wait: 'boolean?' },
  unpin: { volume: 'string?', paths: 'strings' },
  'pin.list': {},
  /** `name`: the local name (default the peer's); `state`: a state file to start from; `timeoutMs` default 30000. */
  'volume.connect': { peer: 'string', volume: 'string', name: 'string?', sharing: 'string?', storageOnly: 'boolean?', state: 'path?', replay: 'boolean?', timeoutMs: 'int?' },
  /** `path`: ops on it (or below it), renames followed back; `since`/`until`: ISO 8601 or a time ago (`2h`); `stream`: rows as `row` events. */
  'log.show': { volume: 'string', writer: 'string?', path: 'string?', since: 'string?', until: 'string?', stream: 'boolean?' },
  'log.verify': { volume: 'string' },
  // History and audit (issue 14; src/volume/history.ts, spec/history.md).
  'volume.history': { volume: 'string', path: 'string' },
  /** Exactly one of `version` (8+ hex digits of a version's hash) and `snapshot`; `to`: restore there instead. */
  'volume.restore': { volume: 'string', path: 'string', version: 'string?', snapshot: 'string?', to: 'string?' },
  'log.blame': { volume: 'string', path: 'string?' },
  /** Streams `change` events until the client hangs up (or `limit` events were sent, or the server stops). */
  watch: { volume: 'string?', limit: 'int?', peers: 'boolean?' },
  // The node's identity and keys; `create` makes the data dir itself.
  create: {},
  'debug.pubkey': {},
  /** `key`: the 32 secret bytes, base64. */
  'sharing.add': { name: 'string', key: 'string' },
  'sharing.list': {},
  // Peers: `key` is a node key (z-base-32 or hex).
  'peer.add': { key: 'string' },
  'peer.remove': { key: 'string' },
  'peer.list': {},
  'peer.location.set': { key: 'string', location: 'string' },
  'peer.storage': { key: 'string', store: 'string', allow: 'boolean' },
  'peer.volume': { key: 'string', volume: 'string', allow: 'boolean' },
  'volume.writers': { volume: 'string' },
  'volume.writers.remove': { volume: 'string', key: 'string' },
  'volume.conflicts': { volume: 'string' },
  'volume.resolve': { volume: 'string', path: 'string', keep: 'string', attr: 'string?' },
  'volume.copies': { volume: 'string', copies: 'int?' },
  where: { volume: 'string', path: 'string' },
  'volume.du': { volume: 'string', path: 'string?' },
  /** `store`: `peerkey:KEY`. */
  'volume.storage.add': { volume: 'string', store: 'string', sharing: 'string?' },
  'volume.storage.rm': { volume: 'string', store: 'string' },
  'volume.state.save': { volume: 'string', file: 'path' },
  'volume.snapshot.rm': { volume: 'string', name: 'string' },
  'volume.snapshot.keep': { volume: 'string', last: 'int?', hourly: 'int?', daily: 'int?', weekly: 'int?', none: 'boolean?' },
  /** `size`: a budget like 20GiB or 10%; absent: show it. */
  'cache.size': { size: 'string?' },
  /** The web view's address with its token (spec/web.md); a user error when the server runs without --web. */
  'web.url': {},
} as const satisfies Record<string, Record<string, Field>>

export type Op = keyof typeof OP_ARGS
export type Args<O extends Op> = ArgsOf<(typeof OP_ARGS)[O]>

/** One entry of a listing (`volume.ls`); times are ISO 8601, uid/gid -1 is the mounting user. */
export interface EntryInfo {
  name: string
  path: string
  kind: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev'
  mode: number
  size: number
  mtime: string
  hash?: string
  target?: string
  rdev?: number
  uid: number
  gid: number
  nlink?: number
}

export interface PeerInfo {
  key: string
  connected: boolean
  lastSeen: number | null
  location?: string
  /** Connected: since when (ISO 8601), the remote address of the stream, who dialled, through a relay (null: not known). */
  since?: string
  address?: string
  direction?: 'outgoing' | 'incoming'
  relayed?: boolean | null
}

/** One writer log of a volume between this node and a peer (in log blocks; block 0 is the log's header). */
export interface WriterPosition {
  log: string
  /** This node's own log of the volume. */
  mine: boolean
  /** Blocks held here contiguously. */
  held: number
  /** The peer's length and what it holds contiguously, as it last said; null: it does not replicate this log with us now. */
  peerLength: number | null
  peerHeld: number | null
  /** Blocks the peer has that this node lacks, and this node holds that the peer lacks. */
  behind: number
  ahead: number
}

export interface VolumePeerStatus {
  key: string
  connected: boolean
  /** Sums over the writer logs. */
  behind: number
  ahead: number
  writers: WriterPosition[]
}

export interface VolumeStatus {
  name: string
  id: string
  storageOnly?: true
  /** Mount points of the volume. */
  mounts: string[]
  writers: number
  /** Entries held here, over every writer log. */
  entries: number
  /** File and attribute conflicts (null: storage-only, no tree). */
  conflicts: number | null
  /** The peers the volume is shared with, and how far each is from this node. */
  peers: VolumePeerStatus[]
  /** Pins in this volume; files/bytes pinned and held here as of the server's last pin sync (null without a server). */
  pins: { count: number; files: number | null; bytes: number | null; heldBytes: number | null }
  /** Why the rest is missing, if the volume could not be read. */
  problem?: string
}

export interface MountInfoResult {
  volume: string
  mountpoint: string
  allowOther?: boolean
  atime?: boolean
}

export interface StatusResult {
  dataDir: string
  server: { running: true; pid: number; since: string; uptimeSeconds: number; version: string } | { running: false }
  volumes: string[]
  mounts: MountInfoResult[]
  peers: PeerInfo[]
  notYetSafe: { packs: number; bytes: number; safePacks: number; totalPacks: number; copies: number; confirmations: { node: string; packs: number }[] } | null
  /** Per volume: peers, how far behind and ahead, conflicts, pins (`volumes` is the names alone). */
  volumeStatus: VolumeStatus[]
  /** Bytes still to move where known: pinned content not held here yet, content written here not yet held by enough peers. */
  transfer: { fetchBytes: number | null; pushBytes: number | null }
  /** The cache of content read from peers (src/cas/cache.ts); null if it could not be read. */
  cache: { budget: string; budgetBytes: number; heldBytes: number; cachedBytes: number; pinnedBytes: number } | null
}

export interface SyncResult {
  volume: string
  peer: string
  /** Entries of the other writers' logs held here now that were not when the op started (whoever delivered them: this sync or live replication). */
  received: number
  /** Entries of the other writers' logs applied to the tree since the op started (a storage-only volume applies none). */
  entriesApplied: number
  /** Entries of this node's logs the peer got during the command. */
  sent: number
  complete: boolean
  ms: number
  writers: number
  /** Entries applied (or held, storage-only) in all. */
  entries: number
  storageOnly?: true
  /** Storage-only: content blocks of the peer's store replica received, and the replica as it stands. */
  blocks?: number
  replica?: { blocks: number; length: number } | null
}

/** What `volume.import` and `volume.export` copied; `skipped`: entries an export could not write, with why. */
export interface CopyResult {
  files: number
  dirs: number
  symlinks: number
  links: number
  special: number
  bytes: number
  skipped: { path: string; reason: string }[]
}

/** One pin (`pin.list`): `heldBytes`/`heldFiles` of its files whose every object is here, as of the server's last pin sync (without a server: looked up now, no network). */
export interface PinRow {
  volume: string | null
  volumeId: string
  path: string
  added: string
  files: number
  bytes: number
  heldBytes: number | null
  heldFiles: number | null
  problem: string | null
}

/** What `volume.connect` made: the local volume, its writer logs and (not storage-only) the entries of its first sync. */
export interface ConnectResult {
  volume: string
  peer: string
  storageOnly?: true
  writerLogs: number
  entries: number
  complete: true
}

export interface LogRow {
  writer: string
  seq: number
  time: string
  op: string
  authorised?: false
  [field: string]: unknown
}

export interface VerifyResult {
  ok: boolean
  writers: number
  entries: number
  ops: number
  errors: { writer: string; seq: number; reason: string }[]
  unauthorised: { writer: string; seq: number; reason: string }[]
}

/** Who wrote an entry: its writer log and the node bound to it (null: binding not held), keys z-base-32; `self`: this node; `location`: the peer's known address. */
export interface WriterLabel { log: string; node: string | null; self?: true; location?: string }

/** One event of a file's history (`volume.history`, fields as src/volume/history.ts has them): its writer named, its time ISO 8601. */
export type HistoryVersion = Omit<HistoryEvent, 'time' | 'log' | 'index'> & { writer: WriterLabel; time: string }

/** One row of `log.blame`: an entry (a directory counts what is below it). */
export interface BlameInfo {
  path: string
  kind: EntryInfo['kind']
  changes: number
  last: { writer: WriterLabel; time: string; op: string; path: string; seq: number } | null
  /** Changes per writer, most first. */
  writers: { writer: WriterLabel; changes: number }[]
}

export interface PeerRow {
  key: string
  location: string | null
  storage: boolean
  /** Volume names (ids of volumes not here). */
  volumes: string[]
  /** null: no server runs, so nothing is connected. */
  connected: boolean | null
  lastSeen: string | null
}

export interface WriterRow {
  log: string
  node: string | null
  authorised: boolean
  root: boolean
  admittedBy: { log: string; seq: number } | null
  limit: number | null
  revokedBy: { log: string; seq: number; last: number; undecided: boolean }[]
  /** Blocks of the log known here and held here from the start. */
  length: number
  held: number
}

export interface WritersResult {
  volume: string
  rootNode: string | null
  writers: WriterRow[]
  /** This node's edits its log could not take (spec/oplog.md "Edits a revocation overtakes"). */
  refused: { at: string; ops: { op: string; path: string | null }[]; seqs: number[]; reason: string }[]
}

/** An attribute's value: an owner id (-1 the mounting user), or bytes as base64 (and as text when valid UTF-8). */
export type AttrValueJson = number | { base64: string; text?: string }

export interface ConflictsResult {
  volume: string
  files: { path: string; versions: { path: string; log: string; node: string | null; mine: boolean; time: string; size: number; hash: string }[] }[]
  attributes: { path: string; attribute: string; values: { value: AttrValueJson; log: string; node: string | null; mine: boolean; won: boolean }[] }[]
}

export interface CopiesResult {
  volume: string
  copies: number
  /** false: the default rule. */
  set: boolean
  store: { copies: number; packs: number; safePacks: number; notSafeBytes: number }
  keepers: Keeper[]
}

export interface DuResult {
  volume: string
  path: string
  files: number
  logicalBytes: number
  storedBytes: number
  hereBytes: number
  pinnedBytes: number
  notSafeBytes: number
}

/** What each op answers (its last frame's `result`). */
export interface Results {
  status: StatusResult
  'volume.list': { volumes: { name: string; id: string; sharing: string | null; storageOnly?: true; created: string }[] }
  'volume.create': { name: string; sharing: string }
  'volume.ls': { entries: EntryInfo[] }
  /** The content itself streams as output frames before this. */
  'volume.cat': { path: string; size: number }
  'volume.mkdir': { path: string; created: boolean }
  'volume.rm': { removed: number }
  'volume.mv': { from: string; to: string }
  'volume.snapshot.create': { volume: string; name: string }
  'volume.snapshot.list': { snapshots: { name: string; time: string }[] }
  /** `already`: the volume was mounted there before this request (a repeat is not an error). */
  'volume.mount': MountInfoResult & { already: boolean }
  'volume.unmount': { mountpoint: string }
  'volume.sync': SyncResult
  'volume.import': CopyResult
  'volume.export': CopyResult
  /** What gc removed (src/gc.ts GcReport) and the snapshots retention removed. */
  'volume.gc': GcReport & { snapshotsRemoved: { volume: string; name: string; rule: string }[] }
  /** One line per path (pinned, pinned already); `waited`: the fetch was followed to its end (status events). */
  pin: { lines: string[]; waited: boolean }
  unpin: { lines: string[] }
  'pin.list': { pins: PinRow[] }
  /** Progress of the first sync streams as `status` events (`entries_done`/`entries_total`, `blocks_held`), a `state` event says whether a state was adopted. */
  'volume.connect': ConnectResult
  /** `rows` is empty when streamed (`stream`: each row came as a `row` event); `count`: rows shown. */
  'log.show': { rows: LogRow[]; bad: number; count: number }
  'log.verify': VerifyResult
  /** `exists`: a file is at the path now; versions oldest first. */
  'volume.history': { path: string; exists: boolean; versions: HistoryVersion[] }
  /** `previous`: the content before (null: the file was made); `unchanged`: it had this content already, nothing logged. */
  'volume.restore': { path: string; size: number; hash: string; created: boolean; previous: string | null; unchanged: boolean }
  'log.blame': { path: string; rows: BlameInfo[] }
  /** How many events the watch sent. */
  watch: { events: number }
  create: { dataDir: string; publicKey: string }
  'debug.pubkey': { publicKey: string }
  'sharing.add': { name: string }
  'sharing.list': { names: string[] }
  'peer.add': { key: string; added: boolean }
  /** `revoked`: one line per volume the peer was allowed (its writer logs revoked); `released`: what telling it to drop this node's store said. */
  'peer.remove': { key: string; revoked: string[]; confirmationsDropped: boolean; released: string | null }
  'peer.list': { peers: PeerRow[] }
  'peer.location.set': { key: string; location: string }
  'peer.storage': { key: string; store: string; allow: boolean }
  /** `writers`: what admitting or revoking its writer logs said, one line each. */
  'peer.volume': { key: string; volume: string; allow: boolean; changed: boolean; writers: string[] }
  'volume.writers': WritersResult
  'volume.writers.remove': { message: string }
  'volume.conflicts': ConflictsResult
  /** Content: `kept` (the kept version's hash) and `created` (other versions kept as new files); `attribute` for an owner or extended attribute. */
  'volume.resolve': { path: string; attribute?: string; kept?: string; created: string[] }
  'volume.copies': CopiesResult
  where: WhereReport
  'volume.du': DuResult
  /** `state`: in-use (the peer or a replica of its store is connected), no-server, not-offered (connected, but it does not offer its store to this node), not-connected. */
  'volume.storage.add': { volume: string; peer: string; added: boolean; state: 'in-use' | 'no-server' | 'not-offered' | 'not-connected' }
  /** `stillUsed`: another volume here still stores to the peer; `server`: a running server tells the peer once connected. */
  'volume.storage.rm': { volume: string; peer: string; stillUsed: boolean; server: boolean }
  'volume.state.save': { volume: string; file: string; shards: number; entries: number; bytes: number }
  'volume.snapshot.rm': { volume: string; name: string }
  /** The rule now (null: none, every snapshot kept) and as words. */
  'volume.snapshot.keep': { volume: string; rule: RetentionRule | null; text: string }
  /** `set`: the budget just set, as given (null: only shown). */
  'cache.size': { status: CacheStatus; set: string | null }
  'web.url': { url: string }
}

/** Events an op streams before its result (restic-style `message_type`). */
export type ControlEvent =
  | { message_type: 'status'; percent_done: number; seconds_remaining: number | null; [count: string]: unknown }
  | { message_type: 'warning'; message: string }
  /** `log.show` with `stream`: one row of the log. */
  | { message_type: 'row'; row: LogRow }
  /** `watch`: entries from other writers were applied to a volume. */
  | { message_type: 'change'; volume: string; entries: number; time: string }
  /** `watch` with `peers`: a peer connected or went away. */
  | { message_type: 'peer'; peer: string; connected: boolean; time: string }
  | { message_type: string; [field: string]: unknown }

export interface ControlRequest<O extends Op = Op> {
  version: typeof CONTROL_VERSION
  op: O
  args: Args<O>
}

/** The last frame of a response: the result, or why there is none. */
export type ControlEnd<O extends Op = Op> =
  | { ok: true; result: Results[O] }
  | { ok: false; error: { kind: 'request' | 'user' | 'internal'; message: string } }
