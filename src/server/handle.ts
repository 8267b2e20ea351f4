// What a command running inside the server can reach.
import type { DataDir } from '../datadir.js'
import type { Node } from '../node.js'
import type { Log } from '../log.js'
import type { PeerNetwork } from '../net/swarm.js'

export interface MountInfo {
  volume: string
  mountpoint: string
  /** Mounted with --allow-other (every user of the machine may enter; spec/fuse.md). */
  allowOther?: boolean
}

export interface MountOpts {
  allowOther?: boolean
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
}
