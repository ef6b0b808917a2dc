/**
 * `zcq rate`: at most COUNT job starts per WINDOW across every machine (spool/rate.ts), windows by the
 * file server's clock.
 *   zcq rate set TARGET COUNT/WINDOW   TARGET: a quota name (jobs put with --quota NAME) or queue:QUEUE
 *   zcq rate ls                        every rate
 *   zcq rate rm TARGET                 remove it
 */
import type { Command } from 'commander';
import { parseRate } from '../../client/rate.js';
import { rateFolderName, type RateEntry } from '../../spool/rate.js';
import { formatDuration } from '../../text.js';
import { globals, openSpool, printJson, row, warn } from '../common.js';

function show(e: RateEntry): void {
  row(e.target, e.rate ? `${e.rate.count}/${formatDuration(e.rate.windowMs)}` : 'unreadable');
}

export function register(program: Command): void {
  const c = program.command('rate')
    .description('at most COUNT job starts per WINDOW, across every machine, for a quota or a queue (queue:QUEUE)');

  c.command('set <target> <rate>')
    .usage('TARGET COUNT/WINDOW')
    .description('limit starts of the jobs of quota TARGET (or of queue:QUEUE) to COUNT per WINDOW, e.g. 100/10s; windows by the file server\'s clock')
    .action(async (target: string, rate: string, _o, cmd: Command) => {
      rateFolderName(target);
      parseRate(rate);
      const spool = await openSpool(cmd);
      const e = await spool.rate.set(target, rate);
      if (globals(cmd).json) printJson(e); else show(e);
    });

  c.command('ls')
    .description('every rate limit')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const all = spool.rate.ls();
      for (const e of all) if (e.problem) warn(`rate ${e.target}: ${e.problem} (it limits nothing until set again)`);
      if (globals(cmd).json) { printJson(all); return; }
      for (const e of all) show(e);
    });

  c.command('rm <target>')
    .description('remove the rate limit of a quota or queue:QUEUE')
    .action(async (target: string, _o, cmd: Command) => {
      rateFolderName(target);
      const spool = await openSpool(cmd);
      const gone = spool.rate.rm(target);
      if (globals(cmd).json) printJson({ target, removed: gone });
      else row(target, gone ? 'removed' : 'had no rate');
    });
}
