// zcq completion bash|zsh: the script is made from commander's own command list; bash runs it for real
// (COMP_WORDS set as bash's completion sets them), so a command or option added to the CLI completes
// without anyone editing the script.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, zcq } from '../helpers.js';

afterAll(cleanupTemp);

const bashScript = zcq(null, ['completion', 'bash']);

/** What bash completes for the words of a command line (the last word is the one being typed). */
function complete(script: string, words: string[], cwd?: string): string[] {
  const file = join(tempDir(), 'zcq.bash');
  writeFileSync(file, script);
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['--norc', '-c', `source "$1"; COMP_WORDS=(${quoted}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _zcq; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', file], { encoding: 'utf8', cwd });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('zcq completion bash', () => {
  it('prints a script bash accepts, registering _zcq for zcq', () => {
    expect(bashScript.code).toBe(0);
    expect(spawnSync('bash', ['-n'], { input: bashScript.stdout }).status).toBe(0);
    expect(bashScript.stdout).toMatch(/^complete -F _zcq zcq$/m);
  });

  it('completes every command zcq --help lists, and subcommands', () => {
    const help = zcq(null, ['--help']).stdout;
    const listed = [...help.split('Commands:')[1]!.matchAll(/^ {2}([a-z]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(listed).toEqual(expect.arrayContaining(['ls', 'status', 'wait', 'top', 'completion', 'worker']));
    expect(complete(bashScript.stdout, ['zcq', '']).sort()).toEqual(listed.sort());
    expect(complete(bashScript.stdout, ['zcq', 'st'])).toEqual(['status']);
    expect(complete(bashScript.stdout, ['zcq', 'cron', ''])).toEqual(['add', 'ls', 'rm', 'pause', 'resume']);
    // Global options and their values are skipped when finding the command.
    expect(complete(bashScript.stdout, ['zcq', '--spool', '/tmp', '--json', 'cron', 'a'])).toEqual(['add']);
  });

  it('options of the command being typed, global ones included; choices and folders as values', () => {
    const ls = complete(bashScript.stdout, ['zcq', 'ls', '--']);
    expect(ls).toEqual(expect.arrayContaining(['--all', '--queue', '--fn', '--limit', '--spool', '--json', '--relaxed', '--help']));
    expect(ls).not.toContain('--version');
    expect(complete(bashScript.stdout, ['zcq', 'ls', ''])).toEqual(['pending', 'deferred', 'claimed', 'done', 'failed', 'hold', 'waiting']);
    expect(complete(bashScript.stdout, ['zcq', 'worker', '--runtime', ''])).toEqual(['threads', 'processes', 'inline']);
    expect(complete(bashScript.stdout, ['zcq', 'worker', '--conc'])).toEqual(['--concurrency']);
    expect(complete(bashScript.stdout, ['zcq', 'wait', '--timeout', ''])).toEqual([]);
    expect(complete(bashScript.stdout, ['zcq', 'completion', ''])).toEqual(['bash', 'zsh']);
    const dir = tempDir();
    mkdirSync(join(dir, 'spool-a'));
    mkdirSync(join(dir, 'spool-b'));
    writeFileSync(join(dir, 'spool-file'), '');
    expect(complete(bashScript.stdout, ['zcq', '--spool', 'spool-'], dir)).toEqual(['spool-a', 'spool-b']);
    expect(complete(bashScript.stdout, ['zcq', 'worker', '--root', 'sp'], dir)).toEqual(['spool-a', 'spool-b']);
  });

  it('zsh: the same completion through zsh\'s bashcompinit; other shells are a usage error', () => {
    const z = zcq(null, ['completion', 'zsh']);
    expect(z.code).toBe(0);
    expect(z.stdout.split('\n')[0]).toBe('#compdef zcq');
    expect(z.stdout).toContain('autoload -U +X bashcompinit && bashcompinit');
    // The body is the bash script's, which bash runs above.
    expect(z.stdout).toContain(bashScript.stdout.split('\n').slice(1).join('\n'));
    const zsh = spawnSync('sh', ['-c', 'command -v zsh'], { encoding: 'utf8' }).stdout.trim();
    if (zsh) {
      const file = join(tempDir(), '_zcq');
      writeFileSync(file, z.stdout);
      // zsh's compgen -F runs the function under `emulate -L sh` (bashcompinit): so does this call.
      const r = spawnSync(zsh, ['-f', '-c', `source "$1"; print -r -- "\${_comps[zcq]}"; () { emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=(zcq ls ''); COMP_CWORD=2; _zcq; printf '%s\\n' "\${COMPREPLY[@]}"; }`, 'zsh', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      const [registered, ...words] = r.stdout.trim().split('\n');
      expect(registered).toMatch(/_bash_complete -F _zcq/);
      expect(words).toEqual(['pending', 'deferred', 'claimed', 'done', 'failed', 'hold', 'waiting']);
    }
    const fish = zcq(null, ['completion', 'fish']);
    expect(fish.code).toBe(2);
    expect(fish.stderr).toMatch(/bash, zsh/);
  });
});
