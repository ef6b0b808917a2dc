/** `zcq status`: counts per state and queue, oldest pending age, workers. */
import type { Command } from 'commander';
import { age, globals, openSpool, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('status')
    .description('counts per state and per queue, oldest pending job, live workers')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const s = await spool.status();
      if (globals(cmd).json) { printJson(s); return; }
      const out = (l: string) => process.stdout.write(l + '\n');
      out(`spool ${s.spool}`);
      out(Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join('  ') + (s.quarantined ? `  quarantined ${s.quarantined}` : ''));
      out(`oldest pending ${age(s.oldestPendingMs)}`);
      for (const [q, c] of Object.entries(s.queues)) out(`queue ${q}: ${Object.entries(c).map(([k, v]) => `${k} ${v}`).join('  ')}`);
      const live = s.workers.filter((w) => w.alive);
      out(`workers ${live.length} alive${s.workers.length > live.length ? `, ${s.workers.length - live.length} silent` : ''}`);
      for (const w of s.workers) out(`  ${w.id}\t${w.alive ? 'alive' : 'silent'}\theartbeat ${age(w.ageMs)} ago${w.running !== undefined ? `\trunning ${w.running}` : ''}`);
    });
}
