/** `zcq retry <id...>` / `zcq retry --all-failed`: put finished jobs back in pending/. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { globals, openSpool, printJson, readIds } from '../common.js';

export function register(program: Command): void {
  program.command('retry [ids...]')
    .description('move failed (or done) jobs back to pending with fresh attempts; - reads ids from stdin')
    .option('--all-failed', 'every job in failed/')
    .action(async (ids: string[], o: { allFailed?: boolean }, cmd: Command) => {
      if (o.allFailed && ids.length > 0) throw new UsageError('give ids or --all-failed, not both');
      const spool = await openSpool(cmd);
      const res = o.allFailed ? await spool.retryAllFailed() : await spool.retry(await readIds(ids));
      if (globals(cmd).json) printJson(res);
      else for (const r of res) {
        if (r.ok) process.stdout.write(`${r.id}\tpending\t(was ${r.from})\n`);
        else process.stderr.write(`zcq: ${r.why}\n`);
      }
      if (res.some((r) => !r.ok)) process.exitCode = 1;
    });
}
