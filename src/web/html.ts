import type { WriterLabel } from '../control/requests.js'

// HTML as the pages write it: a tagged template that escapes every value it is given except
// markup made by itself, so a file name or a peer's location can never become markup.
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[]

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!)
}

function render(v: Value): string {
  if (v instanceof Html) return v.text
  if (Array.isArray(v)) return v.map(render).join('')
  if (v === null || v === undefined || v === false) return ''
  return escapeHtml(String(v))
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!
  values.forEach((v, i) => (out += render(v) + strings[i + 1]!))
  return new Html(out)
}

/** A query string from the parameters that are set. */
export function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v)
  const s = q.toString()
  return s ? `?${s}` : ''
}

/** An ISO time as a `<time>`, shown to the second in UTC. */
export function when(iso: string | number | null | undefined): Html {
  if (iso === null || iso === undefined) return html`<span class="dim">never</span>`
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return html`${String(iso)}`
  const s = d.toISOString()
  return html`<time datetime="${s}">${s.slice(0, 19).replace('T', ' ')}</time>`
}

/** A key (node, writer) shortened for tables, whole in its title. */
export function key(k: string): Html {
  return html`<code title="${k}">${k.length > 12 ? `${k.slice(0, 10)}…` : k}</code>`
}

/** Who wrote something: this node, or a peer's node key (its writer log's when the node is not known) and address. */
export function writer(w: WriterLabel): Html {
  if (w.self) return html`<span title="${w.log}">this node</span>`
  return html`${key(w.node ?? w.log)}${w.location ? html` <span class="dim">${w.location}</span>` : html``}`
}
