// A volume's op log (`log.show`) as a timeline, newest first, filterable by writer.
import type { LogRow } from '../../control/requests.js'
import { bytes, html, key, when, type Html } from '../html.js'
import { renderPage, volumeHref, type WebPage } from '../page.js'

/** Rows shown at most (the newest); the CLI's `log show` has them all. */
const MAX_ROWS = 500

function detail(r: LogRow): Html {
  const parts: (Html | string)[] = []
  if (typeof r.to === 'string') parts.push(html`→ <code>${r.to}</code>`)
  if (typeof r.size === 'number') parts.push(bytes(r.size))
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
      const writer = c.req.query('writer') || undefined
      const { rows, bad } = await deps.ops.call('log.show', { volume, ...(writer ? { writer } : {}) })
      const writers = [...new Set([...(writer ? [writer] : []), ...rows.map((r) => r.writer)])]
      // The log lists each writer's entries in turn: the timeline interleaves them by time.
      const shown = rows.map((r, i) => ({ r, i })).sort((a, b) => (a.r.time < b.r.time ? 1 : a.r.time > b.r.time ? -1 : b.i - a.i)).slice(0, MAX_ROWS).map((x) => x.r)
      const body = html`
<form class="bar" method="get" action="${volumeHref(volume, 'log')}">
<label>Writer <select name="writer"><option value="">every writer</option>${writers.map((w) => html`<option value="${w}"${w === writer ? html` selected` : html``}>${w.slice(0, 16)}…</option>`)}</select></label>
<button type="submit">Show</button>
</form>
<section id="timeline" data-live>
${bad > 0 ? html`<p class="warn">${bad} entries could not be read (see <code>bazil log verify ${volume}</code>).</p>` : html``}
<p class="dim">${rows.length === 0 ? 'No ops yet.' : rows.length > MAX_ROWS ? `The newest ${MAX_ROWS} of ${rows.length} ops.` : `${rows.length} ops, newest first.`}</p>
<table class="timeline">
<thead><tr><th>Time</th><th>Writer</th><th>Op</th><th>Path</th><th>Details</th></tr></thead>
<tbody>${shown.map((r) => html`<tr><td>${when(r.time)}</td><td><a href="${volumeHref(volume, 'log', { writer: r.writer })}">${key(r.writer)}</a></td><td>${r.op}</td><td>${typeof r.path === 'string' ? html`<code>${r.path}</code>` : ''}</td><td>${detail(r)}</td></tr>`)}</tbody>
</table>
</section>`
      return renderPage(c, deps, { title: `${volume}: log`, volume, tab: 'log', body })
    })
  }
}
