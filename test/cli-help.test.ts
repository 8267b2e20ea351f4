// Help is read from the commands' own definitions (src/cli/command-docs.ts) and rendered by
// src/cli/help.ts: `bazil --help` grouped, one line per command, global options once;
// `COMMAND --help` with what it does, its options and examples; a command line the parser
// refuses, or a missing data dir or server, gets one line on stderr naming the next step.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { CATEGORY_ORDER } from '../src/cli/categories.js'
import { loadCli } from '../src/cli/main.js'
import { bazil, tempDir } from './helpers.js'

test('every command has a category of the table, a short description, and usage free of clipanion placeholders', async () => {
  const docs = (await loadCli()).docs()
  assert.ok(docs.commands.length > 40)
  for (const c of docs.commands) {
    const name = c.path.join(' ')
    assert.ok(CATEGORY_ORDER.includes(c.category as never), `${name}: category "${c.category}"`)
    assert.ok(c.description.length > 0, `${name}: a description`)
    // The listing gives a description the 42 columns after the command's name.
    assert.ok(c.description.length <= 42, `${name}: description of ${c.description.length} > 42 characters`)
    assert.doesNotMatch(c.description, /\.$/, `${name}: a description is a phrase, no full stop`)
    for (const [, line] of c.examples) assert.match(line, /\bbazil /, `${name}: example ${line}`)
  }
})

test('bazil --help lists the commands grouped, one line each, with the global options once and examples', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const help = await bazil(dir, ['--help'])
    assert.equal(help.code, 0)
    assert.equal(help.stderr, '')
    assert.doesNotMatch(help.stdout, /#0/)
    const headers = help.stdout.split('\n').filter((l) => /^[A-Z].*:$/.test(l)).map((l) => l.slice(0, -1))
    // The categories in their order, then the global options and the examples.
    assert.deepEqual(headers, [...CATEGORY_ORDER.filter((c) => headers.includes(c)), 'Global options', 'Examples'])
    assert.ok(headers.includes('Volumes') && headers.includes('Sync & peers') && headers.includes('History'))
    const listing = help.stdout.split('\n').filter((l) => /^ {2}[a-z]/.test(l))
    for (const l of listing) assert.doesNotMatch(l, /--data-dir/, l)
    assert.equal(help.stdout.match(/--data-dir=DIR {2}/g)?.length, 1, 'the global option described once')
    assert.match(help.stdout, /^ {2}volume ls VOLUME \[TARGET\] +List a directory of a volume$/m)
    assert.match(help.stdout, /^Examples:\n {2}\S.*\n {4}\$ bazil /m)
    assert.deepEqual(await bazil(dir, ['-h']), help)
    // No arguments at all: the same help.
    assert.equal((await bazil(dir, [])).stdout, help.stdout)
  } finally {
    cleanup()
  }
})

test('bazil COMMAND --help: usage, what it does, options with descriptions, examples', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const r = await bazil(dir, ['volume', 'ls', '--help'])
    assert.equal(r.code, 0)
    assert.doesNotMatch(r.stdout, /#0/)
    assert.match(r.stdout, /^Usage: bazil volume ls \[-l\] \[--json\] \[--snapshot=NAME\] VOLUME \[TARGET\]\n\nList a directory of a volume\n/)
    assert.match(r.stdout, /^Options:\n {2}-l +Long listing/m)
    assert.match(r.stdout, /^ {2}--snapshot=NAME +List this snapshot instead of the live volume$/m)
    assert.match(r.stdout, /^Examples:\n {2}Long listing of the root\n {4}\$ bazil volume ls -l photos \/$/m)
    // The long usage of a command with many options wraps.
    const connect = await bazil(dir, ['volume', 'connect', '-h'])
    for (const l of connect.stdout.split('\n')) assert.ok(l.length <= 80, l)
    // A word with commands under it lists them.
    const vol = await bazil(dir, ['volume', 'snapshot'])
    assert.equal(vol.code, 0)
    assert.match(vol.stdout, /^Usage: bazil volume snapshot COMMAND/)
    assert.match(vol.stdout, /^ {2}volume snapshot create VOLUME NAME +Take a named, read-only snapshot$/m)
    assert.doesNotMatch(vol.stdout, /volume ls/)
  } finally {
    cleanup()
  }
})

test('a command line the parser refuses gets one line on stderr with the next step, and exit code 2', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const cases: Array<[string[], RegExp]> = [
      [['volume', 'lss'], /^bazil: unknown command "bazil volume lss"; did you mean "bazil volume ls"\? \(`bazil volume --help` lists the commands\)$/],
      [['vlume', 'list'], /^bazil: unknown command "bazil vlume list"; did you mean "bazil volume list"\?/],
      [['frobnicate'], /^bazil: unknown command "bazil frobnicate" \(`bazil --help` lists the commands\)$/],
      [['volume', 'lss', '--help'], /^bazil: unknown command "bazil volume lss"; did you mean "bazil volume ls"\?/],
      [['--bogus'], /^bazil: unknown option --bogus \(`bazil --help` lists the commands and global options\)$/],
      [['volume', 'ls'], /^bazil: volume ls: missing VOLUME; usage: bazil volume ls \[-l\] \[--json\] \[--snapshot=NAME\] VOLUME \[TARGET\]$/],
      [['volume', 'mv', 'v'], /^bazil: volume mv: missing FROM TO; usage: bazil volume mv /],
      [['volume', 'ls', '--bogus', 'v'], /^bazil: volume ls: unknown option --bogus; usage: /],
      [['volume', 'ls', '-lx', 'v'], /^bazil: volume ls: unknown option -x; usage: /],
      [['volume', 'ls', 'v', '/', 'extra'], /^bazil: volume ls: unexpected argument "extra"; usage: /],
      [['volume', 'ls', 'v', '--snapshot'], /^bazil: volume ls: --snapshot needs a value \(--snapshot=NAME\); usage: /],
      [['volume', 'resolve', 'v', '/f'], /^bazil: volume resolve: missing --keep=WHICH; usage: bazil volume resolve --keep=WHICH /]
    ]
    for (const [args, want] of cases) {
      const r = await bazil(dir, args)
      assert.equal(r.code, 2, args.join(' '))
      assert.equal(r.stdout, '', args.join(' '))
      assert.match(r.stderr, /^[^\n]*\n$/, `one line for ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr.trimEnd(), want)
    }
  } finally {
    cleanup()
  }
})

test('no data dir, or no server where one is needed: one line naming what to run', async () => {
  const { dir, cleanup } = tempDir()
  try {
    const missing = path.join(dir, 'nothing-here')
    for (const args of [['volume', 'list'], ['volume', 'ls', 'v'], ['status'], ['log', 'show', 'v'], ['peer', 'list'], ['cache', 'size']]) {
      const r = await bazil(missing, args)
      assert.equal(r.code, 1, args.join(' '))
      assert.match(r.stderr, /^bazil: no bazil data dir at .*: run `bazil create` first, or pass --data-dir\n$/, `${args.join(' ')}: ${r.stderr}`)
    }
    assert.equal((await bazil(dir, ['create'])).code, 0)
    for (const args of [['volume', 'mount', 'v', dir], ['volume', 'sync', 'v', 'k']]) {
      const r = await bazil(dir, args)
      assert.equal(r.code, 1, args.join(' '))
      assert.match(r.stderr, /^bazil: `bazil volume \w+` needs a running server: start `bazil server run`[^\n]*\n$/, `${args.join(' ')}: ${r.stderr}`)
    }
  } finally {
    cleanup()
  }
})
