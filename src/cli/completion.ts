// `bazil completion bash|zsh|fish`: shell completion scripts generated from CliDocs (the
// commands' own definitions), so a new command or option completes without editing a script.
// Each script holds the same tables (the words after a command prefix, each command's options
// and arguments, what an option's value is) and a small walker over the words typed so far.
// Volume names come from `bazil volume list` (with the --data-dir typed, if any).
import { commandName, type CliDocs, type CommandDoc, type OptionDoc } from './command-docs.js'

export const SHELLS = ['bash', 'zsh', 'fish'] as const
export type Shell = (typeof SHELLS)[number]

/**
 * What completes a value: @volume (a volume's name), @path (a path in the volume the command's
 * @volume argument names, from `bazil volume ls`), @dir, @file (local ones), @none (nothing
 * to offer), or the words themselves, comma-separated.
 */
type Kind = string

/** Arguments by their name in the command classes, or by `COMMAND:name` where that differs. */
const ARG_KINDS: Record<string, Kind> = {
  volume: '@volume',
  target: '@path',
  file: '@path',
  from: '@path',
  to: '@path',
  src: '@dir',
  dest: '@dir',
  mountpoint: '@dir',
  args: '@file',
  action: 'allow,deny',
  'volume state save:file': '@file'
}

/** Option values (test/cli-shell.test.ts checks that listed words appear in the option's description). */
export const OPTION_KINDS: Record<string, Kind> = {
  '--data-dir': '@dir',
  '--state': '@file',
  '--log-level': 'debug,info,warn,error',
  '--keep': 'mine,theirs,both'
}

function argKind(c: CommandDoc, name: string): Kind {
  const kind = ARG_KINDS[`${commandName(c)}:${name}`] ?? ARG_KINDS[name] ?? '@none'
  // A path in a volume needs the volume's name among the arguments.
  return kind === '@path' && !c.args.some((a) => ARG_KINDS[a.name] === '@volume') ? '@none' : kind
}

/** The words that may follow each command prefix ('' for none): `volume` → cat, conflicts, .... */
function nextWords(docs: CliDocs): Map<string, Map<string, string>> {
  const next = new Map<string, Map<string, string>>()
  for (const c of docs.commands) {
    for (let i = 0; i < c.path.length; i++) {
      const prefix = c.path.slice(0, i).join(' ')
      const words = next.get(prefix) ?? new Map<string, string>()
      // A word that ends a command is described by it; a group word by what is under it.
      const desc = i === c.path.length - 1 ? c.description : (words.get(c.path[i]) ?? `${c.path.slice(0, i + 1).join(' ')} commands`)
      words.set(c.path[i], desc)
      next.set(prefix, words)
    }
  }
  return next
}

/** Every option that takes a value, with what completes it. */
function valueOptions(docs: CliDocs): Map<string, Kind> {
  const out = new Map<string, Kind>()
  for (const o of [...docs.globals, ...docs.commands.flatMap((c) => c.options)]) {
    if (o.value === undefined) continue
    for (const n of o.names) out.set(n, OPTION_KINDS[n] ?? '@none')
  }
  return out
}

/** The kinds of a command's arguments in order; a repeated last one ends with `+`. */
function argKinds(c: CommandDoc): string {
  return c.args.map((a) => argKind(c, a.name) + (a.repeated ? '+' : '')).join(' ')
}

const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** A shell `case` over `$1` with one branch per entry. */
function caseTable(fn: string, comment: string, entries: Array<[string, string]>, indent = '    '): string {
  return [`# ${comment}`, `${fn}() {`, '  case "$1" in', ...entries.map(([k, v]) => `${indent}${sq(k)}) printf '%s\\n' ${v} ;;`), '  esac', '}'].join('\n')
}

/** bash's and zsh's: what completes each command's arguments, and each option's value (empty: it takes none). */
function kindTables(docs: CliDocs): string {
  return [
    caseTable('_bazil_args', 'What completes each argument of the command "$1" (a trailing + repeats the last).', docs.commands.map((c) => [commandName(c), sq(argKinds(c))])),
    caseTable('_bazil_value', 'What completes the value of option $1 (nothing: it takes none).', [...valueOptions(docs)].map(([n, k]) => [n, sq(k)]))
  ].join('\n\n')
}

function header(docs: CliDocs, shell: Shell, load: string): string {
  return `# ${shell} completion for bazil ${docs.version}, generated from its commands by \`bazil completion ${shell}\`.\n# Load it with: ${load}`
}

function bash(docs: CliDocs): string {
  const next = nextWords(docs)
  const globals = docs.globals.flatMap((o) => o.names)
  return `${header(docs, 'bash', 'source <(bazil completion bash)   (or save it as ~/.local/share/bash-completion/completions/bazil)')}

${caseTable('_bazil_next', 'The words that may follow the command words "$1".', [...next].map(([p, w]) => [p, sq([...w.keys()].join(' '))]))}

${caseTable('_bazil_options', 'The options of the command "$1".', docs.commands.map((c) => [commandName(c), sq(c.options.flatMap((o) => o.names).join(' '))]))}

${kindTables(docs)}

# Sets COMPREPLY for a value of kind $1 matching $2, offering the words $3 too; $4: the volume.
_bazil_reply() {
  local kind=$1 cur=$2 extra=$3
  case $kind in
    @path)
      local dir=/ n q
      [[ $cur == /*/* ]] && dir=\${cur%/*}/
      COMPREPLY=()
      while IFS= read -r n; do
        printf -v q %q "$dir$n" # as typed: a space in a name escaped
        [[ $q == "$cur"* ]] && COMPREPLY+=("$q")
      done < <("\${COMP_WORDS[0]}" \${_bazil_datadir:+--data-dir="$_bazil_datadir"} volume ls "$4" "$dir" 2>/dev/null)
      [[ \${#COMPREPLY[@]} == 1 && \${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null ;;
    @dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
    @file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    @volume)
      local vols
      vols=$("\${COMP_WORDS[0]}" \${_bazil_datadir:+--data-dir="$_bazil_datadir"} volume list 2>/dev/null | cut -f1)
      mapfile -t COMPREPLY < <(compgen -W "$extra $vols" -- "$cur") ;;
    @none | '') mapfile -t COMPREPLY < <(compgen -W "$extra" -- "$cur") ;;
    *) mapfile -t COMPREPLY < <(compgen -W "$extra \${kind//,/ }" -- "$cur") ;;
  esac
}

_bazil() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local cmd='' w opt='' i nargs=0 _bazil_datadir=''
  local -a args=()
  # The words before the cursor: the command's words, then its arguments; options skipped
  # with their values (bash splits --opt=value into --opt, =, value).
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ $w == -* ]]; then
      local value=''
      if [[ \${COMP_WORDS[i+1]} == = ]]; then value=\${COMP_WORDS[i+2]}; i=$((i + 2))
      elif [[ -n $(_bazil_value "$w") ]]; then value=\${COMP_WORDS[i+1]}; i=$((i + 1)); fi
      [[ $w == --data-dir ]] && _bazil_datadir=$value
      continue
    fi
    if ((nargs == 0)) && [[ " $(_bazil_next "$cmd" | tr '\\n' ' ') " == *" $w "* ]]; then
      cmd=\${cmd:+$cmd }$w
    else
      args+=("$w")
      nargs=\${#args[@]}
    fi
  done
  if [[ $cur == = && $prev == -* ]]; then opt=$prev; cur=''
  elif [[ $prev == = && \${COMP_WORDS[COMP_CWORD-2]} == -* ]]; then opt=\${COMP_WORDS[COMP_CWORD-2]}
  elif [[ $prev == -* && -n $(_bazil_value "$prev") ]]; then opt=$prev; fi
  if [[ -n $opt ]]; then
    _bazil_reply "$(_bazil_value "$opt")" "$cur" ''
    return
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_bazil_options "$cmd" | tr '\\n' ' ') ${globals.join(' ')}" -- "$cur")
    return
  fi
  local subs='' kind='@none'
  ((nargs == 0)) && subs=$(_bazil_next "$cmd" | tr '\\n' ' ')
  local -a kinds
  read -ra kinds <<<"$(_bazil_args "$cmd")"
  if ((nargs < \${#kinds[@]})); then kind=\${kinds[nargs]}
  elif ((\${#kinds[@]} > 0)) && [[ \${kinds[-1]} == *+ ]]; then kind=\${kinds[-1]}; fi
  local vol='' j
  for j in "\${!kinds[@]}"; do [[ \${kinds[j]} == @volume ]] && vol=\${args[j]}; done
  _bazil_reply "\${kind%+}" "$cur" "$subs" "$vol"
}

complete -F _bazil bazil
`
}

function zsh(docs: CliDocs): string {
  const next = nextWords(docs)
  const described = (options: OptionDoc[]): string => options.flatMap((o) => o.names.map((n) => sq(`${n}:${o.description}`))).join(' ')
  return `#compdef bazil
${header(docs, 'zsh', 'source <(bazil completion zsh)   (or save it as _bazil in a directory of $fpath)')}

${caseTable('_bazil_next', 'The words that may follow the command words "$1", as word:description.', [...next].map(([p, w]) => [p, [...w].map(([word, d]) => sq(`${word}:${d}`)).join(' ')]))}

${caseTable('_bazil_options', 'The options of the command "$1", as option:description.', [...docs.commands.map((c): [string, string] => [commandName(c), described(c.options)]), ['', described(docs.globals)]])}

${kindTables(docs)}

# Offers a value of kind $1; $2: the volume.
_bazil_reply() {
  case $1 in
    @path)
      local dir=/
      [[ $cur == /*/* ]] && dir=\${cur%/*}/
      local -a names dirs files
      names=(\${(f)"$(\${words[1]} \${_bazil_datadir:+--data-dir=$_bazil_datadir} volume ls $2 $dir 2>/dev/null)"})
      dirs=(\${(M)names:#*/})
      files=(\${names:#*/})
      compadd -S '' -- \${dirs/#/$dir}
      compadd -- \${files/#/$dir} ;;
    @dir) _files -/ ;;
    @file) _files ;;
    @volume)
      local -a vols
      vols=(\${(f)"$(\${words[1]} \${_bazil_datadir:+--data-dir=$_bazil_datadir} volume list 2>/dev/null | cut -f1)"})
      compadd -a vols ;;
    @none | '') ;;
    *) compadd -- \${(s:,:)1} ;;
  esac
}

_bazil() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]}
  local cmd='' w opt='' _bazil_datadir=''
  local -i i nargs=0
  local -a subs kinds opts args
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    if [[ $w == -* ]]; then
      if [[ $w == --data-dir=* ]]; then _bazil_datadir=\${w#*=}
      elif [[ $w != *=* && -n $(_bazil_value $w) ]]; then
        [[ $w == --data-dir ]] && _bazil_datadir=\${words[i+1]}
        i=$((i + 1))
      fi
      continue
    fi
    if ((nargs == 0)) && (( \${\${(f)"$(_bazil_next "$cmd")"}[(I)$w:*]} )); then
      cmd=\${cmd:+$cmd }$w
    else
      args+=($w)
      nargs=\${#args}
    fi
  done
  if [[ $cur == -*=* ]]; then
    opt=\${cur%%=*}
    compset -P '*='
  elif [[ $prev == -* && $prev != *=* && -n $(_bazil_value $prev) ]]; then
    opt=$prev
  fi
  if [[ -n $opt ]]; then
    _bazil_reply "$(_bazil_value $opt)"
    return
  fi
  if [[ $cur == -* ]]; then
    opts=(\${(f)"$(_bazil_options "$cmd"; _bazil_options '')"})
    _describe -t options 'option' opts
    return
  fi
  ((nargs == 0)) && subs=(\${(f)"$(_bazil_next "$cmd")"})
  kinds=(\${=$(_bazil_args "$cmd")})
  local kind='@none'
  if ((nargs < \${#kinds})); then kind=\${kinds[nargs+1]}
  elif ((\${#kinds})) && [[ \${kinds[-1]} == *+ ]]; then kind=\${kinds[-1]}; fi
  ((\${#subs})) && _describe -t commands 'command' subs
  _bazil_reply "\${kind%+}" "\${args[\${kinds[(i)@volume]}]}"
}

if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _bazil "$@"
else
  compdef _bazil bazil
fi
`
}

/** fish's single quotes: \\' and \\\\ are their only escapes. */
function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

function fish(docs: CliDocs): string {
  const next = nextWords(docs)
  const lines: string[] = []
  for (const [prefix, words] of next) {
    for (const [w, d] of words) lines.push(`complete -c bazil -n ${fishQuote(`__bazil_at ${sq(prefix)}`)} -f -a ${fishQuote(w)} -d ${fishQuote(d)}`)
  }
  const optionLines = (cond: string, options: OptionDoc[]): string[] =>
    options.map((o) => {
      const names = o.names.map((n) => (n.startsWith('--') ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`)).join(' ')
      const kind = o.names.map((n) => OPTION_KINDS[n]).find((k) => k !== undefined)
      const value = o.value === undefined ? '' : kind === '@dir' ? ' -r -F' : kind === '@file' ? ' -r -F' : kind !== undefined ? ` -r -f -a ${fishQuote(kind.replace(/,/g, ' '))}` : ' -r -f'
      return `complete -c bazil -n ${fishQuote(cond)} ${names}${value} -d ${fishQuote(o.description)}`
    })
  for (const c of docs.commands) lines.push(...optionLines(`__bazil_in ${sq(commandName(c))}`, c.options))
  lines.push(...optionLines('true', docs.globals))
  for (const c of docs.commands) {
    const volumeAt = c.args.findIndex((a) => argKind(c, a.name) === '@volume')
    c.args.forEach((a, i) => {
      const kind = argKind(c, a.name)
      const cond = `__bazil_arg ${sq(commandName(c))} ${i}${a.repeated ? '+' : ''}`
      const what =
        kind === '@volume' ? "-f -a '(__bazil_volumes)'"
        : kind === '@path' ? `-f -a '(__bazil_paths ${volumeAt})'`
        : kind === '@dir' ? "-f -a '(__fish_complete_directories)'"
        : kind === '@file' ? '-F'
        : kind === '@none' ? '-f'
        : `-f -a ${fishQuote(kind.replace(/,/g, ' '))}`
      lines.push(`complete -c bazil -n ${fishQuote(cond)} ${what} -d ${fishQuote(a.name)}`)
    })
  }
  const values = [...valueOptions(docs).keys()]
  return `${header(docs, 'fish', 'bazil completion fish | source   (or save it as ~/.config/fish/completions/bazil.fish)')}

# The command words typed so far, the number of arguments after them, then those arguments.
function __bazil_walk
    set -l toks (commandline -opc)
    set -e toks[1]
    set -l cmd ''
    set -l nargs 0
    set -l args
    set -l skip 0
    for t in $toks
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $t
            case ${values.map((v) => fishQuote(v)).join(' ') || "''"}
                set skip 1
                continue
            case '-*'
                continue
        end
        if test $nargs -eq 0; and contains -- $t (__bazil_next $cmd)
            set cmd (string trim -- "$cmd $t")
        else
            set -a args $t
            set nargs (count $args)
        end
    end
    echo $cmd
    echo $nargs
    printf '%s\n' $args
end

function __bazil_next
    switch "$argv[1]"
${[...next].map(([p, w]) => `        case ${fishQuote(p)}\n            printf '%s\\n' ${[...w.keys()].map(fishQuote).join(' ')}`).join('\n')}
    end
end

# Whether the command words typed are exactly $argv[1] (and no argument yet for a group).
function __bazil_at
    set -l w (__bazil_walk)
    test "$w[1]" = "$argv[1]"; and test $w[2] -eq 0
end

# Whether the command words typed are $argv[1].
function __bazil_in
    set -l w (__bazil_walk)
    test "$w[1]" = "$argv[1]"
end

# Whether the cursor is at argument $argv[2] (0-based; N+ : N or later) of command $argv[1].
function __bazil_arg
    set -l w (__bazil_walk)
    test "$w[1]" = "$argv[1]"; or return 1
    set -l n (string replace '+' '' -- $argv[2])
    if string match -q '*+' -- $argv[2]
        test $w[2] -ge $n
    else
        test $w[2] -eq $n
    end
end

# bazil as typed, with the --data-dir typed if any.
function __bazil_cmd
    set -l toks (commandline -opc)
    echo $toks[1]
    for i in (seq (count $toks))
        switch $toks[$i]
            case '--data-dir=*'
                echo $toks[$i]
            case --data-dir
                echo --data-dir=$toks[(math $i + 1)]
        end
    end
end

function __bazil_volumes
    set -l bazil (__bazil_cmd)
    $bazil volume list 2>/dev/null | cut -f1
end

# The paths in the volume that is argument $argv[1] (0-based) under the directory typed.
function __bazil_paths
    set -l w (__bazil_walk)
    set -l vol $w[(math $argv[1] + 3)]
    set -l cur (commandline -ct)
    set -l dir /
    if string match -q '/*/*' -- $cur
        set dir (string replace -r '[^/]*$' '' -- $cur)
    end
    set -l bazil (__bazil_cmd)
    for n in ($bazil volume ls $vol $dir 2>/dev/null)
        echo $dir$n
    end
end

complete -c bazil -f
${lines.join('\n')}
`
}

export function completionScript(docs: CliDocs, shell: Shell): string {
  return shell === 'bash' ? bash(docs) : shell === 'zsh' ? zsh(docs) : fish(docs)
}
