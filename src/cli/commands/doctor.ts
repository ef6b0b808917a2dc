/** `zcq doctor [--repair]`: check the spool's consistency; exit 0 when clean (or all repaired), 1 otherwise. */
import type { Command } from 'commander';
import { WORKER_BOUNDS, WORKER_DEFAULTS } from '../../defaults.js';
import { formatDuration } from '../../text.js';
import { durationOpt, globals, line, openSpool, printJson, row } from '../common.js';

export function register(program: Command): void {
  program.command('doctor')
    .description('check the spool: stale leases, jobs in two folders, crash leftovers, empty buckets, stray files; --repair fixes them')
    .option('--repair', 'fix what was found (recover stale leases, quarantine older copies and strays, remove leftovers)')
    .addOption(durationOpt('--leftover-age <duration>', `temp and .nfs* files older than this are leftovers (heartbeats of gone workers: ${formatDuration(WORKER_DEFAULTS.goneWorkerAgeMs)}, or this when given)`, '--leftover-age', WORKER_BOUNDS.leftoverAgeMs, WORKER_DEFAULTS.leftoverAgeMs))
    .action(async (o: { repair?: boolean; leftoverAge?: number }, cmd: Command) => {
      // The library's own default applies to gone workers unless the age was given.
      const given = cmd.getOptionValueSource('leftoverAge') !== 'default';
      const spool = await openSpool(cmd);
      const problems = await spool.doctor({ repair: Boolean(o.repair), leftoverAgeMs: given ? o.leftoverAge : undefined });
      const left = problems.filter((p) => !p.repaired).length;
      if (globals(cmd).json) printJson({ problems, unrepaired: left });
      else {
        for (const p of problems) row(p.repaired ? 'repaired' : 'found', p.kind, p.path, p.detail);
        line(problems.length === 0 ? 'spool is consistent' : `${problems.length} problem(s), ${problems.length - left} repaired`);
      }
      if (left > 0) process.exitCode = 1;
    });
}
