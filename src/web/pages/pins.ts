// Pins (`pin.list`, `pin`, `unpin`): paths whose content this node keeps whatever its cache
// budget. A volume's pins on its Sync & storage page, a Pin or Unpin button on a file's or a
// directory's page.
import { formatBytes } from '../../format-bytes.js'
import { html, when, type Html } from '../html.js'
import { csrfField, formText, volumeHref, type PageDeps, type WebContext, type WebPage } from '../page.js'

function pinForm(c: WebContext, volume: string, path: string, action: 'pin' | 'unpin', back: string): Html {
  return html`<form class="inline" method="post" action="${volumeHref(volume, 'pins')}">${csrfField(c)}<input type="hidden" name="path" value="${path}"><input type="hidden" name="action" value="${action}"><input type="hidden" name="back" value="${back}"><button type="submit">${action === 'pin' ? 'Pin (keep it here)' : 'Unpin'}</button></form>`
}

async function volumePins(deps: PageDeps, volume: string) {
  return (await deps.ops.call('pin.list', {})).pins.filter((p) => p.volume === volume)
}

/** A Pin or Unpin button for `path` (none when a pinned directory above covers it). */
export async function pinButton(c: WebContext, deps: PageDeps, volume: string, path: string, back: string): Promise<Html> {
  const pins = await volumePins(deps, volume)
  if (pins.some((p) => p.path === path)) return html`<span class="on">pinned</span> ${pinForm(c, volume, path, 'unpin', back)}`
  const above = pins.find((p) => p.path === '/' || path.startsWith(`${p.path}/`))
  return above ? html`<span class="dim">kept here: under the pinned ${above.path}</span>` : pinForm(c, volume, path, 'pin', back)
}

export async function pinsSection(c: WebContext, deps: PageDeps, volume: string): Promise<Html> {
  const pins = await volumePins(deps, volume)
  return html`
<section id="pins" data-live>
<h2>Pins</h2>
${pins.length === 0 ? html`<p class="dim">Nothing pinned: a file's or directory's page has a Pin button (or <code>bazil pin</code>).</p>` : html`
<table>
<thead><tr><th>Path</th><th>Pinned</th><th class="num">Files</th><th>Held here</th><th></th></tr></thead>
<tbody>${pins.map((p) => html`<tr data-pin="${p.path}"><td><a href="${volumeHref(volume, 'files', { path: p.path })}"><code>${p.path}</code></a>${p.problem ? html` <span class="warn">${p.problem}</span>` : html``}</td><td>${when(p.added)}</td><td class="num">${p.files}</td>
<td>${p.heldBytes === null ? html`<span class="dim">not known yet</span>` : html`<progress max="${Math.max(p.bytes, 1)}" value="${p.heldBytes}"></progress> ${formatBytes(p.heldBytes)} of ${formatBytes(p.bytes)}`}</td>
<td>${pinForm(c, volume, p.path, 'unpin', volumeHref(volume, 'storage'))}</td></tr>`)}</tbody>
</table>`}
</section>`
}

export const pins: WebPage = {
  register(app, deps) {
    app.post('/v/:volume/pins', async (c) => {
      const volume = c.req.param('volume')
      const text = await formText(c)
      const path = text('path') ?? '/'
      await deps.ops.call(text('action') === 'unpin' ? 'unpin' : 'pin', { volume, paths: [path] })
      // Back to the page the button was on (a path of this view only).
      const back = text('back')
      return c.redirect(back?.startsWith('/v/') ? back : volumeHref(volume, 'storage'), 303)
    })
  }
}
