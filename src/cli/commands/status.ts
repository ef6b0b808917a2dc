/**
 * `zcq status`: the spool at a glance, as `rq info` and `postqueue -p` give it — jobs per queue and state
 * (done and hold included; paused queues marked), the oldest pending job, quarantined files, cron
 * schedules with their next run on their own time zone's wall clock, and the workers: their queues,
 * concurrency, running jobs and heartbeat age, and each live worker's name, host and effective settings
 * (concurrency, queues, fn, paused) with where each came from (zcq config), and each quota's slots in
 * use against its limit (zcq quota). Ages are by the file server's clock (spool.status()).
 *
 * The same text on a terminal and in a pipe (cut to the width on a terminal only); scripts use --json.
 * `zcq top` redraws this view every second (top.ts).
 */
import type { Command } from 'commander';
import type { Spool, Status, WorkerView } from '../../client/spool.js';
import type { ScheduleView } from '../../schedule/store.js';
import type { JobState } from '../../spool/layout.js';
import type { QuotaUse } from '../../spool/quota.js';
import { globals, openSpool, printJson } from '../common.js';
import { ago, table, terminalWidth, until, zoned, type Column } from '../format.js';
import { printable } from '../../text.js';

export interface StatusView extends Status {
  schedules: (ScheduleView & { nextRunLocal: string | null })[];
  /** The spool clock's now (ms), by which the relative times are given. */
  now: number;
  /** Each quota's limit and the slots in use (zcq quota). */
  quotas: QuotaUse[];
}

export function register(program: Command): void {
  program.command('status')
    .description('jobs per queue and state, oldest pending job, cron schedules, live workers')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const v = await gatherStatus(spool);
      if (globals(cmd).json) { printJson(v); return; }
      for (const l of renderStatus(v, terminalWidth())) process.stdout.write(l + '\n');
    });
}

/**
 * spool.status(), plus the running jobs counted per queue (a claimed file's name has no queue: the few
 * running jobs' files are read for it) and the schedules.
 */
export async function gatherStatus(spool: Spool): Promise<StatusView> {
  const s = await spool.status();
  for (const r of await spool.list({ states: ['claimed'] })) {
    const q = r.job?.queue;
    if (!q) continue;
    const c = (s.queues[q] ??= {});
    c.claimed = (c.claimed ?? 0) + 1;
  }
  const schedules = (await spool.listSchedules()).map((sc) => ({ ...sc, nextRunLocal: sc.nextRun ? zoned(Date.parse(sc.nextRun), sc.tz) : null }));
  return { ...s, schedules, now: Math.round(await (await spool.clock()).now()), quotas: spool.quota.ls() };
}

const HEADERS: Record<JobState, string> = { pending: 'PENDING', deferred: 'DEFERRED', claimed: 'CLAIMED', hold: 'HOLD', failed: 'FAILED', done: 'DONE', waiting: 'WAITING' };
const ORDER: JobState[] = ['pending', 'deferred', 'claimed', 'hold', 'failed', 'done', 'waiting'];

/** The text of `zcq status`, one string a line, each cut to `width` when given. */
export function renderStatus(v: StatusView, width?: number): string[] {
  const out: string[] = [];
  const cutTo = (s: string) => (width && Array.from(s).length > width ? Array.from(s).slice(0, width - 1).join('') + '…' : s);
  const say = (s: string) => out.push(cutTo(printable(s)));
  say(`spool ${v.spool}${v.localClock ? "  (times by this machine's clock: the spool cannot be written here)" : ''}`);
  out.push('');

  // Jobs: one row a queue (paused ones too, even when empty), then the totals of every state.
  const names = [...new Set([...Object.keys(v.queues), ...v.paused])].sort();
  const paused = new Set(v.paused);
  const cols: Column[] = [{ header: 'QUEUE', shrink: 1, min: 8 }, ...ORDER.map((s) => ({ header: HEADERS[s], align: 'right' as const }))];
  const rows: unknown[][] = names.map((q) => [paused.has(q) ? `${q} (paused)` : q, ...ORDER.map((s) => v.queues[q]?.[s] ?? 0)]);
  rows.push(['total', ...ORDER.map((s) => v.counts[s] ?? 0)]);
  out.push(...table(cols, rows, width));
  out.push('');
  say(`oldest pending: ${v.oldestPendingMs === null ? 'none' : ago(v.oldestPendingMs)}`);
  if (v.paused.length > 0) say(`paused ${v.paused.join(' ')}`);
  if (v.quarantined > 0) say(`quarantined: ${v.quarantined} (see zcq doctor; files in quarantine/)`);

  if (v.quotas && v.quotas.length > 0) {
    out.push('');
    out.push(...table(
      [{ header: 'QUOTA', shrink: 1, min: 8 }, { header: 'USED', align: 'right' }, { header: 'LIMIT', align: 'right' }],
      v.quotas.map((q) => [q.name, q.used, q.limit === null ? 'none' : q.limit]),
      width));
  }

  if (v.schedules.length > 0) {
    out.push('');
    out.push(...table(
      [{ header: 'SCHEDULE', shrink: 2, min: 8 }, { header: 'EXPR', shrink: 3, min: 9 }, { header: 'TZ' }, { header: 'NEXT RUN' }, { header: 'FN', shrink: 1, min: 8 }],
      v.schedules.map((sc) => [sc.name, sc.expr, sc.tz, sc.paused ? 'paused' : sc.nextRun ? `${sc.nextRunLocal} (${until(Date.parse(sc.nextRun) - v.now)})` : '-', sc.fn]),
      width));
  }

  out.push('');
  const live = v.workers.filter((w) => w.alive);
  const silent = v.workers.length - live.length;
  say(`workers: ${live.length} alive${silent ? `, ${silent} silent (lease expired: zcq recover)` : ''}`);
  if (v.workers.length > 0) {
    out.push(...table(
      [{ header: 'WORKER', shrink: 2, min: 12 }, { header: 'STATE' }, { header: 'QUEUES', shrink: 1, min: 6 }, { header: 'RUNNING', align: 'right' }, { header: 'HEARTBEAT', align: 'right' }],
      v.workers.map((w) => [
        w.id, w.alive ? 'alive' : 'silent', w.queues && w.queues.length > 0 ? w.queues.join(',') : 'all',
        `${w.running ?? '?'}/${w.concurrency ?? '?'}`, w.ageMs === null ? 'unsettled' : ago(w.ageMs),
      ]),
      width));
    // Each live worker's name, host and effective settings, with where each came from (zcq config).
    const named = live.filter((w) => w.settings && w.sources);
    if (named.length > 0) {
      out.push('');
      const cell = (w: (typeof named)[number], k: keyof NonNullable<WorkerView['settings']>) => {
        const v = w.settings![k];
        const shown = v === null ? (k === 'queues' ? 'all' : '*') : Array.isArray(v) ? v.join(',') : typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v);
        return `${shown} (${sourceLabel(w, w.sources![k])})`;
      };
      out.push(...table(
        [{ header: 'WORKER', shrink: 2, min: 12 }, { header: 'NAME', shrink: 1, min: 6 }, { header: 'HOST', shrink: 1, min: 6 }, { header: 'CONCURRENCY' }, { header: 'QUEUES', shrink: 1, min: 8 }, { header: 'FN', shrink: 1, min: 8 }, { header: 'PAUSED' }],
        named.map((w) => [w.id, w.name ?? '?', w.host, cell(w, 'concurrency'), cell(w, 'queues'), cell(w, 'fn'), cell(w, 'paused')]),
        width));
    }
  }
  return out;
}

/** Where a setting came from, as `zcq config` names it: flag, config NAME / host:HOST / *, default. */
function sourceLabel(w: WorkerView, src: string): string {
  if (src === 'name') return `config ${w.name ?? '?'}`;
  if (src === 'host') return `config host:${w.host}`;
  if (src === '*') return 'config *';
  return src;
}
