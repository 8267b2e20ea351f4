// What `bazil --help`, the completion scripts and the man page say about each command, read
// from the commands' own definitions (their paths, `static usage` and options) so the three
// never disagree with what the parser accepts. The renderers are help.ts, completion.ts, man.ts.

/** An option as the user types it. */
export interface OptionDoc {
  /** Every spelling: ['-p', '--parents']. */
  names: string[]
  /** The value's placeholder when the option takes one (`--snapshot=SNAPSHOT`). */
  value?: string
  description: string
  required: boolean
}

/** A positional argument. */
export interface ArgDoc {
  /** Its name in the command class (`volume`, `localName`). */
  name: string
  required: boolean
  /** Takes any number of words (the command's last argument). */
  repeated: boolean
}

export interface CommandDoc {
  path: string[]
  category: string
  /** One short line (the listing's). */
  description: string
  /** Paragraphs for `COMMAND --help` and the man page. */
  details?: string
  /** [what it does, the command line]. */
  examples: Array<[string, string]>
  /** The command's own options (the global ones are in GlobalDocs). */
  options: OptionDoc[]
  args: ArgDoc[]
}

export interface CliDocs {
  version: string
  commands: CommandDoc[]
  /** Options every command takes (--data-dir) and the built-in --help and --version. */
  globals: OptionDoc[]
}

/** Options every command has (BazilCommand's): listed once, as global options. */
export const GLOBAL_OPTION_NAMES = new Set(['--data-dir'])

export const BUILTIN_OPTIONS: OptionDoc[] = [
  { names: ['-h', '--help'], description: 'Show the commands, or with a command (`bazil volume ls --help`) its options and examples', required: false },
  { names: ['-v', '--version'], description: "Print bazil's version", required: false }
]

/** The program in one line (help's header, the man page's NAME). */
export const SUMMARY = 'a distributed file system for single-person disconnected operation'

/** A first session, for `bazil --help` and the man page. */
export const OVERVIEW_EXAMPLES: Array<[string, string]> = [
  ['Make a node and run its server', 'bazil create && bazil server run &'],
  ['Create a volume and mount it', 'bazil volume create notes && bazil volume mount notes ~/notes'],
  ['Share it with another node (run there: bazil debug pubkey)', 'bazil peer add KEY && bazil peer volume allow KEY notes'],
  ['See what every peer holds and what is moving', 'bazil status']
]

/** What the parser knows of an option (clipanion's CommandBuilder options). */
export interface ParsedOption {
  names: string[]
  arity: number
  hidden: boolean
  description?: string
  required: boolean
}

/** What the parser knows of the positionals (clipanion's CommandBuilder arity). */
export interface ParsedArity {
  leading: string[]
  /** Optional positionals, or clipanion's NoLimits (a symbol) for a rest argument. */
  extra: string[] | symbol
  trailing: string[]
}

/**
 * What an option's value is, where its name does not say it: the same option name means the
 * same kind of value in every command.
 */
const VALUE_NAMES: Record<string, string> = {
  '--data-dir': 'DIR',
  '--snapshot': 'NAME',
  '--sharing': 'NAME',
  '--to': 'PATH',
  '--writer': 'KEY',
  '--since': 'TIME',
  '--until': 'TIME',
  '--timeout': 'SECONDS',
  '--grace': 'DURATION',
  '--bootstrap': 'HOST:PORT,...',
  '--web': 'HOST:PORT',
  '--keep': 'WHICH',
  '--version': 'HASH',
  '--state': 'FILE',
  '--nodes': 'N',
  '--last': 'N',
  '--hourly': 'N',
  '--daily': 'N',
  '--weekly': 'N'
}

/** The placeholder of an option's value: VALUE_NAMES, else its long name's last word (--log-level → LEVEL). */
function placeholder(names: string[]): string {
  const long = names.find((n) => n.startsWith('--')) ?? names[0]
  if (VALUE_NAMES[long] !== undefined) return VALUE_NAMES[long]
  return (long.replace(/^-+/, '').split('-').pop() as string).toUpperCase()
}

/** An argument's name as help shows it: localName → LOCAL_NAME. */
export function argLabel(a: ArgDoc): string {
  return a.name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()
}

export function optionDoc(o: ParsedOption): OptionDoc {
  return {
    names: o.names,
    ...(o.arity > 0 ? { value: placeholder(o.names) } : {}),
    // --json has no description anywhere: it means the same on every command.
    description: o.description ?? (o.names.includes('--json') ? 'Print JSON instead of text' : ''),
    required: o.required
  }
}

export function argDocs(arity: ParsedArity, restName = 'args'): ArgDoc[] {
  const args: ArgDoc[] = arity.leading.map((name) => ({ name, required: true, repeated: false }))
  if (Array.isArray(arity.extra)) args.push(...arity.extra.map((name) => ({ name, required: false, repeated: false })))
  else args.push({ name: restName, required: false, repeated: true })
  args.push(...arity.trailing.map((name) => ({ name, required: true, repeated: false })))
  return args
}

/** `--snapshot=SNAPSHOT`, `-p, --parents`. */
export function optionLabel(o: OptionDoc): string {
  return o.names.join(', ') + (o.value !== undefined ? `=${o.value}` : '')
}

/** `VOLUME [TARGET]`, `[ARGS...]`. */
export function argsSynopsis(args: ArgDoc[]): string {
  return args.map((a) => (a.repeated ? `[${argLabel(a)}...]` : a.required ? argLabel(a) : `[${argLabel(a)}]`)).join(' ')
}

/** `bazil volume ls [-l] [--json] [--snapshot=SNAPSHOT] VOLUME [TARGET]`. */
export function synopsis(c: CommandDoc): string {
  const opts = c.options.map((o) => {
    const one = (o.names.find((n) => n.startsWith('--')) ?? o.names[0]) + (o.value !== undefined ? `=${o.value}` : '')
    return o.required ? one : `[${one}]`
  })
  return ['bazil', ...c.path, ...opts, argsSynopsis(c.args)].filter((s) => s !== '').join(' ')
}

export const commandName = (c: CommandDoc): string => c.path.join(' ')
