// The bazil command line: registers every command and runs one.
import { Builtins } from 'clipanion'
import { BazilCli } from './bazil-cli.js'
import { loadCommands, type CommandClass } from './command-table.js'

import { VERSION } from '../version.js'

export { VERSION }

/** A CLI of `commands` (loadCommands: every command, or those `argv` may name). */
export function buildCli(commands: CommandClass[]): BazilCli {
  const cli = new BazilCli({ binaryLabel: 'bazil', binaryName: 'bazil', binaryVersion: VERSION, enableColors: false })
  for (const c of commands) cli.register(c)
  cli.register(Builtins.HelpCommand)
  cli.register(Builtins.VersionCommand)
  return cli
}

/** The CLI with every command (the server's, tests'). */
export async function loadCli(): Promise<BazilCli> {
  return buildCli(await loadCommands())
}

/**
 * Takes `--data-dir` from before the command name (`bazil --data-dir=X volume list`), as
 * Bazil's own CLI had it; the same option after the command name works too.
 */
export function splitGlobalOptions(argv: string[]): { argv: string[]; dataDir?: string } {
  let dataDir: string | undefined
  const rest = [...argv]
  while (rest.length > 0 && rest[0].startsWith('--data-dir')) {
    const arg = rest.shift() as string
    if (arg.startsWith('--data-dir=')) dataDir = arg.slice('--data-dir='.length)
    else if (arg === '--data-dir' && rest.length > 0) dataDir = rest.shift()
    else break
  }
  return { argv: rest, dataDir }
}

export async function main(args: string[]): Promise<void> {
  // `bazil log show | head`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0)
    throw err
  })
  const { argv, dataDir } = splitGlobalOptions(args)
  // Only the module of the command that runs is loaded (src/cli/command-table.ts).
  const cli = buildCli(await loadCommands(argv))
  const code = await cli.run(argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, dataDir, cwd: process.cwd(), colorDepth: 1 })
  process.exitCode = code
}
