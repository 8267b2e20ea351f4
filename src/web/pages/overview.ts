// `/`: this node, its peers (connected or not, since when, how), the volumes with how far each
// peer is behind or ahead, conflicts and pins, what is still to move, and the cache.
import { formatBytes } from '../../format-bytes.js'
import type { PeerInfo, VolumeStatus } from '../../control/requests.js'
import { html, key, when, type Html } from '../html.js'
import { renderPage, volumeHref, type WebPage } from '../page.js'

function connection(p: PeerInfo | undefined): Html {
  if (!p?.connected) return html`<span class="off">not connected</span>`
  const how = [p.relayed === true ? 'relayed' : p.relayed === false ? 'direct' : '', p.direction === 'outgoing' ? 'dialled by this node' : p.direction === 'incoming' ? 'dialled by the peer' : ''].filter(Boolean).join(', ')
  return html`<span class="on">connected</span>${p.since ? html` since ${when(p.since)}` : html``}${how ? html` <span class="dim">(${how}${p.address ? `, ${p.address}` : ''})</span>` : html``}`
}

/** How far each peer sharing the volume is from this node, in log entries. */
function peerSync(v: VolumeStatus): Html {
  if (v.peers.length === 0) return html`<span class="dim">not shared yet</span>`
  return html`${v.peers.map((p) => html`<div>${key(p.key)} ${p.behind === 0 && p.ahead === 0 ? html`<span class="on">in sync</span>` : html`<span class="warn">${[p.behind ? `${p.behind} entries to fetch` : '', p.ahead ? `${p.ahead} to send` : ''].filter(Boolean).join(', ')}</span>`}${p.connected ? html`` : html` <span class="dim">(not connected)</span>`}</div>`)}`
}

export const overview: WebPage = {
  register(app, deps) {
    app.get('/', async (c) => {
      const [status, { peers }] = await Promise.all([deps.ops.call('status', {}), deps.ops.call('peer.list', {})])
      const server = status.server
      const safe = status.notYetSafe
      const live = new Map(status.peers.map((p) => [p.key, p]))
      const { fetchBytes, pushBytes } = status.transfer
      const body = html`
<section id="server" data-live>
<h2>This node</h2>
<p>${server.running ? html`bazil ${server.version}, pid ${server.pid}, running since ${when(server.since)}` : 'server not running'} · data dir <code>${status.dataDir}</code></p>
<p>To fetch: ${fetchBytes === null ? html`<span class="dim">unknown</span>` : formatBytes(fetchBytes)} · to push: ${pushBytes === null ? html`<span class="dim">unknown</span>` : formatBytes(pushBytes)}${status.cache ? html` · cache: ${formatBytes(status.cache.cachedBytes)} of ${formatBytes(status.cache.budgetBytes)} (${status.cache.budget}), ${formatBytes(status.cache.pinnedBytes)} pinned` : html``}</p>
${safe && safe.packs > 0 ? html`<p class="warn">Not yet safe: ${formatBytes(safe.bytes)} in ${safe.packs} of ${safe.totalPacks} packs written here are held by fewer than ${safe.copies} confirmed peer${safe.copies === 1 ? '' : 's'}.</p>` : html``}
</section>
<section id="peers" data-live>
<h2>Peers</h2>
${peers.length === 0 ? html`<p class="dim">No peers yet: add one with <code>bazil peer add KEY</code>.</p>` : html`
<table>
<thead><tr><th>Peer</th><th>Address</th><th>State</th><th>Last seen</th><th>Volumes it may write</th><th>May read this store</th></tr></thead>
<tbody>${peers.map((p) => html`<tr data-peer="${p.key}"><td>${key(p.key)}</td><td>${p.location ?? html`<span class="dim">by the DHT</span>`}</td><td class="${p.connected ? 'on' : 'off'}">${connection(live.get(p.key))}</td><td>${when(p.lastSeen)}</td><td>${p.volumes.join(', ')}</td><td>${p.storage ? 'yes' : 'no'}</td></tr>`)}</tbody>
</table>`}
</section>
<section id="volumes" data-live>
<h2>Volumes</h2>
${status.volumeStatus.length === 0 ? html`<p class="dim">No volumes yet: <code>bazil volume create NAME</code>.</p>` : html`
<table>
<thead><tr><th>Volume</th><th>Mounted at</th><th class="num">Entries</th><th>Peers</th><th>Conflicts</th><th>Pins</th></tr></thead>
<tbody>${status.volumeStatus.map((v) => html`<tr data-volume="${v.name}">
<td>${v.storageOnly ? html`${v.name} <span class="dim">(held for a peer)</span>` : html`<a href="${volumeHref(v.name, 'files')}">${v.name}</a>`}${v.problem ? html` <span class="warn">${v.problem}</span>` : html``}</td>
<td>${v.mounts.map((m) => html`<code>${m}</code> `)}</td>
<td class="num">${v.entries}</td>
<td>${peerSync(v)}</td>
<td>${v.conflicts === null ? '' : v.conflicts === 0 ? html`<span class="dim">none</span>` : html`<a class="warn" href="${volumeHref(v.name, 'conflicts')}">${v.conflicts}</a>`}</td>
<td>${v.pins.count === 0 ? html`<span class="dim">none</span>` : html`${v.pins.count}${v.pins.bytes !== null ? html` (${formatBytes(v.pins.heldBytes ?? 0)} of ${formatBytes(v.pins.bytes)} here)` : html``}`}</td>
</tr>`)}</tbody>
</table>`}
</section>`
      return renderPage(c, deps, { title: 'Overview', body })
    })
  }
}
