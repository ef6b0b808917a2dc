/**
 * `zcq retention`: how long finished records are kept, per queue with a spool default (config/retention.json,
 * applied by workers' housekeeping and by `zcq prune`).
 *   zcq retention set [QUEUE|*] done=7d failed=30d max=100000   (any of the three; "off" for no limit)
 *   zcq retention get [QUEUE]      the policy in force for a queue (or the default)
 *   zcq retention ls               the default and every queue's own settings
 *   zcq retention rm QUEUE|*       a queue follows the default again; * puts the built-in default back
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { globals, openSpool, printJson, row, warn } from '../common.js';

const SHOWN = ['done', 'failed', 'max'] as const;

export function register(program: Command): void {
  const r = program.command('retention')
    .description('how long finished records are kept: per queue, with a spool default (done 7d, failed 30d, max 100000)');

  r.command('set <args...>')
    .usage('[QUEUE|*] done=AGE failed=AGE max=N')
    .description('set the default (* or no queue) or a queue\'s retention: done=7d failed=30d max=100000 (off: no limit)')
    .action(async (args: string[], _o, cmd: Command) => {
      const queue = args[0]!.includes('=') ? '*' : args.shift()!;
      if (args.length === 0) throw new UsageError('retention set: give at least one of done=AGE, failed=AGE, max=N');
      const patch: Record<string, string> = {};
      for (const a of args) {
        const m = /^(done|failed|max)=(.*)$/.exec(a);
        if (!m) throw new UsageError(`retention set: '${a}': use done=AGE, failed=AGE or max=N (AGE such as 7d, 12h; off for no limit)`);
        patch[m[1]!] = m[2]!;
      }
      const spool = await openSpool(cmd);
      const p = await spool.retention.set(queue, patch);
      const { Retention } = await import('../../client/retention.js');
      const f = Retention.format(p);
      if (globals(cmd).json) printJson({ queue, policy: f });
      else row(queue, ...SHOWN.map((k) => `${k}=${f[k]}`));
    });

  r.command('get [queue]')
    .description('the retention in force for a queue (its own settings over the default), or the default')
    .action(async (queue: string | undefined, _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const v = spool.retention.view();
      for (const p of v.problems) warn(`${p} (the default applies in its place)`);
      const { Retention } = await import('../../client/retention.js');
      const f = Retention.format(spool.retention.get(queue ?? '*'));
      if (globals(cmd).json) printJson({ queue: queue ?? '*', policy: f });
      else row(queue ?? '*', ...SHOWN.map((k) => `${k}=${f[k]}`));
    });

  r.command('ls')
    .description('the default and every queue\'s own settings (a queue\'s unset values come from the default)')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const v = spool.retention.view();
      for (const p of v.problems) warn(`${p} (the default applies in its place)`);
      const { Retention } = await import('../../client/retention.js');
      if (globals(cmd).json) { printJson({ path: v.path, stored: v.stored, ...v.json, problems: v.problems }); return; }
      const d = Retention.format(v.config.default);
      row('*', ...SHOWN.map((k) => `${k}=${d[k]}`));
      for (const [q, p] of Object.entries(v.config.queues).sort(([a], [b]) => (a < b ? -1 : 1))) {
        const f = Retention.format(p);
        row(q, ...SHOWN.map((k) => (k in f ? `${k}=${f[k]}` : `${k}=(default)`)));
      }
    });

  r.command('rm <queue>')
    .description('remove a queue\'s own settings (it follows the default again); * puts the built-in default back')
    .action(async (queue: string, _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const changed = await spool.retention.remove(queue);
      if (globals(cmd).json) printJson({ queue, removed: changed });
      else row(queue, changed ? 'removed' : 'had no settings');
    });
}
