// Making what is written to the corestore durable (spec/datadir.md, "Durability").
//
// Hypercore appends and content-store writes go to RocksDB, whose writes land in its
// write-ahead log (WAL, `corestore/db/NNNNNN.log`) with a write() but no fsync, and
// rocksdb-native exposes no `sync` write option and no SyncWAL. What it does expose is
// enough: a write batch has been written to the WAL file when its promise resolves, so an
// fdatasync of every live WAL file (and of the db directory when the set of WAL files
// changed) makes everything written before the call survive an OS crash. Flushed memtables
// are already durable (RocksDB syncs SST/blob files and the MANIFEST itself), so a WAL that
// disappears meanwhile needs nothing.
//
// Group commit: callers that arrive while a sync runs share the next one, so N concurrent
// fsyncs cost about two fdatasyncs, not N.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { fsyncDir } from './atomic-file.js'

export class StoreSync {
  private running: Promise<void> | null = null
  private next: Promise<void> | null = null
  private walFiles = ''
  /** Syncs done (for tests and benchmarks). */
  syncs = 0
  /** False only to measure what durability costs (bench/fuse-bench.ts): sync() then does nothing. */
  enabled = true

  /** `dbDir`: the RocksDB directory (corestore/db). */
  constructor(readonly dbDir: string) {}

  /** Resolves once everything written to the store before the call is durable. */
  sync(): Promise<void> {
    if (!this.enabled) return Promise.resolve()
    if (!this.running) return this.start()
    // The running sync may have read the WAL before our write: wait for the next one.
    this.next ??= this.running.catch(() => {}).then(() => {
      this.next = null
      return this.start()
    })
    return this.next
  }

  private start(): Promise<void> {
    const run = this.syncNow().finally(() => {
      if (this.running === run) this.running = null
    })
    this.running = run
    return run
  }

  private async syncNow(): Promise<void> {
    const names = (await fsp.readdir(this.dbDir)).filter((n) => n.endsWith('.log')).sort()
    await Promise.all(names.map(async (name) => {
      let fh: fsp.FileHandle
      try {
        fh = await fsp.open(path.join(this.dbDir, name), 'r')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // flushed to SST meanwhile: durable already
        throw err
      }
      try {
        await fh.datasync()
      } finally {
        await fh.close()
      }
    }))
    const list = names.join(',')
    if (list !== this.walFiles) {
      await fsyncDir(this.dbDir)
      this.walFiles = list
    }
    this.syncs++
  }
}
