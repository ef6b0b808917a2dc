/**
 * `zcq`: the command line. Parses arguments with commander, runs one command (each in its own file under
 * commands/, loaded only when used so that `zcq put` starts fast), and maps errors to exit codes:
 * 0 success, 1 a job failed or was not found, 2 a usage error. Errors print as one line on stderr.
 */
import { Command, CommanderError } from 'commander';
import { ZcqError } from '../errors.js';
import { printable } from '../text.js';
import { brokenFolders } from '../spool/queues.js';


/**
 * Each command's module, loaded on demand; a module may register several commands (hold and release).
 * Literal import() calls (not a table of paths) so that a bundler can follow them.
 */
type CommandModule = { register: (p: Command) => void };
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  init: () => import('./commands/init.js'),
  put: () => import('./commands/put.js'),
  worker: () => import('./commands/worker.js'),
  ls: () => import('./commands/ls.js'),
  show: () => import('./commands/show.js'),
  retry: () => import('./commands/retry.js'),
  cancel: () => import('./commands/cancel.js'),
  wait: () => import('./commands/wait.js'),
  status: () => import('./commands/status.js'),
  recover: () => import('./commands/recover.js'),
  doctor: () => import('./commands/doctor.js'),
  cron: () => import('./commands/cron.js'),
  hold: () => import('./commands/hold.js'),
  release: () => import('./commands/hold.js'),
  pause: () => import('./commands/pause.js'),
  migrate: () => import('./commands/migrate.js'),
  resume: () => import('./commands/pause.js'),
  top: () => import('./commands/top.js'),
  completion: () => import('./commands/completion.js'),
  prune: () => import('./commands/prune.js'),
  retention: () => import('./commands/retention.js'),
  logs: () => import('./commands/logs.js'),
  config: () => import('./commands/config.js'),
  dashboard: () => import('./commands/dashboard.js'),
  metrics: () => import('./commands/metrics.js'),
  quota: () => import('./commands/quota.js'),
  rate: () => import('./commands/rate.js'),
  parallel: () => import('./commands/parallel.js'),
  serial: () => import('./commands/parallel.js'),
};

export async function main(argv: string[]): Promise<number> {
  quietOnClosedPipes();
  const program = new Command('zcq')
    .description('a durable job spool: jobs are JSON files; their folder is their state')
    .option('--spool <dir>', 'spool folder (default: $ZCQ_SPOOL, else ./spool)')
    .option('--json', 'machine-readable output (one JSON value; logs as JSON lines)')
    .option('--relaxed', 'skip fsync (faster; a power cut may lose the latest changes)')
    .version('0.1.0')
    .exitOverride()
    // Subcommands inherit these (commander copies them when a command is added).
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ outputError: (str, write) => write(printableLines(str.replace(/^error: /, 'zcq: '))) })
    .showHelpAfterError('(run zcq --help for usage)');

  // Register only the command being run (plus all of them for help, and for `completion`, which lists
  // them all): loading is lazy.
  const first = argv.find((a, i) => i >= 2 && !a.startsWith('-') && !isOptionValue(argv, i));
  const names = first && Object.hasOwn(COMMANDS, first) && first !== 'completion' ? [first] : Object.keys(COMMANDS);
  const loaded = new Set<CommandModule>();
  for (const name of names) {
    const mod = await COMMANDS[name]!();
    if (loaded.has(mod)) continue;
    loaded.add(mod);
    mod.register(program);
  }

  try {
    await program.parseAsync(argv);
    if (first !== 'worker') warnBrokenFolders(); // a worker logs them itself, as events
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // 'commander.help' with exit code 1: help printed to stderr because no (sub)command was given.
      return 2;
    }
    if (err instanceof ZcqError) {
      process.stderr.write(`zcq: ${printable(err.message)}\n`);
      return err.exitCode;
    }
    const e = err as NodeJS.ErrnoException | undefined;
    if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
      // A system call refused (EACCES, EROFS, ENOSPC...): its message names the call and the path.
      process.stderr.write(`zcq: ${printable(e.message)}\n`);
      return 1;
    }
    process.stderr.write(`zcq: internal error: ${printableLines(e?.stack ?? String(err))}\n`);
    return 1;
  }
}

/** Folders a reader skipped as broken alone (spool/queues.ts brokenAlone): its output left them out; one line each. */
function warnBrokenFolders(): void {
  for (const [path, error] of brokenFolders()) {
    process.stderr.write(`zcq: warning: ${printable(path)}: cannot be read (${error}) while its parent lists; left out (on GlusterFS: a folder in gfid split-brain, docs/nfs.md)\n`);
  }
}

/** Whether argv[i] is the value of a preceding global option that takes one (`--spool DIR`). */
function isOptionValue(argv: string[], i: number): boolean {
  return i > 2 && argv[i - 1] === '--spool';
}

/** Text of several lines with every line made printable (the newlines between them kept). */
function printableLines(s: string): string {
  return s.split('\n').map(printable).join('\n');
}

/**
 * `zcq ls | head -1`: once the reader of stdout or stderr is gone, writing gives EPIPE, which Node reports
 * as an 'error' event that ends the process with a stack trace. Nobody reads the rest of the output, so it
 * is dropped instead: the command runs to its end (a retry or cancel half done would be worse than output
 * nobody reads) and exits with its own status. A worker keeps running jobs with its log lines dropped.
 */
function quietOnClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      // Later writes would each fail the same way: make them no-ops (the callback still runs).
      stream.write = ((...args: unknown[]) => {
        const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
        if (cb) process.nextTick(cb);
        return true;
      }) as typeof stream.write;
    });
  }
}
