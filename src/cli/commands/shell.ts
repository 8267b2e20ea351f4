// help, completion, man: the CLI describing itself, from the commands' own definitions
// (src/cli/command-docs.ts). They read no data dir.
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../user-error.js'
import type { CliDocs } from '../command-docs.js'

/** Every command's docs (this process loaded only this module's commands). */
async function allDocs(): Promise<CliDocs> {
  const { loadCli } = await import('../main.js')
  return (await loadCli()).docs()
}

export class HelpCommand extends BazilCommand {
  static override paths = [['help']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.shell,
    description: 'Show the commands, or help on one',
    details: 'The same as `bazil --help`, or with a command `bazil COMMAND --help`.',
    examples: [['Help on a command', 'bazil help volume ls']]
  })
  command = Option.Rest()

  async run(): Promise<number> {
    const { loadCli } = await import('../main.js')
    const cli = await loadCli()
    return cli.run([...this.command, '--help'], this.context)
  }
}

export class CompletionCommand extends BazilCommand {
  static override paths = [['completion']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.shell,
    description: 'Print a shell completion script',
    details: 'For bash, zsh or fish: commands, their options and arguments complete, volume names from `bazil volume list`.',
    examples: [
      ['Complete in this bash', 'source <(bazil completion bash)'],
      ['For every zsh (a directory in $fpath)', 'bazil completion zsh > ~/.zfunc/_bazil'],
      ['For every fish', 'bazil completion fish > ~/.config/fish/completions/bazil.fish']
    ]
  })
  shell = Option.String({ required: true })

  async run(): Promise<void> {
    const { SHELLS, completionScript } = await import('../completion.js')
    const shell = SHELLS.find((s) => s === this.shell)
    if (!shell) throw new UserError(`no completion for "${this.shell}": give one of ${SHELLS.join(', ')}`)
    this.context.stdout.write(completionScript(await allDocs(), shell))
  }
}

export class ManCommand extends BazilCommand {
  static override paths = [['man']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.shell,
    description: 'Print the manual page (roff)',
    details: 'Every command with its options and examples, as the man page bazil(1).',
    examples: [
      ['Read it', 'bazil man | man -l -'],
      ['Install it for `man bazil`', 'mkdir -p ~/.local/share/man/man1 && bazil man > ~/.local/share/man/man1/bazil.1']
    ]
  })

  async run(): Promise<void> {
    const { manPage } = await import('../man.js')
    this.context.stdout.write(manPage(await allDocs()))
  }
}
