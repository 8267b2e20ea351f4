// The local web view (`bazil server run --web=HOST:PORT`, spec/web.md): an HTTP server inside
// the bazil server, Hono on Node's http, whose pages call the typed control ops. Every request
// needs the token (src/web/auth.ts); every state change is a POST from this origin with the
// session's CSRF token; pages are rendered here and pushed updates by server-sent events.
import type http from 'node:http'
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { getCookie, setCookie } from 'hono/cookie'
import { createAdaptorServer } from '@hono/node-server'
import { UserError } from '../datadir.js'
import { errorKind } from '../control/client.js'
import type { Log } from '../log.js'
import type { ServerHandle, WebView } from '../server/handle.js'
import { exposureWarning, hostPort, type WebAddress } from './address.js'
import { APP_JS, STYLE_CSS } from './assets.js'
import { WebAuth, same } from './auth.js'
import { escapeHtml } from './html.js'
import { registerLive } from './live.js'
import { WebOps } from './ops.js'
import type { PageDeps, WebEnv } from './page.js'
import { PAGES } from './pages/index.js'

/** Forms carry a few fields; nothing larger is read. */
const MAX_BODY = 64 * 1024

/** Starts the web view on `address`; the server closes it before it stops. */
export async function startWeb(server: ServerHandle, address: WebAddress, log: Log): Promise<WebView> {
  if (!address.loopback) log('warn', exposureWarning(address))
  const closing = new AbortController()
  const auth = new WebAuth()
  let port = address.port
  const deps: PageDeps = { ops: new WebOps(server), log, tabs: PAGES.flatMap((p) => (p.tab ? [p.tab] : [])) }
  const app = new Hono<WebEnv>()

  app.use(async (c, next) => {
    await next()
    // Only this origin's own script, style and forms; never framed; no Referer to other sites
    // (`no-referrer` would make the browser send `Origin: null` on our own forms).
    c.header('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    c.header('X-Content-Type-Options', 'nosniff')
    c.header('Referrer-Policy', 'same-origin')
    c.header('Cache-Control', 'no-store')
  })
  app.use(async (c, next) => {
    // A loopback view answers only to its own names: a site that rebinds its DNS name to
    // 127.0.0.1 gets nothing (it has no token either; this is the second lock).
    const host = (c.req.header('host') ?? '').toLowerCase()
    const mine = [hostPort(address.host, port), `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]
    if (address.loopback && !mine.includes(host)) return refuse(c, `this web view answers to ${hostPort(address.host, port)} only`)
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && c.req.method !== 'POST') return c.text('only GET and POST', 405)
    const token = c.req.query('token')
    if (token !== undefined) {
      if (!auth.isToken(token)) return refuse(c, 'that token is not this web view\'s (it changes each time the server starts)')
      // The token becomes a session cookie and leaves the address bar (and the history).
      setCookie(c, auth.cookieName, auth.openSession(), { httpOnly: true, sameSite: 'Strict', path: '/' })
      const url = new URL(c.req.url)
      url.searchParams.delete('token')
      // Only a path of this origin: `//host` would send the browser to another site.
      return c.redirect(url.pathname.startsWith('//') ? '/' : url.pathname + url.search, 303)
    }
    const access = auth.access(getCookie(c, auth.cookieName), c.req.header('authorization'))
    if (!access) return refuse(c, 'this web view needs its token')
    c.set('access', access)
    await next()
  })
  app.post('*', bodyLimit({ maxSize: MAX_BODY }), async (c, next) => {
    const access = c.get('access')
    if (access.kind === 'session') {
      // A browser's state change: from this origin, with this session's CSRF token.
      const origin = c.req.header('origin')
      const sameOrigin = origin !== undefined ? origin === `http://${c.req.header('host')}` : c.req.header('sec-fetch-site') === 'same-origin'
      if (!sameOrigin) return refuse(c, 'a change must come from this web view\'s own pages')
      const form = (c.req.header('content-type') ?? '').startsWith('application/x-www-form-urlencoded') ? await c.req.parseBody() : {}
      const sent = c.req.header('x-csrf-token') ?? (typeof form._csrf === 'string' ? form._csrf : undefined)
      if (sent === undefined || !same(sent, access.csrf)) return refuse(c, 'the form is stale or not from this web view: reload the page and try again')
    }
    await next()
  })

  app.get('/style.css', (c) => c.body(STYLE_CSS, 200, { 'Content-Type': 'text/css; charset=utf-8' }))
  app.get('/app.js', (c) => c.body(APP_JS, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }))
  registerLive(app, deps, closing.signal)
  for (const page of PAGES) page.register(app, deps)

  app.notFound((c) => errorPage(c, 404, `no page ${c.req.path}`))
  app.onError((err, c) => {
    // Bad input is one line on the page; it never stops the server.
    const kind = errorKind(err)
    if (kind === 'internal') log('error', `web: ${c.req.method} ${c.req.path} failed: ${err.stack ?? err.message}`)
    return errorPage(c, kind === 'internal' ? 500 : 400, err.message.split('\n')[0]!)
  })

  const http = createAdaptorServer({ fetch: app.fetch, overrideGlobalObjects: false }) as http.Server
  await new Promise<void>((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UserError(`the web view cannot listen on ${hostPort(address.host, address.port)}: ${err.code === 'EADDRINUSE' ? 'the port is in use: pick another' : err.message}`)))
    http.listen(address.port, address.host, () => resolve())
  })
  port = (http.address() as { port: number }).port
  // A wildcard address is reached on this machine by loopback.
  const urlHost = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host
  const base = `http://${hostPort(urlHost, port)}/`
  log('info', `web view on ${base} (\`bazil web url\` prints it with its token)`)
  return {
    url: `${base}?token=${auth.token}`,
    close: async () => {
      closing.abort()
      await new Promise<void>((resolve) => {
        http.close(() => resolve())
        http.closeAllConnections()
      })
    }
  }
}

function refuse(c: Context, why: string): Response {
  return c.html(standalone('Refused', `${escapeHtml(why)}. Run <code>bazil web url</code> on the machine the server runs on and open the address it prints.`), 403)
}

function errorPage(c: Context, status: 400 | 404 | 500, message: string): Response {
  return c.html(standalone(status === 404 ? 'Not found' : 'Error', escapeHtml(message)), status)
}

/** A page without the layout (no ops run for it: it must render whatever failed). */
function standalone(title: string, bodyHtml: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title} · bazil</title><link rel="stylesheet" href="/style.css"></head><body><header><a class="brand" href="/">bazil</a></header><main><h2>${title}</h2><p class="error">${bodyHtml}</p></main></body></html>`
}
