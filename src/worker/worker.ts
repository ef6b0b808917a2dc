/**
 * The worker: claims jobs from pending/, hands them to its hosts (hosts.ts: pool threads, child processes
 * or its own event loop), records each outcome and moves the file to done/, failed/, or back to
 * pending/deferred for a retry. Invariants:
 * - it holds at most `concurrency` jobs, each under its lease (claimed/<leaseId>/), and writes a job's
 *   outcome only while its lease is fresh — a worker whose heartbeat stalled aborts its jobs and takes a
 *   new lease; the old one's jobs are settled by recovery like any dead worker's;
 * - claim cost does not grow with the backlog: a scan reads at most SCAN_WINDOW names from pending/ and
 *   claims many from them;
 * - a job never crashes the worker: bad files are quarantined, thrown errors and missing modules become
 *   failure records, a hung job is aborted at its timeout and its thread terminated after a grace period.
 */
import { availableParallelism, hostname } from 'node:os';
import { opendir, unlink, watch as fsWatch } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeaseLostError, ModuleRefError, isGone } from '../errors.js';
import { parseJob, JobFormatError, type Attempt, type Job } from '../job/format.js';
import { recordError, recordInterrupt, recordSuccess, type Next } from '../job/policy.js';
import { realRoots, resolveRef, type ResolvedRef } from '../job/resolve.js';
import { silentLogger, type Logger } from '../log.js';
import { deferredPath, promoteDue, dueDeferred } from '../spool/deferred.js';
import { isJobName, listNames, readRegularFile, readRegularFileSync, MAX_JOB_BYTES } from '../spool/fsops.js';
import { Lease } from '../spool/lease.js';
import { GroupSync } from '../spool/group-sync.js';
import { quarantine } from '../spool/quarantine.js';
import { recoverDeadLeases } from '../spool/recovery.js';
import { hasJobs } from '../spool/scan.js';
import { ServerClock } from '../spool/server-clock.js';
import type { Spool } from '../spool/spool.js';
import { cleanLeftovers } from '../spool/housekeeping.js';
import type { RunError, RunOutcome, RunTask } from './runner.js';
import { InlineHosts, ProcessHosts, ThreadHosts, type JobHosts } from './hosts.js';

export interface WorkerOptions {
  /** Folders job modules must live in (default: the current folder). */
  roots?: string[];
  /** Jobs run at once (default: CPU count). */
  concurrency?: number;
  /** Pool threads the jobs share, with runtime 'threads' (default: the CPU count, at most `concurrency`). */
  threads?: number;
  /** Poll interval when no file-change events arrive (default 1000 ms). */
  pollMs?: number;
  /** Exit once nothing is pending, claimed or due. */
  exitWhenIdle?: boolean;
  /** Stop claiming after this many jobs, finish them, and exit (benchmarks, batch runs). */
  maxJobs?: number;
  /**
   * Where job code runs (hosts.ts): 'threads' (default), 'processes' for jobs that may crash their
   * process, 'inline' for the worker's own event loop (least memory and CPU; timeouts cannot stop a job).
   */
  runtime?: 'threads' | 'processes' | 'inline';
  /** Serve only these queues (default: all). */
  queues?: string[] | null;
  /** A lease not renewed for this long is dead (default 30 000 ms; on NFS at least heartbeat + actimeo). */
  leaseMs?: number;
  /** Heartbeat interval (default leaseMs / 6). */
  heartbeatMs?: number;
  /** On SIGINT/SIGTERM or stop(): how long running jobs may take to finish before they are released (default 10 s). */
  graceMs?: number;
  /** After a timeout or cancel aborts a job's signal, how long before its thread is terminated (default 5 s). */
  killGraceMs?: number;
  /** Use fs.watch for prompt pickup (default true; polling always runs as well). */
  watch?: boolean;
  /** Handle SIGINT/SIGTERM (default false for the API, true for the CLI). */
  handleSignals?: boolean;
  log?: Logger;
  /** Act as a cron scheduler (default true): create the jobs of due schedule ticks each poll. */
  scheduler?: boolean;
  /** Crash leftovers (temp files, `.nfs*` files) older than this are removed (default 1 h, server clock). */
  leftoverAgeMs?: number;
  /** Heartbeats of workers gone (no lease folder) for this long are removed (default 1 day). */
  goneWorkerAgeMs?: number;
  /** How often the worker cleans leftovers (default 60 s). */
  housekeepingMs?: number;
  /** Extra periodic duties run each poll. */
  duties?: Array<(w: Worker) => Promise<void>>;
}

export interface WorkerSummary { done: number; failed: number; retried: number; recovered: number; quarantined: number; lostLease: number }

interface Running {
  id: string;
  lease: Lease;
  job: Job;
  /** Why the job is being stopped, if it is. */
  stop?: 'timeout' | 'cancelled' | 'lease lost' | 'shutdown';
  killTimer?: NodeJS.Timeout;
}

const SCAN_WINDOW = 1000;
/** Longest stretch of synchronous claim attempts before the claim loop lets timers (the heartbeat) run. */
const CLAIM_YIELD_MS = 20;
const runnerFile = fileURLToPath(new URL('./runner.js', import.meta.url));

export class Worker {
  readonly opts: Required<Omit<WorkerOptions, 'queues' | 'duties' | 'maxJobs' | 'log' | 'scheduler'>> & { queues: string[] | null; maxJobs: number | null };
  readonly log: Logger;
  readonly clock: ServerClock;
  lease!: Lease;
  readonly summary: WorkerSummary = { done: 0, failed: 0, retried: 0, recovered: 0, quarantined: 0, lostLease: 0 };
  /** Resolves when the worker has stopped and released everything. */
  done!: Promise<WorkerSummary>;

  private hosts?: JobHosts;
  private roots: string[] = [];
  private readonly running = new Map<string, Running>();
  /** Folder fsyncs shared by jobs finishing together (durable mode). */
  private readonly fsyncs = new GroupSync();
  /** Ids claimed and not yet released: the slots in use (set at claim, before the job starts). */
  private readonly holding = new Set<string>();
  private readonly refCache = new Map<string, ResolvedRef | ModuleRefError>();
  private readonly skip = new Set<string>();
  private readonly duties: Array<(w: Worker) => Promise<void>>;
  private stopping = false;
  private readonly scheduler: boolean;
  private claimedTotal = 0;
  private wakeFn?: () => void;
  private timers: NodeJS.Timeout[] = [];
  private watchAbort = new AbortController();
  private signalHandler?: () => void;

  constructor(readonly spool: Spool, opts: WorkerOptions = {}) {
    const leaseMs = opts.leaseMs ?? 30_000;
    const concurrency = Math.max(1, opts.concurrency ?? availableParallelism());
    this.opts = {
      roots: opts.roots && opts.roots.length > 0 ? opts.roots : [process.cwd()],
      concurrency,
      threads: Math.max(1, Math.min(opts.threads ?? availableParallelism(), concurrency)),
      pollMs: opts.pollMs ?? 1000,
      exitWhenIdle: opts.exitWhenIdle ?? false,
      maxJobs: opts.maxJobs ?? null,
      runtime: opts.runtime ?? 'threads',
      queues: opts.queues && opts.queues.length > 0 ? opts.queues : null,
      leaseMs,
      heartbeatMs: opts.heartbeatMs ?? Math.max(100, Math.floor(leaseMs / 6)),
      graceMs: opts.graceMs ?? 10_000,
      killGraceMs: opts.killGraceMs ?? 5_000,
      watch: opts.watch ?? true,
      handleSignals: opts.handleSignals ?? false,
      leftoverAgeMs: opts.leftoverAgeMs ?? 3_600_000,
      goneWorkerAgeMs: opts.goneWorkerAgeMs ?? 86_400_000,
      housekeepingMs: opts.housekeepingMs ?? 60_000,
    };
    this.log = opts.log ?? silentLogger;
    this.duties = [...(opts.duties ?? [])];
    this.scheduler = opts.scheduler ?? true;
    this.clock = new ServerClock(spool.layout.tmp, `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  }

  get id(): string { return this.lease.id; }
  get runningCount(): number { return this.holding.size; }

  async start(): Promise<void> {
    this.roots = await realRoots(this.opts.roots);
    if (this.scheduler) {
      const { CronStore } = await import('../schedule/store.js');
      this.duties.push(CronStore.duty() as (w: Worker) => Promise<void>);
    }
    await this.clock.sample();
    this.lease = await this.newLease();
    this.hosts = await this.startHosts();
    this.log('worker.start', { worker: this.lease.id, spool: this.spool.dir, concurrency: this.opts.concurrency, runtime: this.opts.runtime, threads: this.opts.runtime === 'threads' ? this.opts.threads : undefined, leaseMs: this.opts.leaseMs, roots: this.roots.join(':') });
    if (this.opts.handleSignals) {
      let count = 0;
      this.signalHandler = () => {
        count++;
        if (count === 1) { this.log('worker.stopping', { worker: this.lease.id, running: this.running.size, graceMs: this.opts.graceMs }); void this.stop(); }
        else { this.log('worker.stopping.now', { worker: this.lease.id }); void this.stop(0); }
      };
      process.on('SIGINT', this.signalHandler);
      process.on('SIGTERM', this.signalHandler);
    }
    this.timers.push(setInterval(() => void this.beat(), this.opts.heartbeatMs));
    this.timers.push(setInterval(() => void this.periodic(), this.opts.pollMs));
    this.timers.push(setInterval(() => void this.housekeeping(), this.opts.housekeepingMs));
    if (this.opts.watch) void this.watchPending();
    this.done = this.loop();
  }

  private async startHosts(): Promise<JobHosts> {
    if (this.opts.runtime === 'inline') return new InlineHosts();
    const { default: Pool } = await import('tinypool');
    if (this.opts.runtime === 'processes') {
      return new ProcessHosts(new Pool({
        filename: runnerFile, runtime: 'child_process', isolateWorkers: false, idleTimeout: 60_000,
        minThreads: Math.min(this.opts.concurrency, availableParallelism()), maxThreads: this.opts.concurrency,
      }));
    }
    // One agent task per thread for the worker's whole life: tinypool starts, replaces and terminates the
    // threads; the jobs go over each agent's own port.
    const t = this.opts.threads;
    return new ThreadHosts(new Pool({ filename: runnerFile, runtime: 'worker_threads', isolateWorkers: false, minThreads: t, maxThreads: t, concurrentTasksPerWorker: 1, useAtomics: false }), t);
  }

  private async newLease(): Promise<Lease> {
    return Lease.acquire(this.spool.layout, { kind: 'worker', leaseMs: this.opts.leaseMs, concurrency: this.opts.concurrency, queues: this.opts.queues }, this.spool.durable);
  }

  /** Stop claiming; let running jobs finish within `graceMs`, then release the rest to pending/. */
  async stop(graceMs = this.opts.graceMs): Promise<WorkerSummary> {
    if (!this.stopping) {
      this.stopping = true;
      this.wake();
    }
    const t = setTimeout(() => {
      for (const r of this.running.values()) this.abortJob(r, 'shutdown', 0);
    }, graceMs);
    try { return await this.done; } finally { clearTimeout(t); }
  }

  /** Wake the loop, and have it read pending/ (something other than a named new file may be there). */
  wake(): void { this.scanDue = true; this.wakeLoop(); }

  private wakeLoop(): void { const f = this.wakeFn; this.wakeFn = undefined; f?.(); }

  private sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(() => { this.wakeFn = undefined; this.scanDue = true; res(); }, ms);
      this.wakeFn = () => { clearTimeout(t); res(); };
    });
  }

  /**
   * File-change events name the file. A job arriving while the worker has free slots and nothing else to
   * look at is claimed by that name, with no read of pending/ (which would cost an opendir, getdents and
   * a sort per job at a trickle). Any other wake — the poll timer, a freed slot, promoted or recovered
   * jobs — sets `scanDue`, so a missed or coalesced event only delays a job until the next poll.
   */
  private async watchPending(): Promise<void> {
    try {
      // A name's events in pending/ come in pairs: it arrives (renamed or created in), then leaves (claimed,
      // by us or a sibling). Only the first of a pair is news; the second would cost a claim attempt that
      // fails. A job put back in pending/ later starts a new pair.
      const odd = new Set<string>();
      for await (const ev of fsWatch(this.spool.layout.pending, { signal: this.watchAbort.signal })) {
        const name = ev.filename;
        if (ev.eventType !== 'rename') continue;
        if (name && isJobName(name)) {
          if (odd.delete(name)) continue;
          if (odd.size >= 10 * SCAN_WINDOW) { odd.clear(); this.scanDue = true; }
          odd.add(name);
          if (this.skip.has(name)) continue; // another queue's job, already looked at
          if (this.hints.length >= SCAN_WINDOW) { this.hints.length = 0; this.scanDue = true; }
          else this.hints.push(name);
        } else {
          this.scanDue = true;
        }
        this.wakeLoop();
      }
    } catch { /* no change events here (NFS, FUSE): polling covers it */ }
  }

  private async loop(): Promise<WorkerSummary> {
    try {
      await this.periodic();
      while (!this.stopping) {
        if (this.lease.isLost) {
          try {
            await this.replaceLease();
          } catch (err) {
            // Disk full, read-only or lost mount: keep trying rather than exit; nothing is claimed meanwhile.
            this.log('lease.new.failed', { error: (err as Error).message });
            await this.sleep(Math.max(this.opts.pollMs, 1000));
            continue;
          }
        }
        const free = this.opts.concurrency - this.holding.size;
        const budget = this.opts.maxJobs === null ? free : Math.min(free, this.opts.maxJobs - this.claimedTotal);
        let scan = { claimed: 0, seen: 0 };
        if (budget > 0) scan = await this.claimSome(budget);
        if (this.opts.maxJobs !== null && this.claimedTotal >= this.opts.maxJobs && this.holding.size === 0) break;
        if (scan.claimed > 0 && this.holding.size < this.opts.concurrency) continue;
        if (scan.seen > 0 && scan.claimed === 0 && budget > 0) continue; // lost every race: rescan at once
        if (this.opts.exitWhenIdle && this.holding.size === 0 && scan.claimed === 0 && (await this.spoolIdle())) break;
        await this.sleep(this.holding.size >= this.opts.concurrency ? 60_000 : this.opts.pollMs);
      }
      // Drain: running jobs finish (or are released by stop()'s grace timer).
      while (this.holding.size > 0) await this.sleep(1000);
    } finally {
      await this.shutdown();
    }
    return this.summary;
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.watchAbort.abort();
    if (this.signalHandler) { process.off('SIGINT', this.signalHandler); process.off('SIGTERM', this.signalHandler); }
    await this.hosts?.destroy().catch(() => undefined);
    await this.lease.end().catch(() => undefined);
    await this.clock.dispose();
    this.log('worker.stop', { worker: this.lease.id, ...this.summary });
  }

  /** Nothing pending, nothing due, no job held by any lease (a dead one's jobs will come back). */
  private async spoolIdle(): Promise<boolean> {
    const l = this.spool.layout;
    if (await hasJobs(l.pending)) return false;
    if ((await dueDeferred(l.deferred, await this.clock.now(), 1)).due.length > 0) return false;
    for (const w of await listNames(l.claimed)) {
      if (w === this.lease.id) continue;
      if ((await listNames(join(l.claimed, w))).length > 0) return false;
    }
    return true;
  }

  /** Names read by the last scan and not yet tried, the next one last (popped): scan once, claim many. */
  private candidates: string[] = [];
  /** Names of files that appeared in pending/ since the last scan, from change events (see watchPending). */
  private hints: string[] = [];
  /** pending/ may hold jobs that neither `candidates` nor `hints` name: read it before sleeping. */
  private scanDue = true;

  /** Read up to SCAN_WINDOW names from pending/ (O(1) in the backlog), oldest first; true when the window filled. */
  private async scanPending(): Promise<boolean> {
    const names: string[] = [];
    let dir;
    try { dir = await opendir(this.spool.layout.pending, { bufferSize: 256 }); } catch (err) { if (isGone(err)) return false; throw err; }
    try {
      for await (const e of dir) {
        if (e.name.startsWith('.') || this.skip.has(e.name)) continue;
        names.push(e.name);
        if (names.length >= SCAN_WINDOW) break;
      }
    } catch (err) { if (!isGone(err)) throw err; }
    names.sort();
    // Every claimer wants the oldest names, so N workers reading one folder collide on the same few files
    // (each lost race is a rename round trip). Take the oldest few in a random order instead: order stays
    // roughly FIFO and racing workers rarely meet.
    const head = Math.min(names.length, Math.max(64, this.opts.concurrency * 16));
    for (let i = head - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    this.candidates = names.reverse(); // pop() from the end: no O(n) shift per claim
    return names.length >= SCAN_WINDOW;
  }

  /**
   * Claim up to `want` jobs from the candidates, rescanning when they run out. `seen` counts names tried,
   * so the loop can tell "pending/ is empty" from "others won every race".
   */
  private async claimSome(want: number): Promise<{ claimed: number; seen: number }> {
    const pending = this.spool.layout.pending;
    let claimed = 0;
    let seen = 0;
    let rescanned = false;
    let yieldAt = performance.now() + CLAIM_YIELD_MS;
    while (claimed < want && !this.stopping && !this.lease.isLost) {
      // Claims are synchronous renames, one file-server round trip each. On a network mount a run of lost
      // races (a stale listing of pending/) would hold the event loop for seconds and starve the heartbeat:
      // give timers a turn every CLAIM_YIELD_MS.
      if (performance.now() >= yieldAt) {
        await new Promise<void>((res) => setImmediate(res));
        yieldAt = performance.now() + CLAIM_YIELD_MS;
      }
      if (this.candidates.length === 0) {
        if (!this.scanDue && this.hints.length > 0) {
          this.candidates = [...new Set(this.hints)].reverse();
          this.hints.length = 0;
          continue;
        }
        if (rescanned || !this.scanDue) break;
        // The scan sees every file the hints name: drop them rather than try each twice. A scan that
        // stopped at its window leaves more behind it: read again when these run out.
        this.hints.length = 0;
        this.scanDue = false;
        if (await this.scanPending()) this.scanDue = true;
        rescanned = true;
        if (this.candidates.length === 0) break;
      }
      const name = this.candidates.pop()!;
      seen++;
      const id = name.endsWith('.json') ? name.slice(0, -5) : name;
      const src = join(pending, name);
      if (this.holding.has(id)) continue;
      if (this.opts.queues && !(await this.inMyQueues(src, name))) continue;
      if (!this.lease.claim(src, id)) continue;
      this.holding.add(id);
      claimed++;
      this.claimedTotal++;
      void this.runClaimed(this.lease, id, name);
    }
    return { claimed, seen };
  }

  /** With a queue filter: peek at the job's queue before claiming (bad files are claimed to be quarantined). */
  private async inMyQueues(path: string, name: string): Promise<boolean> {
    try {
      const r = await readRegularFile(path);
      if ('bad' in r) return true;
      const q = (JSON.parse(r.text) as { queue?: unknown }).queue ?? 'default';
      if (typeof q === 'string' && this.opts.queues!.includes(q)) return true;
      if (this.skip.size > 100_000) this.skip.clear();
      this.skip.add(name);
      return false;
    } catch (err) {
      if (isGone(err)) return false;
      return true;
    }
  }

  /** Validate a claimed file and run it; never throws. */
  private async runClaimed(lease: Lease, id: string, name: string): Promise<void> {
    const path = lease.pathOf(id);
    try {
      const r = readRegularFileSync(path, MAX_JOB_BYTES);
      let job: Job;
      try {
        if (!name.endsWith('.json')) throw new JobFormatError('name does not end in .json');
        if ('bad' in r) throw new JobFormatError(r.bad);
        job = parseJob(r.text, id);
      } catch (err) {
        if (!(err instanceof JobFormatError)) throw err;
        this.summary.quarantined++;
        const to = await quarantine(this.spool.layout, path, name, err.message);
        this.log('job.quarantined', { id, file: name, reason: err.message, to: to ?? undefined });
        return;
      }
      await this.execute(lease, job);
    } catch (err) {
      if (isGone(err) || err instanceof LeaseLostError) {
        this.log('job.lost', { id, worker: lease.id, reason: 'lease taken while running' });
      } else {
        // Could not record (disk full, read-only spool): keep the job claimed, never lose it. Give the lease
        // up so that the job is not stranded under a lease we keep renewing: it expires, and recovery (a
        // sibling's, or ours under a new lease) hands the job on by its interrupt policy.
        this.log('job.unrecorded', { id, worker: lease.id, error: (err as Error).message });
        if (!lease.isLost) this.loseLease(lease);
      }
    } finally {
      this.running.delete(id);
      const wasFull = this.holding.size >= this.opts.concurrency;
      this.holding.delete(id);
      // A full worker stopped reading pending/: a freed slot must look again. Otherwise the loop only
      // needs to see the count (drain, --max-jobs); new files announce themselves.
      if (wasFull) this.wake(); else this.wakeLoop();
    }
  }

  private async execute(lease: Lease, job: Job): Promise<void> {
    job.attempts += 1;
    const attempt: Attempt = { attempt: job.attempts, worker: lease.id, host: this.lease.info.host, pid: process.pid, start: new Date().toISOString() };
    const serverNow = this.clock.nowCached();
    if (job.deadline && Date.parse(job.deadline) < serverNow) {
      const err: RunError = { name: 'DeadlinePassed', message: `not started by its deadline ${job.deadline}` };
      return this.finish(lease, job, recordError(job, attempt, err, 'deadline', new Date().toISOString(), serverNow));
    }
    let ref = this.refCache.get(job.fn);
    if (!ref) {
      try { ref = await resolveRef(job.fn, this.roots); } catch (err) {
        if (!(err instanceof ModuleRefError)) throw err;
        ref = err;
      }
      if (this.refCache.size > 10_000) this.refCache.clear();
      this.refCache.set(job.fn, ref);
    }
    if (ref instanceof ModuleRefError) {
      const err: RunError = { name: ref.name, message: ref.message, code: ref.code, permanent: true };
      return this.finish(lease, job, recordError(job, attempt, err, 'error', new Date().toISOString(), serverNow));
    }
    const entry: Running = { id: job.id, lease, job };
    this.running.set(job.id, entry);
    this.log('job.start', { id: job.id, fn: job.fn, attempt: job.attempts, worker: lease.id });
    const started = performance.now();
    const task: RunTask = { url: ref.url, exportName: ref.exportName, args: job.args, ctx: { id: job.id, fn: job.fn, queue: job.queue, attempt: job.attempts, spool: this.spool.dir } };
    const timeout = job.timeoutMs ? setTimeout(() => this.abortJob(entry, 'timeout', this.opts.killGraceMs), job.timeoutMs) : undefined;
    let outcome: RunOutcome;
    try {
      outcome = await this.hosts!.run(task);
    } finally {
      if (timeout) clearTimeout(timeout);
      if (entry.killTimer) clearTimeout(entry.killTimer);
    }
    const ms = Math.round(performance.now() - started);
    const endIso = new Date().toISOString();
    if (entry.stop === 'lease lost' || lease.isLost) {
      this.summary.lostLease++;
      this.log('job.abandoned', { id: job.id, worker: lease.id, reason: 'lease lost; recovery settles it' });
      return;
    }
    if (!outcome.ok && 'lost' in outcome) {
      if (outcome.lost === 'killed' || (outcome.lost === 'crashed' && !outcome.shared)) {
        const error: RunError = outcome.lost === 'crashed'
          ? { name: 'WorkerCrashed', message: outcome.message }
          : entry.stop === 'timeout'
            ? { name: 'TimeoutError', message: `timed out after ${job.timeoutMs} ms and was terminated (${outcome.message})` }
            : { name: 'AbortError', message: `terminated: ${entry.stop ?? 'killed'} (${outcome.message})` };
        outcome = { ok: false, error };
      } else if (outcome.lost === 'bystander' || entry.stop === 'shutdown') {
        return this.requeueUncounted(lease, job, attempt, endIso, outcome.message, ms);
      } else {
        // A shared thread died and took several jobs: which one did it is unknown, so each goes by its
        // interrupt policy (a job that keeps killing its thread ends in failed/ after maxInterrupts).
        job.history.push(attempt);
        return this.finish(lease, job, recordInterrupt(job, { worker: lease.id, host: attempt.host, pid: process.pid }, endIso, outcome.message), ms);
      }
    }
    if (entry.stop === 'shutdown') return this.requeueUncounted(lease, job, attempt, endIso, 'worker shutdown', ms);
    if (outcome.ok) {
      if (outcome.json.length > MAX_JOB_BYTES / 2) {
        return this.finish(lease, job, recordError(job, attempt, { name: 'ResultTooLarge', message: `result is ${outcome.json.length} bytes; the limit is ${MAX_JOB_BYTES / 2}: write big results to a file and return its path`, permanent: true }, 'error', endIso, this.clock.nowCached()), ms);
      }
      const value: unknown = JSON.parse(outcome.json);
      if (entry.stop === 'cancelled') {
        return this.finish(lease, job, recordError(job, attempt, { name: 'Cancelled', message: 'cancelled while running (the job finished anyway; its result is kept in history only)' }, 'cancelled', endIso, this.clock.nowCached()), ms);
      }
      return this.finish(lease, job, recordSuccess(job, attempt, value, endIso), ms);
    }
    const kind = entry.stop === 'timeout' ? 'timeout' : entry.stop === 'cancelled' ? 'cancelled' : 'error';
    const err = kind === 'timeout' && outcome.error.name === 'AbortError' ? { ...outcome.error, name: 'TimeoutError', message: `timed out after ${job.timeoutMs} ms (${outcome.error.message})` } : outcome.error;
    return this.finish(lease, job, recordError(job, attempt, err, kind, endIso, this.clock.nowCached()), ms);
  }

  /**
   * Put the job back in pending/ with this attempt recorded as interrupted and not counted: ending it was
   * not the job's fault (a drained shutdown, or another job's thread terminated under it).
   */
  private requeueUncounted(lease: Lease, job: Job, attempt: Attempt, endIso: string, why: string, ms: number): Promise<void> {
    attempt.end = endIso; attempt.outcome = 'interrupted'; attempt.error = why;
    job.history.push(attempt);
    job.attempts -= 1;
    return this.finish(lease, job, { to: 'pending' }, ms);
  }

  /** Write the outcome and move the file, only while the lease is fresh (otherwise recovery owns it). */
  private async finish(lease: Lease, job: Job, next: Next, ms?: number): Promise<void> {
    if (!lease.fresh(Math.min(2000, this.opts.leaseMs / 4))) {
      this.summary.lostLease++;
      this.log('job.abandoned', { id: job.id, worker: lease.id, reason: 'lease not fresh at finish' });
      // The job stays in the lease folder; only a dead lease is recovered. Give the lease up (and take a
      // new one) so that siblings settle the job, instead of leaving it stranded under a lease we renew.
      if (!lease.isLost) this.loseLease(lease);
      return;
    }
    const l = this.spool.layout;
    let to: string;
    switch (next.to) {
      case 'done': to = join(l.done, `${job.id}.json`); break;
      case 'failed': to = join(l.failed, `${job.id}.json`); break;
      case 'pending': to = join(l.pending, `${job.id}.json`); break;
      case 'deferred': to = await deferredPath(l.deferred, next.dueMs, job.id); break;
    }
    const ok = await lease.releaseGrouped(job, to, this.fsyncs);
    if (!ok) {
      this.summary.lostLease++;
      this.log('job.abandoned', { id: job.id, worker: lease.id, reason: 'lease taken before the result was recorded' });
      return;
    }
    if (next.to === 'done') this.summary.done++;
    else if (next.to === 'failed') this.summary.failed++;
    else this.summary.retried++;
    const event = next.to === 'done' ? 'job.done' : next.to === 'failed' ? 'job.failed' : 'job.retry';
    this.log(event, {
      id: job.id, fn: job.fn, attempt: job.attempts, ms,
      reason: next.to === 'failed' ? next.reason : undefined,
      error: job.failure && next.to !== 'done' ? `${job.failure.name}: ${job.failure.message}`.slice(0, 300) : undefined,
      due: next.to === 'deferred' ? new Date(next.dueMs).toISOString() : undefined,
    });
    if (this.cancelFiles.has(job.id)) {
      for (const f of this.cancelFiles.get(job.id)!) await unlink(join(l.cancel, f)).catch(() => undefined);
      this.cancelFiles.delete(job.id);
    }
  }

  /** Abort a running job: its AbortSignal now, its host (thread, process) after `graceMs`. */
  private abortJob(entry: Running, why: NonNullable<Running['stop']>, graceMs: number): void {
    if (entry.stop && entry.stop !== 'timeout') return;
    entry.stop = why;
    const hosts = this.hosts!;
    hosts.abort(entry.id, why);
    const kill = () => hosts.kill(entry.id);
    if (graceMs <= 0 || !hosts.canSignal) kill();
    else { if (entry.killTimer) clearTimeout(entry.killTimer); entry.killTimer = setTimeout(kill, graceMs); }
  }

  private readonly cancelFiles = new Map<string, string[]>();
  private beating = false;

  /** Heartbeat, lease watchdog and cancel requests. */
  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      if (!this.lease.isLost && !this.lease.fresh()) {
        this.log('lease.stale', { worker: this.lease.id, reason: 'heartbeat not renewed within the lease time' });
        this.loseLease(this.lease);
      }
      if (!this.lease.isLost) {
        try {
          await this.lease.heartbeat({ running: this.running.size });
        } catch (err) {
          if (err instanceof LeaseLostError) this.loseLease(this.lease);
          else this.log('lease.renew.failed', { worker: this.lease.id, error: (err as Error).message });
        }
      }
      await this.clock.sample().catch(() => undefined);
      await this.readCancelRequests();
    } finally {
      this.beating = false;
    }
  }

  private loseLease(lease: Lease): void {
    lease.markLost();
    this.log('lease.lost', { worker: lease.id, running: this.running.size });
    for (const r of this.running.values()) if (r.lease === lease) this.abortJob(r, 'lease lost', this.opts.killGraceMs);
    this.wake();
  }

  private async replaceLease(): Promise<void> {
    const old = this.lease;
    this.lease = await this.newLease();
    this.log('lease.new', { worker: this.lease.id, previous: old.id });
  }

  private async readCancelRequests(): Promise<void> {
    if (this.running.size === 0) return;
    for (const f of await listNames(this.spool.layout.cancel)) {
      const id = f.replace(/\.[^.]+$/, '');
      const r = this.running.get(id);
      if (!r) continue;
      const list = this.cancelFiles.get(id) ?? [];
      if (!list.includes(f)) list.push(f);
      this.cancelFiles.set(id, list);
      if (!r.stop) { this.log('job.cancel', { id }); this.abortJob(r, 'cancelled', this.opts.killGraceMs); }
    }
  }

  private periodicRunning = false;

  /** Each poll: promote due deferred jobs, recover dead leases, run extra duties (cron). */
  private async periodic(): Promise<void> {
    if (this.periodicRunning) return;
    this.periodicRunning = true;
    try {
      const now = await this.clock.now();
      const promoted = await promoteDue(this.spool.layout.deferred, this.spool.layout.pending, now);
      if (promoted > 0) this.wake();
      if (!this.stopping && this.lease.freshToJudge()) {
        const n = await recoverDeadLeases(this.spool.layout, this.clock, this.lease, (e) => this.log(e.event, { ...e, event: undefined }));
        if (n > 0) { this.summary.recovered += n; this.wake(); }
      }
      for (const duty of this.duties) await duty(this);
    } catch (err) {
      this.log('worker.periodic.error', { error: (err as Error).message });
    } finally {
      this.periodicRunning = false;
    }
  }

  private async housekeeping(): Promise<void> {
    try {
      await cleanLeftovers(this.spool.layout, this.clock, { log: this.log, tmpAgeMs: this.opts.leftoverAgeMs, workerAgeMs: this.opts.goneWorkerAgeMs });
    } catch (err) {
      this.log('worker.housekeeping.error', { error: (err as Error).message });
    }
  }
}
