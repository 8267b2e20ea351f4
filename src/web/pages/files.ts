// A volume's files (`volume.ls`), as it is now or in a snapshot: directories to browse, a
// file's details and content (`volume.cat`), and its download.
import { once } from 'node:events'
import { PassThrough, Readable } from 'node:stream'
import { joinPath, splitPath } from '../../tree/paths.js'
import type { EntryInfo } from '../../control/requests.js'
import { formatBytes } from '../../format-bytes.js'
import { html, when, type Html } from '../html.js'
import { renderPage, volumeHref, type PageDeps, type WebContext, type WebPage } from '../page.js'
import { historySection } from './history.js'
import { pinButton } from './pins.js'

/** Files up to this size show their content on their page; larger ones are downloads only. */
const PREVIEW_BYTES = 256 * 1024

/** The volume, path (canonical) and snapshot a files page is about. */
function where(c: WebContext): { volume: string; path: string; snapshot?: string } {
  const snapshot = c.req.query('snapshot') || undefined
  return { volume: c.req.param('volume')!, path: joinPath(splitPath(c.req.query('path') ?? '/')), ...(snapshot ? { snapshot } : {}) }
}

function crumbs(volume: string, path: string, snapshot: string | undefined): Html {
  const names = splitPath(path)
  return html`<p class="crumbs"><a href="${volumeHref(volume, 'files', { snapshot })}">${volume}</a>${names.map((n, i) => html`<a href="${volumeHref(volume, 'files', { path: joinPath(names.slice(0, i + 1)), snapshot })}">${n}</a>`)}</p>`
}

function snapshotNote(volume: string, path: string, snapshot: string | undefined): Html {
  return snapshot ? html`<p class="notice">Snapshot <strong>${snapshot}</strong> (read-only). <a href="${volumeHref(volume, 'files', { path })}">See the volume as it is now</a></p>` : html``
}

function entryLink(volume: string, e: EntryInfo, snapshot: string | undefined): Html {
  if (e.kind === 'dir') return html`<a href="${volumeHref(volume, 'files', { path: e.path, snapshot })}">${e.name}/</a>`
  if (e.kind === 'file') return html`<a href="${volumeHref(volume, 'file', { path: e.path, snapshot })}">${e.name}</a>`
  if (e.kind === 'symlink') return html`${e.name} <span class="dim">→ ${e.target ?? ''}</span>`
  return html`${e.name} <span class="dim">(${e.kind})</span>`
}

type Where = ReturnType<typeof where>

/** The file at `at` (null: nothing there, or not a regular file). */
async function fileAt(deps: PageDeps, at: Where): Promise<EntryInfo | null> {
  const { entries } = await deps.ops.call('volume.ls', at)
  const e = entries.length === 1 && entries[0]!.path === at.path ? entries[0]! : null
  return e?.kind === 'file' ? e : null
}

/** Reads a file's content through `volume.cat`, up to `limit` bytes (null: larger). */
async function content(deps: PageDeps, at: Where, limit: number): Promise<Buffer | null> {
  const parts: Buffer[] = []
  let size = 0
  await deps.ops.call('volume.cat', at, {
    onOutput: (chunk) => {
      size += chunk.length
      if (size <= limit) parts.push(chunk)
    }
  })
  return size <= limit ? Buffer.concat(parts) : null
}

/** Text to show, or null for content that is not UTF-8 text. */
function asText(buf: Buffer): string | null {
  if (buf.includes(0)) return null
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    return null
  }
}

export const files: WebPage = {
  tab: { label: 'Files', path: 'files' },
  register(app, deps) {
    app.get('/v/:volume/files', async (c) => {
      const at = where(c)
      const { volume, path, snapshot } = at
      const { entries } = await deps.ops.call('volume.ls', at)
      if (entries.length === 1 && entries[0]!.path === path && entries[0]!.kind !== 'dir') return c.redirect(volumeHref(volume, 'file', { path, snapshot }), 303)
      const sorted = [...entries].sort((a, b) => Number(b.kind === 'dir') - Number(a.kind === 'dir') || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const body = html`
${snapshotNote(volume, path, snapshot)}
${crumbs(volume, path, snapshot)}
${snapshot ? html`` : html`<section id="dir-pin" data-live><p>${await pinButton(c, deps, volume, path, volumeHref(volume, 'files', { path }))}</p></section>`}
<section id="listing" data-live>
${sorted.length === 0 ? html`<p class="dim">This directory is empty.</p>` : html`
<table class="listing">
<thead><tr><th>Name</th><th class="num">Size</th><th>Modified</th></tr></thead>
<tbody>${sorted.map((e) => html`<tr data-path="${e.path}"><td>${entryLink(volume, e, snapshot)}</td><td class="num">${e.kind === 'file' ? formatBytes(e.size) : ''}</td><td>${when(e.mtime)}</td></tr>`)}</tbody>
</table>`}
</section>`
      return renderPage(c, deps, { title: `${volume}: ${path}`, volume, tab: 'files', body })
    })

    app.get('/v/:volume/file', async (c) => {
      const at = where(c)
      const { volume, path, snapshot } = at
      const e = await fileAt(deps, at)
      if (!e) return c.redirect(volumeHref(volume, 'files', { path, snapshot }), 303)
      const buf = e.size <= PREVIEW_BYTES ? await content(deps, at, PREVIEW_BYTES) : null
      const text = buf ? asText(buf) : null
      const parent = joinPath(splitPath(path).slice(0, -1))
      const body = html`
${snapshotNote(volume, path, snapshot)}
${crumbs(volume, path, snapshot)}
<section id="file" data-live>
<table class="details">
<tbody>
<tr><th>Size</th><td>${formatBytes(e.size)} (${e.size} bytes)</td></tr>
<tr><th>Modified</th><td>${when(e.mtime)}</td></tr>
<tr><th>Mode</th><td><code>${(e.mode & 0o7777).toString(8).padStart(4, '0')}</code></td></tr>
${e.hash ? html`<tr><th>Content hash</th><td><code>${e.hash}</code></td></tr>` : html``}
</tbody>
</table>
<p><a href="${volumeHref(volume, 'raw', { path, snapshot })}" download>Download</a> · <a href="${volumeHref(volume, 'files', { path: parent, snapshot })}">Back to the directory</a>${snapshot ? html`` : html` · ${await pinButton(c, deps, volume, path, volumeHref(volume, 'file', { path }))}`}</p>
${text !== null ? html`<pre class="content">${text}</pre>` : html`<p class="dim">${buf ? 'Binary content: download it to see it.' : `Larger than ${formatBytes(PREVIEW_BYTES)}: download it to see it.`}</p>`}
</section>
${await historySection(c, deps, volume, path, snapshot)}`
      return renderPage(c, deps, { title: `${volume}: ${path}`, volume, tab: 'files', body })
    })

    // The content as a download, never shown as a page of this origin (a stored .html file must
    // not run as the web view's own script).
    app.get('/v/:volume/raw', async (c) => {
      const at = where(c)
      const e = await fileAt(deps, at)
      if (!e) return c.redirect(volumeHref(at.volume, 'files', { path: at.path, snapshot: at.snapshot }), 303)
      const out = new PassThrough()
      deps.ops.call('volume.cat', at, {
        onOutput: async (chunk) => {
          if (out.destroyed) throw new Error('the download was cancelled')
          if (!out.write(chunk)) await Promise.race([once(out, 'drain'), once(out, 'close')])
        }
      }).then(() => out.end(), (err: Error) => out.destroy(err))
      return c.body(Readable.toWeb(out) as ReadableStream, 200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(e.size),
        'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(e.name)}`
      })
    })
  }
}
