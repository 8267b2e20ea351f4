// A volume's conflicts (`volume.conflicts`): files two writers changed concurrently, owners
// and extended attributes set concurrently, each version or value with a button that keeps
// it (`volume.resolve`, a logged op: the conflict clears on every peer).
import type { AttrValueJson } from '../../control/requests.js'
import { formatBytes } from '../../format-bytes.js'
import { html, key, when, type Html } from '../html.js'
import { csrfField, formText, renderPage, volumeHref, type WebContext, type WebPage } from '../page.js'

function resolveButton(c: WebContext, volume: string, path: string, keep: string, label: string, attr?: string): Html {
  return html`<form class="inline" method="post" action="${volumeHref(volume, 'conflicts')}">${csrfField(c)}<input type="hidden" name="path" value="${path}"><input type="hidden" name="keep" value="${keep}">${attr !== undefined ? html`<input type="hidden" name="attr" value="${attr}">` : html``}<button type="submit">${label}</button></form>`
}

function who(node: string | null, log: string, mine: boolean): Html {
  return mine ? html`<span title="${log}">this node</span>` : key(node ?? log)
}

function value(v: AttrValueJson): Html {
  if (typeof v === 'number') return html`<code>${v === -1 ? 'the mounting user' : v}</code>`
  return v.text !== undefined ? html`<code>${v.text}</code>` : html`<code class="dim">${v.base64}</code> <span class="dim">(base64)</span>`
}

export const conflicts: WebPage = {
  tab: { label: 'Conflicts', path: 'conflicts' },
  register(app, deps) {
    app.get('/v/:volume/conflicts', async (c) => {
      const volume = c.req.param('volume')
      const r = await deps.ops.call('volume.conflicts', { volume })
      const body = html`
<section id="conflicts" data-live>
${r.files.length === 0 && r.attributes.length === 0 ? html`<p class="dim">No conflicts.</p>` : html``}
${r.files.map((f) => html`
<div class="conflict" data-conflict="${f.path}">
<h2><a href="${volumeHref(volume, 'file', { path: f.path })}"><code>${f.path}</code></a>: written concurrently</h2>
<table>
<thead><tr><th>Shown as</th><th>Writer</th><th>Time</th><th class="num">Size</th><th>Content</th><th></th></tr></thead>
<tbody>${f.versions.map((v) => html`<tr><td><a href="${volumeHref(volume, 'file', { path: v.path })}"><code>${v.path}</code></a></td><td>${who(v.node, v.log, v.mine)}</td><td>${when(v.time)}</td><td class="num">${formatBytes(v.size)}</td><td><code title="${v.hash}">${v.hash.slice(0, 12)}</code></td><td>${resolveButton(c, volume, f.path, v.hash, 'Keep this one')}</td></tr>`)}</tbody>
</table>
<p>${resolveButton(c, volume, f.path, 'both', 'Keep both (the others as new files)')}</p>
</div>`)}
${r.attributes.map((a) => html`
<div class="conflict" data-conflict="${a.path}" data-attribute="${a.attribute}">
<h2><code>${a.path}</code>: ${a.attribute} set concurrently</h2>
<table>
<thead><tr><th>Value</th><th>Writer</th><th></th><th></th></tr></thead>
<tbody>${a.values.map((v) => html`<tr><td>${value(v.value)}</td><td>${who(v.node, v.log, v.mine)}</td><td>${v.won ? 'shown now' : html`<span class="dim">not shown</span>`}</td><td>${resolveButton(c, volume, a.path, v.node ?? v.log, 'Keep this one', a.attribute)}</td></tr>`)}</tbody>
</table>
</div>`)}
</section>`
      return renderPage(c, deps, { title: `${volume}: conflicts`, volume, tab: 'conflicts', body })
    })

    app.post('/v/:volume/conflicts', async (c) => {
      const volume = c.req.param('volume')
      const text = await formText(c)
      const attr = text('attr')
      await deps.ops.call('volume.resolve', { volume, path: text('path') ?? '', keep: text('keep') ?? '', ...(attr ? { attr } : {}) })
      return c.redirect(volumeHref(volume, 'conflicts'), 303)
    })
  }
}
