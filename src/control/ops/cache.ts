// The control API's `cache.size`: the budget for content read from peers.
import { formatBudget, parseBudget, writeBudget } from '../../cas/cache-size.js'
import type { OpFn } from '../context.js'

export const size: OpFn<'cache.size'> = async (ctx, a) => {
  const spec = a.size !== undefined ? parseBudget(a.size) : null
  // No server: nothing is held open; record it (the next node to open evicts down to it).
  if (spec && !ctx.server) writeBudget(ctx.dir.paths.cacheConfig, spec)
  const node = await ctx.node()
  if (spec && ctx.server) await node.cache.setBudget(spec)
  else if (spec) await node.cache.evict()
  return { status: await node.cache.status(), set: spec ? formatBudget(spec) : null }
}
