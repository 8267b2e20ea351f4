// clipanion's Cli with bazil's help and errors: help from the commands' definitions (help.ts),
// `bazil volume` (a word with commands under it) listing those commands, and a command line
// the parser refuses told in one line on stderr (usage-errors.ts), exit code 2.
import { Cli, Command, type CommandClass } from 'clipanion'
import type { BazilContext } from './base.js'
import { BUILTIN_OPTIONS, GLOBAL_OPTION_NAMES, argDocs, optionDoc, type CliDocs, type CommandDoc, type OptionDoc } from './command-docs.js'
import { commandHelp, groupHelp, mainHelp } from './help.js'
import { describeUsageError, isGroup, isHelpFlag, leadingWords, matchCommand } from './usage-errors.js'

/** The exit code of a command line the parser refused. */
export const USAGE_EXIT = 2

/**
 * The name of a command's rest argument (Option.Rest: its field, or its `name`), which the
 * parser does not keep: its definition is run again, only to see what it declares.
 */
function restName(specs: Map<string, { definition: (builder: never, key: string) => void }>): string | undefined {
  let name: string | undefined
  const recorder = { addRest: (o: { name?: string }) => (name = o.name), addProxy: () => undefined, addPositional: () => undefined, addOption: () => undefined }
  for (const [key, spec] of specs) spec.definition(recorder as never, key)
  return name
}

export class BazilCli extends Cli<BazilContext> {
  private cachedDocs?: CliDocs

  /** Every registered command's documentation, read from its definition. */
  docs(): CliDocs {
    if (this.cachedDocs) return this.cachedDocs
    const commands: CommandDoc[] = []
    const globals: OptionDoc[] = []
    for (const [cls, { builder, specs }] of this.registrations) {
      const usage = cls.usage
      const path = cls.paths?.[0]
      if (usage === undefined || path === undefined) continue // the built-in --help and --version
      const options: OptionDoc[] = []
      for (const o of builder.options) {
        if (o.hidden) continue
        if (!GLOBAL_OPTION_NAMES.has(o.names[0])) options.push(optionDoc(o))
        else if (!globals.some((g) => g.names[0] === o.names[0])) globals.push(optionDoc(o))
      }
      commands.push({
        path,
        category: usage.category ?? '',
        description: usage.description ?? '',
        ...(usage.details !== undefined ? { details: usage.details } : {}),
        examples: (usage.examples ?? []).map(([what, line]) => [what, line.replace(/\$0/g, this.binaryName)]),
        options,
        args: argDocs(builder.arity, restName(specs))
      })
    }
    this.cachedDocs = { version: this.binaryVersion ?? '', commands, globals: [...globals, ...BUILTIN_OPTIONS] }
    return this.cachedDocs
  }

  override usage(command: CommandClass<BazilContext> | Command<BazilContext> | null = null, opts?: { colored?: boolean; detailed?: boolean; prefix?: string }): string {
    const docs = this.docs()
    if (command === null) return mainHelp(docs)
    const cls = command instanceof Command ? (command.constructor as CommandClass<BazilContext>) : command
    const doc = docs.commands.find((c) => c.path.join(' ') === cls.paths?.[0]?.join(' '))
    return doc ? commandHelp(docs, doc) : super.usage(command, opts)
  }

  override async run(input: Command<BazilContext> | string[], context: Partial<BazilContext>): Promise<number> {
    if (!Array.isArray(input)) return super.run(input, context as BazilContext)
    const stdout = context.stdout ?? process.stdout
    const stderr = context.stderr ?? process.stderr
    const docs = this.docs()
    const plain = input.filter((a) => !isHelpFlag(a))
    const words = leadingWords(plain)
    if (!matchCommand(docs, words)) {
      // `bazil`, `bazil volume`, `bazil volume snapshot --help`: the commands under the words.
      if (plain.length === words.length && (words.length === 0 || isGroup(docs, words))) {
        stdout.write(words.length === 0 ? mainHelp(docs) : groupHelp(docs, words))
        return 0
      }
    }
    let command: Command<BazilContext>
    try {
      command = this.process(input, context as BazilContext)
      // clipanion answers a help flag on an unknown command with a list of guesses.
      if (!matchCommand(docs, words) && input.some(isHelpFlag)) throw new Error('unknown command')
    } catch (err) {
      stderr.write(`bazil: ${describeUsageError(docs, input, err)}\n`)
      return USAGE_EXIT
    }
    return super.run(command, context as BazilContext)
  }
}
