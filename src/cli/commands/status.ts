/** `zcq status`: counts per state and queue, oldest pending age, workers. */
import type { Command } from 'commander';
import { printable } from '../../text.js';
import { age, globals, line, openSpool, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('status')
    .description('counts per state and per queue, oldest pending job, live workers')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const s = await spool.status();
      if (globals(cmd).json) { printJson(s); return; }
      // Queue names and worker ids come from files and file names: line() escapes them.
      line(`spool ${s.spool}`);
      line(Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join('  ') + (s.quarantined ? `  quarantined ${s.quarantined}` : ''));
      line(`oldest pending ${age(s.oldestPendingMs)}`);
      for (const [q, c] of Object.entries(s.queues)) line(`queue ${q}: ${Object.entries(c).map(([k, v]) => `${k} ${v}`).join('  ')}${s.paused.includes(q) ? '  (paused)' : ''}`);
      if (s.paused.length > 0) line(`paused ${s.paused.join(' ')}`);
      const live = s.workers.filter((w) => w.alive);
      line(`workers ${live.length} alive${s.workers.length > live.length ? `, ${s.workers.length - live.length} silent` : ''}`);
      for (const w of s.workers) process.stdout.write(`  ${[w.id, w.alive ? 'alive' : 'silent', `heartbeat ${age(w.ageMs)} ago`, ...(w.running !== undefined ? [`running ${w.running}`] : [])].map((f) => printable(String(f))).join('\t')}\n`);
    });
}
