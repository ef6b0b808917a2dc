/**
 * The library's front door: `Spool.open(dir)` and what every client does — put, find, list, retry, cancel,
 * hold, release, pause, wait, status, recover, runWorker. Each state change is a call of its transition in
 * src/spool/transitions/; this class finds the job and reports. The CLI is a thin layer over it; nothing
 * here prints.
 */
import { watch as fsWatch } from 'node:fs/promises';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { AmbiguousIdError, JobNotFoundError, PartialPutError, PutItemError, SpoolWriteError, UsageError, isGone } from '../errors.js';
import { parseJob, serializeJob, JobFormatError, QUEUE_NAME, type Job } from '../job/format.js';
import { doctor, type Problem } from '../spool/doctor.js';
import { MAX_JOB_BYTES, fsyncDirSync, isRealDir, readRegularFileSync, renameOrGoneSync, unlinkQuietly, createExclusiveSync, writeReplaceSync } from '../spool/fsops.js';
import { newToken } from '../spool/ids.js';
import { PRIORITY_FOLDERS } from '../spool/names.js';
import { defaultSpoolDir, initSpool, openLayout, queueDir, type JobState, type Layout } from '../spool/layout.js';
import { Lease, judgeLease, type LeaseJudgement } from '../spool/lease.js';
import { makeDir } from '../spool/modes.js';
import { listQueues, pausedQueues } from '../spool/queues.js';
import { ALL_STATES, findExact, findPrefix, hasJobs, pickCurrent, scanState, type Located } from '../spool/scan.js';
import { ServerClock } from '../spool/server-clock.js';
import { cancelJob, dropCancelRequests, requestCancel } from '../spool/transitions/cancel.js';
import { holdJob, releaseJob } from '../spool/transitions/hold.js';
import { publish, PublishError } from '../spool/transitions/put.js';
import type { PruneReport, PruneRule } from '../spool/transitions/prune.js';
import { applyRetention, readRetention } from '../spool/retention.js';
import { recoverDeadLeases, type RecoveryEvent } from '../spool/transitions/recover.js';
import { reopenPostprocess, retryJob } from '../spool/transitions/retry.js';
import { addChildren, addEdges, settleWaiting, sweepWaiting, type DepState } from '../spool/transitions/release.js';
import { forgetArrival, groupComplete, reopenStalePostprocesses } from '../spool/transitions/arrive.js';
import { callbackId, forgetCallbacks } from '../spool/transitions/callback.js';
import { buildComposite, setCompositeOps, type CompositeHandle, type CompositeOptions } from './composite.js';
import type { Worker, WorkerOptions } from '../worker/worker.js';
import { prepareJob, withCommon, type Prepared, type PutItem, type PutOptions } from './prepare.js';
import { Retention } from './retention.js';
import { WorkerConfig } from './config.js';
import { Quotas } from './quota.js';
import { Rates } from './rate.js';
import { CONFIG_KEYS, type EffectiveSettings, type SettingSources } from '../spool/config.js';

export type { PutItem, PutOptions } from './prepare.js';

export interface OpenOptions {
  /** Create the spool when the folder is missing or empty (default false: only `Spool.init` and `zcq init` create one). */
  create?: boolean;
  /** fsync files and folders before reporting a job as put or finished (default true). */
  durable?: boolean;
}

export interface InitOptions {
  /** Make the spool shared by this Unix group (setgid, group-writable folders). */
  group?: string | null;
  durable?: boolean;
}

/** The shortest rest between two looks of `wait` at the jobs it waits for. */
const MIN_RESCAN_MS = 20;

/** putMany publishes at most this many jobs per group (write, fsync, rename, fsync the folders once). */
const PUT_GROUP = 1000;

export interface JobRecord extends Located {
  job?: Job;
  /** Set when the file could not be read as a job. */
  corrupt?: string;
}

/** spool.links(id): a job's composite relations. */
export interface JobLinks {
  id: string;
  state: JobState;
  parent: string | null;
  after: string[];
  afterAnyOutcome: boolean;
  /** The postprocess of the composite this job returned and waits for. */
  awaits: string | null;
  group: { gid: string; kind: 'parallel' | 'serial'; index: number; size: number; postprocess: string } | null;
  postprocessOf: { gid: string; size: number; members: string[] } | null;
  /** The ids its callbacks get (put when it ends). */
  then: string | null;
  catch: string | null;
  /** Jobs waiting on this one (their `after` lists it, or they await it). */
  waitedBy: string[];
  /** Jobs this one created while it ran (currentJob().put/parallel/serial: members and postprocess). */
  children: string[];
}

export interface RetryResult { id: string; from: JobState | null; ok: boolean; why?: string }
export interface CancelResult { id: string; was: JobState | null; result: 'cancelled' | 'requested' | 'finished' | 'not found' | 'lost'; why?: string }
export interface HoldResult { id: string; was: JobState | null; ok: boolean; to?: JobState; why?: string }

export interface WorkerView {
  id: string; host: string; pid: number;
  /**
   * Its heartbeat's age by the file server's clock; null when the heartbeat could not be read settled this time
   * (its name kept leading to a file just replaced: it is being renewed; `unsettled` says so).
   */
  ageMs: number | null;
  alive: boolean; running?: number; concurrency?: number; queues?: string[] | null;
  /** Set (true) when the age is unknown because the heartbeat was being replaced as it was read: counted alive. */
  unsettled?: true;
  /** The worker's name (`zcq worker --name`; the host name by default). */
  name?: string;
  /** Its effective settings, as its last heartbeat gave them (workers of this version). */
  settings?: EffectiveSettings;
  /** Where each setting came from: 'flag', 'name' (config for its name), 'host', '*', or 'default'. */
  sources?: SettingSources;
}

export interface Status {
  spool: string;
  counts: Record<JobState, number>;
  queues: Record<string, Partial<Record<JobState, number>>>;
  paused: string[];
  oldestPendingMs: number | null;
  workers: WorkerView[];
  quarantined: number;
  /** True when ages come from this machine's clock (the spool could not be written to read the file server's). */
  localClock: boolean;
}

/**
 * One worker's row for `status`, from its lease judgement and its heartbeat's text (untrusted: each field
 * checked). Null when neither heartbeat nor folder is there any more (the worker ended). A heartbeat that
 * was being replaced as it was read (server-clock.ts readAged: `unsettled`) belongs to a live worker: it is
 * shown, alive, with its age unknown (`ageMs` null, `unsettled`), not left out of this call's answer.
 */
export function workerView(id: string, j: LeaseJudgement, heartbeat: string | undefined): WorkerView | null {
  if (j.ageMs === null && j.unsettled === undefined) return null;
  let extra: { running?: unknown; concurrency?: unknown; queues?: unknown; name?: unknown; fn?: unknown; paused?: unknown; sources?: unknown } = {};
  try { const x = JSON.parse(heartbeat ?? ''); if (x && typeof x === 'object') extra = x; } catch { /* torn or unread */ }
  return {
    id, host: j.info.host, pid: j.info.pid, ageMs: j.ageMs === null ? null : Math.round(j.ageMs), alive: !j.expired,
    ...(j.ageMs === null ? { unsettled: true as const } : {}),
    running: typeof extra.running === 'number' ? extra.running : undefined,
    concurrency: typeof extra.concurrency === 'number' ? extra.concurrency : undefined,
    queues: Array.isArray(extra.queues) ? extra.queues.filter((q): q is string => typeof q === 'string') : null,
    name: typeof extra.name === 'string' ? extra.name.slice(0, 240) : undefined,
    ...settingsOf(extra),
  };
}

export class Spool {
  private clockCache?: ServerClock;

  /** The spool's retention settings (config/retention.json): get, set, remove (client/retention.ts). */
  readonly retention: Retention;
  /** Live worker configuration (config/workers/): set, get, ls, rm (client/config.ts). */
  readonly config: WorkerConfig;
  /** Quotas (quotas/NAME/): set, get, ls, rm (client/quota.ts). */
  readonly quota: Quotas;
  /** Rate limits (rate/NAME/): set, get, ls, rm (client/rate.ts). */
  readonly rate: Rates;

  private constructor(readonly layout: Layout, readonly durable: boolean) {
    this.retention = new Retention(layout, durable);
    this.config = new WorkerConfig(layout, durable);
    this.quota = new Quotas(layout, durable);
    this.rate = new Rates(layout, durable);
  }

  /** Open an existing spool (ZCQ_NO_SPOOL when there is none; `create: true` makes one as `init` does). */
  static async open(dir: string = defaultSpoolDir(), opts: OpenOptions = {}): Promise<Spool> {
    const layout = opts.create ? initSpool(dir) : openLayout(dir);
    return new Spool(layout, opts.durable ?? true);
  }

  /** Create a spool in a missing or empty folder (or complete an existing one) and open it. */
  static async init(dir: string = defaultSpoolDir(), opts: InitOptions = {}): Promise<Spool> {
    return new Spool(initSpool(dir, { group: opts.group ?? null }), opts.durable ?? true);
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

  /** Validate, write in tmp/, fsync, publish into pending/QUEUE/ (or deferred/QUEUE/). Returns the job as stored. */
  async put(fn: string, args: unknown[] = [], opts: PutOptions = {}): Promise<Job> {
    return this.putChild(fn, args, opts);
  }

  /** put, recording `parent` (the running job that puts it: currentJob().put). */
  async putChild(fn: string, args: unknown[], opts: PutOptions, parent?: string): Promise<Job> {
    const p = await prepareJob(this.layout, fn, args, await this.resolveAfter(opts), this.serverNow());
    if (parent) { p.job.parent = parent; p.text = serializeJob(p.job); addChildren(this.layout, parent, [p.id]); }
    await this.publishLinked([p]);
    return p.job;
  }

  /**
   * Composite jobs (client/composite.ts). `parallel`: every item is pending at once; `serial`: each starts
   * only after the previous one is done (a failure stops the chain: the rest end as cancelled). Either way
   * the postprocess runs once every item ended, with one argument: the entries `{id, state, result}` or
   * `{id, state, failure}` in input order (without `postprocess`, a built-in one returns them). Resolves
   * with the handle; `handle.id` is the postprocess job's id, to `wait` on.
   */
  async parallel(items: readonly PutItem[], opts: CompositeOptions = {}): Promise<CompositeHandle> {
    return this.composite('parallel', items, opts);
  }

  async serial(items: readonly PutItem[], opts: CompositeOptions = {}): Promise<CompositeHandle> {
    return this.composite('serial', items, opts);
  }

  /** parallel/serial, with the job that creates the group (`currentJob().parallel`) as its parent. */
  async composite(kind: 'parallel' | 'serial', items: readonly PutItem[], opts: CompositeOptions = {}, parent?: string): Promise<CompositeHandle> {
    const resolved: PutItem[] = [];
    for (const it of Array.isArray(items) ? items : []) resolved.push(typeof it === 'object' && it !== null && it.after !== undefined ? { ...it, ...(await this.resolveAfter(it)) } : it);
    const built = await buildComposite(this.layout, kind, Array.isArray(items) ? resolved : items, opts, this.serverNow(), parent);
    const dir = join(this.layout.groups, built.handle.group);
    makeDir(this.layout.modes, this.layout.groups);
    makeDir(this.layout.modes, dir);
    writeReplaceSync(join(dir, 'group.json'), built.groupText, { tmpDir: this.layout.tmp, durable: this.durable, mode: this.layout.modes.fileMode });
    if (parent) addChildren(this.layout, parent, [built.handle.id, ...built.handle.members]);
    await this.publishLinked(built.prepared);
    return built.handle;
  }

  /** `after` given as ids or unique prefixes: the full ids (a job that does not exist is a usage error). */
  private async resolveAfter<T extends PutOptions>(opts: T): Promise<T> {
    if (opts.after === undefined) return opts;
    const list = Array.isArray(opts.after) ? opts.after : [opts.after];
    const ids: string[] = [];
    for (const ref of list) {
      if (typeof ref !== 'string') throw new UsageError('--after: job ids are strings');
      try { ids.push((await this.locate(ref)).id); } catch (err) {
        if (err instanceof JobNotFoundError) throw new UsageError(`--after ${ref}: no such job`, 'ZCQ_NOT_FOUND');
        throw err;
      }
    }
    return { ...opts, after: ids };
  }

  /**
   * Publish jobs that may wait (transitions/release.ts): the reverse edges of every dependency first, then
   * the jobs, then one settle of each waiting job (its dependencies may have ended already).
   */
  private async publishLinked(prepared: Prepared[]): Promise<void> {
    for (const p of prepared) if (p.job.after) addEdges(this.layout, p.job.after, p.job.queue, p.id);
    await this.publishJobs(prepared);
    // A job published here counts as open: should it end already, its finisher lists the edges made above
    // and settles the jobs waiting on it (a serial chain of n is put without n look-ups).
    const fresh = new Map<string, DepState>(prepared.map((p) => [p.id, 'open']));
    for (const p of prepared) if (p.job.after || p.job.postprocessOf) settleWaiting(this.layout, p.job.queue, p.id, this.durable, fresh);
  }

  /**
   * Put many jobs at once (BullMQ's `addBulk`). Each item is `{fn, args?, ...PutOptions}`; its own options
   * override `common` (an item's own `at` or `in` replaces both of common's). Every item is validated as
   * `put` would before anything is written: an invalid one throws PutItemError (a UsageError with its
   * `index`) and nothing is written. Jobs are published in groups of 1,000, in order (transitions/put.ts).
   *
   * On a write failure jobs already published are NOT rolled back — a worker may run them already.
   * If nothing was published, SpoolWriteError; otherwise PartialPutError, whose `enqueued` lists the ids
   * that were: always the first `enqueued.length` items.
   */
  async putMany(items: readonly PutItem[], common: PutOptions = {}): Promise<Job[]> {
    if (!Array.isArray(items)) throw new UsageError('putMany: items must be an array of {fn, args?, ...options}');
    const now = this.serverNow();
    const prepared: Prepared[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      try {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new UsageError('must be an object {fn, args?, ...options}');
        prepared.push(await prepareJob(this.layout, item.fn, item.args ?? [], await this.resolveAfter(withCommon(item, common)), now));
      } catch (err) {
        if (err instanceof UsageError) throw new PutItemError(i, err.message, err.code);
        throw err;
      }
    }
    await this.publishLinked(prepared);
    return prepared.map((p) => p.job);
  }

  /** The spool clock's "now", read at most once per getter: one reading for a put or a batch. */
  private serverNow(): () => Promise<number> {
    let t: number | undefined;
    return async () => (t ??= await (await this.clock()).now());
  }

  private async publishJobs(prepared: Prepared[]): Promise<void> {
    for (let i = 0; i < prepared.length; i += PUT_GROUP) {
      try {
        await publish(this.layout.tmp, prepared.length <= PUT_GROUP ? prepared : prepared.slice(i, i + PUT_GROUP), this.durable, this.layout.modes);
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
    const exact = findExact(this.layout, idOrPrefix);
    if (exact.length > 0) return pickCurrent(exact);
    const byPrefix = findPrefix(this.layout, idOrPrefix);
    const ids = new Set(byPrefix.map((l) => l.id));
    if (ids.size === 0) throw new JobNotFoundError(idOrPrefix);
    if (ids.size > 1) throw new AmbiguousIdError(idOrPrefix, ids.size);
    return pickCurrent(byPrefix);
  }

  /** Read a job where it is now (looking again if it moved while we looked). */
  async get(idOrPrefix: string): Promise<JobRecord> {
    for (let i = 0; ; i++) {
      const loc = await this.locate(idOrPrefix);
      try {
        return this.readAt(loc);
      } catch (err) {
        if (!isGone(err) || i >= 5) throw err;
      }
    }
  }

  private readAt(loc: Located): JobRecord {
    const r = readRegularFileSync(loc.path, MAX_JOB_BYTES);
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
      for (const loc of scanState(this.layout, state, state === 'claimed' ? undefined : filter.queue)) {
        let rec: JobRecord;
        try { rec = this.readAt(loc); } catch (err) { if (isGone(err)) continue; throw err; }
        if (filter.queue && (rec.job?.queue ?? loc.queue) !== filter.queue) continue;
        if (filter.fn && !(rec.job?.fn === filter.fn || rec.job?.fn.includes(filter.fn))) continue;
        out.push(rec);
      }
    }
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return filter.limit ? out.slice(0, filter.limit) : out;
  }

  /**
   * Run finished jobs (failed or done) again with a fresh set of attempts: one rename each into pending/
   * (transitions/retry.ts). Of two retries of one job exactly one succeeds.
   */
  async retry(idsOrPrefixes: string[]): Promise<RetryResult[]> {
    const out: RetryResult[] = [];
    const todo = [...idsOrPrefixes];
    for (let ref = todo.shift(); ref !== undefined; ref = todo.shift()) {
      let loc: Located;
      try { loc = await this.locate(ref); } catch (err) { if (err instanceof AmbiguousIdError) throw err; out.push({ id: ref, from: null, ok: false, why: (err as Error).message }); continue; }
      if (loc.state !== 'failed' && loc.state !== 'done') { out.push({ id: loc.id, from: loc.state, ok: false, why: `job ${loc.id} is ${loc.state}, not finished` }); continue; }
      const queue = loc.queue ?? this.queueOfFile(loc.path);
      let links: JobRecord['job'];
      try { links = this.readAt(loc).job; } catch (err) {
        // Found, then moved before it could be read: by a concurrent retry (or by hand), as a lost rename below.
        if (!isGone(err)) throw err;
        out.push({ id: loc.id, from: loc.state, ok: false, why: `job ${loc.id} moved meanwhile (another retry, or by hand)` });
        continue;
      }
      // Its next end must count again: the fan-in forgets this end, so that the group completes only once
      // the retried member has ended again (as a BullMQ flow's parent waits for a retried child). A member
      // of an ended group re-opens it: the postprocess goes back to waiting, to run again then.
      const complete = links?.group ? groupComplete(this.layout, links.group.gid, links.group.size) : false;
      const reopen = links?.group && complete ? links.group : null;
      if (links?.group) forgetArrival(this.layout, links.group);
      if (links?.then || links?.catch) forgetCallbacks(this.layout, loc.id);
      const ok = retryJob(this.layout, loc.path, queue, loc.id, this.durable, links?.priority);
      if (ok && reopen) {
        this.reopenGroupPostprocess(reopen.post);
        // The job that returned this composite took the postprocess's outcome: it takes the next one too.
        // Retried, it does not run again (its `awaits` stays): it waits for the postprocess and takes its
        // outcome. Found as the group's parent (the job that made it, currentJob().parallel/serial).
        const awaiter = this.awaiterOf(reopen.gid, reopen.post);
        if (awaiter && !todo.includes(awaiter) && !out.some((o) => o.id === awaiter)) todo.push(awaiter);
      }
      out.push(ok ? { id: loc.id, from: loc.state, ok } : { id: loc.id, from: loc.state, ok, why: `job ${loc.id} moved meanwhile (another retry, or by hand)` });
    }
    return out;
  }

  /** The finished job that awaits postprocess `post` of group `gid`: the group's parent, when it returned the composite. */
  private awaiterOf(gid: string, post: string): string | null {
    const parent = this.groupInfo(gid)?.parent;
    if (!parent) return null;
    for (const loc of findExact(this.layout, parent)) {
      if (loc.state !== 'done' && loc.state !== 'failed') continue;
      if (this.readAt(loc).job?.awaits === post) return parent;
    }
    return null;
  }

  /** A retried member re-opens its group: a finished postprocess goes back to waiting/ (one rename), to run again once the member ends. */
  private reopenGroupPostprocess(post: string): void {
    for (const loc of findExact(this.layout, post)) {
      if ((loc.state !== 'done' && loc.state !== 'failed') || !loc.queue) continue;
      reopenPostprocess(this.layout, loc.path, loc.queue, post, this.durable);
    }
  }

  async retryAllFailed(): Promise<RetryResult[]> {
    const ids: string[] = [];
    for (const loc of scanState(this.layout, 'failed')) ids.push(loc.id);
    return this.retry(ids);
  }

  /**
   * Cancel jobs (transitions/cancel.ts). A pending, deferred or held job ends in failed/ with reason
   * "cancelled"; a running job gets a request that its worker honours at its next heartbeat.
   */
  async cancel(idsOrPrefixes: string[]): Promise<CancelResult[]> {
    idsOrPrefixes = this.withCompositeMembers(idsOrPrefixes);
    const out: CancelResult[] = [];
    let lease: Lease | undefined;
    try {
      for (const ref of idsOrPrefixes) {
        let result: CancelResult | undefined;
        for (let i = 0; i < 5 && !result; i++) {
          let loc: Located;
          try { loc = await this.locate(ref); } catch (err) { if (err instanceof AmbiguousIdError) throw err; result = { id: ref, was: null, result: 'not found', why: (err as Error).message }; break; }
          if (loc.state === 'done' || loc.state === 'failed') { result = { id: loc.id, was: loc.state, result: 'finished' }; break; }
          if (loc.state === 'claimed') {
            requestCancel(this.layout, loc.id, this.durable);
            // It may have ended between our look and the request: then nobody will read the request, which
            // would cancel its next life (a retry) instead. Drop it and say so.
            const now = findExact(this.layout, loc.id);
            const ended = now.length > 0 && now.every((l) => l.state === 'done' || l.state === 'failed');
            if (ended) { dropCancelRequests(this.layout, loc.id); result = { id: loc.id, was: now[0]!.state, result: 'finished' }; break; }
            result = { id: loc.id, was: loc.state, result: 'requested' };
            break;
          }
          lease ??= await Lease.acquire(this.layout, { kind: 'client', leaseMs: 60_000 }, this.durable);
          const r = await cancelJob(lease, loc.path, loc.queue ?? this.queueOfFile(loc.path), loc.id);
          if (r === 'moved-away') continue; // claimed or moved a moment ago: look again
          if (r === 'moved') result = { id: loc.id, was: loc.state, result: 'cancelled' };
          else if (r === 'unreadable') result = { id: loc.id, was: loc.state, result: 'not found', why: 'unreadable job file: left for the worker to quarantine' };
          else result = { id: loc.id, was: loc.state, result: 'lost', why: 'the cancel lost its lease part-way; the job goes back to pending: cancel it again' };
        }
        out.push(result ?? { id: ref, was: null, result: 'not found', why: 'it kept moving; try again' });
      }
    } finally {
      await lease?.end();
    }
    return out;
  }

  /**
   * The refs to cancel, each composite (its postprocess id) followed by its members that have not started
   * (pending, waiting, deferred or held): cancelling a composite cancels them; running members go on. A job
   * waiting for a composite it returned is followed by that composite.
   */
  private withCompositeMembers(refs: string[]): string[] {
    const out: string[] = [];
    const queue = [...refs];
    for (let ref = queue.shift(); ref !== undefined; ref = queue.shift()) {
      out.push(ref);
      let job: Job | undefined;
      try { const locs = findExact(this.layout, ref); if (locs.length > 0) job = this.readAt(pickCurrent(locs)).job; } catch { /* reported by the cancel itself */ }
      // A job waiting for the composite it returned: that composite goes with it.
      if (job?.awaits && !out.includes(job.awaits)) queue.unshift(job.awaits);
      const g = job?.postprocessOf;
      if (!g) continue;
      for (const id of this.groupInfo(g.gid)?.members ?? []) {
        const locs = findExact(this.layout, id);
        if (locs.length > 0 && locs.every((l) => l.state === 'pending' || l.state === 'waiting' || l.state === 'deferred' || l.state === 'hold')) out.push(id);
      }
    }
    return out;
  }

  /** groups/GID/group.json, checked (untrusted): its kind, members and postprocess; null when unreadable. */
  groupInfo(gid: string): { gid: string; kind: string; size: number; post: string; postQueue: string; parent: string | null; members: string[] } | null {
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/.test(gid)) return null;
    try {
      const r = readRegularFileSync(join(this.layout.groups, gid, 'group.json'), 64 * 1024 * 1024);
      if (!('text' in r)) return null;
      const v = JSON.parse(r.text) as Record<string, unknown>;
      const ok = (x: unknown) => typeof x === 'string' && /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/.test(x);
      if (!Array.isArray(v.members) || !v.members.every(ok) || !ok(v.post)) return null;
      return { gid, kind: String(v.kind), size: v.members.length, post: v.post as string, postQueue: String(v.postQueue), parent: ok(v.parent) ? (v.parent as string) : null, members: v.members as string[] };
    } catch { return null; }
  }

  /**
   * What a job waits on and what waits on it (`zcq show`): its parent, its dependencies (`after`), the
   * composite it awaits, its group (and the group's postprocess), the group it is the postprocess of, its
   * callbacks' ids, and the jobs waiting on it (deps/ID/).
   */
  async links(idOrPrefix: string): Promise<JobLinks> {
    const rec = await this.get(idOrPrefix);
    const job = rec.job;
    const id = rec.id;
    const waitedBy: string[] = [];
    try { for (const n of fs.readdirSync(join(this.layout.deps, id))) { const i = n.indexOf('~'); if (i > 0) waitedBy.push(n.slice(i + 1)); } } catch { /* none */ }
    const cb = (k: 'then' | 'catch') => (job?.[k] ? callbackId(id, k) : undefined);
    const children: string[] = [];
    try { for (const n of fs.readdirSync(join(this.layout.children, id))) if (/^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/.test(n)) children.push(n); } catch { /* none */ }
    return {
      id, state: rec.state,
      parent: job?.parent ?? null,
      after: job?.after ?? [],
      afterAnyOutcome: job?.afterAnyOutcome === true,
      awaits: job?.awaits ?? null,
      group: job?.group ? { gid: job.group.gid, kind: job.group.kind, index: job.group.index, size: job.group.size, postprocess: job.group.post } : null,
      postprocessOf: job?.postprocessOf ? { gid: job.postprocessOf.gid, size: job.postprocessOf.size, members: this.groupInfo(job.postprocessOf.gid)?.members ?? [] } : null,
      then: cb('then') ?? null, catch: cb('catch') ?? null,
      children: children.sort(),
      waitedBy,
    };
  }

  /** Set pending or deferred jobs aside in hold/ (transitions/hold.ts): no worker takes them until released. */
  async hold(idsOrPrefixes: string[]): Promise<HoldResult[]> {
    const out: HoldResult[] = [];
    for (const ref of idsOrPrefixes) {
      let loc: Located;
      try { loc = await this.locate(ref); } catch (err) { if (err instanceof AmbiguousIdError) throw err; out.push({ id: ref, was: null, ok: false, why: (err as Error).message }); continue; }
      if (loc.state !== 'pending' && loc.state !== 'deferred') { out.push({ id: loc.id, was: loc.state, ok: false, why: `job ${loc.id} is ${loc.state}: only pending or deferred jobs can be held${loc.state === 'claimed' ? ' (cancel a running job instead)' : ''}` }); continue; }
      const ok = holdJob(this.layout, loc.path, loc.queue ?? this.queueOfFile(loc.path), loc.id, this.durable);
      out.push(ok ? { id: loc.id, was: loc.state, ok, to: 'hold' } : { id: loc.id, was: loc.state, ok, why: `job ${loc.id} moved meanwhile (a worker claimed it?)` });
    }
    return out;
  }

  /** Put held jobs back: to pending/, or to deferred/ while their due time is ahead. */
  async release(idsOrPrefixes: string[]): Promise<HoldResult[]> {
    const out: HoldResult[] = [];
    for (const ref of idsOrPrefixes) {
      let loc: Located;
      try { loc = await this.locate(ref); } catch (err) { if (err instanceof AmbiguousIdError) throw err; out.push({ id: ref, was: null, ok: false, why: (err as Error).message }); continue; }
      if (loc.state !== 'hold') { out.push({ id: loc.id, was: loc.state, ok: false, why: `job ${loc.id} is ${loc.state}, not held` }); continue; }
      const to = releaseJob(this.layout, loc.path, loc.queue ?? this.queueOfFile(loc.path), loc.id, await (await this.clock()).now(), this.durable);
      out.push(to ? { id: loc.id, was: 'hold', ok: true, to } : { id: loc.id, was: 'hold', ok: false, why: `job ${loc.id} moved meanwhile` });
    }
    return out;
  }

  /** Pause a queue: every worker stops taking its jobs within one poll (running ones finish). */
  async pause(queue: string): Promise<void> {
    if (!QUEUE_NAME.test(queue)) throw new UsageError(`queue '${queue}': use letters, digits, '.', '_' or '-' (at most 64)`);
    makeDir(this.layout.modes, this.layout.paused);
    const marker = join(this.layout.paused, queue);
    try { if (fs.lstatSync(marker).isFile()) return; } catch { /* not paused yet */ }
    const tmp = createExclusiveSync(this.layout.tmp, `.pause-${queue}-`, JSON.stringify({ by: `${hostname()} pid ${process.pid}`, at: new Date().toISOString() }) + '\n', { durable: this.durable, mode: this.layout.modes.fileMode });
    if (!renameOrGoneSync(tmp, marker)) unlinkQuietly(tmp);
    if (this.durable) fsyncDirSync(this.layout.paused);
  }

  /** Resume a paused queue. */
  async resume(queue: string): Promise<void> {
    if (!QUEUE_NAME.test(queue)) throw new UsageError(`queue '${queue}': use letters, digits, '.', '_' or '-' (at most 64)`);
    unlinkQuietly(join(this.layout.paused, queue));
    if (this.durable) { try { fsyncDirSync(this.layout.paused); } catch { /* no paused/ folder: nothing was paused */ } }
  }

  /** Paused queues. */
  paused(): string[] { return pausedQueues(this.layout); }

  /** The queue recorded in a loose job file (one put straight into pending/ or hold/); 'default' when unreadable. */
  private queueOfFile(path: string): string {
    try {
      const r = readRegularFileSync(path, MAX_JOB_BYTES);
      if ('text' in r) { const q = (JSON.parse(r.text) as { queue?: unknown }).queue; if (typeof q === 'string' && QUEUE_NAME.test(q)) return q; }
    } catch { /* unreadable: the default queue */ }
    return 'default';
  }

  /** Block until every job is in done/ or failed/; resolves with their records. */
  async wait(idsOrPrefixes: string[], opts: { timeoutMs?: number; signal?: AbortSignal; onPoll?: (pending: Located[]) => void } = {}): Promise<JobRecord[]> {
    const ids: string[] = [];
    for (const ref of idsOrPrefixes) ids.push((await this.locate(ref)).id);
    const results = new Map<string, JobRecord>();
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
    const ac = new AbortController();
    // `seen` is set by any event since the current look began; `wake` ends a pause in progress.
    const change: { seen: boolean; wake?: () => void } = { seen: false };
    const watched = new Set<string>();
    const watchers: Promise<void>[] = [];
    /** The queue each job was first seen in: a claimed job's file is read for it once, not at every look. */
    const knownQueue = new Map<string, string>();
    /** Watch a folder from now on; true when it was not watched before. */
    const watchDir = (dir: string): boolean => {
      if (watched.has(dir)) return false;
      watched.add(dir);
      watchers.push((async () => {
        try { for await (const _ of fsWatch(dir, { signal: ac.signal })) { change.seen = true; change.wake?.(); } } catch { /* no events here: polling covers it */ }
      })());
      return true;
    };
    try {
      let pause = 20;
      let lastEarlyLook = -Infinity;
      for (;;) {
        change.seen = false;
        let newlyWatched = false;
        const open: Located[] = [];
        for (const id of ids) {
          if (results.has(id)) continue;
          const locs = findExact(this.layout, id);
          const finished = locs.find((l) => l.state === 'done' || l.state === 'failed');
          if (finished) {
            try { results.set(id, this.readAt(finished)); continue; } catch (err) { if (!isGone(err)) throw err; }
          }
          const current = locs.length > 0 ? pickCurrent(locs) : undefined;
          if (current) open.push(current);
          // A claimed job sits in no queue folder: its file names the queue it will finish in (read once).
          const q = locs.find((l) => l.queue)?.queue ?? knownQueue.get(id) ?? (current ? this.queueOfFile(current.path) : undefined);
          if (q) {
            if (!knownQueue.has(id)) knownQueue.set(id, q);
            for (const state of ['done', 'failed'] as const) {
              // A queue's first record makes its folder: until then, the state folder's event says when.
              const dir = queueDir(this.layout, state, q);
              newlyWatched = watchDir(isRealDir(dir) ? dir : this.layout[state]) || newlyWatched;
            }
          }
        }
        if (results.size === ids.length) return ids.map((id) => results.get(id)!);
        opts.onPoll?.(open);
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
        if (Date.now() >= deadline) {
          const left = ids.filter((id) => !results.has(id));
          throw Object.assign(new UsageError(`wait: timed out; not finished: ${left.join(' ')}`, 'ZCQ_WAIT_TIMEOUT'), { exitCode: 1 });
        }
        // A job that landed between the look and the start of its folder's watch made no event we can hear:
        // look once more, now that the watch runs.
        if (newlyWatched) continue;
        // A change event ends the pause early (or skips it, when it came during the look): at once the first
        // time, then at most once per MIN_RESCAN_MS, so that a folder busy with other jobs' events (a pruning or
        // draining worker in this process) does not make us rescan without rest, while the event of the job we
        // wait for is answered without delay.
        let early = change.seen;
        if (!early) {
          await new Promise<void>((res) => { const t = setTimeout(res, Math.min(pause, Math.max(1, deadline - Date.now()))); change.wake = () => { early = true; clearTimeout(t); res(); }; });
          change.wake = undefined;
        }
        if (early) {
          const since = performance.now() - lastEarlyLook;
          if (since < MIN_RESCAN_MS) await new Promise((res) => setTimeout(res, MIN_RESCAN_MS - since));
          lastEarlyLook = performance.now();
        }
        pause = Math.min(pause * 2, 1000);
      }
    } finally {
      ac.abort();
      await Promise.allSettled(watchers);
    }
  }

  /** Counts per state and queue (from names only: no job file is opened), the oldest pending job's age, the workers. */
  async status(): Promise<Status> {
    const counts = Object.fromEntries(ALL_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const queues: Status['queues'] = {};
    let oldest: Located | null = null;
    for (const state of ALL_STATES) {
      for (const loc of scanState(this.layout, state)) {
        counts[state]++;
        if (state === 'pending' && (oldest === null || loc.id < oldest.id)) oldest = loc;
        if (loc.queue) { const q = (queues[loc.queue] ??= {}); q[state] = (q[state] ?? 0) + 1; }
      }
    }
    const clock = await this.clock();
    // Age by the file server's clock (the file's mtime), not by comparing our clock with the putter's.
    const oldestPendingMs = oldest ? await clock.ageOf(oldest.path) : null;
    const workers = await this.workers();
    let quarantined = 0;
    try { quarantined = fs.readdirSync(this.layout.quarantine).filter((n) => !n.endsWith('.reason')).length; } catch { /* none */ }
    return { spool: this.layout.root, counts, queues, paused: this.paused(), oldestPendingMs: oldestPendingMs === null ? null : Math.max(0, Math.round(oldestPendingMs)), workers, quarantined, localClock: clock.local };
  }

  /** The leases in workers/ that are workers (clients' leases left out): heartbeat age by the file server's clock, settings. */
  async workers(): Promise<WorkerView[]> {
    const clock = await this.clock();
    const workers: WorkerView[] = [];
    for (const name of fs.existsSync(this.layout.workers) ? fs.readdirSync(this.layout.workers) : []) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const id = name.slice(0, -5);
      const j = await judgeLease(this.layout, clock, id, 30_000).catch(() => null);
      if (!j || j.info.kind === 'client') continue;
      let text: string | undefined;
      try { const r = readRegularFileSync(join(this.layout.workers, name), 64 * 1024); if ('text' in r) text = r.text; } catch { /* torn or gone: the age still counts */ }
      const view = workerView(id, j, text);
      if (view) workers.push(view);
    }
    return workers;
  }

  /** The last progress annotation a job published, or null. */
  async progress(idOrPrefix: string): Promise<{ at: string; attempt: number; value: unknown } | null> {
    const { id } = await this.locate(idOrPrefix);
    let r;
    try { r = readRegularFileSync(join(this.layout.progress, `${id}.json`), 64 * 1024); } catch (err) { if (isGone(err)) return null; throw err; }
    if ('bad' in r) return null;
    try { return JSON.parse(r.text); } catch { return null; }
  }

  /**
   * Remove finished records (and their output files) past their retention (transitions/prune.ts). What the
   * rule leaves out comes from the spool's retention settings, queue by queue (`spool.retention`): with no
   * rule at all, this is the pass workers make in their housekeeping. `state` limits it to done or failed,
   * `queue` to one queue; `olderThanMs` / `keep` replace the policy's age / count (null: no such limit).
   */
  async prune(rule: Partial<PruneRule> = {}): Promise<PruneReport> {
    const { config } = readRetention(this.layout);
    return applyRetention(this.layout, await (await this.clock()).now(), config, {
      state: rule.state, queue: rule.queue, olderThanMs: rule.olderThanMs, keep: rule.keep, dryRun: rule.dryRun,
    });
  }

  /** Where a job's captured output is (output/ID.log) and its size; null when it has none. Takes a full id. */
  output(id: string): { path: string; bytes: number } | null {
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/.test(id)) throw new UsageError(`job id '${id}': ids are made of [A-Za-z0-9._@-]`);
    const path = join(this.layout.output, `${id}.log`);
    try {
      const st = fs.lstatSync(path);
      return st.isFile() ? { path, bytes: st.size } : null;
    } catch (err) {
      if (isGone(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw err;
    }
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
      // Waiting jobs whose dependencies all ended (a crash between an end and its settle): release them.
      const { released, quarantined } = await sweepWaiting(this.layout, this.durable);
      if (released > 0) events.push({ event: 'job.recovered', worker: lease.id, reason: `${released} waiting job(s) released`, to: 'pending' });
      if (quarantined > 0) events.push({ event: 'job.quarantined', worker: lease.id, reason: `${quarantined} entry(ies) of waiting/ that are not jobs set aside in quarantine/`, to: 'quarantine' });
      // Postprocesses that ended with entries a retry changed, their finisher gone before its check (arrive.ts).
      const reopened = reopenStalePostprocesses(this.layout, this.durable);
      if (reopened > 0) events.push({ event: 'job.recovered', worker: lease.id, reason: `${reopened} postprocess(es) re-opened: a member was retried after they read its entry`, to: 'waiting' });
    } finally {
      await lease.end();
    }
    return events;
  }

  /** Check the spool's consistency; with `repair`, fix what is provably safe to fix (spool/doctor.ts). */
  async doctor(opts: { repair?: boolean; leftoverAgeMs?: number; goneWorkerAgeMs?: number } = {}): Promise<Problem[]> {
    return doctor(this.layout, { clock: await this.clock(), recover: () => this.recover() }, opts);
  }

  /** Start a worker on this spool. Resolves once it runs; `await worker.done` for its end. */
  async runWorker(opts: WorkerOptions = {}): Promise<Worker> {
    const { Worker } = await import('../worker/worker.js');
    const w = new Worker(this.layout, this.durable, opts);
    await w.start();
    return w;
  }

  /** Whether any job is pending. O(queues), not O(jobs). */
  async hasPending(): Promise<boolean> {
    return listQueues(this.layout.pending).queues.some((q) => PRIORITY_FOLDERS.some((level) => hasJobs(join(queueDir(this.layout, 'pending', q), level))));
  }
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

const SOURCES = new Set(['flag', 'name', 'host', '*', 'default']);

/** A heartbeat's settings and their sources (untrusted: checked, dropped when odd). */
function settingsOf(hb: { concurrency?: unknown; queues?: unknown; fn?: unknown; paused?: unknown; sources?: unknown }): { settings?: EffectiveSettings; sources?: SettingSources } {
  const strings = (v: unknown) => (v === null ? null : Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  const queues = strings(hb.queues);
  const fn = strings(hb.fn);
  const src = hb.sources as Record<string, unknown> | undefined;
  if (typeof hb.concurrency !== 'number' || queues === undefined || fn === undefined || typeof hb.paused !== 'boolean' || typeof src !== 'object' || src === null) return {};
  if (!CONFIG_KEYS.every((k) => typeof src[k] === 'string' && SOURCES.has(src[k] as string))) return {};
  return { settings: { concurrency: hb.concurrency, queues, fn, paused: hb.paused }, sources: Object.fromEntries(CONFIG_KEYS.map((k) => [k, src[k]])) as SettingSources };
}

/** currentJob().put/parallel/serial: a spool handle per folder, opened once per process (or thread). */
const byDir = new Map<string, Promise<Spool>>();
function spoolAt(dir: string): Promise<Spool> {
  let s = byDir.get(dir);
  if (!s) { s = Spool.open(dir); byDir.set(dir, s); s.catch(() => byDir.delete(dir)); }
  return s;
}
setCompositeOps({
  put: async (dir, parent, fn, args, opts) => ({ id: (await (await spoolAt(dir)).putChild(fn, args, opts, parent)).id }),
  composite: async (dir, parent, kind, items, opts) => (await spoolAt(dir)).composite(kind, items, opts, parent),
});
