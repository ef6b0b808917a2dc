/**
 * `zcq completion bash|zsh`: print a shell completion script, made from commander's own command list
 * (every command, subcommand and option as registered, so it cannot drift from the CLI), plus a few
 * argument lists commander does not know: the states of `zcq ls`, the shells of `zcq completion`.
 *
 *   bash:  source <(zcq completion bash)       or save it to ~/.local/share/bash-completion/completions/zcq
 *   zsh:   source <(zcq completion zsh)        (uses zsh's bashcompinit; or save it as _zcq on $fpath)
 *
 * Completes command names, option names, option values with choices (--runtime), folders for options
 * whose value is <dir> (--spool, --root), and skips the value of any option that takes one.
 */
import { Argument, type Command, type Option } from 'commander';
import { STATES } from '../../spool/layout.js';

const SHELLS = ['bash', 'zsh'] as const;

export function register(program: Command): void {
  program.command('completion')
    .description('print a shell completion script: source <(zcq completion bash)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(SHELLS))
    .action((shell: (typeof SHELLS)[number], _o, cmd: Command) => {
      const root = cmd.parent!;
      process.stdout.write(shell === 'bash' ? bashScript(root) : zshScript(root));
    });
}

/** Positional words commander has no list for, by command path. */
const ARGS: Record<string, readonly string[]> = { ls: STATES, completion: SHELLS };

interface Node { path: string; cmd: Command }

function walk(cmd: Command, path = ''): Node[] {
  const out: Node[] = [{ path, cmd }];
  for (const c of cmd.commands) {
    if ((c as unknown as { _hidden?: boolean })._hidden) continue;
    for (const name of [c.name(), ...c.aliases()]) out.push(...walk(c, path ? `${path} ${name}` : name));
  }
  return out;
}

function flagsOf(o: Option): string[] {
  return [o.short, o.long].filter((f): f is string => typeof f === 'string');
}

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/** Words are command names, option flags and choices: letters, digits and -_.@ only, so no quoting is needed; anything else is dropped. */
function words(list: readonly string[]): string {
  return list.filter((w) => /^[A-Za-z0-9_.@=-]+$/.test(w)).join(' ');
}

function bashBody(root: Command): string {
  const nodes = walk(root);
  const globals = root.options;
  const cases = (f: (n: Node) => string) => nodes.map((n) => { const w = f(n); return w ? `    ${JSON.stringify(n.path)}) echo ${JSON.stringify(w)};;\n` : ''; }).join('');
  const allOpts = nodes.flatMap((n) => n.cmd.options.map((o) => ({ path: n.path, o })));
  const helpFlags = ['--help', '-h'];
  const valueCases = allOpts.filter(({ o }) => takesValue(o) && (o.argChoices || /<dir>/.test(o.flags)))
    .map(({ path, o }) => `    ${flagsOf(o).map((f) => JSON.stringify(`${path}|${f}`)).join('|')}) ${o.argChoices ? `COMPREPLY=($(compgen -W ${JSON.stringify(words(o.argChoices))} -- "$cur"))` : 'COMPREPLY=($(compgen -d -- "$cur"))'}; return;;\n`)
    .join('');
  const globalValued = words(globals.filter(takesValue).flatMap(flagsOf));
  const globalDirs = globals.filter((o) => takesValue(o) && /<dir>/.test(o.flags)).flatMap(flagsOf);
  return `# zcq ${root.version() ?? ''} completion, generated from the CLI's own command list by 'zcq completion'.
_zcq_cmds() {
  case "$1" in
${cases((n) => words(n.cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden).flatMap((c) => [c.name(), ...c.aliases()])))}  esac
}
_zcq_opts() {
  case "$1" in
${cases((n) => words([...n.cmd.options.flatMap(flagsOf), ...(n.path ? globals.filter((o) => o.long !== '--version').flatMap(flagsOf) : []), ...helpFlags]))}  esac
}
_zcq_valued() {
  case "$1" in
${cases((n) => words(n.cmd.options.filter(takesValue).flatMap(flagsOf)))}  esac
}
_zcq_args() {
  case "$1" in
${Object.entries(ARGS).map(([p, w]) => `    ${JSON.stringify(p)}) echo ${JSON.stringify(words(w))};;\n`).join('')}  esac
}
_zcq() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" i w
  ((COMP_CWORD > 0)) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command path so far (zcq cron add ...), skipping options and the values of those that take one.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in
      -*=*) ;;
      -*) case " ${globalValued} $(_zcq_valued "$path") " in *" $w "*) ((i++));; esac ;;
      *) case " $(_zcq_cmds "$path") " in *" $w "*) path="\${path:+$path }$w";; esac ;;
    esac
  done
  case "$prev" in
${globalDirs.map((f) => `    ${f}) COMPREPLY=($(compgen -d -- "$cur")); return;;\n`).join('')}  esac
  case "$path|$prev" in
${valueCases}  esac
  case " $(_zcq_valued "$path") " in *" $prev "*) COMPREPLY=(); return;; esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_zcq_opts "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_zcq_cmds "$path") $(_zcq_args "$path")" -- "$cur"))
  fi
}
complete -F _zcq zcq
`;
}

export function bashScript(root: Command): string {
  return `# bash completion for zcq: source <(zcq completion bash)\n${bashBody(root)}`;
}

export function zshScript(root: Command): string {
  return `#compdef zcq
# zsh completion for zcq: source <(zcq completion zsh) — through zsh's bash completion layer (bashcompinit).
autoload -U +X compinit && { (( \${+_comps} )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${bashBody(root)}`;
}
