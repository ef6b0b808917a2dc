/** `zcq retry <id...>` / `zcq retry --all-failed`: put finished jobs back in pending/. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { globals, openSpool, printJson, readIds, resolveRefs, row, warn } from '../common.js';

export function register(program: Command): void {
  program.command('retry [ids...]')
    .description('move failed (or done) jobs back to pending with fresh attempts; - reads ids from stdin')
    .option('--all-failed', 'every job in failed/')
    .action(async (ids: string[], o: { allFailed?: boolean }, cmd: Command) => {
      if (o.allFailed && ids.length > 0) throw new UsageError('give ids or --all-failed, not both');
      const spool = await openSpool(cmd);
      // Ids are resolved first: an ambiguous prefix is a usage error (exit 2) and nothing is retried.
      const res = o.allFailed ? await spool.retryAllFailed() : await spool.retry(await resolveRefs(spool, await readIds(ids)));
      if (globals(cmd).json) printJson(res);
      else for (const r of res) {
        if (r.ok) row(r.id, 'pending', `(was ${r.from})`);
        else warn(r.why ?? `job ${r.id}: not retried`);
      }
      if (res.some((r) => !r.ok)) process.exitCode = 1;
    });
}
