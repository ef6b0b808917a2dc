/**
 * `zcq migrate [DIR] [--dry-run] [--force]`: convert a format-1 spool to format 2 in place. Does not go
 * through openSpool (which refuses format 1): the folder comes from DIR, else --spool, $ZCQ_SPOOL, ./spool.
 * Prints one line per move as it happens (`from -> to`), then a summary; --json prints the report.
 * Exit 0 when converted (or already format 2), 2 when refused (not format 1/2, a live lease).
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { globals, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('migrate')
    .argument('[dir]', 'the spool folder (default: --spool, $ZCQ_SPOOL, else ./spool)')
    .description('convert a format-1 spool to format 2 in place (rerun it if it was interrupted)')
    .option('--dry-run', 'print what would be moved and quarantined; change nothing')
    .option('--force', 'migrate even when a format-1 lease looks live (only when you know its worker is gone)')
    .action(async (dirArg: string | undefined, o: { dryRun?: boolean; force?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      if (dirArg !== undefined && g.spool !== undefined && dirArg !== g.spool) {
        throw new UsageError(`give the spool once: DIR '${dirArg}' and --spool '${g.spool}' differ`);
      }
      const { defaultSpoolDir } = await import('../../spool/layout.js');
      const dir = dirArg ?? g.spool ?? defaultSpoolDir();
      const { migrate } = await import('../../spool/migrate.js');
      const would = o.dryRun ? 'would move ' : '';
      const log = g.json ? undefined : (event: string, f: Record<string, unknown>) => {
        if (event === 'migrate.move') process.stdout.write(`${would}${f.from} -> ${f.to}\n`);
        else if (event === 'migrate.quarantine') process.stdout.write(`${o.dryRun ? 'would quarantine ' : ''}${f.from} -> ${f.to} (quarantined: ${f.reason})\n`);
        else if (event === 'migrate.forced') process.stdout.write(`--force: migrating despite live lease(s) ${(f.live as string[]).join(', ')}\n`);
      };
      const r = await migrate(dir, { dryRun: o.dryRun, force: o.force, log });
      if (g.json) { printJson(r); return; }
      if (r.alreadyFormat2) { process.stdout.write(`${r.dir}: already format 2; nothing to do\n`); return; }
      const c = r.counts;
      const by = Object.entries(c.byState).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(', ');
      process.stdout.write(o.dryRun
        ? `${r.dir}: dry run, nothing written: would move ${c.moved} job(s)${by ? ` (${by})` : ''}, quarantine ${c.quarantined}, create ${c.created} folder(s), remove ${c.removed}\n`
        : `${r.dir}: ${r.resumed ? 'finished an interrupted migration' : 'migrated'} to format 2: moved ${c.moved} job(s)${by ? ` (${by})` : ''}, quarantined ${c.quarantined}, created ${c.created} folder(s), removed ${c.removed}\n`);
    });
}
