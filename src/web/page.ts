// What every page of the web view shares: the request's variables, the layout around a page's
// content, and what a page module gets to register its routes.
import type { Context, Hono } from 'hono'
import type { Log } from '../log.js'
import type { Access } from './auth.js'
import { html, query, type Html } from './html.js'
import type { WebOps } from './ops.js'

export interface WebEnv {
  Variables: { access: Access }
}

export type WebContext = Context<WebEnv>

/** A tab among a volume's pages: `/v/VOLUME/PATH`. */
export interface Tab {
  label: string
  path: string
}

export interface PageDeps {
  ops: WebOps
  log: Log
  /** Every volume page's tab, in order (the pages that exist in this build). */
  tabs: Tab[]
}

/** A page (or a few) of the web view: adds its routes; a volume page names its tab. */
export interface WebPage {
  tab?: Tab
  register(app: Hono<WebEnv>, deps: PageDeps): void
}

export interface PageContent {
  title: string
  /** The volume whose pages this is one of (shows its tabs). */
  volume?: string
  /** The path of the active tab. */
  tab?: string
  body: Html
}

/** `/v/VOLUME/PATH?QUERY`. */
export function volumeHref(volume: string, path: string, params: Record<string, string | undefined> = {}): string {
  return `/v/${encodeURIComponent(volume)}/${path}${query(params)}`
}

/** A POSTed form's text fields ('' and files count as absent). */
export async function formText(c: WebContext): Promise<(name: string) => string | undefined> {
  const form = await c.req.parseBody()
  return (name) => {
    const v = form[name]
    return typeof v === 'string' && v !== '' ? v : undefined
  }
}

/** The hidden field a session's form carries (checked by src/web/server.ts before any POST runs). */
export function csrfField(c: WebContext): Html {
  const a = c.get('access')
  return a.kind === 'session' ? html`<input type="hidden" name="_csrf" value="${a.csrf}">` : html``
}

/** The whole page around `content`. Sections marked `data-live` are redrawn when the server pushes an event (src/web/assets.ts). */
export async function renderPage(c: WebContext, deps: PageDeps, content: PageContent): Promise<Response> {
  const { volumes } = await deps.ops.call('volume.list', {})
  const tabs = content.volume === undefined ? html`` : html`<nav class="tabs">${deps.tabs.map((t) => html`<a href="${volumeHref(content.volume!, t.path)}"${t.path === content.tab ? html` class="active"` : html``}>${t.label}</a>`)}</nav>`
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${content.title} · bazil</title>
<link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
<a class="brand" href="/">bazil</a>
<nav class="volumes">${volumes.filter((v) => !v.storageOnly).map((v) => html`<a href="${volumeHref(v.name, 'files')}"${v.name === content.volume ? html` class="active"` : html``}>${v.name}</a>`)}</nav>
<span id="live" class="live" title="updates pushed by the server">connecting…</span>
</header>
${content.volume === undefined ? html`` : html`<h1 class="volume">${content.volume}</h1>`}
${tabs}
<main>
${content.body}
</main>
</body>
</html>
`
  return c.html(page.text)
}
