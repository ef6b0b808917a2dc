/**
 * `zcq prune`: remove finished records (and their output) past their retention, now, by hand. Without
 * options it applies the spool's retention settings queue by queue (`zcq retention`), as workers do in
 * their housekeeping; --older-than and --keep replace the settings' age and count for this run.
 */
import { Option, type Command } from 'commander';
import { RETENTION_BOUNDS } from '../../defaults.js';
import { age, durationOpt, globals, intOpt, openSpool, printJson, row, warn } from '../common.js';

export function register(program: Command): void {
  program.command('prune')
    .description('remove finished records (done/, failed/) and their output past their retention; default: the spool\'s retention settings (zcq retention)')
    .option('-n, --dry-run', 'list what would be removed; remove nothing')
    .option('--queue <name>', 'only this queue')
    .addOption(new Option('--state <state>', 'only done or only failed records').choices(['done', 'failed']))
    .addOption(durationOpt('--older-than <duration>', 'remove records older than this (by the file server\'s clock), instead of the settings\' age', '--older-than', RETENTION_BOUNDS.ageMs))
    .addOption(intOpt('--keep <n>', 'keep at most this many per queue and state (the newest), instead of the settings\' max', '--keep', RETENTION_BOUNDS.max))
    .action(async (o: { dryRun?: boolean; queue?: string; state?: 'done' | 'failed'; olderThan?: number; keep?: number }, cmd: Command) => {
      const spool = await openSpool(cmd);
      for (const p of spool.retention.view().problems) warn(`${p} (the default applies in its place)`);
      const rep = await spool.prune({ dryRun: Boolean(o.dryRun), queue: o.queue, state: o.state, olderThanMs: o.olderThan, keep: o.keep });
      for (const e of rep.errors) warn(`${e.path}: skipped (${e.error})`);
      if (globals(cmd).json) {
        printJson({ dryRun: Boolean(o.dryRun), removed: rep.count, jobs: rep.removed, errors: rep.errors });
        return;
      }
      for (const r of rep.removed) row(r.id, r.state, r.queue, age(r.ageMs), o.dryRun ? 'would be removed' : 'removed');
      process.stderr.write(`zcq: ${rep.count} record${rep.count === 1 ? '' : 's'} ${o.dryRun ? 'would be removed (dry run)' : 'removed'}\n`);
    });
}
