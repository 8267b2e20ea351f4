// The control API's volume ops without a mount: list, create, ls, cat, mkdir, rm, mv,
// snapshots and their retention rule, saving the directory state to a file.
import { UserError } from '../../datadir.js'
import { replaceFileSync } from '../../atomic-file.js'
import { decodeRetention, describeRetention, encodeRetention } from '../../retention.js'
import type { Stat } from '../../tree/index.js'
import type { OpFn } from '../context.js'
import type { EntryInfo } from '../requests.js'

export const list: OpFn<'volume.list'> = async (ctx) => ({
  // A storage-only volume (held for others, no sharing key) shows as such.
  volumes: ctx.dir.listVolumes().map((v) => ({ name: v.name, id: v.id, sharing: v.sharing ?? null, ...(v.storageOnly ? { storageOnly: true as const } : {}), created: new Date(v.created).toISOString() }))
})

export const create: OpFn<'volume.create'> = async (ctx, a) => {
  const sharing = a.sharing ?? 'default'
  await (await ctx.node()).createVolume(a.name, sharing)
  return { name: a.name, sharing }
}

export function entryInfo(st: Stat): EntryInfo {
  return {
    name: st.name,
    path: st.path,
    kind: st.kind,
    mode: st.mode,
    size: st.size,
    mtime: new Date(st.mtime).toISOString(),
    ...(st.content ? { hash: st.content.hash } : {}),
    ...(st.target !== undefined ? { target: st.target } : {}),
    ...(st.rdev !== undefined ? { rdev: st.rdev } : {}),
    // -1: the mounting user (spec/tree.md "Owners")
    uid: st.uid,
    gid: st.gid,
    // Hard links: every name of a node lists with its link count (spec/tree.md "Hard links").
    ...(st.nlink !== undefined ? { nlink: st.nlink } : {})
  }
}

export const ls: OpFn<'volume.ls'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const tree = vol.view(a.snapshot)
  const st = tree.stat(a.path ?? '/')
  const entries = st.kind === 'dir' ? tree.readdir(st.path) : [st]
  return { entries: entries.map(entryInfo) }
}

export const cat: OpFn<'volume.cat'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const st = vol.view(a.snapshot).stat(a.path)
  if (st.kind === 'dir') throw new UserError(`${st.path} is a directory`)
  if (st.kind === 'symlink') throw new UserError(`${st.path} is a symlink to ${st.target}`)
  if (st.kind !== 'file') throw new UserError(`${st.path} is a ${st.kind}: it has no content`)
  if (!st.content) throw new UserError(`${st.path} has no content`)
  const { toFileRef } = await import('../../volume/volume.js')
  for await (const chunk of vol.cas.readFile(toFileRef(st.content), st.path)) await ctx.write(chunk)
  return { path: st.path, size: st.size }
}

export const mkdir: OpFn<'volume.mkdir'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const had = vol.tree.lookup(a.path)
  if (a.parents) vol.mkdirp(a.path)
  else vol.mkdir(a.path)
  await vol.flush()
  return { path: vol.tree.stat(a.path).path, created: !had }
}

export const rm: OpFn<'volume.rm'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const st = vol.tree.stat(a.path)
  if (st.path === '/') throw new UserError('refusing to remove the root of a volume')
  let removed = 0
  if (st.kind !== 'dir') {
    vol.unlink(st.path)
    removed = 1
  } else if (!a.recursive) throw new UserError(`${st.path} is a directory: use -r to remove it and its contents`)
  else {
    // Children before parents: walk gives parents first, so remove in reverse.
    const all = [...vol.tree.walk(st.path)].reverse()
    for (const e of all) {
      if (e.kind === 'dir') vol.rmdir(e.path)
      else vol.unlink(e.path)
    }
    removed = all.length
  }
  await vol.flush()
  return { removed }
}

export const mv: OpFn<'volume.mv'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const target = vol.tree.lookup(a.to)
  if (target && !a.force) throw new UserError(`${target.path} already exists: use --force to replace it`)
  vol.rename(a.from, a.to)
  await vol.flush()
  return { from: a.from, to: vol.tree.stat(a.to).path }
}

export const snapshotCreate: OpFn<'volume.snapshot.create'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  vol.snapshot(a.name)
  await vol.flush()
  return { volume: vol.name, name: a.name }
}

export const snapshotList: OpFn<'volume.snapshot.list'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  return { snapshots: vol.tree.snapshots().map((s) => ({ name: s.name, time: new Date(s.time).toISOString() })) }
}

export const snapshotRm: OpFn<'volume.snapshot.rm'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  vol.removeSnapshot(a.name)
  await vol.flush()
  return { volume: a.volume, name: a.name }
}

/** The largest count a retention rule keeps (src/retention.ts). */
const MAX_KEEP = 100000

export const snapshotKeep: OpFn<'volume.snapshot.keep'> = async (ctx, a) => {
  const rule = { last: a.last ?? 0, hourly: a.hourly ?? 0, daily: a.daily ?? 0, weekly: a.weekly ?? 0 }
  for (const [k, n] of Object.entries(rule)) if (n > MAX_KEEP) throw new UserError(`--${k}: "${n}" is not a count (0..${MAX_KEEP})`)
  const counted = rule.last + rule.hourly + rule.daily + rule.weekly > 0
  if (a.none && counted) throw new UserError('--none with counts: give one or the other')
  const vol = await (await ctx.node()).volume(a.volume)
  if (a.none || counted) {
    vol.setRetentionText(encodeRetention(rule))
    await vol.flush()
  }
  const now = decodeRetention(vol.retentionText)
  return { volume: a.volume, rule: now, text: describeRetention(now) }
}

export const stateSave: OpFn<'volume.state.save'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  // Loaded here: the state file's codec brings the tree model, which volume.list does not need.
  const { encodeState } = await import('../../tree/state-file.js')
  const state = await vol.saveState()
  const bytes = encodeState(state)
  replaceFileSync(a.file, bytes)
  return { volume: a.volume, file: a.file, shards: state.shards.length, entries: Object.values(state.logs).reduce((n, x) => n + x - 1, 0), bytes: bytes.length }
}
