// Which module holds which command, so that a CLI process imports only the module of the
// command it runs (a command whose op the server answers loads nearly nothing else; without a
// server the op loads the store's modules when it opens the data dir, src/control/client.ts). The paths
// here are the commands' own `static paths` (test/cli-lazy.test.ts checks they agree; a command
// missing here still runs: a command line no module claims loads every module).
import { Command, type CommandClass as ClipanionCommand } from 'clipanion'
import type { BazilContext } from './base.js'

export type CommandClass = ClipanionCommand<BazilContext>

interface CommandModule {
  paths: string[][]
  load: () => Promise<Record<string, unknown>>
}

/** In the order `bazil --help` lists them. */
export const COMMAND_MODULES: CommandModule[] = [
  { paths: [['create'], ['debug', 'pubkey'], ['sharing', 'add'], ['sharing', 'list']], load: () => import('./commands/identity.js') },
  { paths: [['log', 'show'], ['log', 'verify']], load: () => import('./commands/log.js') },
  {
    paths: [['volume', 'create'], ['volume', 'list'], ['volume', 'import'], ['volume', 'export'], ['volume', 'ls'], ['volume', 'cat'], ['volume', 'mkdir'], ['volume', 'rm'], ['volume', 'mv'], ['volume', 'snapshot', 'create'], ['volume', 'snapshot', 'list']],
    load: () => import('./commands/volume.js')
  },
  { paths: [['server', 'run'], ['status'], ['volume', 'mount'], ['volume', 'unmount']], load: () => import('./commands/server.js') },
  { paths: [['volume', 'conflicts'], ['volume', 'resolve']], load: () => import('./commands/conflicts.js') },
  { paths: [['peer', 'add'], ['peer', 'remove'], ['peer', 'list'], ['peer', 'location', 'set'], ['peer', 'storage'], ['peer', 'volume']], load: () => import('./commands/peer.js') },
  { paths: [['dht', 'run']], load: () => import('./commands/dht.js') },
  { paths: [['volume', 'connect'], ['volume', 'state', 'save'], ['volume', 'sync'], ['volume', 'storage', 'add']], load: () => import('./commands/sync.js') },
  { paths: [['volume', 'writers'], ['volume', 'writers', 'remove']], load: () => import('./commands/writers.js') },
  { paths: [['volume', 'copies'], ['where'], ['volume', 'du'], ['volume', 'storage', 'rm']], load: () => import('./commands/placement.js') },
  { paths: [['cache', 'size'], ['pin'], ['unpin']], load: () => import('./commands/cache.js') },
  { paths: [['volume', 'history'], ['volume', 'restore'], ['log', 'blame']], load: () => import('./commands/history.js') },
  { paths: [['volume', 'gc'], ['volume', 'snapshot', 'rm'], ['volume', 'snapshot', 'keep']], load: () => import('./commands/gc.js') },
  { paths: [['help'], ['completion'], ['man']], load: () => import('./commands/shell.js') },
  { paths: [['web', 'url']], load: () => import('./commands/web.js') },
]

/**
 * The command classes for `argv` (after global options): those of the modules holding a
 * command whose path starts `argv`; every command when none does (`--help`, a partial or
 * mistyped command: clipanion then lists or suggests from all of them).
 */
export async function loadCommands(argv?: string[]): Promise<CommandClass[]> {
  // `bazil --version` is clipanion's own command: it needs none of ours.
  if (argv?.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) return []
  const picked = argv === undefined ? [] : COMMAND_MODULES.filter((m) => m.paths.some((p) => p.every((w, i) => argv[i] === w)))
  const modules = await Promise.all((picked.length > 0 ? picked : COMMAND_MODULES).map((m) => m.load()))
  return modules.flatMap((mod) => Object.values(mod).filter(isCommand))
}

function isCommand(v: unknown): v is CommandClass {
  return typeof v === 'function' && v.prototype instanceof Command
}
