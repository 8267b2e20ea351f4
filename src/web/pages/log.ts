// A volume's op log (`log.show`) as a timeline, newest first, filterable by writer, by path
// (ops on it or below it, renames followed) and by time.
import type { LogRow } from '../../control/requests.js'
import { formatBytes } from '../../format-bytes.js'
import { html, key, when, type Html } from '../html.js'
import { renderPage, volumeHref, type WebPage } from '../page.js'

/** Rows shown at most (the newest); the CLI's `log show` has them all. */
const MAX_ROWS = 500

function detail(r: LogRow): Html {
  const parts: (Html | string)[] = []
  if (typeof r.to === 'string') parts.push(html`→ <code>${r.to}</code>`)
  if (typeof r.size === 'number') parts.push(formatBytes(r.size))
  if (typeof r.hash === 'string') parts.push(html`<code title="${r.hash}">${r.hash.slice(0, 12)}</code>`)
  if (typeof r.target === 'string') parts.push(html`→ ${r.target}`)
  if (typeof r.log === 'string') parts.push(html`log ${key(r.log)}`)
  if (typeof r.node === 'string') parts.push(html`node ${key(r.node)}`)
  if (r.authorised === false) parts.push(html`<span class="warn">not authorised</span>`)
  return html`${parts.map((p, i) => html`${i > 0 ? ' · ' : ''}${p}`)}`
}

export const log: WebPage = {
  tab: { label: 'Log', path: 'log' },
  register(app, deps) {
    app.get('/v/:volume/log', async (c) => {
      const volume = c.req.param('volume')
      const q = (k: string): string | undefined => c.req.query(k) || undefined
      const [writer, path, since, until] = [q('writer'), q('path'), q('since'), q('until')]
      const { rows, bad } = await deps.ops.call('log.show', { volume, ...(writer ? { writer } : {}), ...(path ? { path } : {}), ...(since ? { since } : {}), ...(until ? { until } : {}) })
      const writers = [...new Set([...(writer ? [writer] : []), ...rows.map((r) => r.writer)])]
      // Oldest first from the op (merged across writers by time): the timeline is newest first.
      const shown = rows.slice(-MAX_ROWS).reverse()
      const body = html`
<form class="bar" method="get" action="${volumeHref(volume, 'log')}">
<label>Writer <select name="writer"><option value="">every writer</option>${writers.map((w) => html`<option value="${w}"${w === writer ? html` selected` : html``}>${w.slice(0, 16)}…</option>`)}</select></label>
<label>Path <input name="path" value="${path ?? ''}" placeholder="/ or /docs/a.txt"></label>
<label>Since <input name="since" value="${since ?? ''}" placeholder="2h, 3d or a time" size="10"></label>
<label>Until <input name="until" value="${until ?? ''}" placeholder="a time" size="10"></label>
<button type="submit">Show</button>
</form>
<section id="timeline" data-live>
${bad > 0 ? html`<p class="warn">${bad} entries could not be read (see <code>bazil log verify ${volume}</code>).</p>` : html``}
<p class="dim">${rows.length === 0 ? 'No ops yet.' : rows.length > MAX_ROWS ? `The newest ${MAX_ROWS} of ${rows.length} ops.` : `${rows.length} ops, newest first.`}</p>
<table class="timeline">
<thead><tr><th>Time</th><th>Writer</th><th>Op</th><th>Path</th><th>Details</th></tr></thead>
<tbody>${shown.map((r) => html`<tr><td>${when(r.time)}</td><td><a href="${volumeHref(volume, 'log', { writer: r.writer, path })}">${key(r.writer)}</a></td><td>${r.op}</td><td>${typeof r.path === 'string' && r.path.startsWith('/') ? html`<a href="${volumeHref(volume, 'log', { path: r.path })}"><code>${r.path}</code></a>` : typeof r.path === 'string' ? html`<code>${r.path}</code>` : ''}</td><td>${detail(r)}</td></tr>`)}</tbody>
</table>
</section>`
      return renderPage(c, deps, { title: `${volume}: log`, volume, tab: 'log', body })
    })
  }
}
