// The stash: pinned paths (src/pins/pins-file.ts, DATA/pins.json) are fetched in the background and kept.
// A sync walks every pin's tree in the live version of its volume (a directory: everything
// under it, so files added later are included at the next sync), reads each file not held
// here in full (the packs requested ahead as ranges, as `volume export` does: fetch-plan.ts),
// and records the addresses of every object of every pinned file: the cache never evicts
// the packs holding them (cache.ts). Syncs run at start, after `bazil pin`/`unpin`, when a
// pinned volume changes (another writer's entries applied), and every minute (a peer back).
import type { DataDir } from '../datadir.js'
import type { Log } from '../log.js'
import { readPins, type Pin } from './pins-file.js'
import { toFileRef, type Volume } from '../volume/volume.js'
import type { FileRef } from '../cas/cas.js'
import { addressesOf, type PinSet } from '../cas/cache-holds.js'
import { formatBytes } from '../cas/cache-size.js'
import { fetchAhead } from '../cas/fetch-plan.js'
import type { RemoteStores } from '../cas/remote-store.js'
import { Coalesced } from '../coalesced.js'

export interface PinHost {
  readonly dir: DataDir
  readonly remoteStores: RemoteStores
  volume(name: string): Promise<Volume>
}

/** What one pin covers now. */
export interface PinState {
  pin: Pin
  /** Local name of the volume (null: no volume with that id here). */
  volumeName: string | null
  files: number
  bytes: number
  /** Files whose every object is held here. */
  heldFiles: number
  heldBytes: number
  /** Why the pin covers nothing (no such path, volume gone), if so. */
  problem: string | null
}

const RESYNC_MS = 60_000
const PROGRESS_MS = 5_000
/** Files read at once while fetching a pinned tree. */
const FILES_IN_FLIGHT = 8

export class PinKeeper implements PinSet {
  log: Log = () => {}
  private addresses = new Set<string>()
  /** Addresses of files of the current sync, added as they are found (the set grows during a sync). */
  private growing: Set<string> | null = null
  private states: PinState[] = []
  /** The states of the sync running now (null: none runs). */
  private running: PinState[] | null = null
  private timer: NodeJS.Timeout | null = null
  private readonly watched = new Map<string, () => void>()
  private closed = false
  private first: Promise<void> | null = null

  constructor(private readonly host: PinHost) {}

  /** Starts the background syncs (the server; a CLI process only records pins). */
  start(): void {
    // What the pins reference and is held already, before anything may be evicted; then the fetch.
    this.first = this.collect().catch((err: Error) => this.log('warn', `pin: ${err.message}`))
    void this.first.then(() => this.sync())
    this.timer = setInterval(() => void this.sync(), RESYNC_MS)
    this.timer.unref()
  }

  async pinnedAddresses(): Promise<Set<string>> {
    if (this.first === null) await this.collect() // not started (a CLI process): pins still protect their content
    else await this.first
    if (!this.growing) return this.addresses
    const all = new Set(this.addresses)
    for (const a of this.growing) all.add(a)
    return all
  }

  /** The pins as of the last sync. */
  list(): PinState[] {
    return this.states
  }

  /** The pins as the sync running now has them (files held counted as they arrive), else as of the last sync. */
  live(): PinState[] {
    return this.running ?? this.states
  }

  /** Runs a sync (coalescing: a call during one runs one more after it). Never throws. */
  sync(): Promise<void> {
    return this.syncs.run()
  }

  private readonly syncs = new Coalesced(() => this.syncOnce(), (err) => this.log('warn', `pin: sync failed: ${err.message}`), () => this.closed)

  /** The pinned files now, per pin, with the volume they are in. */
  private async pinnedFiles(): Promise<{ state: PinState; vol: Volume | null; refs: FileRef[] }[]> {
    let pins: Pin[]
    try {
      pins = readPins(this.host.dir.paths.pins)
    } catch (err) {
      this.log('warn', `pin: ${(err as Error).message}`)
      return []
    }
    const volumes = this.host.dir.listVolumes()
    const out: { state: PinState; vol: Volume | null; refs: FileRef[] }[] = []
    for (const pin of pins) {
      const rec = volumes.find((v) => v.id === pin.volume)
      const state: PinState = { pin, volumeName: rec?.name ?? null, files: 0, bytes: 0, heldFiles: 0, heldBytes: 0, problem: null }
      if (!rec || rec.storageOnly) {
        state.problem = rec ? 'the volume is storage-only here' : 'no volume with this id here'
        out.push({ state, vol: null, refs: [] })
        continue
      }
      const vol = await this.host.volume(rec.name)
      this.watch(vol)
      const refs: FileRef[] = []
      const tree = vol.view()
      if (!tree.lookup(pin.path)) state.problem = 'no such path in the volume (yet): kept, fetched once it exists'
      else {
        for (const st of tree.walk(pin.path)) {
          if (st.kind !== 'file' || !st.content) continue
          refs.push(toFileRef(st.content))
          state.files++
          state.bytes += st.content.size
        }
      }
      out.push({ state, vol, refs })
    }
    return out
  }

  private watch(vol: Volume): void {
    const id = vol.id.toString('hex')
    if (this.watched.has(id)) return
    this.watched.set(id, vol.onChange(() => void this.sync()))
  }

  /** The addresses of every pinned file's objects, as far as held (no fetch). */
  private async collect(): Promise<void> {
    const all = new Set<string>()
    for (const { vol, refs } of await this.pinnedFiles()) if (vol) await addressesOf(vol.cas, refs, all)
    this.addresses = all
  }

  private async syncOnce(): Promise<void> {
    const pinned = await this.pinnedFiles()
    this.growing = new Set()
    this.running = pinned.map((p) => p.state)
    try {
      for (const { state, vol, refs } of pinned) {
        if (!vol || this.closed) continue
        await this.fetchPin(state, vol, refs)
      }
      // fetchPin walked every pinned file into `growing` (held, fetched, or failed: as far as
      // held), so that is the whole set: no second walk.
      if (!this.closed) this.addresses = this.growing
    } finally {
      this.growing = null
      this.running = null
    }
    this.states = pinned.map((p) => p.state)
    this.unwatchUnpinned(pinned)
  }

  private unwatchUnpinned(pinned: { vol: Volume | null }[]): void {
    const live = new Set(pinned.filter((p) => p.vol).map((p) => p.vol!.id.toString('hex')))
    for (const [id, off] of this.watched) {
      if (live.has(id)) continue
      off()
      this.watched.delete(id)
    }
  }

  /** Reads every file of the pin not held here (fetching its packs ahead), logging progress. */
  private async fetchPin(state: PinState, vol: Volume, refs: FileRef[]): Promise<void> {
    const where = `volume ${vol.name} ${state.pin.path}`
    const missing: FileRef[] = []
    for (const ref of refs) {
      if (await vol.cas.has(ref).catch(() => false)) {
        state.heldFiles++
        state.heldBytes += ref.size
        await addressesOf(vol.cas, [ref], this.growing!)
      } else missing.push(ref)
    }
    if (missing.length === 0) return
    const total = missing.reduce((n, r) => n + r.size, 0)
    this.log('info', `pin: ${where}: fetching ${missing.length} files (${formatBytes(total)}) for offline use`)
    const remote = this.host.remoteStores
    let done = 0
    let bytes = 0
    let failed = 0
    let lastLog = Date.now()
    await remote.bulk(async () => {
      const ahead = fetchAhead(vol.cas, missing, (a) => remote.prefetch(a), () => this.closed)
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < missing.length && !this.closed) {
          const ref = missing[next++]!
          try {
            for await (const _ of vol.cas.readFile(ref, `${where} (pinned)`)) {
              // read through: its packs are now held in the copies of the peers' stores
            }
            await addressesOf(vol.cas, [ref], this.growing!)
            state.heldFiles++
            state.heldBytes += ref.size
          } catch (err) {
            await addressesOf(vol.cas, [ref], this.growing!) // what of it is held stays protected
            failed++
            this.log('debug', `pin: ${where}: ${(err as Error).message}`)
          }
          done++
          bytes += ref.size
          if (Date.now() - lastLog >= PROGRESS_MS) {
            lastLog = Date.now()
            this.log('info', `pin: ${where}: ${done} of ${missing.length} files (${formatBytes(bytes)} of ${formatBytes(total)})`)
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(FILES_IN_FLIGHT, missing.length) }, worker))
      await ahead
    })
    if (failed > 0) this.log('warn', `pin: ${where}: ${failed} of ${missing.length} files could not be fetched (no peer holding them reachable?): tried again in a minute`)
    else this.log('info', `pin: ${where}: all ${refs.length} files held for offline use`)
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    for (const off of this.watched.values()) off()
    this.watched.clear()
    await this.syncs.current
  }
}
