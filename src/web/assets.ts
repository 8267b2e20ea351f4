// The web view's stylesheet and its one small script, served as files (the Content-Security-
// Policy allows no inline script or style). The script is plain JavaScript that browsers run
// as it is: no bundler, nothing built but the project's own tsc.

/**
 * Listens to `/events` (server-sent events, src/web/live.ts) and, when something changed,
 * fetches the page again and swaps in its `data-live` sections (forms outside them keep what
 * the user typed). No polling: nothing is fetched until the server says something changed.
 */
export const APP_JS = `'use strict'
;(() => {
  const live = document.getElementById('live')
  let timer = null
  let redraws = 0
  const redraw = async () => {
    timer = null
    const r = await fetch(location.href, { headers: { 'x-bazil-live': '1' } })
    if (!r.ok) return
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html')
    for (const el of document.querySelectorAll('[data-live]')) {
      const next = doc.getElementById(el.id)
      if (next) el.replaceWith(document.importNode(next, true))
    }
    document.body.dataset.redraws = String(++redraws)
  }
  const events = new EventSource('/events')
  events.onopen = () => {
    live.textContent = 'live'
    live.className = 'live on'
  }
  events.onerror = () => {
    live.textContent = 'reconnecting…'
    live.className = 'live off'
  }
  events.onmessage = (m) => {
    const e = JSON.parse(m.data)
    if (e.message_type === 'hello') return
    live.title = 'last update: ' + (e.time || new Date().toISOString())
    // A burst of events (a sync applying many entries) redraws once.
    if (timer === null) timer = setTimeout(redraw, 150)
  }
})()
`

export const STYLE_CSS = `:root { color-scheme: light dark; --fg: #1d232a; --dim: #6b7580; --bg: #fbfbfa; --line: #e2e4e6; --accent: #2a6cb0; --ok: #2e8540; --warn: #b4690e; --bad: #b0302a; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e6e8; --dim: #98a1aa; --bg: #16191c; --line: #2c3136; --accent: #6aa7e6; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.2em; align-items: center; padding: .6em 1.2em; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; font-size: 1.15em; color: var(--fg); text-decoration: none; }
header nav.volumes { display: flex; gap: .8em; flex: 1; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
a.active { font-weight: 600; color: var(--fg); }
h1.volume { margin: .6em 1.2rem 0; font-size: 1.3em; }
nav.tabs { display: flex; gap: 1.2em; padding: .4em 1.2rem; border-bottom: 1px solid var(--line); }
nav.tabs a.active { border-bottom: 2px solid var(--accent); }
main { padding: .8em 1.2rem 2em; max-width: 72rem; }
h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .8em .3em 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--dim); font-size: .9em; }
td.num, th.num { text-align: right; }
code, pre, time { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
pre.content { border: 1px solid var(--line); padding: .8em; overflow: auto; max-height: 60vh; }
.dim { color: var(--dim); }
.on { color: var(--ok); }
.off { color: var(--bad); }
.warn { color: var(--warn); }
.live { font-size: .85em; color: var(--dim); }
.live.on { color: var(--ok); }
.live.off { color: var(--bad); }
.live.on::before { content: "● "; }
.live.off::before { content: "○ "; }
.error { border-left: 3px solid var(--bad); padding: .4em .8em; }
.notice { border-left: 3px solid var(--accent); padding: .4em .8em; }
form.inline { display: inline; }
form.bar { display: flex; gap: .6em; align-items: center; margin: .6em 0; flex-wrap: wrap; }
input, select, button { font: inherit; padding: .2em .5em; }
button { cursor: pointer; }
.crumbs a + a::before, .crumbs span::before { content: " / "; color: var(--dim); }
`
