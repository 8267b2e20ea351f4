// Help as the terminal shows it: `bazil --help` (every command, grouped, one line each),
// `bazil volume --help` (the commands under a word), `bazil volume ls --help` (one command:
// usage, what it does, options, examples). The text comes from CliDocs (command-docs.ts).
import { CATEGORY_ORDER } from './categories.js'
import { OVERVIEW_EXAMPLES, SUMMARY, argsSynopsis, commandName, optionLabel, synopsis, type CliDocs, type CommandDoc, type OptionDoc } from './command-docs.js'

const WIDTH = 80
/** The listing's first column stops here; a longer command pushes its description along. */
const NAME_COLUMN = 36

/** Breaks `text` into lines of at most `width` (a longer word stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(line)
  return lines
}

/** `label` in a column of `col`, then `text` wrapped beside it (hanging under itself). */
function columns(indent: number, label: string, col: number, text: string): string[] {
  const pad = ' '.repeat(indent)
  const body = wrap(text, Math.max(30, WIDTH - indent - col))
  if (label.length >= col - 1) return [pad + label, ...body.map((l) => pad + ' '.repeat(col) + l)]
  return body.length === 0 ? [pad + label] : body.map((l, i) => pad + (i === 0 ? label.padEnd(col) : ' '.repeat(col)) + l)
}

/** Commands by group, in CATEGORY_ORDER (a group no table knows goes last). */
export function byCategory(commands: CommandDoc[]): Array<[string, CommandDoc[]]> {
  const groups = new Map<string, CommandDoc[]>()
  const rank = (c: string): number => (CATEGORY_ORDER.indexOf(c as never) + CATEGORY_ORDER.length + 1) % (CATEGORY_ORDER.length + 1)
  for (const c of [...commands].sort((a, b) => rank(a.category) - rank(b.category) || commandName(a).localeCompare(commandName(b)))) {
    const list = groups.get(c.category) ?? []
    list.push(c)
    groups.set(c.category, list)
  }
  return [...groups]
}

function listing(commands: CommandDoc[]): string[] {
  const out: string[] = []
  for (const [category, list] of byCategory(commands)) {
    out.push('', `${category}:`)
    for (const c of list) {
      const name = [commandName(c), argsSynopsis(c.args)].filter((s) => s !== '').join(' ')
      out.push(`  ${name.length >= NAME_COLUMN - 1 ? `${name}  ` : name.padEnd(NAME_COLUMN)}${c.description}`)
    }
  }
  return out
}

function optionLines(options: OptionDoc[]): string[] {
  const col = Math.min(28, Math.max(...options.map((o) => optionLabel(o).length)) + 3)
  return options.flatMap((o) => columns(2, optionLabel(o), col, o.description + (o.required ? ' (required)' : '')))
}

function exampleLines(examples: Array<[string, string]>): string[] {
  return examples.flatMap(([what, line]) => ['', ...wrap(what, WIDTH - 2).map((l) => `  ${l}`), `    $ ${line}`])
}

/** `bazil --help`: every command, grouped; the global options; a first session. */
export function mainHelp(docs: CliDocs): string {
  return [
    `bazil ${docs.version}: ${SUMMARY}`,
    '',
    'Usage: bazil [--data-dir=DIR] COMMAND [OPTIONS] [ARGS...]',
    ...listing(docs.commands),
    '',
    'Global options:',
    ...optionLines(docs.globals),
    '',
    'Examples:',
    ...exampleLines(OVERVIEW_EXAMPLES).slice(1),
    '',
    ...wrap('`bazil COMMAND --help` shows what a command does, its options and examples; `bazil man` prints the manual.', WIDTH),
    ''
  ].join('\n')
}

/** `bazil volume --help`: the commands whose name starts with `prefix`. */
export function groupHelp(docs: CliDocs, prefix: string[]): string {
  const under = docs.commands.filter((c) => prefix.every((w, i) => c.path[i] === w))
  return [`Usage: bazil ${prefix.join(' ')} COMMAND [OPTIONS] [ARGS...]`, ...listing(under), '', '`bazil COMMAND --help` shows what a command does, its options and examples.', ''].join('\n')
}

/** `bazil volume ls --help`. */
export function commandHelp(docs: CliDocs, c: CommandDoc): string {
  // The global options a command takes (not --version, and none the command itself uses).
  const own = new Set(c.options.flatMap((o) => o.names))
  const globals = docs.globals.filter((o) => !o.names.includes('--version') && !o.names.some((n) => own.has(n))).map(optionLabel).join('; ')
  const usage = wrap(`Usage: ${synopsis(c)}`, WIDTH - 4).map((l, i) => (i === 0 ? l : `    ${l}`))
  const out = [...usage, '', ...wrap(c.description, WIDTH)]
  for (const para of (c.details ?? '').split(/\n\s*\n/).filter((p) => p.trim() !== '')) out.push('', ...wrap(para, WIDTH))
  if (c.options.length > 0) out.push('', 'Options:', ...optionLines(c.options))
  out.push('', ...wrap(`Global options: ${globals} (\`bazil --help\` describes them).`, WIDTH))
  if (c.examples.length > 0) out.push('', 'Examples:', ...exampleLines(c.examples).slice(1))
  return out.join('\n') + '\n'
}
