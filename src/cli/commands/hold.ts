/** `zcq hold <id...>` / `zcq release <id...>`: set pending or deferred jobs aside in hold/, and put them back. */
import type { Command } from 'commander';
import { globals, openSpool, printJson, readIds, resolveRefs, row, warn } from '../common.js';
import type { HoldResult } from '../../client/spool.js';

export function register(program: Command): void {
  // Ids are resolved first, as retry and cancel do: a malformed id or an ambiguous prefix is a usage error
  // (exit 2) and nothing is moved.
  program.command('hold <ids...>')
    .description('set pending or deferred jobs aside in hold/: no worker takes them until released (same as mv to hold/QUEUE/); - reads ids from stdin')
    .action(async (ids: string[], _o, cmd: Command) => { const spool = await openSpool(cmd); report(cmd, await spool.hold(await resolveRefs(spool, await readIds(ids)))); });
  program.command('release <ids...>')
    .description('put held jobs back: to pending/, or to deferred/ while their due time is ahead; - reads ids from stdin')
    .action(async (ids: string[], _o, cmd: Command) => { const spool = await openSpool(cmd); report(cmd, await spool.release(await resolveRefs(spool, await readIds(ids)))); });
}

function report(cmd: Command, res: HoldResult[]): void {
  if (globals(cmd).json) printJson(res);
  else for (const r of res) {
    if (r.ok) row(r.id, r.to, `(was ${r.was})`);
    else warn(r.why ?? `job ${r.id}: not moved`);
  }
  if (res.some((r) => !r.ok)) process.exitCode = 1;
}
