// The control API's `web.url`: where the running server's web view answers, with its token.
import { UserError } from '../../datadir.js'
import type { OpFn } from '../context.js'

export const url: OpFn<'web.url'> = async (ctx) => {
  const web = ctx.server?.web
  if (!web) throw new UserError('the web view is off: start the server with `bazil server run --web=127.0.0.1:PORT`')
  return { url: web.url }
}
