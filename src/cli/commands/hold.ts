/** `zcq hold <id...>` / `zcq release <id...>`: set pending or deferred jobs aside in hold/, and put them back. */
import type { Command } from 'commander';
import { globals, openSpool, printJson, readIds } from '../common.js';
import type { HoldResult } from '../../client/spool.js';

export function register(program: Command): void {
  program.command('hold <ids...>')
    .description('set pending or deferred jobs aside in hold/: no worker takes them until released (same as mv to hold/QUEUE/); - reads ids from stdin')
    .action(async (ids: string[], _o, cmd: Command) => report(cmd, await (await openSpool(cmd)).hold(await readIds(ids))));
  program.command('release <ids...>')
    .description('put held jobs back: to pending/, or to deferred/ while their due time is ahead; - reads ids from stdin')
    .action(async (ids: string[], _o, cmd: Command) => report(cmd, await (await openSpool(cmd)).release(await readIds(ids))));
}

function report(cmd: Command, res: HoldResult[]): void {
  if (globals(cmd).json) printJson(res);
  else for (const r of res) {
    if (r.ok) process.stdout.write(`${r.id}\t${r.to}\t(was ${r.was})\n`);
    else process.stderr.write(`zcq: ${r.why}\n`);
  }
  if (res.some((r) => !r.ok)) process.exitCode = 1;
}
