/** `zcq wait <id...>`: block until finished; print results; exit 1 if any failed. */
import type { Command } from 'commander';
import { CLI_BOUNDS } from '../../defaults.js';
import { durationOpt, globals, line, openSpool, printJson, readIds, warn } from '../common.js';
import { jsonLine } from '../../text.js';

export function register(program: Command): void {
  program.command('wait <ids...>')
    .description('wait for jobs to finish; prints each result (JSON) one a line; exit 1 if any failed')
    .addOption(durationOpt('--timeout <duration>', 'give up after this long (exit 1)', '--timeout', CLI_BOUNDS.waitTimeoutMs, undefined, 'wait for ever'))
    .action(async (ids: string[], o: { timeout?: number }, cmd: Command) => {
      const spool = await openSpool(cmd);
      const recs = await spool.wait(await readIds(ids), { timeoutMs: o.timeout });
      for (const r of recs) {
        if (globals(cmd).json) printJson({ id: r.id, state: r.state, result: r.job?.result, failure: r.job?.failure, corrupt: r.corrupt });
        else if (r.state === 'done') line(jsonLine(r.job?.result ?? null));
        else warn(`job ${r.id} failed: ${r.job?.failure ? `${r.job.failure.name}: ${r.job.failure.message}` : r.corrupt}`);
      }
      if (recs.some((r) => r.state !== 'done')) process.exitCode = 1;
    });
}
