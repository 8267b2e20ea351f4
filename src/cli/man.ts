// `bazil man`: the manual page bazil(1) in roff, generated from CliDocs (the commands' own
// definitions) like the help and the completion scripts. `bazil man | man -l -` reads it;
// saved as ~/.local/share/man/man1/bazil.1, `man bazil` does.
import { OVERVIEW_EXAMPLES, SUMMARY, argLabel, type CliDocs, type CommandDoc, type OptionDoc } from './command-docs.js'
import { byCategory } from './help.js'

/** Text for a roff line: backslashes and dashes escaped, `code` in bold, no leading control character. */
function text(s: string): string {
  const escaped = s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/`([^`]+)`/g, '\\fB$1\\fR')
    .replace(/\s*\n\s*/g, ' ')
    .trim()
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped
}

/** `--snapshot=SNAPSHOT` as roff: the name bold, the value italic. */
function optionRoff(o: OptionDoc, names = o.names): string {
  return names.map((n) => `\\fB${text(n)}\\fR`).join(', ') + (o.value !== undefined ? `=\\fI${o.value}\\fR` : '')
}

function synopsisRoff(c: CommandDoc): string {
  const opts = c.options.map((o) => {
    const one = optionRoff(o, [o.names.find((n) => n.startsWith('--')) ?? o.names[0]])
    return o.required ? one : `[${one}]`
  })
  const args = c.args.map((a) => (a.repeated ? `[\\fI${argLabel(a)}\\fR...]` : a.required ? `\\fI${argLabel(a)}\\fR` : `[\\fI${argLabel(a)}\\fR]`))
  return [`\\fBbazil ${text(c.path.join(' '))}\\fR`, ...opts, ...args].join(' ')
}

function paragraphs(s: string | undefined): string[] {
  return (s ?? '').split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== '').map(text)
}

function examplesRoff(examples: Array<[string, string]>): string[] {
  return examples.flatMap(([what, line]) => ['.IP', `${text(what)}:`, '.nf', `  ${text(line)}`, '.fi'])
}

function commandRoff(c: CommandDoc): string[] {
  const out = ['.TP', synopsisRoff(c), `${text(c.description)}.`]
  for (const p of paragraphs(c.details)) out.push('.IP', p)
  if (c.options.length > 0) {
    out.push('.RS')
    for (const o of c.options) out.push('.TP', optionRoff(o), text(o.description + (o.required ? ' (required)' : '')))
    out.push('.RE')
  }
  return [...out, ...examplesRoff(c.examples)]
}

export function manPage(docs: CliDocs): string {
  const lines = [
    `.\\" bazil(1), generated from the commands' definitions by \`bazil man\`: do not edit.`,
    `.TH BAZIL 1 "" "bazil ${docs.version}" "User Commands"`,
    '.SH NAME',
    `bazil \\- ${text(SUMMARY)}`,
    '.SH SYNOPSIS',
    `\\fBbazil\\fR [\\fB\\-\\-data\\-dir\\fR=\\fIDIR\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR...]`,
    '.br',
    `\\fBbazil\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR`,
    '.SH DESCRIPTION',
    text(
      'Bazil keeps volumes of files in sync between your own devices, end-to-end encrypted, working offline and merging changes when devices meet. Each device is a node with a data dir; `bazil server run` runs its server, which mounts volumes with FUSE and syncs them with peers. Most commands ask the server when it runs and open the data dir themselves when it does not.'
    ),
    '.PP',
    text('Errors are one line on stderr naming what to do next. `bazil COMMAND --help` shows a command; `bazil completion bash|zsh|fish` prints a shell completion script.'),
    '.SH GLOBAL OPTIONS',
    ...docs.globals.flatMap((o) => ['.TP', optionRoff(o), text(o.description)]),
    '.SH COMMANDS'
  ]
  for (const [category, commands] of byCategory(docs.commands)) lines.push(`.SS ${text(category)}`, ...commands.flatMap(commandRoff))
  lines.push('.SH EXAMPLES', ...examplesRoff(OVERVIEW_EXAMPLES))
  lines.push(
    '.SH ENVIRONMENT',
    '.TP',
    '.B BAZIL_DATA_DIR',
    text('The data dir when --data-dir is not given.'),
    '.TP',
    '.B XDG_DATA_HOME',
    text('Without either, the data dir is $XDG_DATA_HOME/bazil, by default ~/.local/share/bazil.'),
    '.TP',
    '.B BAZIL_DEBUG',
    text('When set, a failing command also prints the stack trace of its error.'),
    '.SH EXIT STATUS',
    text('0 on success; 1 when the command failed; 2 when the command line was refused (an unknown command or option, a missing argument).'),
    '.SH SEE ALSO',
    '.BR fusermount (1)'
  )
  return lines.join('\n') + '\n'
}
