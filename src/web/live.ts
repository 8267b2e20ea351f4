// `/events`: the server pushes what changed to open pages (server-sent events), from the
// control API's `watch` op: one message per event, its JSON as the data. The page redraws
// then (src/web/assets.ts); nothing polls.
import type { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { PageDeps, WebEnv } from './page.js'

export function registerLive(app: Hono<WebEnv>, deps: PageDeps, closing: AbortSignal): void {
  app.get('/events', (c) =>
    streamSSE(c, async (stream) => {
      const gone = new AbortController()
      stream.onAbort(() => gone.abort())
      const send = (e: object): void => {
        stream.writeSSE({ data: JSON.stringify(e) }).catch(() => gone.abort())
      }
      // First a hello: the page knows the stream is up (and a test knows it may change things).
      send({ message_type: 'hello', time: new Date().toISOString() })
      await deps.ops.call('watch', { peers: true }, { signal: AbortSignal.any([gone.signal, closing]), onEvent: send })
    }, async (err) => deps.log('debug', `web: an event stream ended: ${err.message}`))
  )
}
