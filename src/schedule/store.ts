/**
 * Cron schedules stored in the spool, and the scheduler pass any worker runs each poll.
 *
 * Files (see zcq-spool(5)):
 *   cron/schedules/<name>.json   the schedule (expression, zone, job template, policies, paused)
 *   cron/state/<name>.json       {"lastTick": ISO} — only ever moves forward
 *   cron/runs/<name>/<run>.json  one per tick that produced a job: the job's first content, published by
 *                                link(), which fails with EEXIST for every creator but one
 *
 * Invariant: each (schedule, tick) produces at most one job, however many schedulers run, whatever
 * their clocks say (ticks are judged by the file server's clock, and the run file is created by an
 * operation only one creator can win); and, barring a crash between the two links below, exactly one.
 * The per-schedule lockfile (proper-lockfile) only keeps schedulers from doing the same work at once: it
 * judges staleness with local clocks, so correctness never depends on it.
 *
 * File writes and reads (the spool may be group-writable, see fsops.ts): schedule and state files are
 * replaced with fsops.writeReplace — an O_EXCL temporary in tmp/ renamed over the name, which replaces a
 * symlink a co-user planted there instead of writing through it (write-file-atomic, used before, resolves
 * the symlink on purpose and writes beside its target). Reads go through readRegularText (O_NOFOLLOW |
 * O_NONBLOCK, fstat): a FIFO planted at cron/state/NAME.json no longer parks the scheduler forever.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { UsageError, isGone } from '../errors.js';
import { FN_REF, QUEUE_NAME, newJob, serializeJob } from '../job/format.js';
import type { Logger } from '../log.js';
import { listNames, readRegularText, writeReplace } from '../spool/fsops.js';
import type { Layout } from '../spool/layout.js';
import { makeDir, mkdirModeRecursive, type SpoolModes } from '../spool/modes.js';
import { findExact } from '../spool/scan.js';
import { putOnce } from '../spool/transitions/put.js';
import type { ServerClock } from '../spool/server-clock.js';
import { isScheduleFileName, schedulesDirOf, type SchedulerHost } from './duty.js';
import { DEFAULT_GRACE_MS, assertScheduleName, nextTick, parseSchedule, runName, parseRunName, ticksBetween, dueTicks, type MissedPolicy } from './cron-ticks.js';

export interface ScheduleSpec {
  name: string;
  expr: string;
  tz?: string;
  fn: string;
  args?: unknown[];
  queue?: string;
  retries?: number;
  timeoutMs?: number | null;
  /** After an outage: 'once' (default) one run for the missed window, 'all' every missed tick up to `cap`, 'skip'. */
  missed?: MissedPolicy;
  cap?: number;
  /** 'skip': do not start a tick while the previous run is still pending or running. Default 'allow'. */
  overlap?: 'allow' | 'skip';
}

export interface StoredSchedule extends Required<Omit<ScheduleSpec, 'tz'>> {
  tz: string;
  paused: boolean;
  created: string;
  updated: string;
}

/**
 * A schedule as the commands show it. `lastTick` is where the scheduler's next window starts: the latest
 * tick handled, or, before the first, the time the schedule was added (or resumed). `lastRun` is the tick of
 * the latest job the schedule made (its newest run marker), null before the first: what "last" means to a reader.
 */
export interface ScheduleView extends StoredSchedule { lastTick: string | null; lastRun: string | null; nextRun: string | null }

/** Ticks this close to now are normal scheduling jitter and all run; older ones are "missed". */
const RECENT_MS = DEFAULT_GRACE_MS;
const SCHEDULE_VERSION = 1;

export class CronStore {
  readonly schedulesDir: string;
  readonly stateDir: string;
  readonly runsDir: string;

  constructor(readonly layout: Layout, readonly durable = true, readonly modes: SpoolModes = layout.modes) {
    this.schedulesDir = schedulesDirOf(layout);
    this.stateDir = join(layout.cron, 'state');
    this.runsDir = join(layout.cron, 'runs');
  }

  private async dirs(): Promise<void> {
    for (const d of [this.schedulesDir, this.stateDir, this.runsDir]) await mkdirModeRecursive(this.layout.root, d, this.modes);
  }

  /** Replace a schedule or state file: never through a planted symlink, the spool's file mode, fsynced when durable. */
  private async replace(path: string, text: string): Promise<void> {
    await writeReplace(path, text, { tmpDir: this.layout.tmp, durable: this.durable, mode: this.modes.fileMode });
  }

  /** Validate and store a schedule (replacing one of the same name). Invalid expressions and zones are rejected here. */
  async add(spec: ScheduleSpec, serverNowMs: number): Promise<StoredSchedule> {
    assertScheduleName(spec.name);
    const schedule = parseSchedule(spec.expr, spec.tz);
    if (!FN_REF.test(spec.fn)) throw new UsageError(`function '${spec.fn}': must be 'module#export'`, 'ZCQ_BAD_FN');
    const queue = spec.queue ?? 'default';
    if (!QUEUE_NAME.test(queue)) throw new UsageError(`--queue '${queue}': use letters, digits, '.', '_' or '-'`);
    const missed = spec.missed ?? 'once';
    if (!['once', 'all', 'skip'].includes(missed)) throw new UsageError(`--missed '${missed}': must be once, all or skip`);
    const overlap = spec.overlap ?? 'allow';
    if (overlap !== 'allow' && overlap !== 'skip') throw new UsageError(`--overlap '${overlap}': must be allow or skip`);
    const cap = spec.cap ?? 10;
    if (!Number.isInteger(cap) || cap < 1 || cap > 1000) throw new UsageError(`--cap ${cap}: must be an integer from 1 to 1000`);
    const args = spec.args ?? [];
    JSON.stringify(args);
    await this.dirs();
    const now = new Date().toISOString();
    const old = await this.get(spec.name).catch(() => null);
    const stored: StoredSchedule = {
      name: spec.name, expr: schedule.expression, tz: schedule.tz, fn: spec.fn, args, queue,
      retries: spec.retries ?? 0, timeoutMs: spec.timeoutMs ?? null, missed, cap, overlap,
      paused: old?.paused ?? false, created: old?.created ?? now, updated: now,
    };
    await this.replace(join(this.schedulesDir, `${spec.name}.json`), JSON.stringify({ version: SCHEDULE_VERSION, ...stored }, null, 2) + '\n');
    // A new schedule starts counting from now (by the spool's clock): no burst of past ticks.
    if (!old) await this.advance(spec.name, serverNowMs, true);
    return stored;
  }

  async get(name: string): Promise<StoredSchedule> {
    assertScheduleName(name);
    const path = join(this.schedulesDir, `${name}.json`);
    let text: string;
    try {
      text = await readRegularText(path, 1 << 20);
    } catch (err) {
      if (isGone(err)) throw Object.assign(new UsageError(`schedule '${name}': no such schedule (see zcq cron ls)`, 'ZCQ_NO_SCHEDULE'), { exitCode: 1 });
      throw err; // UnsafeFileError: "PATH: is a FIFO, not a regular file"
    }
    let v: StoredSchedule & { version?: number };
    try { v = JSON.parse(text); } catch { throw new SyntaxError(`${path}: not valid JSON`); }
    delete v.version;
    return v;
  }

  async list(): Promise<StoredSchedule[]> {
    const out: StoredSchedule[] = [];
    for (const f of (await listNames(this.schedulesDir)).sort()) {
      if (!isScheduleFileName(f)) continue;
      try { out.push(await this.get(f.slice(0, -5))); } catch { /* a torn or foreign file: skipped, doctor reports it */ }
    }
    return out;
  }

  /** Schedules with their last tick and next run (by the given server time). */
  async view(serverNowMs: number): Promise<ScheduleView[]> {
    const out: ScheduleView[] = [];
    for (const s of await this.list()) {
      const last = await this.lastTick(s.name);
      let next: string | null = null;
      try { next = s.paused ? null : nextTick(parseSchedule(s.expr, s.tz), Math.max(serverNowMs, last ?? 0)).toISOString(); } catch { /* stored expr no longer valid */ }
      out.push({ ...s, lastTick: last === null ? null : new Date(last).toISOString(), lastRun: await this.lastRun(s.name), nextRun: next });
    }
    return out;
  }

  /** The tick of the newest run marker (cron/runs/NAME/NAME@TICK.json; the names sort by time), or null. */
  private async lastRun(name: string): Promise<string | null> {
    let newest: Date | null = null;
    for (const f of await listNames(join(this.runsDir, name)).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue;
      const r = parseRunName(f.slice(0, -5));
      if (r && r.scheduleName === name && (newest === null || r.tick > newest)) newest = r.tick;
    }
    return newest === null ? null : newest.toISOString();
  }

  async remove(name: string): Promise<void> {
    await this.get(name);
    await unlink(join(this.schedulesDir, `${name}.json`));
    await unlink(join(this.stateDir, `${name}.json`)).catch(() => undefined);
    // The run markers stay (at most 100 small files, pruned by the schedule's own passes when a schedule of
    // this name is added again): a scheduler that read the schedule and its state before they went may
    // still be publishing the ticks it found due, and a marker is what makes a tick that already ran fail
    // with EEXIST there. Removed, a pass whose last tick was read before another scheduler advanced it
    // published that scheduler's tick again into a marker folder it made anew (the rig on GlusterFS replica
    // 2, three skewed schedulers: one per-second tick ran twice). Old markers name past ticks only: a schedule
    // added again under this name ticks from its own state (only `zcq cron ls`'s last run may show one).
  }

  async setPaused(name: string, paused: boolean, serverNowMs: number): Promise<StoredSchedule> {
    const s = await this.get(name);
    s.paused = paused;
    s.updated = new Date().toISOString();
    await this.replace(join(this.schedulesDir, `${name}.json`), JSON.stringify({ version: SCHEDULE_VERSION, ...s }, null, 2) + '\n');
    // Resuming does not replay the paused time.
    if (!paused) await this.advance(name, serverNowMs, false);
    return s;
  }

  async lastTick(name: string): Promise<number | null> {
    try {
      const v = JSON.parse(await readRegularText(join(this.stateDir, `${name}.json`))) as { lastTick?: string };
      const t = v.lastTick ? Date.parse(v.lastTick) : NaN;
      return Number.isFinite(t) ? t : null;
    } catch {
      return null;
    }
  }

  /** Move lastTick forward to `t` (never back; `init` also sets it when there is none). */
  private async advance(name: string, t: number, init: boolean): Promise<void> {
    const cur = await this.lastTick(name);
    if (cur !== null && cur >= t) return;
    if (cur === null && !init && !(await this.exists(name))) return;
    await this.replace(join(this.stateDir, `${name}.json`), JSON.stringify({ lastTick: new Date(t).toISOString() }) + '\n');
  }

  private async exists(name: string): Promise<boolean> {
    try { await this.get(name); return true; } catch { return false; }
  }

  /**
   * One scheduler pass: for every active schedule, create the job of each due tick. Safe to run from any
   * number of processes at once.
   */
  async runDue(clock: ServerClock, log: Logger, ownerTag: string): Promise<number> {
    let created = 0;
    // cron/ is group-writable in a shared spool: a co-user can rename cron/state away and put a symlink to
    // a folder of ours in its place; the lock, the state and the run markers would then be written there.
    // dirs() refuses a symlink at cron, cron/schedules, cron/state or cron/runs (EEXIST, "not a folder").
    await this.dirs();
    for (const s of await this.list()) {
      if (s.paused) continue;
      try {
        created += await this.runSchedule(s, clock, log, ownerTag);
      } catch (err) {
        log('cron.error', { schedule: s.name, error: (err as Error).message });
      }
    }
    return created;
  }

  private async runSchedule(s: StoredSchedule, clock: ServerClock, log: Logger, ownerTag: string): Promise<number> {
    const schedule = parseSchedule(s.expr, s.tz);
    const now = await clock.now();
    const last = await this.lastTick(s.name);
    const created = Date.parse(s.created);
    // Cheap test before taking the lock: is any tick due at all?
    if (nextTick(schedule, last ?? created).getTime() > now) return 0;
    const stateFile = join(this.stateDir, `${s.name}.json`);
    await this.dirs(); // again just before the lock: the pass may have taken a while (see runDue)
    let release: (() => Promise<void>) | undefined;
    try {
      release = await lockfile.lock(stateFile, {
        realpath: false, stale: 30_000, retries: { retries: 3, minTimeout: 20, maxTimeout: 200 },
        onCompromised: (err) => log('cron.lock.compromised', { schedule: s.name, error: err.message }),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') return 0; // another scheduler is on it
      throw err;
    }
    try {
      const lastNow = await this.lastTick(s.name);
      // No state: a schedule just added (add() writes its state right after the schedule), or one being
      // removed (remove() unlinks the schedule, then its state, then its run markers) by someone while this
      // pass holds what it listed before. Counting from the schedule's creation would publish its past ticks
      // again, whose markers may be gone by now: a tick run twice. Such a pass finds the schedule gone and
      // publishes nothing; a schedule whose state alone was lost counts from its newest run marker.
      if (lastNow === null && !(await this.exists(s.name))) return 0;
      const newestRun = lastNow === null ? await this.lastRun(s.name) : null;
      const nowMs = await clock.now();
      const start = lastNow ?? (newestRun === null ? created : Math.max(created, Date.parse(newestRun)));
      let due: Date[];
      let newLast: number | null;
      const oldest = ticksBetween(schedule, start, nowMs - RECENT_MS, 1);
      if (oldest.length === 0) {
        // Normal operation: every tick since the last one is recent jitter; run them all (capped).
        due = ticksBetween(schedule, start, nowMs, Math.max(s.cap, 100));
        newLast = due.length > 0 ? due[due.length - 1]!.getTime() : null;
      } else {
        // An outage: the schedule's missed-ticks policy decides.
        const r = dueTicks({ schedule, lastTick: lastNow, created, now: nowMs, missed: s.missed, cap: s.cap, graceMs: RECENT_MS });
        due = r.due;
        newLast = r.lastTick?.getTime() ?? null;
        if (r.dropped) log('cron.missed', { schedule: s.name, policy: s.missed, since: new Date(start).toISOString(), running: due.length });
      }
      let n = 0;
      for (const tick of due) {
        if (s.overlap === 'skip' && (await this.previousRunActive(s.name))) {
          log('cron.skip.overlap', { schedule: s.name, tick: tick.toISOString() });
          continue;
        }
        if (await this.createRun(s, tick, ownerTag, log)) n++;
      }
      if (newLast !== null) await this.advance(s.name, newLast, true);
      return n;
    } finally {
      await release?.().catch(() => undefined);
    }
  }

  /** Whether the schedule's latest run is still pending, deferred or running. */
  private async previousRunActive(name: string): Promise<boolean> {
    const runs = (await listNames(join(this.runsDir, name))).filter((r) => r.endsWith('.json')).sort();
    const latest = runs[runs.length - 1];
    if (!latest) return false;
    const locs = findExact(this.layout, latest.slice(0, -5));
    return locs.some((l) => l.state === 'pending' || l.state === 'claimed' || l.state === 'deferred');
  }

  /**
   * Create the job of (schedule, tick) through the put transition's putOnce: the run marker
   * cron/runs/<name>/<run>.json is created by link() (EEXIST: another scheduler won this tick), then linked
   * into pending/QUEUE/ under the run name as its id.
   */
  private async createRun(s: StoredSchedule, tick: Date, ownerTag: string, log: Logger): Promise<boolean> {
    const id = runName(s.name, tick);
    const dir = join(this.runsDir, s.name);
    const marker = join(dir, `${id}.json`);
    const job = newJob({ id, fn: s.fn, args: s.args, queue: s.queue, retries: s.retries, timeoutMs: s.timeoutMs });
    (job as Record<string, unknown>).schedule = { name: s.name, tick: tick.toISOString() };
    try {
      // A schedule removed since this pass listed it publishes nothing more (checked last, just before the
      // marker; a removal after this look lets this one tick through, never a tick that already ran: its
      // marker is kept, see remove).
      if (!(await this.exists(s.name))) return false;
      makeDir(this.layout.modes, this.runsDir);
      makeDir(this.layout.modes, dir);
      if (!putOnce(this.layout, s.queue, id, serializeJob(job), marker, this.durable)) return false;
    } catch (err) {
      // `zcq cron rm` removes runs/NAME (rm -r) after the schedule: a pass that read the schedule before
      // finds the marker's folder (or the marker itself, before its link into pending/) gone under it. The
      // tick's job is not made, which is what the removal asked for; an error only while the schedule is
      // still there.
      if (isGone(err) && !(await this.exists(s.name))) return false;
      throw err;
    }
    log('cron.run', { schedule: s.name, tick: tick.toISOString(), id, by: ownerTag });
    await this.pruneRuns(s.name, dir);
    return true;
  }

  /** Keep the newest 100 run markers of a schedule (older ticks are behind lastTick and never due again). */
  private async pruneRuns(name: string, dir: string): Promise<void> {
    const runs = (await listNames(dir)).filter((r) => r.endsWith('.json')).sort();
    for (const r of runs.slice(0, Math.max(0, runs.length - 100))) await unlink(join(dir, r)).catch(() => undefined);
    void name;
  }

  /** The scheduler duty a worker runs each poll (unless started with `--no-scheduler`). */
  static duty(): (w: SchedulerHost) => Promise<void> {
    let store: CronStore | undefined;
    return async (w) => {
      store ??= new CronStore(w.layout, w.durable);
      const n = await store.runDue(w.clock, w.log, w.id);
      if (n > 0) w.wake();
    };
  }
}
