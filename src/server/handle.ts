// What a command running inside the server can reach.
import type { DataDir } from '../datadir.js'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { PeerNetwork } from '../net/swarm.js'

/** How a volume is mounted: each option is stored in mounts.json (spec/control.md) and shown by status. */
export interface MountOpts {
  /** --allow-other: every user of the machine may enter (spec/fuse.md). */
  allowOther?: boolean
  /** --atime: reads record their time, relatime (spec/fuse.md "What the mount shows"). */
  atime?: boolean
}

export interface MountInfo extends MountOpts {
  volume: string
  mountpoint: string
}

/** The options of a mount as stored and compared: only those set, each `true`. */
export function mountOpts(o: MountOpts): MountOpts {
  return { ...(o.allowOther === true ? { allowOther: true } : {}), ...(o.atime === true ? { atime: true } : {}) }
}

/** Whether two mounts have the same options. */
export function sameMountOpts(a: MountOpts, b: MountOpts): boolean {
  return a.allowOther === true === (b.allowOther === true) && a.atime === true === (b.atime === true)
}

/** The local web view (src/web), when the server runs with `--web`. */
export interface WebView {
  /** Its address with the token (what `bazil web url` prints). */
  readonly url: string
  /** Ends its live streams and stops listening. */
  close(): Promise<void>
}

export interface ServerHandle {
  readonly node: Node
  readonly dir: DataDir
  readonly pid: number
  readonly startedAt: number
  readonly log: Log
  mount(volume: string, mountpoint: string, opts?: MountOpts): Promise<void>
  unmount(mountpoint: string): Promise<void>
  mounts(): MountInfo[]
  /** The peer network, once started (see src/net). */
  readonly net: PeerNetwork | null
  /** The web view, once started (absent or null: the server runs without `--web`). */
  readonly web?: WebView | null
}
