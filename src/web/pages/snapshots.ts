// A volume's snapshots: the list (each browsable in the file browser) and taking a new one.
import { html } from '../html.js'
import { csrfField, formText, renderPage, volumeHref, type WebPage } from '../page.js'

/** A name for a snapshot taken now, as the form suggests it. */
function suggestedName(): string {
  return `web-${new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}`
}

export const snapshots: WebPage = {
  tab: { label: 'Snapshots', path: 'snapshots' },
  register(app, deps) {
    app.get('/v/:volume/snapshots', async (c) => {
      const volume = c.req.param('volume')
      const { snapshots: list } = await deps.ops.call('volume.snapshot.list', { volume })
      const body = html`
<form class="bar" method="post" action="${volumeHref(volume, 'snapshots')}">
${csrfField(c)}
<label>Name <input name="name" value="${suggestedName()}" required></label>
<button type="submit">Take a snapshot</button>
</form>
<section id="snapshots" data-live>
${list.length === 0 ? html`<p class="dim">No snapshots yet.</p>` : html`
<table>
<thead><tr><th>Snapshot</th><th>Taken</th><th></th></tr></thead>
<tbody>${[...list].reverse().map((s) => html`<tr data-snapshot="${s.name}"><td>${s.name}</td><td>${new Date(s.time).toISOString().slice(0, 19).replace('T', ' ')}</td><td><a href="${volumeHref(volume, 'files', { snapshot: s.name })}">Browse</a></td></tr>`)}</tbody>
</table>`}
</section>`
      return renderPage(c, deps, { title: `${volume}: snapshots`, volume, tab: 'snapshots', body })
    })

    app.post('/v/:volume/snapshots', async (c) => {
      const volume = c.req.param('volume')
      const name = (await formText(c))('name')?.trim() ?? ''
      await deps.ops.call('volume.snapshot.create', { volume, name })
      return c.redirect(volumeHref(volume, 'snapshots'), 303)
    })
  }
}
