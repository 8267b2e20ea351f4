// `bazil completion bash|zsh|fish` and `bazil man`, generated from the commands' definitions:
// each script loads in its shell and completes commands, options, option values and volume
// names (from `bazil volume list`); the man page renders without warnings. A shell or groff
// missing here skips its test, saying so (bash is always here).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { OPTION_KINDS } from '../src/cli/completion.js'
import { loadCli } from '../src/cli/main.js'
import { bazil, bazilBin, tempDir } from './helpers.js'

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const missing = (cmd: string): string | false => (has(cmd) ? false : `${cmd} is not installed here (apt-get install ${cmd})`)

/** A data dir with two volumes, and a PATH whose `bazil` is this checkout's. */
async function setup(): Promise<{ dir: string; env: NodeJS.ProcessEnv; script: (shell: string) => string; cleanup: () => void }> {
  const t = tempDir()
  const data = path.join(t.dir, 'data')
  assert.equal((await bazil(data, ['create'])).code, 0)
  for (const v of ['photos', 'notes']) assert.equal((await bazil(data, ['volume', 'create', v])).code, 0)
  // photos: /2024/trips/ and /2024/beach day.jpg
  assert.equal((await bazil(data, ['volume', 'mkdir', '-p', 'photos', '/2024/trips'])).code, 0)
  const src = path.join(t.dir, 'src')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'beach day.jpg'), 'sand')
  assert.equal((await bazil(data, ['volume', 'import', '--to=/2024', 'photos', src])).code, 0)
  const bin = path.join(t.dir, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(bazilBin, path.join(bin, 'bazil'))
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, BAZIL_DATA_DIR: data }
  const script = (shell: string): string => {
    const r = spawnSync(process.execPath, [bazilBin, 'completion', shell], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const file = path.join(t.dir, `completion.${shell}`)
    fs.writeFileSync(file, r.stdout)
    return file
  }
  return { dir: t.dir, env, script, cleanup: t.cleanup }
}

test('what the scripts complete option values with agrees with the options', async () => {
  const docs = (await loadCli()).docs()
  const takesValue = new Map<string, boolean>()
  for (const c of docs.commands) {
    for (const o of c.options) {
      for (const n of o.names) {
        // The scripts skip an option's value by the option's name alone.
        const before = takesValue.get(n)
        assert.ok(before === undefined || before === (o.value !== undefined), `${n} takes a value in one command and not in another`)
        takesValue.set(n, o.value !== undefined)
        const kind = OPTION_KINDS[n]
        if (kind === undefined || kind.startsWith('@')) continue
        for (const word of kind.split(',')) assert.match(o.description, new RegExp(`\\b${word}\\b`), `${c.path.join(' ')} ${n}: "${word}" is not in its description`)
      }
    }
  }
  for (const n of Object.keys(OPTION_KINDS)) assert.ok(takesValue.has(n) || docs.globals.some((g) => g.names.includes(n)), `${n} is no option`)
  const bad = spawnSync(process.execPath, [bazilBin, 'completion', 'tcsh'], { encoding: 'utf8' })
  assert.equal(bad.status, 1)
  assert.equal(bad.stderr, 'bazil: no completion for "tcsh": give one of bash, zsh, fish\n')
})

test('bash: the script loads, and completes commands, options, values and volume names', async () => {
  const s = await setup()
  try {
    const file = s.script('bash')
    execFileSync('bash', ['-n', file])
    // What the completion offers with the cursor at the end of `words` (the last may be '').
    const complete = (...words: string[]): string[] => {
      const out = execFileSync('bash', ['-c', `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bazil; printf '%s\\n' "\${COMPREPLY[@]}"`, file, 'bazil', ...words], { env: s.env, encoding: 'utf8' })
      return out.split('\n').filter((l) => l !== '')
    }
    assert.deepEqual(complete('vol'), ['volume'])
    assert.deepEqual(complete('volume', 's'), ['snapshot', 'state', 'storage', 'sync'])
    assert.deepEqual(complete('volume', 'snapshot', 'c'), ['create'])
    assert.deepEqual(complete('volume', 'ls', '').sort(), ['notes', 'photos'])
    assert.deepEqual(complete('volume', 'ls', 'ph'), ['photos'])
    // `volume writers` is a command and has one under it.
    assert.deepEqual(complete('volume', 'writers', '').sort(), ['notes', 'photos', 'remove'])
    assert.deepEqual(complete('volume', 'ls', '--sn'), ['--snapshot'])
    assert.ok(complete('volume', 'ls', '-').includes('-l'))
    assert.ok(complete('volume', 'ls', '-').includes('--data-dir'))
    assert.deepEqual(complete('volume', 'resolve', '--keep', ''), ['mine', 'theirs', 'both'])
    // bash splits --keep=t into --keep, =, t.
    assert.deepEqual(complete('volume', 'resolve', '--keep', '=', 't'), ['theirs'])
    assert.deepEqual(complete('peer', 'storage', ''), ['allow', 'deny'])
    // An option with its value before the command's words does not count as an argument.
    assert.deepEqual(complete('--data-dir', '=', path.join(s.dir, 'data'), 'volume', 'cat', 'n'), ['notes'])
    assert.deepEqual(complete('--data-dir', path.join(s.dir, 'nothing'), 'volume', 'cat', ''), [])
    assert.deepEqual(complete('volume', 'mount', 'photos', path.join(s.dir, 'bi')), [path.join(s.dir, 'bin')])
    // Paths in the volume named before them, escaped as typed.
    assert.deepEqual(complete('volume', 'ls', 'photos', ''), ['/2024/'])
    assert.deepEqual(complete('volume', 'cat', 'photos', '/2024/').sort(), ['/2024/beach\\ day.jpg', '/2024/trips/'])
    assert.deepEqual(complete('volume', 'mv', '-f', 'photos', '/2024/trips', '/2024/b'), ['/2024/beach\\ day.jpg'])
    assert.deepEqual(complete('volume', 'state', 'save', 'photos', path.join(s.dir, 'sr')), [path.join(s.dir, 'src')])
  } finally {
    s.cleanup()
  }
})

test('zsh: the script loads, and its completer offers commands, options and volume names', { skip: missing('zsh') }, async () => {
  const s = await setup()
  try {
    const file = s.script('zsh')
    execFileSync('zsh', ['-n', file])
    // The completion system's builtins replaced by ones printing what they are offered.
    const harness = `
      compdef() { :; }
      compset() { :; }
      compadd() { [[ $1 == -S ]] && shift 2; if [[ $1 == -a ]]; then print -l -- \${(P)2}; else [[ $1 == -- ]] && shift; print -l -- "$@"; fi }
      _describe() { local arr=\${@[-1]}; print -l -- \${(P)arr%%:*}; }
      _files() { print -- "<files $*>"; }
      source "$1"; shift
      words=("$@"); CURRENT=$#
      _bazil`
    const complete = (...words: string[]): string[] =>
      execFileSync('zsh', ['-f', '-c', harness, 'zsh', file, 'bazil', ...words], { env: s.env, encoding: 'utf8' }).split('\n').filter((l) => l !== '')
    assert.ok(complete('vol').includes('volume'))
    assert.ok(complete('volume', 'sn').includes('snapshot'))
    assert.deepEqual(complete('volume', 'ls', '').sort(), ['notes', 'photos'])
    assert.deepEqual(complete('volume', 'writers', '').sort(), ['notes', 'photos', 'remove'])
    assert.ok(complete('volume', 'ls', '--sn').includes('--snapshot'))
    assert.deepEqual(complete('volume', 'resolve', '--keep=t'), ['mine', 'theirs', 'both'])
    assert.deepEqual(complete('volume', 'mount', 'photos', ''), ['<files -/>'])
    assert.deepEqual(complete('volume', 'cat', 'photos', '/2024/'), ['/2024/trips/', '/2024/beach day.jpg'])
  } finally {
    s.cleanup()
  }
})

test('fish: the script loads, and completes commands, options and volume names', { skip: missing('fish') }, async () => {
  const s = await setup()
  try {
    const file = s.script('fish')
    execFileSync('fish', ['-n', file])
    const complete = (line: string): string[] =>
      execFileSync('fish', ['--no-config', '-c', `source $argv[1]; complete -C $argv[2]`, file, line], { env: s.env, encoding: 'utf8' })
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t')[0])
    assert.deepEqual(complete('bazil vol'), ['volume'])
    assert.deepEqual(complete('bazil volume s'), ['snapshot', 'state', 'storage', 'sync'])
    assert.deepEqual(complete('bazil volume ls ').sort(), ['notes', 'photos'])
    assert.deepEqual(complete('bazil volume ls --sn'), ['--snapshot'])
    assert.deepEqual(complete('bazil volume resolve --keep ').sort(), ['both', 'mine', 'theirs'])
    assert.deepEqual(complete('bazil peer storage ').sort(), ['allow', 'deny'])
    assert.deepEqual(complete('bazil volume ls photos --sn'), ['--snapshot'])
    assert.deepEqual(complete('bazil volume cat photos /2024/').sort(), ['/2024/beach day.jpg', '/2024/trips/'])
  } finally {
    s.cleanup()
  }
})

test('bazil man: roff that renders without warnings and holds every command', { skip: missing('groff') }, async () => {
  const roff = execFileSync(process.execPath, [bazilBin, 'man'], { encoding: 'utf8' })
  assert.match(roff, /^\.\\" bazil\(1\)/)
  assert.match(roff, /^\.TH BAZIL 1 /m)
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww'], { input: roff, encoding: 'utf8' })
  assert.equal(r.status, 0)
  assert.equal(r.stderr, '', 'groff warns')
  const text = r.stdout.replace(/.\x08/g, '') // bold and underline overstrikes
  for (const c of (await loadCli()).docs().commands) assert.match(text, new RegExp(`^ +bazil ${c.path.join(' ')}\\b`, 'm'), c.path.join(' '))
  for (const h of ['NAME', 'SYNOPSIS', 'GLOBAL OPTIONS', 'COMMANDS', 'EXAMPLES', 'EXIT STATUS']) assert.match(text, new RegExp(`^${h}$`, 'm'))
  assert.doesNotMatch(text, /#0/)
})
