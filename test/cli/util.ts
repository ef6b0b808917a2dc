// Helpers for the operator-tool tests: the real `zcq` on a pseudo-terminal (script(1) gives one: node-pty
// is not a dependency), and workers serving this folder's job modules.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN } from '../helpers.js';

export const OPS = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The shell command line that runs `zcq ARGS` on the pty, `cols` wide. */
export function ptyCommand(args: string[], cols = 120): string {
  return `stty cols ${cols} rows 40 2>/dev/null; exec ${sh(process.execPath)} ${sh(BIN)} ${args.map(sh).join(' ')}`;
}

/** `zcq ARGS` with stdout and stderr on a terminal; output as the terminal got it (CR LF turned into LF). */
export function onPty(args: string[], opts: { cols?: number; env?: NodeJS.ProcessEnv; timeout?: number } = {}): { code: number | null; out: string } {
  const r = spawnSync('script', ['-qec', ptyCommand(args, opts.cols), '/dev/null'], {
    cwd: OPS, encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: opts.timeout ?? 60_000, input: '',
  });
  return { code: r.status, out: r.stdout.replace(/\r\n/g, '\n') };
}

/** `zcq ARGS` on a pty, running: write keys to it with `child.stdin`; `output()` is what it printed so far. */
export function spawnOnPty(args: string[], cols = 100): ChildProcess & { output: () => string; exited: Promise<number | null> } {
  const child = spawn('script', ['-qec', ptyCommand(args, cols), '/dev/null'], { cwd: OPS, stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcess & { output: () => string; exited: Promise<number | null> };
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  child.output = () => out;
  child.exited = new Promise((res) => child.on('close', (code) => res(code)));
  return child;
}

/** A `zcq worker` process serving test/cli/fixtures; `output()` is its log so far. */
export function worker(spool: string, args: string[] = []): ChildProcess & { output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--spool', spool, 'worker', '--root', OPS, '--poll', '100ms', ...args], {
    cwd: OPS, stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: () => string; exited: Promise<number | null> };
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  child.output = () => out;
  child.exited = new Promise((res) => child.on('exit', (code) => res(code)));
  return child;
}
