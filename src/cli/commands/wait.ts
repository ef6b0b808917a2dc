/** `zcq wait <id...>`: block until finished; print results; exit 1 if any failed. */
import type { Command } from 'commander';
import { durationOption, globals, openSpool, printJson, readIds } from '../common.js';

export function register(program: Command): void {
  program.command('wait <ids...>')
    .description('wait for jobs to finish; prints each result (JSON) one a line; exit 1 if any failed')
    .option('--timeout <duration>', 'give up after this long (exit 1)', durationOption('--timeout'))
    .action(async (ids: string[], o: { timeout?: number }, cmd: Command) => {
      const spool = await openSpool(cmd);
      const recs = await spool.wait(await readIds(ids), { timeoutMs: o.timeout });
      for (const r of recs) {
        if (globals(cmd).json) printJson({ id: r.id, state: r.state, result: r.job?.result, failure: r.job?.failure, corrupt: r.corrupt });
        else if (r.state === 'done') process.stdout.write(JSON.stringify(r.job?.result ?? null) + '\n');
        else process.stderr.write(`zcq: job ${r.id} failed: ${r.job?.failure ? `${r.job.failure.name}: ${r.job.failure.message}` : r.corrupt}\n`);
      }
      if (recs.some((r) => r.state !== 'done')) process.exitCode = 1;
    });
}
