/** `zcq doctor [--repair]`: check the spool's consistency; exit 0 when clean (or all repaired), 1 otherwise. */
import type { Command } from 'commander';
import { durationOption, globals, openSpool, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('doctor')
    .description('check the spool: stale leases, jobs in two folders, crash leftovers, empty buckets, stray files; --repair fixes them')
    .option('--repair', 'fix what was found (recover stale leases, quarantine older copies and strays, remove leftovers)')
    .option('--leftover-age <duration>', 'temp and .nfs* files older than this are leftovers (default 1h; gone workers 1d)', durationOption('--leftover-age'))
    .action(async (o: { repair?: boolean; leftoverAge?: number }, cmd: Command) => {
      const age = o.leftoverAge;
      const spool = await openSpool(cmd, false);
      const problems = await spool.doctor({ repair: Boolean(o.repair), leftoverAgeMs: age });
      const left = problems.filter((p) => !p.repaired).length;
      if (globals(cmd).json) printJson({ problems, unrepaired: left });
      else {
        for (const p of problems) process.stdout.write(`${p.repaired ? 'repaired' : 'found'}\t${p.kind}\t${p.path}\t${p.detail}\n`);
        process.stdout.write(problems.length === 0 ? 'spool is consistent\n' : `${problems.length} problem(s), ${problems.length - left} repaired\n`);
      }
      if (left > 0) process.exitCode = 1;
    });
}
