/**
 * The library's front door: `Spool.open(dir)` and the operations every client needs — put, get, list,
 * retry, cancel, wait, status, runWorker. The CLI is a thin layer over this class; nothing here prints.
 */
import { readFile, unlink, watch as fsWatch } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { AmbiguousIdError, JobNotFoundError, PartialPutError, PutItemError, SpoolWriteError, UsageError, errnoOf, isGone } from '../errors.js';
import { FN_REF, MAX_DELAY_MS, QUEUE_NAME, newJob, parseBackoff, parseJob, serializeJob, JobFormatError, type Backoff, type InterruptPolicy, type Job } from '../job/format.js';
import { parseDuration, parseWhen } from '../schedule/time-input.js';
import { bucketOf, deferredName } from './deferred.js';
import { publish, PublishError, type Outgoing } from './batch.js';
import { MAX_JOB_BYTES, fsyncDir, listNames, moveNoClobber, readRegularFile, renameOrGone, writeFileDurable } from './fsops.js';
import { newJobId, newToken } from './ids.js';
import { defaultSpoolDir, ensureLayout, type JobState, type Layout } from './layout.js';
import { Lease } from './lease.js';
import { ALL_STATES, findExact, findPrefix, hasJobs, scanState, type Located } from './scan.js';
import { ServerClock } from './server-clock.js';
import { recoverDeadLeases, type RecoveryEvent } from './recovery.js';
import type { Worker, WorkerOptions } from '../worker/worker.js';

export interface OpenOptions {
  /** Create the layout when the folder is missing or empty (default true). */
  create?: boolean;
  /** fsync files and folders before reporting a job as put or finished (default true). */
  durable?: boolean;
}

export interface PutOptions {
  queue?: string;
  /** Further attempts after a failure (default 0). */
  retries?: number;
  /** Backoff between retries: a fixed delay ('10s' or ms) or the default exponential with jitter. */
  backoff?: string | number | Backoff;
  /** Time limit of one attempt: ms or '30s'. */
  timeout?: string | number | null;
  /** Do not start before this time (Date, ISO string with offset, or epoch ms). A past time means now. */
  at?: Date | string | number;
  /** Do not start before now + this duration ('90s', '15m', or ms), judged by the spool's clock. */
  in?: string | number;
  /** Fail with reason "deadline passed" if not started by then (Date/ISO), or within this duration of put. */
  deadline?: Date | string | number;
  onInterrupt?: InterruptPolicy;
  maxInterrupts?: number;
}

/** One job of `putMany`: its function and args, and any PutOptions of its own (they override the batch's). */
export interface PutItem extends PutOptions {
  fn: string;
  args?: unknown[];
}

/** A validated job, ready to publish: its file text and where it goes. */
interface Prepared extends Outgoing { job: Job }

/** putMany publishes at most this many jobs per group (write, fsync, rename, fsync the folders once). */
const PUT_GROUP = 1000;

export interface JobRecord extends Located {
  job?: Job;
  /** Set when the file could not be read as a job. */
  corrupt?: string;
}

export interface RetryResult { id: string; from: JobState | null; ok: boolean; why?: string }
export interface CancelResult { id: string; was: JobState | null; result: 'cancelled' | 'requested' | 'finished' | 'not found'; why?: string }

export interface Status {
  spool: string;
  counts: Record<JobState, number>;
  queues: Record<string, Partial<Record<JobState, number>>>;
  oldestPendingMs: number | null;
  workers: { id: string; host: string; pid: number; ageMs: number; alive: boolean; running?: number }[];
  quarantined: number;
}

function toMs(v: string | number, what: string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`${what}: ${v} is not a non-negative number of milliseconds`);
    return Math.round(v);
  }
  try {
    return parseDuration(v);
  } catch (err) {
    throw new UsageError(`${what} '${v}': ${(err as Error).message}`, 'ZCQ_BAD_DURATION');
  }
}

function toTime(v: Date | string | number, what: string): number {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'number') ms = v;
  else {
    try {
      ms = parseWhen(v, new Date()).getTime();
    } catch (err) {
      throw new UsageError(`${what} '${v}': ${(err as Error).message}`, 'ZCQ_BAD_TIME');
    }
  }
  return checkTime(ms, what);
}

/** A time a job file can hold (an ISO string): finite and within Date's range. */
function checkTime(ms: number, what: string): number {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new UsageError(`${what}: not a valid time`, 'ZCQ_BAD_TIME');
  return ms;
}

/** A timeout or backoff delay a worker accepts (at most MAX_DELAY_MS). */
function toDelayMs(v: string | number, what: string): number {
  const ms = toMs(v, what);
  if (ms > MAX_DELAY_MS) throw new UsageError(`${what}: at most 365 days`, 'ZCQ_BAD_DURATION');
  return ms;
}

export class Spool {
  private clockCache?: ServerClock;

  private constructor(readonly layout: Layout, readonly durable: boolean) {}

  static async open(dir: string = defaultSpoolDir(), opts: OpenOptions = {}): Promise<Spool> {
    const layout = await ensureLayout(dir, opts.create ?? true);
    return new Spool(layout, opts.durable ?? true);
  }

  get dir(): string { return this.layout.root; }

  /** The spool's clock (the file server's), shared by this process's callers. */
  async clock(): Promise<ServerClock> {
    if (!this.clockCache) {
      this.clockCache = new ServerClock(this.layout.tmp, `client-${hostname()}-${process.pid}-${newToken()}`);
      await this.clockCache.sample();
      disposeAtExit(this.clockCache);
    }
    return this.clockCache;
  }

  /** Release what this handle holds (its clock probe in tmp/). The spool stays usable: it reopens them on demand. */
  async close(): Promise<void> {
    const clock = this.clockCache;
    if (!clock) return;
    this.clockCache = undefined;
    openClocks.delete(clock);
    await clock.dispose();
  }

  /** Validate, write in tmp/, fsync, publish into pending/ (or deferred/). Returns the job as stored. */
  async put(fn: string, args: unknown[] = [], opts: PutOptions = {}): Promise<Job> {
    const p = await this.prepare(fn, args, opts, this.serverNow());
    await this.publishJobs([p]);
    return p.job;
  }

  /**
   * Put many jobs at once (BullMQ's `addBulk`). Each item is `{fn, args?, ...PutOptions}`; its own options
   * override `common` (an item's own `at` or `in` replaces both of common's). Every item is validated as
   * `put` would before anything is written: an invalid one throws PutItemError (a UsageError with its
   * `index`) and nothing is written. `in` and relative deadlines count from one reading of the spool's
   * clock for the whole batch. Jobs are then published in groups of 1,000, in order: all files of a group
   * are written in tmp/ and fsynced concurrently, renamed into pending/ (or their deferred/ bucket), and
   * each target folder is fsynced once. Resolves with the jobs as stored, in the order of `items`.
   *
   * On a write failure (disk full, read-only spool) jobs already renamed into place are NOT rolled back —
   * a worker may have claimed and started them already. Instead: if nothing was published, SpoolWriteError
   * (as `put`); otherwise PartialPutError, whose `enqueued` lists the ids that were: always the first
   * `enqueued.length` items. The others were not written; their temporary files are removed.
   */
  async putMany(items: readonly PutItem[], common: PutOptions = {}): Promise<Job[]> {
    if (!Array.isArray(items)) throw new UsageError('putMany: items must be an array of {fn, args?, ...options}');
    const now = this.serverNow();
    const prepared: Prepared[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      try {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new UsageError('must be an object {fn, args?, ...options}');
        prepared.push(await this.prepare(item.fn, item.args ?? [], withCommon(item, common), now));
      } catch (err) {
        if (err instanceof UsageError) throw new PutItemError(i, err.message, err.code);
        throw err;
      }
    }
    await this.publishJobs(prepared);
    return prepared.map((p) => p.job);
  }

  /** The spool clock's "now", read at most once per call of the getter's maker: one reading for a put or a batch. */
  private serverNow(): () => Promise<number> {
    let t: number | undefined;
    return async () => (t ??= await (await this.clock()).now());
  }

  /** Check a job's fields and build it (the one validator of put and putMany); no I/O but the spool clock for --in. */
  private async prepare(fn: string, args: unknown[], opts: PutOptions, serverNow: () => Promise<number>): Promise<Prepared> {
    if (typeof fn !== 'string' || !FN_REF.test(fn)) throw new UsageError(`function '${fn}': must be 'module#export', e.g. './jobs.mjs#render'`, 'ZCQ_BAD_FN');
    if (!Array.isArray(args)) throw new UsageError('args: must be an array');
    const queue = opts.queue ?? 'default';
    if (!QUEUE_NAME.test(queue)) throw new UsageError(`--queue '${queue}': use letters, digits, '.', '_' or '-' (at most 64)`);
    const retries = opts.retries ?? 0;
    if (!Number.isInteger(retries) || retries < 0 || retries > 10_000) throw new UsageError(`--retries ${retries}: must be an integer from 0 to 10000`);
    const maxInterrupts = opts.maxInterrupts;
    if (maxInterrupts !== undefined && (!Number.isInteger(maxInterrupts) || maxInterrupts < 0 || maxInterrupts > 10_000)) throw new UsageError(`--max-interrupts ${maxInterrupts}: must be an integer from 0 to 10000`);
    if (opts.onInterrupt !== undefined && opts.onInterrupt !== 'retry' && opts.onInterrupt !== 'fail') throw new UsageError(`--on-interrupt '${opts.onInterrupt}': must be 'retry' or 'fail'`);
    let timeoutMs: number | null = null;
    if (opts.timeout !== undefined && opts.timeout !== null) {
      timeoutMs = toDelayMs(opts.timeout, '--timeout');
      if (timeoutMs <= 0) throw new UsageError('--timeout: must be more than zero');
    }
    let backoff: Backoff | undefined;
    if (opts.backoff !== undefined) {
      if (typeof opts.backoff === 'object' && opts.backoff !== null) {
        try { backoff = parseBackoff(opts.backoff); } catch (err) { throw new UsageError(`--backoff: ${(err as Error).message}`); }
      } else { const ms = toDelayMs(opts.backoff, '--backoff'); backoff = { kind: 'fixed', baseMs: ms, maxMs: ms }; }
    }
    let dueMs: number | null = null;
    if (opts.at !== undefined && opts.in !== undefined) throw new UsageError('--at and --in: give one, not both');
    if (opts.at !== undefined) dueMs = toTime(opts.at, '--at');
    if (opts.in !== undefined) dueMs = checkTime((await serverNow()) + toMs(opts.in, '--in'), '--in');
    let deadline: string | null = null;
    if (opts.deadline !== undefined) {
      const d = typeof opts.deadline === 'string' && /^\d+(\.\d+)?(ms|s|m|h|d)/.test(opts.deadline)
        ? (dueMs ?? (await serverNow())) + toMs(opts.deadline, '--deadline')
        : toTime(opts.deadline, '--deadline');
      deadline = new Date(checkTime(d, '--deadline')).toISOString();
    }
    let text: string;
    const id = newJobId();
    const job = newJob({ id, fn, args, queue, retries, backoff, timeoutMs, deadline, notBefore: dueMs !== null ? new Date(dueMs).toISOString() : null, onInterrupt: opts.onInterrupt, maxInterrupts });
    try {
      text = serializeJob(job);
    } catch (err) {
      throw new UsageError(`args: not JSON-serialisable (${(err as Error).message})`);
    }
    if (Buffer.byteLength(text) > MAX_JOB_BYTES) throw new UsageError(`args: the job would be ${Buffer.byteLength(text)} bytes, over the ${MAX_JOB_BYTES}-byte limit; pass a file path instead of the data`);
    if (dueMs !== null && dueMs > (await serverNow())) {
      return { job, text, id, dir: join(this.layout.deferred, bucketOf(dueMs)), name: deferredName(dueMs, id), makeDir: true };
    }
    return { job, text, id, dir: this.layout.pending, name: `${id}.json` };
  }

  /** Publish validated jobs in groups of PUT_GROUP; a failure is SpoolWriteError (none published) or PartialPutError. */
  private async publishJobs(prepared: Prepared[]): Promise<void> {
    for (let i = 0; i < prepared.length; i += PUT_GROUP) {
      try {
        await publish(this.layout.tmp, prepared.length <= PUT_GROUP ? prepared : prepared.slice(i, i + PUT_GROUP), this.durable);
      } catch (err) {
        if (!(err instanceof PublishError)) throw err;
        const published = i + err.published;
        if (published === 0) throw new SpoolWriteError(err.path, err.cause);
        throw new PartialPutError(prepared.slice(0, published).map((p) => p.id), prepared.length, err.path, err.cause);
      }
    }
  }

  /** Resolve an id or unique id prefix to where the job is. */
  async locate(idOrPrefix: string): Promise<Located> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(idOrPrefix)) throw new UsageError(`job id '${idOrPrefix}': ids are made of [A-Za-z0-9._@-]`);
    const exact = await findExact(this.layout, idOrPrefix);
    if (exact.length > 0) return pickCurrent(exact);
    const byPrefix = await findPrefix(this.layout, idOrPrefix);
    const ids = new Set(byPrefix.map((l) => l.id));
    if (ids.size === 0) throw new JobNotFoundError(idOrPrefix);
    if (ids.size > 1) throw new AmbiguousIdError(idOrPrefix, ids.size);
    return pickCurrent(byPrefix);
  }

  /** Read a job where it is now (retrying once if it moved while we looked). */
  async get(idOrPrefix: string): Promise<JobRecord> {
    for (let i = 0; ; i++) {
      const loc = await this.locate(idOrPrefix);
      try {
        return await this.readAt(loc);
      } catch (err) {
        if (!isGone(err) || i >= 5) throw err;
      }
    }
  }

  private async readAt(loc: Located): Promise<JobRecord> {
    const r = await readRegularFile(loc.path, 64 * MAX_JOB_BYTES);
    if ('bad' in r) return { ...loc, corrupt: r.bad };
    try {
      return { ...loc, job: parseJob(r.text, loc.id) };
    } catch (err) {
      if (err instanceof JobFormatError) return { ...loc, corrupt: err.message };
      throw err;
    }
  }

  /** Jobs in the given states (all by default), oldest first, filtered by queue and fn. */
  async list(filter: { states?: JobState[]; queue?: string; fn?: string; limit?: number } = {}): Promise<JobRecord[]> {
    const states = filter.states && filter.states.length > 0 ? filter.states : ALL_STATES;
    const out: JobRecord[] = [];
    for (const state of states) {
      for await (const loc of scanState(this.layout, state)) {
        let rec: JobRecord;
        try { rec = await this.readAt(loc); } catch (err) { if (isGone(err)) continue; throw err; }
        if (filter.queue && rec.job?.queue !== filter.queue) continue;
        if (filter.fn && !(rec.job?.fn === filter.fn || rec.job?.fn.includes(filter.fn))) continue;
        out.push(rec);
      }
    }
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return filter.limit ? out.slice(0, filter.limit) : out;
  }

  /**
   * Put failed (or done, or deferred) jobs back in pending/ with a fresh set of attempts. The new content
   * is published with link() (never over an existing pending/<id>.json) before the old file is removed,
   * so a crash in between leaves the job in two folders (doctor repairs it), never in none.
   */
  async retry(idsOrPrefixes: string[]): Promise<RetryResult[]> {
    const out: RetryResult[] = [];
    for (const ref of idsOrPrefixes) {
      let rec: JobRecord;
      try { rec = await this.get(ref); } catch (err) { out.push({ id: ref, from: null, ok: false, why: (err as Error).message }); continue; }
      if (rec.state === 'pending' || rec.state === 'claimed') { out.push({ id: rec.id, from: rec.state, ok: false, why: `job ${rec.id} is ${rec.state}, not finished` }); continue; }
      if (!rec.job) { out.push({ id: rec.id, from: rec.state, ok: false, why: `job ${rec.id}: ${rec.corrupt}` }); continue; }
      const job = rec.job;
      job.attempts = 0; job.interrupts = 0; job.deadline = null; job.notBefore = null;
      delete job.finished;
      const tmp = join(this.layout.tmp, `${job.id}.${newToken()}.json`);
      await writeFileDurable(tmp, serializeJob(job), this.durable);
      let ok = false;
      try {
        ok = await moveNoClobber(tmp, join(this.layout.pending, `${job.id}.json`));
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        if (errnoOf(err) === 'EEXIST') { out.push({ id: job.id, from: rec.state, ok: false, why: `job ${job.id} is already pending` }); continue; }
        throw err;
      }
      if (ok) {
        if (this.durable) await fsyncDir(this.layout.pending);
        await unlink(rec.path).catch((err) => { if (!isGone(err)) throw err; });
      }
      out.push({ id: job.id, from: rec.state, ok });
    }
    return out;
  }

  async retryAllFailed(): Promise<RetryResult[]> {
    const ids: string[] = [];
    for await (const loc of scanState(this.layout, 'failed')) ids.push(loc.id);
    return this.retry(ids);
  }

  /**
   * Cancel jobs. A pending or deferred job is taken under a short client lease (so a crash mid-way hands
   * it back rather than losing it) and moved to failed/ with reason "cancelled". A running job gets a
   * request file in cancel/; its worker aborts the job's AbortSignal and records the cancel.
   */
  async cancel(idsOrPrefixes: string[]): Promise<CancelResult[]> {
    const out: CancelResult[] = [];
    let lease: Lease | undefined;
    try {
      for (const ref of idsOrPrefixes) {
        let loc: Located;
        try { loc = await this.locate(ref); } catch (err) { out.push({ id: ref, was: null, result: 'not found', why: (err as Error).message }); continue; }
        if (loc.state === 'done' || loc.state === 'failed') { out.push({ id: loc.id, was: loc.state, result: 'finished' }); continue; }
        if (loc.state === 'claimed') {
          await this.requestCancel(loc.id);
          out.push({ id: loc.id, was: loc.state, result: 'requested' });
          continue;
        }
        lease ??= await Lease.acquire(this.layout, { kind: 'client', leaseMs: 60_000 }, this.durable);
        if (!lease.claim(loc.path, loc.id)) {
          // It moved under us (claimed by a worker a moment ago): ask its worker instead.
          await this.requestCancel(loc.id);
          out.push({ id: loc.id, was: 'claimed', result: 'requested' });
          continue;
        }
        const r = await readRegularFile(lease.pathOf(loc.id));
        let job: Job;
        try {
          if ('bad' in r) throw new JobFormatError(r.bad);
          job = parseJob(r.text, loc.id);
        } catch {
          await renameOrGone(lease.pathOf(loc.id), join(this.layout.pending, `${loc.id}.json`));
          out.push({ id: loc.id, was: loc.state, result: 'not found', why: 'unreadable job file left for the worker to quarantine' });
          continue;
        }
        const now = new Date().toISOString();
        job.failure = { name: 'Cancelled', message: `cancelled by ${hostname()} pid ${process.pid}`, reason: 'cancelled' };
        job.finished = now;
        job.history.push({ attempt: job.attempts, worker: lease.id, host: hostname(), pid: process.pid, start: now, end: now, outcome: 'cancelled' });
        lease.release(job, join(this.layout.failed, `${job.id}.json`));
        out.push({ id: job.id, was: loc.state, result: 'cancelled' });
      }
    } finally {
      await lease?.end();
    }
    return out;
  }

  /** Ask the worker running `id` to cancel it: a request file its heartbeat reads. */
  private async requestCancel(id: string): Promise<void> {
    await writeFileDurable(join(this.layout.cancel, `${id}.${newToken()}`), new Date().toISOString() + '\n', this.durable);
  }

  /** Block until every job is in done/ or failed/; resolves with their records. */
  async wait(idsOrPrefixes: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<JobRecord[]> {
    const ids: string[] = [];
    for (const ref of idsOrPrefixes) ids.push((await this.locate(ref)).id);
    const results = new Map<string, JobRecord>();
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
    const ac = new AbortController();
    const wake: { fn?: () => void } = {};
    const watchers = [this.layout.done, this.layout.failed].map((dir) => (async () => {
      try { for await (const _ of fsWatch(dir, { signal: ac.signal })) wake.fn?.(); } catch { /* no events here: polling covers it */ }
    })());
    try {
      let pause = 20;
      for (;;) {
        for (const id of ids) {
          if (results.has(id)) continue;
          for (const state of ['done', 'failed'] as const) {
            const path = join(this.layout[state], `${id}.json`);
            try {
              const rec = await this.readAt({ id, state, path });
              results.set(id, rec);
              break;
            } catch (err) { if (!isGone(err)) throw err; }
          }
        }
        if (results.size === ids.length) return ids.map((id) => results.get(id)!);
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
        if (Date.now() >= deadline) {
          const left = ids.filter((id) => !results.has(id));
          throw Object.assign(new UsageError(`wait: timed out; not finished: ${left.join(' ')}`, 'ZCQ_WAIT_TIMEOUT'), { exitCode: 1 });
        }
        await new Promise<void>((res) => { const t = setTimeout(res, Math.min(pause, Math.max(1, deadline - Date.now()))); wake.fn = () => { clearTimeout(t); res(); }; });
        pause = Math.min(pause * 2, 1000);
      }
    } finally {
      ac.abort();
      await Promise.allSettled(watchers);
    }
  }

  /** Counts per state and queue, the oldest pending job's age, the workers and whether they are alive. */
  async status(opts: { maxRead?: number } = {}): Promise<Status> {
    const maxRead = opts.maxRead ?? 20_000;
    const counts = { pending: 0, deferred: 0, claimed: 0, done: 0, failed: 0 } as Record<JobState, number>;
    const queues: Status['queues'] = {};
    let oldest: Located | null = null;
    for (const state of ALL_STATES) {
      for await (const loc of scanState(this.layout, state)) {
        counts[state]++;
        if (state === 'pending' && (oldest === null || loc.id < oldest.id)) oldest = loc;
        if (counts[state] <= maxRead && state !== 'done') {
          try {
            const r = await readRegularFile(loc.path);
            if (!('bad' in r)) {
              const q = (JSON.parse(r.text) as { queue?: unknown }).queue;
              const name = typeof q === 'string' ? q : 'default';
              (queues[name] ??= {})[state] = ((queues[name] ??= {})[state] ?? 0) + 1;
            }
          } catch { /* moved or torn: counted, not classified */ }
        }
      }
    }
    const clock = await this.clock();
    // Age by the file server's clock (the file's mtime), not by comparing our clock with the putter's.
    const oldestPendingMs = oldest ? await clock.ageOf(oldest.path) : null;
    const workers: Status['workers'] = [];
    for (const name of await listNames(this.layout.workers)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const path = join(this.layout.workers, name);
      const age = await clock.ageOf(path);
      if (age === null) continue;
      let info: { host?: string; pid?: number; leaseMs?: number; kind?: string; running?: number } = {};
      try { info = JSON.parse(await readFile(path, 'utf8')); } catch { /* torn: age still counts */ }
      if (info.kind === 'client') continue;
      workers.push({ id: name.slice(0, -5), host: String(info.host ?? '?'), pid: Number(info.pid ?? 0), ageMs: Math.round(age), alive: age <= (info.leaseMs ?? 30_000), running: info.running });
    }
    const quarantined = (await listNames(this.layout.quarantine)).filter((n) => !n.endsWith('.reason')).length;
    return { spool: this.layout.root, counts, queues, oldestPendingMs: oldestPendingMs === null ? null : Math.max(0, Math.round(oldestPendingMs)), workers, quarantined };
  }

  /** The last progress annotation a job published, or null. */
  async progress(idOrPrefix: string): Promise<{ at: string; attempt: number; value: unknown } | null> {
    const { id } = await this.locate(idOrPrefix);
    const r = await readRegularFile(join(this.layout.progress, `${id}.json`)).catch((err) => { if (isGone(err)) return null; throw err; });
    if (!r || 'bad' in r) return null;
    try { return JSON.parse(r.text); } catch { return null; }
  }

  private async cronStore(): Promise<import('../schedule/store.js').CronStore> {
    const { CronStore } = await import('../schedule/store.js');
    return new CronStore(this.layout, this.durable);
  }

  /** Add (or replace) a cron schedule stored in the spool; every worker picks it up without restart. */
  async addSchedule(spec: import('../schedule/store.js').ScheduleSpec): Promise<import('../schedule/store.js').StoredSchedule> {
    return (await this.cronStore()).add(spec, await (await this.clock()).now());
  }

  /** Schedules with their last tick and next run time. */
  async listSchedules(): Promise<import('../schedule/store.js').ScheduleView[]> {
    return (await this.cronStore()).view(await (await this.clock()).now());
  }

  async removeSchedule(name: string): Promise<void> { return (await this.cronStore()).remove(name); }

  async pauseSchedule(name: string): Promise<void> { await (await this.cronStore()).setPaused(name, true, await (await this.clock()).now()); }

  /** Resume a paused schedule from now: ticks that passed while it was paused do not run. */
  async resumeSchedule(name: string): Promise<void> { await (await this.cronStore()).setPaused(name, false, await (await this.clock()).now()); }

  /** One recovery pass by hand (`zcq recover`): settle every expired lease's jobs. */
  async recover(): Promise<RecoveryEvent[]> {
    const events: RecoveryEvent[] = [];
    const lease = await Lease.acquire(this.layout, { kind: 'client', leaseMs: 60_000 }, this.durable);
    try {
      await recoverDeadLeases(this.layout, await this.clock(), lease, (e) => events.push(e));
    } finally {
      await lease.end();
    }
    return events;
  }

  /** Start a worker on this spool. Resolves once it runs; `await worker.done` for its end. */
  async runWorker(opts: WorkerOptions = {}): Promise<Worker> {
    const { Worker } = await import('../worker/worker.js');
    const w = new Worker(this, opts);
    await w.start();
    return w;
  }

  /** Whether any job is pending. O(1) in the number of pending jobs. */
  async hasPending(): Promise<boolean> { return hasJobs(this.layout.pending); }
}

/** A putMany item's options over the batch's common ones. An item's own `at` or `in` replaces both of common's. */
function withCommon(item: PutItem, common: PutOptions): PutOptions {
  const o: Record<string, unknown> = { ...common };
  if (item.at !== undefined || item.in !== undefined) { delete o.at; delete o.in; }
  for (const [k, v] of Object.entries(item)) if (v !== undefined && k !== 'fn' && k !== 'args') o[k] = v;
  return o as PutOptions;
}

/**
 * Clock probes of open Spool handles, removed at process exit by one listener: a listener per handle
 * made a test suite with many spools trip Node's MaxListenersExceededWarning.
 */
const openClocks = new Set<ServerClock>();
function disposeAtExit(clock: ServerClock): void {
  if (!exitHooked) { exitHooked = true; process.once('exit', () => { for (const c of openClocks) c.disposeSync(); }); }
  openClocks.add(clock);
}
let exitHooked = false;

function pickCurrent(locs: Located[]): Located {
  // In the instant of a link+unlink move a job is in two folders; the later state is the truth. Every such
  // move publishes into pending/ or deferred/ (retry, recovery, backoff) or out of a dead lease into
  // done/failed (recovery), so pending/deferred beat done/failed, which beat claimed.
  const order: JobState[] = ['pending', 'deferred', 'done', 'failed', 'claimed'];
  return [...locs].sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state))[0]!;
}
