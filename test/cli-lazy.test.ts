// The CLI loads only the module of the command it runs (src/cli/command-table.ts): the table
// names every command where its class says, a command line picks its own module, and help
// (or anything not a command) still lists every command.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { COMMAND_MODULES, loadCommands } from '../src/cli/command-table.js'
import { bazil, bazilBin, startServer, tempDir } from './helpers.js'

const key = (p: string[]): string => p.join(' ')

test('the command table names each command in the module that defines it, once', async () => {
  const seen = new Set<string>()
  for (const m of COMMAND_MODULES) {
    const mod = await m.load()
    const defined = Object.values(mod).flatMap((v) => (typeof v === 'function' && Array.isArray((v as { paths?: unknown }).paths) ? (v as unknown as { paths: string[][] }).paths : []))
    assert.deepEqual(m.paths.map(key).sort(), defined.map(key).sort())
    for (const p of m.paths) {
      assert.ok(!seen.has(key(p)), `${key(p)} is in two modules`)
      seen.add(key(p))
    }
  }
  const all = (await loadCommands()).flatMap((c) => c.paths ?? []).map(key)
  assert.deepEqual(all.sort(), [...seen].sort())
})

test('a command line loads the modules of the commands it names; help or an unknown command loads all', async () => {
  const all = (await loadCommands()).length
  const paths = async (argv: string[]): Promise<string[]> => (await loadCommands(argv)).flatMap((c) => c.paths ?? []).map(key)
  const ls = await paths(['volume', 'ls', 'v', '/'])
  assert.ok(ls.includes('volume ls') && ls.includes('volume cat'))
  assert.ok(!ls.includes('volume gc') && !ls.includes('server run'))
  assert.deepEqual((await paths(['volume', 'snapshot', 'rm', 'v', 's'])).sort(), ['volume gc', 'volume snapshot keep', 'volume snapshot rm'])
  for (const argv of [[], ['--help'], ['volume'], ['volume', 'snapshot'], ['volume', 'lss'], ['-h']]) {
    assert.equal((await loadCommands(argv)).length, all, argv.join(' '))
  }
})

test('bazil --help lists every command; a mistyped one is refused with the list', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const help = await bazil(dir, ['--help'])
    assert.equal(help.code, 0)
    for (const m of COMMAND_MODULES) for (const p of m.paths) assert.match(help.stdout, new RegExp(`^  ${key(p)}( |$)`, 'm'), `help lists ${key(p)}`)
    const bad = await bazil(dir, ['volume', 'lss'])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stdout + bad.stderr, /volume ls/)
  } finally {
    cleanup()
  }
})

/** The ES modules of this repository and the packages a `bazil ARGS` process loads (a loader hook lists them). */
function modulesLoaded(dir: string, args: string[]): string[] {
  const hooks = path.join(dir, 'hooks.mjs')
  const register = path.join(dir, 'register.mjs')
  fs.writeFileSync(hooks, "export async function load(url, ctx, next) { if (url.startsWith('file:')) process.stderr.write('LOADED ' + url + '\\n'); return next(url, ctx) }\n")
  fs.writeFileSync(register, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
  const r = spawnSync(process.execPath, ['--import', register, bazilBin, ...args], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  return r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice('LOADED '.length).replace(/^.*\/(dist\/src|node_modules)\//, ''))
}

test('a command the running server answers loads the client and its command module only; --version no command', async () => {
  const { dir, cleanup } = tempDir()
  const data = path.join(dir, 'data')
  try {
    assert.equal((await bazil(data, ['create'])).code, 0)
    assert.equal((await bazil(data, ['volume', 'create', 'v'])).code, 0)
    const version = modulesLoaded(dir, ['--version'])
    assert.deepEqual(version.filter((m) => m.startsWith('cli/commands/')), [], version.join(' '))
    const s = await startServer(data)
    try {
      for (const args of [['status'], ['volume', 'ls', 'v'], ['peer', 'list'], ['volume', 'writers', 'v'], ['log', 'show', 'v'], ['cache', 'size'], ['pin', '--list'], ['volume', 'snapshot', 'keep', 'v']]) {
        const mods = modulesLoaded(dir, [`--data-dir=${data}`, ...args])
        // Neither the store nor the crypto library: the server has them.
        const heavy = mods.filter((m) => /^(datadir|crypto|node|volume\/|tree\/(?!errors)|cas\/|net\/|corestore|hypercore|sodium-native|@automerge)/.test(m))
        assert.deepEqual(heavy, [], `${args.join(' ')}: ${mods.join(' ')}`)
        assert.deepEqual(mods.filter((m) => m.startsWith('cli/commands/')).length, 1, `${args.join(' ')}: one command module`)
      }
    } finally {
      assert.equal(await s.stop('SIGTERM'), 0, s.log())
    }
  } finally {
    cleanup()
  }
})
