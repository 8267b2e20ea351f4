// The bazil command line: registers every command and runs one.
import { Builtins, Cli } from 'clipanion'
import type { BazilContext } from './base.js'
import { CreateCommand, DebugPubkeyCommand, SharingAddCommand, SharingListCommand } from './commands/identity.js'
import { LogShowCommand, LogVerifyCommand } from './commands/log.js'
import * as volume from './commands/volume.js'
import * as server from './commands/server.js'
import * as conflicts from './commands/conflicts.js'
import * as peer from './commands/peer.js'
import * as dht from './commands/dht.js'
import * as sync from './commands/sync.js'
import * as writers from './commands/writers.js'
import * as cache from './commands/cache.js'
import * as gc from './commands/gc.js'
import * as placement from './commands/placement.js'

export const VERSION = '0.1.0'

export function buildCli(): Cli<BazilContext> {
  const cli = new Cli<BazilContext>({ binaryLabel: 'bazil', binaryName: 'bazil', binaryVersion: VERSION, enableColors: false })
  for (const c of [CreateCommand, DebugPubkeyCommand, SharingAddCommand, SharingListCommand, LogShowCommand, LogVerifyCommand, ...Object.values(volume), ...Object.values(server), ...Object.values(conflicts), ...Object.values(peer), ...Object.values(dht), ...Object.values(sync), ...Object.values(writers), ...Object.values(placement), ...Object.values(cache), gc.VolumeGcCommand, gc.VolumeSnapshotRmCommand, gc.VolumeSnapshotKeepCommand]) {
    cli.register(c)
  }
  cli.register(Builtins.HelpCommand)
  cli.register(Builtins.VersionCommand)
  return cli
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
  const cli = buildCli()
  const code = await cli.run(argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, dataDir, argv, cwd: process.cwd(), colorDepth: 1 })
  process.exitCode = code
}
