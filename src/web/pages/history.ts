// A file's history on its page (`volume.history`): every version, who wrote it and when, and
// restoring one (`volume.restore`, a logged op that replicates), by its hash or from a snapshot.
import { formatBytes } from '../../format-bytes.js'
import { html, when, writer, type Html } from '../html.js'
import { csrfField, formText, volumeHref, type PageDeps, type WebContext, type WebPage } from '../page.js'

function restoreForm(c: WebContext, volume: string, path: string, from: { version: string } | { snapshot: string }, label: string): Html {
  const field = 'version' in from ? html`<input type="hidden" name="version" value="${from.version}">` : html`<input type="hidden" name="snapshot" value="${from.snapshot}">`
  return html`<form class="inline" method="post" action="${volumeHref(volume, 'restore')}">${csrfField(c)}<input type="hidden" name="path" value="${path}">${field}<button type="submit">${label}</button></form>`
}

/** The history section of a file's page (a live section: a version written elsewhere appears). */
export async function historySection(c: WebContext, deps: PageDeps, volume: string, path: string, snapshot: string | undefined): Promise<Html> {
  // A file seen in a snapshot: bring that back under its name.
  const fromSnapshot = snapshot ? html`<p>${restoreForm(c, volume, path, { snapshot }, `Restore this file from snapshot ${snapshot}`)}</p>` : html``
  const h = await deps.ops.call('volume.history', { volume, path })
  const versions = [...h.versions].reverse()
  return html`
<section id="history" data-live>
<h2>History</h2>
${fromSnapshot}
<table class="history">
<thead><tr><th>Time</th><th>Writer</th><th>Op</th><th>Path</th><th class="num">Size</th><th>Content</th><th></th></tr></thead>
<tbody>${versions.map((v) => html`<tr data-hash="${v.hash ?? ''}" data-op="${v.op}">
<td>${when(v.time)}</td><td>${writer(v.writer)}</td>
<td>${v.op}${v.kind ? html` <span class="dim">(${v.kind}${v.snapshot ? ` ${v.snapshot}` : ''})</span>` : html``}</td>
<td><code>${v.path}</code>${v.to ? html` → <code>${v.to}</code>` : html``}</td>
<td class="num">${v.size !== undefined ? formatBytes(v.size) : ''}</td>
<td>${v.hash ? html`<code title="${v.hash}">${v.hash.slice(0, 12)}</code>` : ''}${v.current ? html` <strong>current</strong>` : html``}${v.conflictCopy ? html` <span class="warn">shown as <code>${v.conflictCopy}</code></span>` : html``}</td>
<td>${v.hash && !v.current ? restoreForm(c, volume, path, { version: v.hash }, 'Restore') : ''}</td>
</tr>`)}</tbody>
</table>
</section>`
}

export const history: WebPage = {
  register(app, deps) {
    app.post('/v/:volume/restore', async (c) => {
      const volume = c.req.param('volume')
      const text = await formText(c)
      const path = text('path') ?? '/'
      const version = text('version')
      const snapshot = text('snapshot')
      const r = await deps.ops.call('volume.restore', { volume, path, ...(version ? { version } : {}), ...(snapshot ? { snapshot } : {}) })
      return c.redirect(volumeHref(volume, 'file', { path: r.path }), 303)
    })
  }
}
