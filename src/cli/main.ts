/**
 * `zcq`: the command line. Parses arguments with commander, runs one command (each in its own file under
 * commands/, loaded only when used so that `zcq put` starts fast), and maps errors to exit codes:
 * 0 success, 1 a job failed or was not found, 2 a usage error. Errors print as one line on stderr.
 */
import { Command, CommanderError } from 'commander';
import { ZcqError } from '../errors.js';
import { printable } from '../text.js';


/** Each command's module; a module may register several commands (hold and release). */
const COMMANDS: Record<string, string> = {
  init: './commands/init.js',
  put: './commands/put.js',
  worker: './commands/worker.js',
  ls: './commands/ls.js',
  show: './commands/show.js',
  retry: './commands/retry.js',
  cancel: './commands/cancel.js',
  wait: './commands/wait.js',
  status: './commands/status.js',
  recover: './commands/recover.js',
  doctor: './commands/doctor.js',
  cron: './commands/cron.js',
  hold: './commands/hold.js',
  release: './commands/hold.js',
  pause: './commands/pause.js',
  migrate: './commands/migrate.js',
  resume: './commands/pause.js',
  top: './commands/top.js',
  completion: './commands/completion.js',
  prune: './commands/prune.js',
  retention: './commands/retention.js',
  logs: './commands/logs.js',
  config: './commands/config.js',
  dashboard: './commands/dashboard.js',
  metrics: './commands/metrics.js',
  quota: './commands/quota.js',
  rate: './commands/rate.js',
  parallel: './commands/parallel.js',
  serial: './commands/parallel.js',
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
  const names = first && COMMANDS[first] && first !== 'completion' ? [first] : Object.keys(COMMANDS);
  for (const mod of new Set(names.map((n) => COMMANDS[n]!))) ((await import(mod)) as { register: (p: Command) => void }).register(program);

  try {
    await program.parseAsync(argv);
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
