/** `zcq cancel <id...>`: pending → failed ("cancelled"); running → its AbortSignal fires. */
import type { Command } from 'commander';
import { globals, openSpool, printJson, readIds } from '../common.js';

export function register(program: Command): void {
  program.command('cancel <ids...>')
    .description('cancel jobs: a pending or deferred job goes to failed/ (reason "cancelled"); a running one is signalled')
    .action(async (ids: string[], _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const res = await spool.cancel(await readIds(ids));
      if (globals(cmd).json) printJson(res);
      else for (const r of res) {
        if (r.result === 'not found') process.stderr.write(`zcq: ${r.why}\n`);
        else process.stdout.write(`${r.id}\t${r.result}${r.result === 'finished' ? ` (already ${r.was})` : ''}\n`);
      }
      if (res.some((r) => r.result === 'not found')) process.exitCode = 1;
    });
}
