// The control API's conflict ops: files two writers changed concurrently, owners and extended
// attributes two writers set concurrently, and settling them.
import { UserError } from '../../datadir.js'
import { attrConflicts, jsonValue, resolveAttr } from '../../volume/attr-conflict-ops.js'
import type { OpFn } from '../context.js'

const KEEP = ['mine', 'theirs', 'both']

export const conflicts: OpFn<'volume.conflicts'> = async (ctx, a) => {
  const vol = await (await ctx.node()).volume(a.volume)
  const files = (await vol.conflicts()).map((c) => ({
    path: c.path,
    versions: c.versions.map((v) => ({ path: v.path, log: v.log, node: v.node, mine: v.mine, time: new Date(v.time).toISOString(), size: v.size, hash: v.hash }))
  }))
  const attributes = (await attrConflicts(vol)).map((c) => ({
    path: c.path,
    attribute: c.attribute,
    values: c.values.map((v) => ({ value: jsonValue(v.value), log: v.log, node: v.node, mine: v.mine, won: v.won }))
  }))
  return { volume: vol.name, files, attributes }
}

export const resolve: OpFn<'volume.resolve'> = async (ctx, a) => {
  // The content's --keep is checked before anything opens (an attribute's names a writer: checked against its values).
  if (a.attr === undefined && !KEEP.includes(a.keep) && !/^[0-9a-f]{8,64}$/.test(a.keep)) {
    throw new UserError(`--keep must be mine, theirs, both or the hash of a version (8+ hex digits, see volume conflicts), got "${a.keep}"`)
  }
  const vol = await (await ctx.node()).volume(a.volume)
  if (a.attr !== undefined) {
    const st = await resolveAttr(vol, a.path, a.attr, a.keep)
    await vol.flush()
    return { path: st.path, attribute: a.attr, created: [] }
  }
  const r = vol.resolve(a.path, a.keep)
  await vol.flush()
  return { path: r.kept.path, kept: r.kept.content?.hash ?? '', created: r.created.map((c) => c.path) }
}
