/** `zcq recover`: one recovery pass by hand — settle the jobs of every lease that has expired. */
import type { Command } from 'commander';
import { globals, openSpool, printJson, row } from '../common.js';

export function register(program: Command): void {
  program.command('recover')
    .description('one pass: hand the jobs of dead workers (expired leases) back by their interrupt policy')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const events = await spool.recover();
      if (globals(cmd).json) printJson(events);
      else for (const e of events) row(e.event, e.worker, ...(e.id ? [e.id, `→ ${e.to}`] : []), ...(e.ageMs ? [`age ${Math.round(e.ageMs / 1000)}s`] : []));
    });
}
