// Where a volume's content is and what this node holds: how far each writer's log is held
// here (`volume.writers`: what sync still has to fetch), its size here and pinned
// (`volume.du`), the copy rule and the peers keeping this node's store (`volume.copies`), and
// the node's cache of peers' content against its budget (`cache.size`).
import { formatBytes } from '../../format-bytes.js'
import { html, key } from '../html.js'
import { renderPage, type WebPage } from '../page.js'
import { pinsSection } from './pins.js'

export const storage: WebPage = {
  tab: { label: 'Sync & storage', path: 'storage' },
  register(app, deps) {
    app.get('/v/:volume/storage', async (c) => {
      const volume = c.req.param('volume')
      const [writers, du, copies, cache, me] = await Promise.all([
        deps.ops.call('volume.writers', { volume }),
        deps.ops.call('volume.du', { volume }),
        deps.ops.call('volume.copies', { volume }),
        deps.ops.call('cache.size', {}),
        deps.ops.call('debug.pubkey', {})
      ])
      const cs = cache.status
      const body = html`
<section id="writers" data-live>
<h2>Writers</h2>
<table>
<thead><tr><th>Writer</th><th>Log</th><th>Entries held here</th><th></th></tr></thead>
<tbody>${writers.writers.map((w) => html`<tr data-log="${w.log}"><td>${w.node === null ? html`<span class="dim">unknown node</span>` : w.node === me.publicKey ? html`<span title="${w.node}">this node</span>` : key(w.node)}${w.root ? html` <span class="dim">(created the volume)</span>` : html``}${w.authorised ? html`` : html` <span class="warn">revoked</span>`}</td><td>${key(w.log)}</td>
<td><progress max="${Math.max(w.length, 1)}" value="${w.held}"></progress> ${w.held} of ${w.length}</td><td>${w.held >= w.length ? html`<span class="on">in sync</span>` : html`<span class="warn">${w.length - w.held} to fetch</span>`}</td></tr>`)}</tbody>
</table>
</section>
<section id="usage" data-live>
<h2>This volume</h2>
<table class="details"><tbody>
<tr><th>Files</th><td>${du.files}</td></tr>
<tr><th>Size</th><td>${formatBytes(du.logicalBytes)} <span class="dim">(${formatBytes(du.storedBytes)} stored, after dedup and compression)</span></td></tr>
<tr><th>Held here</th><td>${formatBytes(du.hereBytes)}</td></tr>
<tr><th>Pinned here</th><td>${formatBytes(du.pinnedBytes)} <span class="dim">(<code>bazil pin</code> keeps content here whatever the cache budget)</span></td></tr>
<tr><th>Not yet safe</th><td class="${du.notSafeBytes > 0 ? 'warn' : ''}">${formatBytes(du.notSafeBytes)} <span class="dim">written here, held by fewer than ${copies.copies} confirmed peer${copies.copies === 1 ? '' : 's'}</span></td></tr>
</tbody></table>
<h2>Copies</h2>
<p>Rule: ${copies.copies} cop${copies.copies === 1 ? 'y' : 'ies'}${copies.set ? '' : html` <span class="dim">(the default)</span>`}; ${copies.store.safePacks} of ${copies.store.packs} packs of this node's store are safe.</p>
${copies.keepers.length === 0 ? html`<p class="dim">No peer keeps this node's store yet (<code>bazil volume storage add ${volume} peerkey:KEY</code>).</p>` : html`
<table>
<thead><tr><th>Peer</th><th class="num">Packs confirmed</th><th>Asked to store</th><th>May read</th></tr></thead>
<tbody>${copies.keepers.map((k) => html`<tr><td>${key(k.key)}</td><td class="num">${k.confirmedPacks}</td><td>${k.storesTo ? 'yes' : 'no'}</td><td>${k.mayRead ? 'yes' : html`<span class="warn">no</span>`}</td></tr>`)}</tbody>
</table>`}
</section>
${await pinsSection(c, deps, volume)}
<section id="cache" data-live>
<h2>Cache (this node, every volume)</h2>
<table class="details"><tbody>
<tr><th>Budget</th><td>${cs.budget}: ${formatBytes(cs.budgetBytes)}${cs.effectiveBudgetBytes < cs.budgetBytes ? html` <span class="warn">(${formatBytes(cs.effectiveBudgetBytes)} while the disk is short of space)</span>` : html``}</td></tr>
<tr><th>Peers' content held</th><td>${formatBytes(cs.heldBytes)} in ${cs.packs} packs</td></tr>
<tr><th>Cached</th><td>${formatBytes(cs.cachedBytes)} <span class="dim">(evicted beyond the budget)</span></td></tr>
<tr><th>Pinned</th><td>${formatBytes(cs.pinnedBytes)} <span class="dim">(outside the budget)</span></td></tr>
</tbody></table>
</section>`
      return renderPage(c, deps, { title: `${volume}: storage`, volume, tab: 'storage', body })
    })
  }
}
