/**
 * `zcq ls [state...]`: the jobs, oldest first. Done jobs are left out unless asked for (`ls done`, `--all`):
 * they pile up, and the question at a terminal is almost always "what is waiting, running or broken".
 *
 * Three outputs, as postqueue/RQ do it:
 * - a terminal (stdout is a TTY): an aligned table with a header, relative times, cut to the width;
 * - a pipe or file: one job a line, tab-separated, fixed columns that scripts may rely on:
 *     id  state  queue  fn  age-seconds  attempts  extra
 *   age-seconds is the whole seconds the job has been in its state; extra is `due=ISO` (deferred),
 *   `worker=LEASE` (claimed), what it waits for (waiting: `after=ID,ID`, `postprocess=GID`, `awaits=ID`),
 *   `reason=REASON NAME: MESSAGE` (failed), `corrupt=WHY` (an unreadable
 *   file, whose fn and attempts are '-'), else '-'. A missing field is '-'. `zcq ls failed | cut -f1`;
 * - --json: one array (see man/zcq.1).
 *
 * The age is "now" minus the file's change time (ctime: a job enters pending/, hold/ or claimed/ by a
 * rename, which sets ctime but keeps the mtime of its last write), both by the file server's clock:
 * ctime is stamped by the server, and "now" is the spool's server clock, so no machine's own clock is
 * compared with a time another machine wrote. Due times are read from the deferred file's name.
 */
import { lstatSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { CLI_BOUNDS } from '../../defaults.js';
import { globals, intOpt, line, openSpool, printJson, row } from '../common.js';
import { ago, table, terminalWidth, toTerminal, until, type Column } from '../format.js';
import type { JobRecord } from '../../client/spool.js';
import type { Job } from '../../job/format.js';
import { STATES, type JobState } from '../../spool/layout.js';

/** Every state but done: what `zcq ls` lists by default. */
const DEFAULT_STATES = STATES.filter((s) => s !== 'done');

export function register(program: Command): void {
  program.command('ls [states...]')
    .description(`list jobs, oldest first (states: ${STATES.join(', ')}; default: all but done)`)
    .option('-a, --all', 'every state, done included')
    .option('-q, --queue <name>', 'only this queue')
    .option('--fn <ref>', 'only jobs whose function reference contains this')
    .addOption(intOpt('-n, --limit <n>', 'at most this many', '--limit', CLI_BOUNDS.limit))
    .action(async (states: string[], o: { all?: boolean; queue?: string; fn?: string; limit?: number }, cmd: Command) => {
      for (const s of states) if (!(STATES as readonly string[]).includes(s)) throw new UsageError(`state '${s}': must be one of ${STATES.join(', ')}`);
      if (o.all && states.length > 0) throw new UsageError('give states or --all, not both');
      const spool = await openSpool(cmd);
      const wanted = (states.length > 0 ? states : o.all ? STATES : DEFAULT_STATES) as JobState[];
      const recs = await spool.list({ states: wanted, queue: o.queue, fn: o.fn, limit: o.limit });
      const clock = await spool.clock();
      const now = await clock.now();
      const rows = recs.map((r) => view(r, now));
      if (globals(cmd).json) {
        printJson(rows.map(({ r, ageMs }) => ({
          id: r.id, state: r.state, queue: r.job?.queue ?? r.queue ?? undefined, fn: r.job?.fn, created: r.job?.created,
          ageMs: ageMs ?? undefined, attempts: r.job?.attempts, retries: r.job?.retries,
          due: r.dueMs ? new Date(r.dueMs).toISOString() : undefined, worker: r.worker,
          failure: r.state === 'failed' && r.job?.failure ? { reason: r.job.failure.reason, name: r.job.failure.name, message: r.job.failure.message } : undefined,
          waitsFor: r.state === 'waiting' && r.job ? waitingFor(r.job) : undefined,
          corrupt: r.corrupt,
        })));
        return;
      }
      if (!toTerminal()) {
        for (const { r, ageMs } of rows) row(r.id, r.state, r.job?.queue ?? r.queue, r.job?.fn, ageMs === null ? null : Math.floor(ageMs / 1000), r.job?.attempts, extra(r));
        return;
      }
      await printTable(rows, now, terminalWidth());
      if (states.length === 0 && !o.all) {
        const { scanState } = await import('../../spool/scan.js');
        let done = 0;
        for (const _ of scanState(spool.layout, 'done', o.queue)) done++;
        if (done > 0) line(`(${done} done job${done === 1 ? '' : 's'} not shown: zcq ls done, or --all)`);
      }
    });
}

interface View { r: JobRecord; ageMs: number | null }

function view(r: JobRecord, now: number): View {
  let ageMs: number | null = null;
  try { ageMs = Math.max(0, now - lstatSync(r.path).ctimeMs); } catch { /* moved on since it was listed */ }
  return { r, ageMs };
}

/** The last tab-separated field (see the header). */
function extra(r: JobRecord): string | null {
  if (r.corrupt) return `corrupt=${r.corrupt}`;
  if (r.state === 'deferred' && r.dueMs) return `due=${new Date(r.dueMs).toISOString()}`;
  if (r.state === 'claimed') return `worker=${r.worker}`;
  if (r.state === 'waiting' && r.job) return waitingFor(r.job).join(' ') || null;
  const f = r.job?.failure;
  if (r.state === 'failed' && f) return `reason=${f.reason} ${f.name}: ${f.message}`;
  return null;
}

/**
 * What a waiting job waits for (composite jobs): `postprocess=GID` (a group's postprocess: its members),
 * `awaits=ID` (a job that returned a composite: its postprocess), `after=ID,ID` (its dependencies).
 */
function waitingFor(j: Job): string[] {
  if (j.postprocessOf) return [`postprocess=${j.postprocessOf.gid}`];
  if (j.awaits) return [`awaits=${j.awaits}`];
  return j.after ? [`after=${j.after.join(',')}`] : [];
}

async function printTable(rows: View[], now: number, width: number | undefined): Promise<void> {
  if (rows.length === 0) { line('(no jobs)'); return; }
  const deferred = rows.filter(({ r }) => r.state === 'deferred').length;
  const when = deferred === 0 ? 'AGE' : deferred === rows.length ? 'DUE' : 'AGE/DUE';
  const columns: Column[] = [
    // When the terminal is narrow, the message gives way first, then the function, the queue, the id.
    { header: 'ID', shrink: 4, min: 10 }, { header: 'STATE' }, { header: 'QUEUE', shrink: 3, min: 5 },
    { header: 'FN', shrink: 2, min: 8 }, { header: when, align: 'right' }, { header: 'ATTEMPTS', align: 'right' },
    { header: 'INFO', shrink: 1, min: 10 },
  ];
  const cells = rows.map(({ r, ageMs }) => {
    const j = r.job;
    const info = r.corrupt ? `corrupt: ${r.corrupt}`
      : r.state === 'failed' && j?.failure ? `${j.failure.reason}: ${j.failure.name}: ${j.failure.message}`
        : r.state === 'claimed' ? `on ${r.worker}`
          : r.state === 'waiting' && j ? waitingFor(j).join(' ') : '';
    return [
      r.id, r.state, j?.queue ?? r.queue, j?.fn,
      r.state === 'deferred' && r.dueMs ? until(r.dueMs - now) : ago(ageMs),
      j ? `${j.attempts}/${j.retries + 1}` : '-', info,
    ];
  });
  // No job has anything to say: no INFO column.
  if (cells.every((c) => c[6] === '')) columns.pop();
  const lines = table(columns, cells, width);
  for (const l of lines) process.stdout.write(l + '\n');
}
