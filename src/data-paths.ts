// Every path of a data dir (spec/datadir.md), computed here and nowhere else: modules that
// hold only the data dir's root (the server, the network's registries, the space guard) take
// their files from DataPaths; DataDir exposes the same object as `paths`.
import os from 'node:os'
import path from 'node:path'

export class DataPaths {
  constructor(readonly root: string) {}

  private at(...parts: string[]): string {
    return path.join(this.root, ...parts)
  }

  /** The node's public identity and format version; its secret key. */
  get nodeJson(): string { return this.at('node.json') }
  get nodeKey(): string { return this.at('node.key') }
  /** Sharing keys (NAME.key) and volume records (NAME.json). */
  get sharingDir(): string { return this.at('sharing') }
  get volumesDir(): string { return this.at('volumes') }
  sharingKey(name: string): string { return this.at('sharing', `${name}.key`) }
  volume(name: string): string { return this.at('volumes', `${name}.json`) }

  /** The corestore: logs and the content store's cores; its RocksDB; the marker hypercore-storage reads. */
  get corestore(): string { return this.at('corestore') }
  get db(): string { return this.at('corestore', 'db') }
  get corestoreMarker(): string { return this.at('corestore', 'CORESTORE') }

  /** The content store's saved pack table (spec/cas.md §7); when each unreferenced object was first found so (spec/gc.md §6). */
  get packTable(): string { return this.at('pack-table') }
  get gcMarks(): string { return this.at('gc-marks') }
  /** The cache budget, its ledger, pinned paths (src/cas/cache-*.ts, src/pins/pins-file.ts). */
  get cacheConfig(): string { return this.at('cache.json') }
  get cacheLedger(): string { return this.at('cache-ledger') }
  get pins(): string { return this.at('pins.json') }
  /** Confirmations from peers that they keep this node's store (src/placement/placement.ts). */
  get holdings(): string { return this.at('holdings.json') }
  /** Reserved disk space released when the disk fills (src/space-guard.ts). */
  get reserve(): string { return this.at('reserve') }

  /** The network: known peers, storage-only mirrors, the listen and bootstrap settings. */
  get peers(): string { return this.at('peers.json') }
  get mirrors(): string { return this.at('mirrors.json') }
  get netConfig(): string { return this.at('config.json') }

  /** The running server: its control socket, its pid, the mounts it restores. */
  get controlSocket(): string { return this.at('control.sock') }
  get serverPid(): string { return this.at('server.pid') }
  get mounts(): string { return this.at('mounts.json') }
  /** Files being written through a mount of a volume, before they are committed. */
  spool(volumeId: string): string { return this.at('spool', volumeId) }

  /** The other writer logs this node holds of a volume (src/writers-file.ts). */
  writers(volumeId: string): string { return this.at('writers', `${volumeId}.json`) }
  /** A volume's on-disk index: its manifest (the checkpoint) and its segments' directory (spec/tree.md). */
  index(volumeId: string): { manifest: string; segments: string } {
    return { manifest: this.at('index', `${volumeId}.ckpt`), segments: this.at('index', volumeId) }
  }
}

/** Where the data dir is when no --data-dir is given. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BAZIL_DATA_DIR) return env.BAZIL_DATA_DIR
  const xdg = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share')
  return path.join(xdg, 'bazil')
}
