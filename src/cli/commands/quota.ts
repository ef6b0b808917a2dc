/**
 * `zcq quota`: named limits across every machine (spool/quota.ts).
 *   zcq quota set NAME N    at most N jobs put with --quota NAME run at once, anywhere (0..10000); live
 *   zcq quota ls            every quota: its limit, slots in use, and the runs holding them
 *   zcq quota rm NAME       remove the limit: NAME's jobs are no longer limited
 */
import type { Command } from 'commander';
import { checkQuotaName, parseLimit, type QuotaUse } from '../../spool/quota.js';
import { globals, openSpool, printJson, row, warn } from '../common.js';

function show(q: QuotaUse): void {
  row(q.name, q.limit === null ? 'no limit' : `limit=${q.limit}`, `used=${q.used}`);
}

export function register(program: Command): void {
  const c = program.command('quota')
    .description('named limits across every machine: at most N jobs put with --quota NAME run at once');

  c.command('set <name> <n>')
    .description('at most N (0..10000) jobs holding quota NAME run at once, on every machine; running workers apply it within a poll')
    .action(async (name: string, n: string, _o, cmd: Command) => {
      checkQuotaName(name);
      parseLimit(n);
      const spool = await openSpool(cmd);
      const q = await spool.quota.set(name, n);
      if (globals(cmd).json) printJson(q); else show(q);
    });

  c.command('ls')
    .description('every quota: its limit and how many slots are in use')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const all = spool.quota.ls();
      for (const q of all) if (q.problem) warn(`quota ${q.name}: ${q.problem} (it limits nothing until set again)`);
      if (globals(cmd).json) { printJson(all); return; }
      for (const q of all) show(q);
    });

  c.command('rm <name>')
    .description('remove quota NAME: its jobs are no longer limited (slots in use are released as their jobs end)')
    .action(async (name: string, _o, cmd: Command) => {
      checkQuotaName(name);
      const spool = await openSpool(cmd);
      const gone = spool.quota.rm(name);
      if (globals(cmd).json) printJson({ name, removed: gone });
      else row(name, gone ? 'removed' : 'had no limit');
    });
}
