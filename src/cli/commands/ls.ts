/** `zcq ls [state...]`: one job a line — id, state, fn, age, attempts (due time for deferred jobs). */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { CLI_BOUNDS } from '../../defaults.js';
import { age, globals, intOpt, openSpool, printJson, row } from '../common.js';

import { STATES } from '../../spool/layout.js';

export function register(program: Command): void {
  program.command('ls [states...]')
    .description(`list jobs (states: ${STATES.join(', ')}; default: all)`)
    .option('-q, --queue <name>', 'only this queue')
    .option('--fn <ref>', 'only jobs whose function reference contains this')
    .addOption(intOpt('-n, --limit <n>', 'at most this many', '--limit', CLI_BOUNDS.limit))
    .action(async (states: string[], o: { queue?: string; fn?: string; limit?: number }, cmd: Command) => {
      for (const s of states) if (!(STATES as readonly string[]).includes(s)) throw new UsageError(`state '${s}': must be one of ${STATES.join(', ')}`);
      const spool = await openSpool(cmd);
      const { idTimeMs } = await import('../../spool/scan.js');
      const recs = await spool.list({ states: states as never, queue: o.queue, fn: o.fn, limit: o.limit });
      if (globals(cmd).json) {
        printJson(recs.map((r) => ({ id: r.id, state: r.state, fn: r.job?.fn, queue: r.job?.queue, created: r.job?.created, attempts: r.job?.attempts, due: r.dueMs ? new Date(r.dueMs).toISOString() : undefined, worker: r.worker, corrupt: r.corrupt })));
        return;
      }
      for (const r of recs) {
        const t = idTimeMs(r.id);
        const extra = r.state === 'deferred' && r.dueMs ? ` due=${new Date(r.dueMs).toISOString()}` : r.state === 'claimed' ? ` worker=${r.worker}` : r.job?.failure && r.state === 'failed' ? ` reason=${JSON.stringify(r.job.failure.reason)}` : '';
        row(r.id, r.state, r.job?.fn ?? `(corrupt: ${r.corrupt})`, age(t === null ? null : Date.now() - t), `${r.job?.attempts ?? '-'}${extra}`);
      }
    });
}
