/**
 * `zcq wait <id...>`: block until the jobs finish; print each result (JSON) one a line; exit 1 if any
 * failed or the --timeout passed.
 *
 * While it waits, when stderr is a terminal, one status line on stderr is rewritten in place (\r, erase
 * to the end of the line) with each unfinished job's state and its latest progress annotation
 * (ctx.progress), and erased before the results are printed. Whatever stderr is, a warning line is
 * printed when nothing will ever run a job as things stand — no live worker serves its queue, its queue
 * is paused, or it is held — checked at the start and every WATCH_MS after (once per cause).
 * Results go to stdout as before; the status line never mixes with them.
 */
import type { Command } from 'commander';
import { CLI_BOUNDS } from '../../defaults.js';
import type { Spool } from '../../client/spool.js';
import type { Located } from '../../spool/scan.js';
import { durationOpt, globals, line, openSpool, printJson, readIds, warn } from '../common.js';
import { cut } from '../format.js';
import { jsonLine, printable } from '../../text.js';

/** How often the "no worker serves it" check runs again (it reads every heartbeat). */
const WATCH_MS = 15_000;

export function register(program: Command): void {
  program.command('wait <ids...>')
    .description('wait for jobs to finish; prints each result (JSON) one a line; exit 1 if any failed')
    .addOption(durationOpt('--timeout <duration>', 'give up after this long (exit 1)', '--timeout', CLI_BOUNDS.waitTimeoutMs, undefined, 'wait for ever'))
    .action(async (ids: string[], o: { timeout?: number }, cmd: Command) => {
      const spool = await openSpool(cmd);
      const live = process.stderr.isTTY ? new StatusLine(spool) : null;
      const watch = new Unserved(spool);
      const onSigint = () => { live?.clear(); process.exit(130); };
      if (live) process.once('SIGINT', onSigint);
      let recs;
      try {
        recs = await spool.wait(await readIds(ids), {
          timeoutMs: o.timeout,
          onPoll: (pending) => { live?.update(pending); watch.check(pending, live); },
        });
      } finally {
        watch.stop();
        live?.clear();
        process.off('SIGINT', onSigint);
      }
      for (const r of recs) {
        if (globals(cmd).json) printJson({ id: r.id, state: r.state, result: r.job?.result, failure: r.job?.failure, corrupt: r.corrupt });
        else if (r.state === 'done') line(jsonLine(r.job?.result ?? null));
        else warn(`job ${r.id} failed: ${r.job?.failure ? `${r.job.failure.name}: ${r.job.failure.message}` : r.corrupt}`);
      }
      if (recs.some((r) => r.state !== 'done')) process.exitCode = 1;
    });
}

/** The line on stderr rewritten in place while waiting. */
class StatusLine {
  private shown = false;
  private busy = false;
  private readonly progress = new Map<string, string>();

  constructor(private readonly spool: Spool) {}

  /** Called on every poll (synchronously): draw now, and fetch the progress annotations in the background. */
  update(pending: Located[]): void {
    this.draw(pending);
    if (this.busy) return;
    this.busy = true;
    void (async () => {
      try {
        for (const l of pending) {
          if (l.state !== 'claimed') { this.progress.delete(l.id); continue; }
          const p = await this.spool.progress(l.id).catch(() => null);
          if (p) this.progress.set(l.id, `attempt ${p.attempt}: ${jsonLine(p.value)}`);
        }
        this.draw(pending);
      } finally { this.busy = false; }
    })();
  }

  private draw(pending: Located[]): void {
    if (pending.length === 0) return;
    const parts = pending.map((l) => `${l.id} ${l.state === 'claimed' ? 'running' : l.state}${this.progress.has(l.id) ? ` (${this.progress.get(l.id)})` : ''}`);
    const text = printable(`waiting: ${parts.join(', ')}`);
    const width = process.stderr.columns > 1 ? process.stderr.columns - 1 : 200;
    process.stderr.write(`\r${cut(text, width)}\x1b[K`);
    this.shown = true;
  }

  /** Erase the line (before results or a warning are printed, and at the end). */
  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

/** Warns when a waited-for job has nothing to run it: no live worker for its queue, its queue paused, or it is held. */
class Unserved {
  private next = 0;
  private busy = false;
  private readonly said = new Set<string>();
  private stopped = false;

  constructor(private readonly spool: Spool) {}

  /** The wait is over: a check still under way says nothing more. */
  stop(): void { this.stopped = true; }

  check(pending: Located[], live: StatusLine | null): void {
    if (this.busy || Date.now() < this.next) return;
    // Claimed jobs are being served; a loose job (no queue folder) waits for any worker to adopt it.
    const queues = new Map<string, string[]>();
    const held: string[] = [];
    for (const l of pending) {
      if (l.state === 'hold') held.push(l.id);
      else if (l.state !== 'claimed' && l.queue) queues.set(l.queue, [...(queues.get(l.queue) ?? []), l.id]);
    }
    this.busy = true;
    this.next = Date.now() + WATCH_MS;
    void (async () => {
      try {
        const say = (key: string, msg: string) => { if (this.stopped || this.said.has(key)) return; this.said.add(key); live?.clear(); warn(msg); };
        for (const id of held) say(`hold ${id}`, `warning: job ${id} is held: no worker takes it until 'zcq release ${id}'`);
        if (queues.size === 0) return;
        const s = await this.spool.status();
        const paused = new Set(s.paused);
        for (const [q, ids] of queues) {
          const which = ids.length === 1 ? `job ${ids[0]}` : `${ids.length} jobs`;
          if (paused.has(q)) say(`paused ${q}`, `warning: queue ${q} is paused: ${which} will not start until 'zcq resume ${q}'`);
          const served = s.workers.some((w) => w.alive && (!w.queues || w.queues.length === 0 || w.queues.includes(q)));
          if (!served) say(`unserved ${q}`, `warning: no live worker serves queue ${q} (${which} waiting); start one: zcq worker --queue ${q}`);
        }
      } catch { /* a check that failed says nothing; the wait goes on */ } finally { this.busy = false; }
    })();
  }
}
