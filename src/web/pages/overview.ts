// `/`: the server, its peers and whether each is connected, and the volumes.
import { bytes, html, key, when } from '../html.js'
import { renderPage, volumeHref, type WebPage } from '../page.js'

export const overview: WebPage = {
  register(app, deps) {
    app.get('/', async (c) => {
      const [status, { volumes }, { peers }] = await Promise.all([deps.ops.call('status', {}), deps.ops.call('volume.list', {}), deps.ops.call('peer.list', {})])
      const server = status.server
      const safe = status.notYetSafe
      const mountsOf = (name: string) => status.mounts.filter((m) => m.volume === name)
      const body = html`
<section id="server" data-live>
<h2>This node</h2>
<p>${server.running ? html`bazil ${server.version}, pid ${server.pid}, running since ${when(server.since)}` : 'server not running'} · data dir <code>${status.dataDir}</code></p>
${safe && safe.packs > 0 ? html`<p class="warn">Not yet safe: ${bytes(safe.bytes)} in ${safe.packs} of ${safe.totalPacks} packs written here are held by fewer than ${safe.copies} confirmed peer${safe.copies === 1 ? '' : 's'}.</p>` : html``}
</section>
<section id="peers" data-live>
<h2>Peers</h2>
${peers.length === 0 ? html`<p class="dim">No peers yet: add one with <code>bazil peer add KEY</code>.</p>` : html`
<table>
<thead><tr><th>Peer</th><th>Address</th><th>State</th><th>Last seen</th><th>Volumes it may write</th><th>May read this store</th></tr></thead>
<tbody>${peers.map((p) => html`<tr data-peer="${p.key}"><td>${key(p.key)}</td><td>${p.location ?? html`<span class="dim">by the DHT</span>`}</td><td class="${p.connected ? 'on' : 'off'}">${p.connected ? 'connected' : 'not connected'}</td><td>${when(p.lastSeen)}</td><td>${p.volumes.join(', ')}</td><td>${p.storage ? 'yes' : 'no'}</td></tr>`)}</tbody>
</table>`}
</section>
<section id="volumes" data-live>
<h2>Volumes</h2>
${volumes.length === 0 ? html`<p class="dim">No volumes yet: <code>bazil volume create NAME</code>.</p>` : html`
<table>
<thead><tr><th>Volume</th><th>Sharing</th><th>Mounted at</th><th>Created</th></tr></thead>
<tbody>${volumes.map((v) => html`<tr data-volume="${v.name}">
<td>${v.storageOnly ? html`${v.name} <span class="dim">(held for a peer)</span>` : html`<a href="${volumeHref(v.name, 'files')}">${v.name}</a>`}</td>
<td>${v.sharing ?? html`<span class="dim">storage only</span>`}</td>
<td>${mountsOf(v.name).map((m) => html`<code>${m.mountpoint}</code> `)}</td>
<td>${when(v.created)}</td></tr>`)}</tbody>
</table>`}
</section>`
      return renderPage(c, deps, { title: 'Overview', body })
    })
  }
}
