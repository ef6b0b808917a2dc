/** `zcq cancel <id...>`: pending → failed ("cancelled"); running → its AbortSignal fires. */
import type { Command } from 'commander';
import { globals, openSpool, printJson, readIds, resolveRefs, row, warn } from '../common.js';

export function register(program: Command): void {
  program.command('cancel <ids...>')
    .description('cancel jobs: a pending or deferred job goes to failed/ (reason "cancelled"); a running one is signalled')
    .action(async (ids: string[], _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      // Ids are resolved first: an ambiguous prefix is a usage error (exit 2) and nothing is cancelled.
      const res = await spool.cancel(await resolveRefs(spool, await readIds(ids)));
      if (globals(cmd).json) printJson(res);
      else for (const r of res) {
        if (r.result === 'not found') warn(r.why ?? `job ${r.id}: not found`);
        else row(r.id, `${r.result}${r.result === 'finished' ? ` (already ${r.was})` : ''}`);
      }
      if (res.some((r) => r.result === 'not found')) process.exitCode = 1;
    });
}
