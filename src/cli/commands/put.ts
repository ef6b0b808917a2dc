/** `zcq put <module#fn> [args...]`: add a job; prints its id (or, with --wait, its result). */
import { Command, Option } from 'commander';
import { globals, intOption, jobArgs, openSpool, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('put <fn> [args...]')
    .description("add a job running module#export with string args (or --args-json for typed args); prints its id")
    .option('--args-json <array>', "the job's arguments as a JSON array, instead of string args")
    .option('-q, --queue <name>', 'queue name', 'default')
    .option('-r, --retries <n>', 'further attempts after a failure', intOption('--retries', 0, 10_000), 0)
    .option('--backoff <duration>', 'fixed delay between retries (default: exponential with jitter)')
    .option('-t, --timeout <duration>', 'time limit of one attempt, e.g. 30s')
    .option('--at <time>', 'do not start before this time (ISO 8601, e.g. 2026-12-01T09:00:00+01:00)')
    .option('--in <duration>', 'do not start before this long from now, e.g. 90s, 15m, 2h')
    .option('--deadline <time|duration>', 'fail with "deadline passed" if not started by then')
    .addOption(new Option('--on-interrupt <policy>', 'when its worker dies: retry or fail').choices(['retry', 'fail']).default('retry'))
    .option('--max-interrupts <n>', 'interruptions before it fails as a poison job', intOption('--max-interrupts', 0, 10_000), 9)
    .option('-w, --wait', 'block until the job finishes; print its result; exit 1 if it failed')
    .action(async (fn: string, args: string[], o: Record<string, string | number | boolean | undefined>, cmd: Command) => {
      const spool = await openSpool(cmd);
      const job = await spool.put(fn, jobArgs(args, o.argsJson), {
        queue: o.queue as string, retries: o.retries as number, backoff: o.backoff as string | undefined,
        timeout: o.timeout as string | undefined, at: o.at as string | undefined, in: o.in as string | undefined,
        deadline: o.deadline as string | undefined, onInterrupt: o.onInterrupt as 'retry' | 'fail', maxInterrupts: o.maxInterrupts as number,
      });
      if (!o.wait) {
        if (globals(cmd).json) printJson({ id: job.id, notBefore: job.notBefore });
        else process.stdout.write(job.id + '\n');
        return;
      }
      const [rec] = await spool.wait([job.id]);
      if (globals(cmd).json) printJson({ id: job.id, state: rec!.state, result: rec!.job?.result, failure: rec!.job?.failure });
      else if (rec!.state === 'done') process.stdout.write(JSON.stringify(rec!.job?.result) + '\n');
      else process.stderr.write(`zcq: job ${job.id} failed: ${rec!.job?.failure?.name}: ${rec!.job?.failure?.message}\n`);
      if (rec!.state !== 'done') process.exitCode = 1;
    });
}
