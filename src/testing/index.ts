/**
 * Helpers for testing code that uses zcq (`import { createTestSpool } from 'zcq/testing'`), in the spirit of
 * zc.async's testing module: a real spool in a fresh temp folder, a real in-process worker run until the
 * spool is idle, and readers for what the jobs left behind. Invariants:
 * - nothing is faked: no mocked file system, no fake clock, no copy of a spool rule. Jobs move only through
 *   the Spool/Worker API and src/spool's own moves; `advanceDeferred` is the worker's `promoteDue` given a
 *   later "now", so a test sees exactly the states a production spool would;
 * - everything a TestSpool starts is undone by `cleanup()` (workers stopped, temp folder removed), and
 *   `cleanup()` is safe to call twice or while a run is in progress.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CorruptJobError, UsageError, ZcqError } from '../errors.js';
import type { Job } from '../job/format.js';
import { parseDuration } from '../schedule/time-input.js';
import { promoteDue } from '../spool/transitions/promote.js';
import { MAX_DUE_MS } from '../spool/names.js';
import type { JobState } from '../spool/layout.js';
import { Spool, type JobRecord } from '../client/spool.js';
import type { Worker, WorkerOptions, WorkerSummary } from '../worker/worker.js';

export interface TestSpoolOptions {
  /** fsync files and folders (default false: a test spool need not survive a power cut, and is faster). */
  durable?: boolean;
  /** Folder to make the temp folder in (default `os.tmpdir()`); e.g. a mount to test on. */
  parentDir?: string;
}

export interface RunUntilIdleOptions extends Omit<WorkerOptions, 'exitWhenIdle' | 'handleSignals'> {
  /** Give up after this long (default 30 000 ms): the worker is stopped and NotIdleError names the open jobs. */
  timeoutMs?: number;
  /**
   * When the worker is idle but jobs wait in deferred/ (retry backoffs, `in`/`at`), make them due with
   * `advanceDeferred()` and run again, until none are left (default false: deferred jobs stay deferred).
   */
  advanceDeferred?: boolean;
}

/** A job that has finished: in done/ (with `job.result`) or failed/ (with `job.failure`). */
export type FinishedJob = JobRecord & { state: 'done' | 'failed'; job: Job };

/** A job the spool still had to run when `runUntilIdle` gave up. */
export interface OpenJob { id: string; state: JobState; fn?: string; attempts?: number }

/** `runUntilIdle` timed out: jobs were still pending, claimed or due. */
export class NotIdleError extends ZcqError {
  constructor(readonly timeoutMs: number, readonly open: OpenJob[], readonly summary: WorkerSummary) {
    const shown = open.slice(0, 20).map((j) => `${j.id} (${j.state}${j.fn ? `, ${j.fn}` : ''}${j.attempts !== undefined ? `, ${j.attempts} attempts` : ''})`);
    const more = open.length > shown.length ? ` and ${open.length - shown.length} more` : '';
    super('ZCQ_NOT_IDLE', `runUntilIdle: the spool was not idle after ${timeoutMs} ms; still open: ${shown.join(', ')}${more}`, 1);
  }
}

/** `result(id)` was asked for a job that is not in done/ or failed/. */
export class JobNotFinishedError extends ZcqError {
  constructor(readonly id: string, readonly state: JobState) {
    super('ZCQ_NOT_FINISHED', `job ${id} has not finished: it is ${state}; run the worker first (runUntilIdle) or wait for it`, 1);
  }
}

/** Later than any due time a deferred file name can hold (13 digits: year 2286): "everything is due". */
const END_OF_TIME = MAX_DUE_MS;

function emptySummary(): WorkerSummary {
  return { done: 0, failed: 0, retried: 0, recovered: 0, quarantined: 0, lostLease: 0 };
}

function addSummary(total: WorkerSummary, s: WorkerSummary): void {
  for (const k of Object.keys(total) as (keyof WorkerSummary)[]) total[k] += s[k];
}

/** A real spool in its own temp folder, with a worker to run and readers to check. Make one with createTestSpool(). */
export class TestSpool {
  private readonly workers = new Set<Worker>();
  private closing?: Promise<void>;

  constructor(
    /** The temp folder (removed by cleanup); the spool is `spool/` in it, the rest is free for a test's files. */
    readonly tempDir: string,
    readonly spool: Spool,
  ) {}

  /**
   * Run a worker in this process until nothing is pending, due or claimed; resolves with what it did.
   * Deferred jobs not yet due do not keep it running (see `advanceDeferred`). Defaults suit tests:
   * `pollMs` 20; other options are the Worker's.
   */
  async runUntilIdle(opts: RunUntilIdleOptions = {}): Promise<WorkerSummary> {
    const { timeoutMs = 30_000, advanceDeferred = false, ...workerOpts } = opts;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`runUntilIdle: timeoutMs ${timeoutMs} must be a positive number of milliseconds`);
    const deadline = Date.now() + timeoutMs;
    const total = emptySummary();
    for (;;) {
      const worker = await this.startWorker({ pollMs: 20, ...workerOpts, exitWhenIdle: true });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((res) => { timer = setTimeout(() => res('timeout'), Math.max(0, deadline - Date.now())); });
      let outcome: WorkerSummary | 'timeout';
      try {
        outcome = await Promise.race([worker.done, timedOut]);
      } finally {
        clearTimeout(timer);
      }
      if (outcome === 'timeout') {
        await worker.stop(0); // running jobs are aborted and go back to pending/
        this.workers.delete(worker);
        addSummary(total, worker.summary);
        const open = await this.openJobs();
        if (open.length > 0) throw new NotIdleError(timeoutMs, open, total);
        return total; // it finished as the time ran out
      }
      this.workers.delete(worker);
      addSummary(total, outcome);
      if (!advanceDeferred || (await this.advanceDeferred()) === 0) return total;
      if (Date.now() >= deadline) throw new NotIdleError(timeoutMs, await this.openJobs(), total);
    }
  }

  /**
   * Start a worker in the background (for tests that use `spool.wait` or watch jobs run); `cleanup()`
   * stops it. `runUntilIdle` is usually what a test wants.
   */
  async startWorker(opts: Omit<WorkerOptions, 'handleSignals'> = {}): Promise<Worker> {
    if (this.closing) throw new UsageError(`test spool ${this.tempDir}: cleaned up; create another with createTestSpool()`);
    const worker = await this.spool.runWorker({ pollMs: 20, ...opts, handleSignals: false });
    this.workers.add(worker);
    if (this.closing) await worker.stop(0); // cleanup() began while it started
    void worker.done.then(() => this.workers.delete(worker), () => this.workers.delete(worker));
    return worker;
  }

  /**
   * Make deferred jobs due now by moving them into pending/, with the worker's own move (`promoteDue`).
   * No argument: every deferred job. `by` ('90m', or ms): only the jobs due within that long from now, as if
   * that much time had passed. Resolves with the number of jobs moved. Clocks are not touched.
   */
  async advanceDeferred(by?: string | number): Promise<number> {
    let now = END_OF_TIME;
    if (by !== undefined) {
      const ms = typeof by === 'number' ? by : parseDuration(by);
      if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`advanceDeferred: ${by} is not a non-negative duration`);
      now = (await (await this.spool.clock()).now()) + ms;
    }
    let total = 0;
    for (;;) {
      const n = (await promoteDue(this.spool.layout, now, this.spool.durable)).promoted; // at most 1000 a queue a pass
      if (n === 0) return total;
      total += n;
    }
  }

  /** The finished job: throws JobNotFinishedError if it is not in done/ or failed/ (JobNotFoundError if nowhere). */
  async result(id: string): Promise<FinishedJob> {
    const rec = await this.spool.get(id);
    if (rec.state !== 'done' && rec.state !== 'failed') throw new JobNotFinishedError(rec.id, rec.state);
    if (!rec.job) throw new CorruptJobError(rec.path, rec.corrupt ?? 'unreadable');
    return rec as FinishedJob;
  }

  /** The records of the jobs in a state, oldest first. */
  async jobsIn(state: JobState): Promise<JobRecord[]> {
    return this.spool.list({ states: [state] });
  }

  /** The ids of the jobs in a state, oldest first. */
  async idsIn(state: JobState): Promise<string[]> {
    return (await this.jobsIn(state)).map((r) => r.id);
  }

  /** Stop every worker this TestSpool started (running jobs are aborted), then remove the temp folder. */
  cleanup(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.workers].map((w) => w.stop(0)));
      this.workers.clear();
      await rm(this.tempDir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return this.closing;
  }

  /** Jobs that keep the spool from being idle: pending, claimed, or deferred and due by the spool's clock. */
  private async openJobs(): Promise<OpenJob[]> {
    const now = await (await this.spool.clock()).now();
    const recs = await this.spool.list({ states: ['pending', 'claimed', 'deferred'] });
    return recs
      .filter((r) => r.state !== 'deferred' || (r.dueMs ?? 0) <= now)
      .map((r) => ({ id: r.id, state: r.state, fn: r.job?.fn, attempts: r.job?.attempts }));
  }
}

/** A fresh spool in a new temp folder (mkdtemp). Call `cleanup()` when done (e.g. in afterEach). */
export async function createTestSpool(opts: TestSpoolOptions = {}): Promise<TestSpool> {
  const tempDir = await mkdtemp(join(opts.parentDir ?? tmpdir(), 'zcq-test-'));
  try {
    const spool = await Spool.init(join(tempDir, 'spool'), { durable: opts.durable ?? false });
    return new TestSpool(tempDir, spool);
  } catch (err) {
    await rm(tempDir, { recursive: true, force: true });
    throw err;
  }
}
