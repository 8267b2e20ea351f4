// The control API's pins: `pin` (keep paths of a volume here for offline use; with `wait`,
// follow the server's fetch of them as `status` events, files and bytes held of those
// pinned), `unpin`, and `pin.list`. Paths are a volume's (`volume` given) or local paths
// inside the server's mounts.
import path from 'node:path'
import { UserError, type DataDir } from '../../datadir.js'
import { addPins, covers, pinPath, readPins, removePins, type Pin } from '../../pins/pins-file.js'
import type { Node } from '../../node.js'
import type { MountInfo } from '../../server/handle.js'
import type { Cas, FileRef } from '../../cas/cas.js'
import type { OpContext, OpFn } from '../context.js'
import { OpProgress } from '../progress.js'
import type { PinRow } from '../requests.js'

/** (volume name, paths in it) pairs: the volume's paths as given, or local paths mapped through the mounts. */
function targets(dir: DataDir, volume: string | undefined, paths: string[], mounts: MountInfo[]): { volume: string; paths: string[] }[] {
  if (paths.length === 0) throw new UserError('give VOLUME PATH... or paths inside a mounted volume')
  if (volume !== undefined) return [{ volume: dir.volume(volume).name, paths: paths.map(pinPath) }]
  const byVolume = new Map<string, string[]>()
  for (const abs of paths) {
    const m = mounts
      .filter((x) => abs === x.mountpoint || abs.startsWith(x.mountpoint + path.sep))
      .sort((x, y) => y.mountpoint.length - x.mountpoint.length)[0]
    if (!m) {
      throw new UserError(mounts.length === 0
        ? `${abs}: not a volume, and no volume is mounted by a running server: give VOLUME PATH...`
        : `${abs} is not inside a mounted volume (${mounts.map((x) => x.mountpoint).join(', ')}): give VOLUME PATH...`)
    }
    const list = byVolume.get(m.volume) ?? []
    list.push(pinPath(path.relative(m.mountpoint, abs).split(path.sep).join('/')))
    byVolume.set(m.volume, list)
  }
  return [...byVolume].map(([v, p]) => ({ volume: v, paths: p }))
}

export const pin: OpFn<'pin'> = async (ctx, a) => {
  const node = await ctx.node()
  const server = ctx.server
  const lines: string[] = []
  const added: Pin[] = []
  for (const t of targets(node.dir, a.volume, a.paths, server?.mounts() ?? [])) {
    const vol = await node.volume(t.volume)
    const tree = vol.view()
    for (const p of t.paths) if (!tree.lookup(p)) throw new UserError(`volume ${vol.name} has no ${p}`)
    const id = vol.id.toString('hex')
    const existing = readPins(node.dir.paths.pins).filter((x) => x.volume === id)
    const now = addPins(node.dir.paths.pins, id, t.paths)
    added.push(...now)
    for (const p of t.paths) {
      const under = existing.find((x) => covers(x.path, p))
      if (under) lines.push(`volume ${vol.name} ${p} is pinned already${under.path !== p ? ` (under ${under.path})` : ''}`)
      else if (now.some((x) => x.path === p)) lines.push(`pinned volume ${vol.name} ${p}: ${!server ? 'fetched once `bazil server run` runs' : a.wait ? 'fetched' : 'fetching in the background (`bazil status` shows how far)'}`)
    }
  }
  if (!server) return { lines, waited: false }
  const syncing = node.pins.sync()
  if (!a.wait) return { lines, waited: false }
  await follow(ctx, node, added, syncing)
  return { lines, waited: true }
}

/** Status events while the server's pin sync runs: files and bytes of the new pins held here. */
async function follow(ctx: OpContext, node: Node, pins: Pin[], syncing: Promise<void>): Promise<void> {
  const mine = (): { done: number; total: number; bytesDone: number; bytesTotal: number } => {
    const c = { done: 0, total: 0, bytesDone: 0, bytesTotal: 0 }
    for (const s of node.pins.live()) {
      if (!pins.some((p) => p.volume === s.pin.volume && p.path === s.pin.path)) continue
      c.done += s.heldFiles
      c.total += s.files
      c.bytesDone += s.heldBytes
      c.bytesTotal += s.bytes
    }
    return c
  }
  const progress = new OpProgress((e) => ctx.emit(e), { unit: 'files' })
  progress.update(mine(), true)
  const ticker = setInterval(() => progress.update(mine()), 100)
  try {
    await syncing
  } finally {
    clearInterval(ticker)
  }
  progress.end(mine())
}

export const unpin: OpFn<'unpin'> = async (ctx, a) => {
  const node = await ctx.node()
  const lines: string[] = []
  for (const t of targets(node.dir, a.volume, a.paths, ctx.server?.mounts() ?? [])) {
    const id = node.dir.volume(t.volume).id
    const pins = readPins(node.dir.paths.pins).filter((x) => x.volume === id)
    for (const p of t.paths) {
      if (pins.some((x) => x.path === p)) continue
      const under = pins.find((x) => covers(x.path, p))
      throw new UserError(under ? `volume ${t.volume} ${p} is not pinned itself: it is under the pinned ${under.path} (unpin that)` : `volume ${t.volume} ${p} is not pinned (see \`bazil pin --list\`)`)
    }
    removePins(node.dir.paths.pins, id, t.paths)
    for (const p of t.paths) lines.push(`unpinned volume ${t.volume} ${p}`)
  }
  if (ctx.server) void node.pins.sync()
  return { lines }
}

/** The files of `refs` whose every object (manifest nodes, chunks) this node holds, and their bytes: local lookups only. */
async function heldHere(cas: Cas, refs: FileRef[]): Promise<{ files: number; bytes: number }> {
  let files = 0
  let bytes = 0
  for (const ref of refs) {
    if (!(await cas.has(ref).catch(() => false))) continue
    files++
    bytes += ref.size
  }
  return { files, bytes }
}

export const list: OpFn<'pin.list'> = async (ctx) => {
  const node = await ctx.node()
  const inServer = !!ctx.server
  const { toFileRef } = await import('../../volume/volume.js')
  const states = inServer ? node.pins.list() : []
  const volumes = node.dir.listVolumes()
  const rows: PinRow[] = []
  for (const p of readPins(node.dir.paths.pins)) {
    const rec = volumes.find((v) => v.id === p.volume)
    const state = states.find((s) => s.pin.volume === p.volume && s.pin.path === p.path)
    let files = 0
    let bytes = 0
    let problem: string | null = rec ? null : 'no volume with this id here'
    let held: { files: number; bytes: number } | null = state ? { files: state.heldFiles, bytes: state.heldBytes } : null
    if (rec && !rec.storageOnly) {
      const vol = await node.volume(rec.name)
      const tree = vol.view()
      const refs: FileRef[] = []
      if (!tree.lookup(p.path)) problem = 'no such path in the volume now'
      else for (const st of tree.walk(p.path)) if (st.kind === 'file' && st.content) {
        files++
        bytes += st.content.size
        refs.push(toFileRef(st.content))
      }
      if (!inServer) held = await heldHere(vol.cas, refs)
    } else if (!inServer) held = { files: 0, bytes: 0 }
    rows.push({ volume: rec?.name ?? null, volumeId: p.volume, path: p.path, added: new Date(p.added).toISOString(), files, bytes, heldBytes: held?.bytes ?? null, heldFiles: held?.files ?? null, problem })
  }
  return { pins: rows }
}
