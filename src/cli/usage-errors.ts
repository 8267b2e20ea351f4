// A command line the parser refused, told in one line with what to do next (clipanion's own
// message lists every candidate command over many lines): an unknown command and the nearest
// one, or for a known command what is wrong (an unknown option, a missing value or argument,
// one too many) and its usage.
import { commandName, optionLabel, argLabel, synopsis, type CliDocs, type CommandDoc, type OptionDoc } from './command-docs.js'

const HELP_FLAGS = new Set(['-h', '--help'])

export const isHelpFlag = (a: string): boolean => HELP_FLAGS.has(a)

/** The words before the first option: where the command's name is. */
export function leadingWords(argv: string[]): string[] {
  const i = argv.findIndex((a) => a.startsWith('-'))
  return i < 0 ? argv : argv.slice(0, i)
}

/** The command whose name is the longest start of `words`. */
export function matchCommand(docs: CliDocs, words: string[]): CommandDoc | undefined {
  let best: CommandDoc | undefined
  for (const c of docs.commands) {
    if (c.path.length <= words.length && c.path.every((w, i) => words[i] === w) && c.path.length > (best?.path.length ?? 0)) best = c
  }
  return best
}

/** Whether some command's name starts with `words` and is longer (`volume`, `volume snapshot`). */
export function isGroup(docs: CliDocs, words: string[]): boolean {
  return docs.commands.some((c) => c.path.length > words.length && words.every((w, i) => c.path[i] === w))
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]
}

/** The command `words` most likely meant (a typo or two away), if any. */
function nearest(docs: CliDocs, words: string[]): CommandDoc | undefined {
  let best: { c: CommandDoc; d: number } | undefined
  for (const c of docs.commands) {
    const typed = words.slice(0, c.path.length).join(' ')
    const d = editDistance(typed, commandName(c))
    if (d <= Math.max(2, Math.floor(commandName(c).length / 4)) && (best === undefined || d < best.d)) best = { c, d }
  }
  return best?.c
}

function unknownCommand(docs: CliDocs, words: string[]): string {
  let group = words.length
  while (group > 0 && !isGroup(docs, words.slice(0, group))) group--
  const where = group > 0 ? `bazil ${words.slice(0, group).join(' ')} --help` : 'bazil --help'
  const guess = nearest(docs, words)
  const typed = `bazil ${words.slice(0, Math.max(group + 1, guess?.path.length ?? 0)).join(' ')}`
  return `unknown command "${typed}"${guess ? `; did you mean "bazil ${commandName(guess)}"?` : ''} (\`${where}\` lists the commands)`
}

function findOption(options: OptionDoc[], name: string): OptionDoc | undefined {
  return options.find((o) => o.names.includes(name))
}

/** What is wrong with `args` (the words after the command's name), or null if nothing we can name. */
function diagnose(c: CommandDoc, globals: OptionDoc[], args: string[]): string | null {
  const options = [...c.options, ...globals]
  let positionals = 0
  const seen = new Set<OptionDoc>()
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') {
      positionals += args.length - i - 1
      break
    }
    if (a.startsWith('--')) {
      const name = a.split('=')[0]
      const o = findOption(options, name) ?? (name.startsWith('--no-') ? findOption(options, `--${name.slice(5)}`) : undefined)
      if (!o) return `unknown option ${name}`
      seen.add(o)
      if (o.value !== undefined && !a.includes('=')) {
        if (i + 1 >= args.length || args[i + 1].startsWith('-')) return `${name} needs a value (${optionLabel(o)})`
        i++
      }
    } else if (a.startsWith('-') && a.length > 1) {
      const o = findOption(options, a)
      if (o) {
        seen.add(o)
        if (o.value !== undefined) {
          if (i + 1 >= args.length) return `${a} needs a value (${optionLabel(o)})`
          i++
        }
        continue
      }
      // -lr: short flags together
      for (const ch of a.slice(1)) {
        const f = findOption(options, `-${ch}`)
        if (!f || f.value !== undefined) return `unknown option ${f ? a : `-${ch}`}`
        seen.add(f)
      }
    } else positionals++
  }
  const missingOption = c.options.find((o) => o.required && !seen.has(o))
  if (missingOption) return `missing ${optionLabel(missingOption)}`
  const required = c.args.filter((a) => a.required)
  if (positionals < required.length) return `missing ${required.slice(positionals).map(argLabel).join(' ')}`
  if (!c.args.some((a) => a.repeated) && positionals > c.args.length) {
    const extra = args.filter((a) => !a.startsWith('-'))[c.args.length]
    return `unexpected argument${extra !== undefined ? ` "${extra}"` : ''}`
  }
  return null
}

/** clipanion's message, first line, without its trailing period. */
function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n')[0].replace(/\.$/, '')
}

/** One line (no "bazil: " prefix, no newline) for a command line the parser refused with `err`. */
export function describeUsageError(docs: CliDocs, argv: string[], err: unknown): string {
  const words = leadingWords(argv.filter((a) => !isHelpFlag(a)))
  const c = matchCommand(docs, words)
  if (!c) {
    if (words.length === 0) {
      const opt = argv.find((a) => a.startsWith('-') && !isHelpFlag(a))
      return `${opt !== undefined ? `unknown option ${opt.split('=')[0]}` : firstLine(err)} (\`bazil --help\` lists the commands and global options)`
    }
    return unknownCommand(docs, words)
  }
  const args = [...argv]
  for (const w of c.path) args.splice(args.indexOf(w), 1)
  const why = diagnose(c, docs.globals, args.filter((a) => !isHelpFlag(a))) ?? firstLine(err)
  return `${commandName(c)}: ${why}; usage: ${synopsis(c)}`
}
