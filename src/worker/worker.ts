/**
 * The worker: its loop and its lifecycle. It claims jobs (claimer.ts), hands them to its hosts (hosts.ts:
 * pool threads, child processes or its own event loop), classifies each attempt's end (outcome.ts) and
 * records it (transitions/finish.ts); its watchdog (watchdog.ts) keeps the lease and reads cancel
 * requests; each poll it promotes due jobs, adopts loose files, recovers dead leases and runs cron.
 * Invariants:
 * - it holds at most `concurrency` jobs, each under its lease, and records an outcome only while its lease
 *   is fresh — a worker whose heartbeat stalled aborts its jobs and takes a new lease; the old one's jobs
 *   are settled by recovery like any dead worker's;
 * - a job never crashes the worker: bad files are quarantined, thrown errors and missing modules become
 *   failure records, a hung job is aborted at its timeout and its thread terminated after a grace period;
 * - an outcome it cannot record (disk full, read-only spool) is kept and tried again while the worker
 *   takes no new job, so that no job runs twice because the disk filled;
 * - one failing duty (promotion, recovery, cron, housekeeping) is logged and the others go on;
 * - its settings (concurrency, queues, fn, paused) are re-read from the spool's live configuration each
 *   poll (spool/config.ts: its options win, then the entry for its name, its host, `*`, the defaults) and
 *   applied without a restart: a lower concurrency lets running jobs finish, `paused` takes no new job, a
 *   job whose function the `fn` filter refuses is put back (transitions/unclaim.ts). Its heartbeat carries
 *   its name and its effective settings with where each came from (`zcq status`).
 */
import { availableParallelism, hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { LeaseLostError, ModuleRefError, UsageError, ZcqError, errnoOf, isGone, isMountGone, isTransient } from '../errors.js';
import { COMPOSITE, WORKER_BOUNDS, WORKER_DEFAULTS, defaultHeartbeatMs } from '../defaults.js';
import type { Attempt, Job } from '../job/format.js';
import { recordError, type Next, type RunError } from '../job/policy.js';
import { createRefResolver, realRoots, type RefResolver, type ResolvedRef } from '../job/resolve.js';
import { silentLogger, type Logger } from '../log.js';
import {
  ConfigReader, WORKER_NAME, fnFilter, nameFromHost, resolveSettings, type EffectiveSettings, type SettingSources, type WorkerSettings,
} from '../spool/config.js';
import { cleanLeftovers, takeHousekeepingTurn } from '../spool/housekeeping.js';
import { applyRetention, readRetention } from '../spool/retention.js';
import type { Layout } from '../spool/layout.js';
import { Lease } from '../spool/lease.js';
import { ServerClock } from '../spool/server-clock.js';
import { CancelRequestDrops } from '../spool/transitions/cancel.js';
import { readClaimed, type ClaimedJob } from '../spool/transitions/claim.js';
import { finishJob } from '../spool/transitions/finish.js';
import { GroupSync } from '../spool/transitions/group-sync.js';
import { adoptLoose, promoteDue, removeEmptyBuckets } from '../spool/transitions/promote.js';
import { LeaseLooks, recoverDeadLeases } from '../spool/transitions/recover.js';
import { LeaseAudit } from '../spool/transitions/audit.js';
import { unclaimJob } from '../spool/transitions/unclaim.js';
import { takeSlots, type Slot } from '../spool/transitions/quota-take.js';
import { releaseSlots } from '../spool/transitions/quota-release.js';
import { freeSlotsNow, readLimit, readQueueQuotas } from '../spool/quota.js';
import { listRates, queueRateFolder, rateFolderName, type Rate } from '../spool/rate.js';
import { rateHasRoom, takeRateTokens } from '../spool/transitions/rate-take.js';
import { jobName } from '../spool/names.js';
import { brokenFolders } from '../spool/queues.js';
import { Claimer, TURN_EVERY_MS } from './claimer.js';
import { InlineHosts, ProcessHosts, ThreadHosts, type JobHosts } from './hosts.js';
import { classifyOutcome, type StopReason } from './outcome.js';
import { OPEN_GATE, compositeGate, gatedJob } from './composite.js';
import { addEdges, sweepWaiting } from '../spool/transitions/release.js';
import type { RunTask } from './runner.js';
import { Watchdog } from './watchdog.js';
import { SelfFence, fenceState } from './self-fence.js';
import { schedulerDuty } from '../schedule/duty.js';

export interface WorkerOptions {
  /**
   * The worker's name (default: the host name): the live configuration for NAME (config/workers/NAME.json)
   * applies to it. Several workers may share a name.
   */
  name?: string;
  /** Folders job modules must live in (default: the current folder). */
  roots?: string[];
  /** Jobs run at once (default: the live configuration, else the CPU count). Given, it wins over the configuration. */
  concurrency?: number;
  /** Take only jobs whose function matches these globs (`*`, `?`, `!PATTERN` excludes); given, it wins over the configuration. */
  fn?: string[] | null;
  /** Pool threads the jobs share, with runtime 'threads' (default: the CPU count, at most `concurrency`). */
  threads?: number;
  /** Poll interval when no file-change events arrive (default 1000 ms). */
  pollMs?: number;
  /** Exit once nothing is pending, claimed or due in the queues it serves. */
  exitWhenIdle?: boolean;
  /** Stop claiming after this many jobs, finish them, and exit (benchmarks, batch runs). */
  maxJobs?: number;
  /**
   * Where job code runs (hosts.ts): 'threads' (default), 'processes' for jobs that may crash their
   * process, 'inline' for the worker's own event loop (least memory and CPU; timeouts cannot stop a job).
   */
  runtime?: 'threads' | 'processes' | 'inline';
  /** Serve only these queues, in this order of preference (default: the live configuration, else all, in turn). Given, it wins over the configuration. */
  queues?: string[] | null;
  /** A lease not renewed for this long is dead (default 30 000 ms; on NFS at least heartbeat + actimeo). */
  leaseMs?: number;
  /** Heartbeat interval (default leaseMs / 6). */
  heartbeatMs?: number;
  /** On SIGINT/SIGTERM/SIGHUP or stop(): how long running jobs may take to finish before they are released (default 10 s). */
  graceMs?: number;
  /** After a timeout or cancel aborts a job's signal, how long before its thread is terminated (default 5 s). */
  killGraceMs?: number;
  /** Use fs.watch for prompt pickup (default true; polling always runs as well). */
  watch?: boolean;
  /** Handle SIGINT/SIGTERM/SIGHUP (default false for the API, true for the CLI). */
  handleSignals?: boolean;
  log?: Logger;
  /** Act as a cron scheduler (default true): create the jobs of due schedule ticks each poll. */
  scheduler?: boolean;
  /** Crash leftovers (temp files, `.nfs*` files) older than this are removed (default 1 h, server clock). */
  leftoverAgeMs?: number;
  /** Heartbeats of workers gone (no lease folder) for this long are removed (default 1 day). */
  goneWorkerAgeMs?: number;
  /** How often the worker cleans leftovers and prunes finished records by the spool's retention settings (default 60 s). */
  housekeepingMs?: number;
  /** Extra periodic duties run each poll. */
  duties?: Array<(w: Worker) => Promise<void>>;
}

export interface WorkerSummary { done: number; failed: number; retried: number; recovered: number; quarantined: number; lostLease: number }

interface Running {
  id: string;
  claim: ClaimedJob;
  job: Job;
  /** Why the job is being stopped, if it is. */
  stop?: StopReason;
  killTimer?: NodeJS.Timeout;
}

/** Records a worker's housekeeping prunes between two looks at the time (prune.ts yields every 2 ms). */
const WORKER_PRUNE_SLICE = 10;
const runnerFile = fileURLToPath(new URL('./runner.js', import.meta.url));

export class Worker {
  readonly opts: Required<Omit<WorkerOptions, 'name' | 'fn' | 'queues' | 'duties' | 'maxJobs' | 'log' | 'scheduler'>> & { queues: string[] | null; maxJobs: number | null };
  /** The worker's name (its live configuration is config/workers/NAME.json). */
  readonly name: string;
  readonly log: Logger;
  readonly clock: ServerClock;
  lease!: Lease;
  readonly summary: WorkerSummary = { done: 0, failed: 0, retried: 0, recovered: 0, quarantined: 0, lostLease: 0 };
  /** Resolves when the worker has stopped and released everything. */
  done!: Promise<WorkerSummary>;

  private hosts?: JobHosts;
  private roots: string[] = [];
  private readonly running = new Map<string, Running>();
  /** Removes the cancel requests of jobs that ended (one lstat per turn of jobs ending together while cancel/ is unchanged). */
  private readonly cancelDrops: CancelRequestDrops;
  /** Folder fsyncs shared by jobs finishing together (durable mode). */
  private readonly fsyncs = new GroupSync();
  /** Ids claimed and not yet released: the slots in use (set at claim, before the job starts). */
  private readonly holding = new Set<string>();
  /**
   * The claim paths this worker holds, from the claim rename (same turn of the event loop) until the job
   * has left its lease folder or been given up: an entry of our folder not in it is a stray (transitions/audit.ts).
   */
  private readonly claimPaths = new Set<string>();
  private readonly leaseAudit = new LeaseAudit();
  /** When our lease folder is next audited (Date.now()); 0 also right after a recovery pass that took a lease. */
  private nextAudit = 0;
  /** When each sibling's lease is next worth judging: a live one is read a few times a lease, not every poll. */
  private readonly leaseLooks = new LeaseLooks();
  private resolver!: RefResolver;
  private readonly duties: Array<(w: Worker) => Promise<void>>;
  private stopping = false;
  private readonly scheduler: boolean;
  private claimedTotal = 0;
  private wakeFn?: () => void;
  private timers: NodeJS.Timeout[] = [];
  private signalHandler?: () => void;
  private claimer!: Claimer;
  private watchdog!: Watchdog;
  private fence!: SelfFence;
  /** Outcomes that could not be written (disk full, read-only): no new job is taken while any waits. */
  private unrecorded = 0;
  /** Settings given as options (they win over the live configuration). */
  private readonly flags: WorkerSettings;
  private readonly defaults: EffectiveSettings;
  private readonly config: ConfigReader;
  private current: { settings: EffectiveSettings; sources: SettingSources };
  private accepts: (fn: string) => boolean = () => true;
  /** The configuration problems last logged: each distinct set is logged once. */
  private configProblems = '';
  private readonly threadsGiven: boolean;

  constructor(readonly layout: Layout, readonly durable: boolean, opts: WorkerOptions = {}) {
    const leaseMs = opts.leaseMs ?? WORKER_DEFAULTS.leaseMs;
    this.name = opts.name ?? nameFromHost(hostname());
    if (!WORKER_NAME.test(this.name)) throw new UsageError(`worker name '${this.name.slice(0, 80)}': use letters, digits, '.', '_' or '-' (at most 240), starting with a letter or digit`);
    const queues = opts.queues && opts.queues.length > 0 ? [...new Set(opts.queues)] : null;
    this.flags = {
      concurrency: opts.concurrency !== undefined ? Math.min(WORKER_BOUNDS.concurrency.max, Math.max(1, opts.concurrency)) : undefined,
      queues: queues ?? undefined,
      fn: opts.fn && opts.fn.length > 0 ? opts.fn : undefined,
    };
    this.defaults = { concurrency: Math.min(WORKER_BOUNDS.concurrency.max, availableParallelism()), queues: null, fn: null, paused: false };
    this.config = new ConfigReader(layout, this.name, hostname());
    this.current = resolveSettings(this.flags, { name: {}, host: {}, all: {} }, this.defaults);
    this.accepts = fnFilter(this.current.settings.fn);
    this.threadsGiven = opts.threads !== undefined;
    const concurrency = this.flags.concurrency ?? this.defaults.concurrency;
    this.opts = {
      roots: opts.roots && opts.roots.length > 0 ? opts.roots : [process.cwd()],
      concurrency,
      threads: Math.max(1, Math.min(opts.threads ?? availableParallelism(), concurrency)),
      pollMs: opts.pollMs ?? WORKER_DEFAULTS.pollMs,
      exitWhenIdle: opts.exitWhenIdle ?? false,
      maxJobs: opts.maxJobs ?? null,
      runtime: opts.runtime ?? 'threads',
      queues,
      leaseMs,
      heartbeatMs: opts.heartbeatMs ?? defaultHeartbeatMs(leaseMs),
      graceMs: opts.graceMs ?? WORKER_DEFAULTS.graceMs,
      killGraceMs: opts.killGraceMs ?? WORKER_DEFAULTS.killGraceMs,
      watch: opts.watch ?? true,
      handleSignals: opts.handleSignals ?? false,
      leftoverAgeMs: opts.leftoverAgeMs ?? WORKER_DEFAULTS.leftoverAgeMs,
      goneWorkerAgeMs: opts.goneWorkerAgeMs ?? WORKER_DEFAULTS.goneWorkerAgeMs,
      housekeepingMs: opts.housekeepingMs ?? WORKER_DEFAULTS.housekeepingMs,
    };
    this.log = opts.log ?? silentLogger;
    this.duties = [...(opts.duties ?? [])];
    this.scheduler = opts.scheduler ?? true;
    this.clock = new ServerClock(layout.tmp, `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    this.cancelDrops = new CancelRequestDrops(layout, () => this.clock.nowCached());
  }

  get id(): string { return this.lease.id; }
  get runningCount(): number { return this.holding.size; }
  /** Jobs at once now (the live configuration may change it). */
  get concurrency(): number { return this.current.settings.concurrency; }
  /** The settings in force now, and where each came from. */
  get settings(): { settings: EffectiveSettings; sources: SettingSources } { return { settings: { ...this.current.settings }, sources: { ...this.current.sources } }; }
  /** The spool folder. */
  get dir(): string { return this.layout.root; }

  async start(): Promise<void> {
    this.roots = await realRoots(this.opts.roots);
    this.resolver = createRefResolver(this.roots);
    if (this.scheduler) this.duties.push(schedulerDuty());
    this.readSettings();
    // Threads serve many jobs each: their number is fixed at start (the CPU count, at most the concurrency then).
    if (!this.threadsGiven) this.opts.threads = Math.max(1, Math.min(availableParallelism(), this.concurrency));
    // The job hosts start while the file server's clock is sampled and the lease made: a pool thread's start
    // (an isolate and the runner's modules) runs on another core meanwhile.
    const hosts = this.startHosts();
    hosts.catch(() => undefined); // its failure is awaited below; a failure of the lease first destroys it
    try {
      await this.clock.sample();
      this.lease = await this.newLease();
    } catch (err) {
      void hosts.then((h) => h.destroy(), () => undefined);
      // A read-only spool, or one this user may not write (not a member of its group): one line, exit 2.
      const code = errnoOf(err);
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
        const why = code === 'EROFS' ? 'the spool is on a read-only file system' : `this user may not write in it (${code}; is it a member of the spool's group?)`;
        throw new ZcqError('ZCQ_CANNOT_WRITE', `${this.layout.root}: cannot run a worker: ${why}; ls, show, status, wait and doctor still work`, 2, { cause: err });
      }
      throw err;
    }
    this.hosts = await hosts;
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias
    this.claimer = new Claimer(this.layout, this.current.settings.queues, this.concurrency, this.opts.watch, () => this.wakeLoop());
    this.watchdog = new Watchdog(this.layout, {
      get lease() { return self.lease; },
      runningIds: () => this.running.keys(),
      runningCount: () => this.running.size,
      loseLease: (l) => this.loseLease(l),
      cancelRunning: (id) => { const r = this.running.get(id); if (r && !r.stop) this.abortJob(r, 'cancelled', this.opts.killGraceMs); },
      mountGone: (err) => this.mountGone(err),
      heartbeatExtra: () => ({
        running: this.running.size, name: this.name, concurrency: this.concurrency, queues: this.current.settings.queues,
        fn: this.current.settings.fn, paused: this.current.settings.paused, sources: this.current.sources,
      }),
    }, this.log);
    this.fence = new SelfFence({ get lease() { return self.lease; }, loseLease: (l) => this.loseLease(l), renewNow: () => void this.watchdog.beat(), log: (e, f) => this.log(e, f) });
    const eff = this.current.settings;
    this.log('worker.start', { worker: this.lease.id, name: this.name, spool: this.layout.root, concurrency: eff.concurrency, runtime: this.opts.runtime, threads: this.opts.runtime === 'threads' ? this.opts.threads : undefined, leaseMs: this.opts.leaseMs, queues: eff.queues?.join(','), fn: eff.fn?.join(','), paused: eff.paused || undefined, roots: this.roots.join(':') });
    if (this.opts.handleSignals) {
      let count = 0;
      this.signalHandler = () => {
        count++;
        if (count === 1) { this.log('worker.stopping', { worker: this.lease.id, running: this.running.size, graceMs: this.opts.graceMs }); void this.stop(); }
        else { this.log('worker.stopping.now', { worker: this.lease.id }); void this.stop(0); }
      };
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, this.signalHandler);
    }
    this.timers.push(setInterval(() => void this.watchdog.beat().then(() => this.clock.sample().catch(() => undefined)), this.opts.heartbeatMs));
    this.timers.push(setInterval(() => void this.periodic(), this.opts.pollMs));
    this.timers.push(setInterval(() => void this.housekeeping(), this.opts.housekeepingMs));
    this.done = this.loop();
  }

  private async startHosts(): Promise<JobHosts> {
    if (this.opts.runtime === 'inline') return new InlineHosts();
    const { default: Pool } = await import('tinypool');
    if (this.opts.runtime === 'processes') {
      return new ProcessHosts(new Pool({
        filename: runnerFile, runtime: 'child_process', isolateWorkers: false, idleTimeout: 60_000,
        // One process per running job: as many as the concurrency may become (live configuration), made on demand.
        minThreads: Math.min(this.concurrency, availableParallelism()), maxThreads: this.flags.concurrency ?? WORKER_BOUNDS.concurrency.max,
      }));
    }
    // One agent task per thread for the worker's whole life: tinypool starts, replaces and terminates the
    // threads; the jobs go over each agent's own port.
    const t = this.opts.threads;
    return new ThreadHosts(new Pool({ filename: runnerFile, runtime: 'worker_threads', isolateWorkers: false, minThreads: t, maxThreads: t, concurrentTasksPerWorker: 1, useAtomics: false }), t);
  }

  private async newLease(): Promise<Lease> {
    return Lease.acquire(this.layout, { kind: 'worker', leaseMs: this.opts.leaseMs, concurrency: this.concurrency, queues: this.current.settings.queues, name: this.name }, this.durable);
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

  /** Wake the loop, and have it read the queue folders (something other than a named new file may be there). */
  wake(): void { if (this.claimer) this.claimer.scanDue = true; this.wakeLoop(); }

  private wakeLoop(): void { const f = this.wakeFn; this.wakeFn = undefined; f?.(); }

  private sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(() => { this.wakeFn = undefined; this.claimer.scanDue = true; res(); }, ms);
      this.wakeFn = () => { clearTimeout(t); res(); };
    });
  }

  private async loop(): Promise<WorkerSummary> {
    try {
      await this.periodic();
      let turnDue = performance.now() + TURN_EVERY_MS;
      while (!this.stopping) {
        // Jobs that end with no I/O to wait for (the inline runtime, relaxed mode) chain claim, run and finish
        // through promises alone, which never give the event loop a turn: the heartbeat's timer waited for the
        // whole drain (or for the self-fence to stop claiming). One turn every TURN_EVERY_MS.
        if (performance.now() >= turnDue) {
          await new Promise<void>((res) => setImmediate(res));
          turnDue = performance.now() + TURN_EVERY_MS;
        }
        if (this.lease.isLost) {
          try {
            await this.replaceLease();
          } catch (err) {
            // Disk full, read-only or lost mount: keep trying rather than exit; nothing is claimed meanwhile.
            if (isMountGone(err)) { this.mountGone(err); await this.sleep(this.mountBackoff()); continue; }
            this.log('lease.new.failed', { error: (err as Error).message });
            await this.sleep(Math.max(this.opts.pollMs, 1000));
            continue;
          }
        }
        // The self-fence (self-fence.ts): a lease not renewed for nearly its length claims nothing; an expired one is given up.
        const fenced = !this.fence.mayClaim();
        if (fenced && this.lease.isLost) continue;
        const free = fenced || this.unrecorded > 0 || this.current.settings.paused ? 0 : this.concurrency - this.holding.size;
        const budget = this.opts.maxJobs === null ? free : Math.min(free, this.opts.maxJobs - this.claimedTotal);
        let scan = { claimed: 0, seen: 0 };
        let idle = false;
        try {
          if (budget > 0) scan = await this.claimer.claimSome(this.lease, budget, () => this.stopping || fenceState(this.lease) !== 'open', (c) => this.startClaimed(c));
          // Not while a periodic pass runs: a dead lease it is settling sits in our own folder (which idle()
          // does not look into) and its jobs reach pending/ only as the pass goes on; promotion and adoption
          // likewise move jobs between the folders idle() reads one after the other.
          idle = this.opts.exitWhenIdle && this.holding.size === 0 && scan.claimed === 0 && !this.periodicRunning && this.claimer.idle(this.lease, await this.clock.now());
        } catch (err) {
          if (!isMountGone(err)) throw err;
          this.mountGone(err);
          await this.sleep(this.mountBackoff());
          continue;
        }
        if (this.opts.maxJobs !== null && this.claimedTotal >= this.opts.maxJobs && this.holding.size === 0) break;
        if (scan.claimed > 0 && this.holding.size < this.concurrency) continue;
        if (scan.seen > 0 && scan.claimed === 0 && budget > 0) continue; // lost every race: rescan at once
        if (idle) break;
        await this.sleep(this.holding.size >= this.concurrency ? 60_000 : this.opts.pollMs);
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
    this.claimer?.stop();
    this.cancelDrops.flush();
    await this.housekeepingPass?.catch(() => undefined);
    if (this.signalHandler) for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, this.signalHandler);
    await this.hosts?.destroy().catch(() => undefined);
    await this.fsyncs.close();
    await this.lease.end().catch(() => undefined);
    await this.clock.dispose();
    this.log('worker.stop', { worker: this.lease.id, ...this.summary });
  }

  private startClaimed(c: ClaimedJob): void {
    this.holding.add(c.id);
    this.claimPaths.add(c.path);
    this.claimedTotal++;
    void this.runClaimed(c);
  }

  /** Validate a claimed file and run it; never throws. */
  private async runClaimed(c: ClaimedJob): Promise<void> {
    try {
      const read = await readClaimed(c);
      if ('gone' in read) { this.log('job.lost', { id: c.id, worker: c.lease.id, reason: 'moved away before it was read' }); return; }
      if ('quarantined' in read) {
        this.summary.quarantined++;
        this.log('job.quarantined', { id: c.id, queue: c.queue, reason: read.reason, to: read.quarantined });
        return;
      }
      if (!this.accepts(read.job.fn)) { this.putBack(c, read.job.fn); return; }
      // Quota slots (transitions/quota-take.ts): all of the job's, or it goes back until one frees.
      let slots: Slot[] = [];
      const quotas = this.quotasOf(read.job);
      if (quotas.length > 0) {
        const r = takeSlots(this.layout, quotas, c.token, (q) => this.limitOf(q));
        if ('blocked' in r) { this.putBack(c, read.job.fn, r.blocked, `limit ${r.limit}`); return; }
        slots = r.slots;
      }
      // Rate limits (transitions/rate-take.ts), by the file server's clock: its queue's and its quotas'.
      const rates = this.ratesOf(read.job);
      if (rates.length > 0) {
        const r = takeRateTokens(this.layout, rates, c.token, this.clock.nowCached());
        if ('blocked' in r) {
          for (const q of releaseSlots(slots, c.token)) this.claimer.quotaFreed(q);
          const rate = `${r.rate.count}/${r.rate.windowMs}ms`;
          if (r.blocked === queueRateFolder(c.queue)) {
            // The whole queue waits for the next window: no claim of its jobs until then.
            this.heldQueues.add(c.queue);
            this.claimer.holdQueues(this.heldQueues);
            this.putBack(c, read.job.fn, undefined, `rate ${rate}`, true);
          } else {
            this.putBack(c, read.job.fn, `rate:${r.blocked}`, `rate ${rate}`);
          }
          return;
        }
      }
      if (read.retried) this.log('job.retried', { id: c.id, queue: c.queue, reason: 'a finished record was moved back to pending/' });
      try {
        await this.execute(c, read.job);
      } finally {
        if (slots.length > 0) for (const q of releaseSlots(slots, c.token, () => !c.lease.isLost && c.lease.folderIsOurs())) this.claimer.quotaFreed(q);
      }
    } catch (err) {
      if (isGone(err) || err instanceof LeaseLostError) this.log('job.lost', { id: c.id, worker: c.lease.id, reason: 'lease taken while running' });
      else {
        // Not recorded, for a reason we do not know how to wait out: give the lease up so that recovery (a
        // sibling's, or ours under a new lease) settles the job by its policy, instead of leaving it stranded.
        this.log('job.error', { id: c.id, worker: c.lease.id, error: (err as Error).message });
        if (!c.lease.isLost) this.loseLease(c.lease);
      }
    } finally {
      this.running.delete(c.id);
      this.claimPaths.delete(c.path);
      const wasFull = this.holding.size >= this.concurrency;
      this.holding.delete(c.id);
      // A full worker stopped reading the queue folders: a freed slot must look again.
      if (wasFull) this.wake(); else this.wakeLoop();
    }
  }

  /**
   * A job whose function the `fn` filter refuses goes back to pending/ untouched (transitions/unclaim.ts),
   * and the claimer leaves its name alone while the filter and the file stay as they are.
   */
  private putBack(c: ClaimedJob, fn: string, quota?: string, limit?: string, queueHeld = false): void {
    const name = jobName(c.id);
    if (!queueHeld) this.claimer.rememberPutBack(c.queue, name, c.level, quota);
    const ok = unclaimJob(c);
    if (!queueHeld) this.claimer.putBackDone(c.queue, name, ok, c.level);
    this.claimedTotal--;
    const why = queueHeld ? `queue ${c.queue} has no start left in this window (${limit})`
      : quota !== undefined ? `${quota.startsWith('rate:') ? `${quota} has no start left in this window` : `quota ${quota} has no free slot`} (${limit})`
        : 'its function does not match this worker\'s fn filter';
    this.log('job.skipped', { id: c.id, queue: c.queue, fn, quota, worker: c.lease.id, reason: ok ? `${why}: put back in pending/` : `${why}; gone before it could be put back` });
  }

  /** Rates in force (rate/NAME/limit.json), read each poll. */
  private rates = new Map<string, Rate>();
  /** Queues whose rate was used up: no job of theirs is claimed until their window turns. */
  private readonly heldQueues = new Set<string>();

  /** Quota limits read recently (limit.json), each kept for one poll interval: a change is live within a poll. */
  private readonly limits = new Map<string, { limit: number | null; at: number }>();

  private limitOf(quota: string): number | null {
    const now = performance.now();
    const hit = this.limits.get(quota);
    if (hit && now - hit.at < this.opts.pollMs) return hit.limit;
    const { limit } = readLimit(this.layout, quota);
    if (this.limits.size > 1000) this.limits.clear();
    this.limits.set(quota, { limit, at: now });
    return limit;
  }

  /** Default quotas of queues (config/queues/QUEUE.json), read each poll. */
  private queueQuotas = new Map<string, string[]>();

  /** A job's quotas: its own and its queue's default ones. */
  private quotasOf(job: Job): string[] {
    const d = this.queueQuotas.get(job.queue);
    if (!d) return job.quotas ?? [];
    return [...new Set([...(job.quotas ?? []), ...d])];
  }

  /** The rates that apply to a job: its queue's, then its quotas'. */
  private ratesOf(job: Job): { folder: string; rate: Rate }[] {
    if (this.rates.size === 0) return [];
    const out: { folder: string; rate: Rate }[] = [];
    for (const folder of [queueRateFolder(job.queue), ...this.quotasOf(job)]) {
      const rate = this.rates.get(folder);
      if (rate) out.push({ folder, rate });
    }
    return out;
  }

  /**
   * Each poll: re-read the rates, and let the jobs put back for a quota or a rate be claimed again as far
   * as slots or starts are free now (as many as are free, the first put back first).
   */
  private lookAtQuotas(): void {
    this.rates = new Map(listRates(this.layout).filter((e) => e.rate !== null).map((e) => [rateFolderName(e.target), e.rate!]));
    this.queueQuotas = readQueueQuotas(this.layout).quotas;
    const now = this.clock.nowCached();
    for (const q of this.claimer.quotasWaitedFor) {
      if (q.startsWith('rate:')) {
        const folder = q.slice(5);
        const rate = this.rates.get(folder);
        if (!rate || rateHasRoom(this.layout, folder, rate, now)) this.claimer.quotaFreed(q, rate ? rate.count : Infinity);
        continue;
      }
      const { limit } = readLimit(this.layout, q);
      const free = limit === null ? Infinity : freeSlotsNow(this.layout, q, limit);
      if (free > 0) this.claimer.quotaFreed(q, free);
    }
    if (this.heldQueues.size > 0) {
      for (const queue of [...this.heldQueues]) {
        const rate = this.rates.get(queueRateFolder(queue));
        if (!rate || rateHasRoom(this.layout, queueRateFolder(queue), rate, now)) this.heldQueues.delete(queue);
      }
      this.claimer.holdQueues(this.heldQueues);
    }
  }

  /**
   * Read the live configuration (at most three small files, each parsed again only when it changed) and
   * apply what changed: the claimer's queues and window, the fn filter, and the heartbeat at once.
   */
  private readSettings(): boolean {
    const { layers, problems } = this.config.read();
    const key = problems.join('\n');
    if (key !== this.configProblems) {
      this.configProblems = key;
      for (const problem of problems) this.log('config.invalid', { problem, note: 'the next level applies in its place' });
    }
    const next = resolveSettings(this.flags, layers, this.defaults);
    const before = this.current;
    if (JSON.stringify(next) === JSON.stringify(before)) return false;
    this.current = next;
    if (JSON.stringify(next.settings.fn) !== JSON.stringify(before.settings.fn)) {
      this.accepts = fnFilter(next.settings.fn);
      this.claimer?.forgetPutBack();
    }
    if (this.claimer) {
      this.claimer.setQueues(next.settings.queues);
      this.claimer.setConcurrency(next.settings.concurrency);
      const changed = (Object.keys(next.settings) as (keyof EffectiveSettings)[]).filter((k) => JSON.stringify(next.settings[k]) !== JSON.stringify(before.settings[k]) || next.sources[k] !== before.sources[k]);
      this.log('worker.config', { worker: this.lease.id, name: this.name, ...Object.fromEntries(changed.map((k) => [k, `${show(next.settings[k])} (${next.sources[k]})`])) });
      this.wake();
      void this.watchdog.beat();
    }
    return true;
  }

  /** The module of a job; a failed look-up is not remembered, so a module deployed afterwards is found by the next job. */
  private async resolve(fn: string): Promise<ResolvedRef | ModuleRefError> {
    try { return await this.resolver.resolve(fn); } catch (err) {
      if (err instanceof ModuleRefError) return err;
      throw err;
    }
  }

  private async execute(c: ClaimedJob, job: Job): Promise<void> {
    job.attempts += 1;
    const attempt: Attempt = { attempt: job.attempts, worker: c.lease.id, host: c.lease.info.host, pid: process.pid, start: new Date().toISOString() };
    const serverNow = this.clock.nowCached();
    if (job.deadline && Date.parse(job.deadline) < serverNow) {
      const err: RunError = { name: 'DeadlinePassed', message: `not started by its deadline ${job.deadline}` };
      return this.finish(c, job, recordError(job, attempt, err, 'deadline', new Date().toISOString(), serverNow));
    }
    const gate = gatedJob(job) ? await compositeGate(this.layout, job, attempt, () => new Date().toISOString(), serverNow) : OPEN_GATE;
    if (!gate.run) return this.finish(c, job, gate.next);
    const ref = this.resolver.cached(job.fn) ?? await this.resolve(job.fn);
    if (ref instanceof ModuleRefError) {
      const err: RunError = { name: ref.name, message: ref.message, code: ref.code, permanent: true };
      return this.finish(c, job, recordError(job, attempt, err, 'error', new Date().toISOString(), serverNow));
    }
    // The self-fence: never started under a lease a sibling may be judging dead.
    if (fenceState(c.lease) !== 'open' && !(await this.fence.mayStart(c.lease))) { if (this.fence.putBack(c)) this.claimedTotal--; return; }
    const entry: Running = { id: job.id, claim: c, job };
    this.running.set(job.id, entry);
    this.log('job.start', { id: job.id, fn: job.fn, queue: job.queue, attempt: job.attempts, worker: c.lease.id });
    let started = performance.now();
    const task: RunTask = { url: ref.url, exportName: ref.exportName, args: gate.args ?? job.args, ctx: { id: job.id, fn: job.fn, queue: job.queue, attempt: job.attempts, spool: this.layout.root }, fileMode: this.layout.modes.fileMode, modes: this.layout.modes };
    // The timeout counts from when the job's host can run it (hosts.ts: a pool thread may still be starting).
    let timeout: ReturnType<typeof setTimeout> | undefined;
    let ended = false;
    const onStart = () => {
      if (ended) return;
      started = performance.now();
      if (job.timeoutMs) timeout = setTimeout(() => this.abortJob(entry, 'timeout', this.opts.killGraceMs), job.timeoutMs);
    };
    let outcome;
    try {
      outcome = await this.hosts!.run(task, onStart);
    } finally {
      ended = true;
      if (timeout) clearTimeout(timeout);
      if (entry.killTimer) clearTimeout(entry.killTimer);
    }
    const ms = Math.round(performance.now() - started);
    const stop = c.lease.isLost ? 'lease lost' : entry.stop;
    const verdict = classifyOutcome(job, attempt, outcome, stop, new Date().toISOString(), this.clock.nowCached());
    if (!verdict.record) {
      this.summary.lostLease++;
      this.log('job.abandoned', { id: job.id, worker: c.lease.id, reason: verdict.why });
      return;
    }
    // It returned a composite: its edge on the postprocess exists before its record goes to waiting/.
    if (verdict.next.to === 'waiting' && job.awaits) addEdges(this.layout, [job.awaits], job.queue, job.id);
    return this.finish(c, job, verdict.next, ms);
  }

  /**
   * Record the outcome (transitions/finish.ts), only while the lease is fresh (otherwise recovery owns
   * the job). An outcome that cannot be written for lack of space or a read-only mount is kept and tried
   * again with a growing pause, while the worker claims nothing.
   */
  private async finish(c: ClaimedJob, job: Job, next: Next, ms?: number): Promise<void> {
    let pause = 500;
    let waiting = false;
    try {
      for (;;) {
        if (fenceState(c.lease) !== 'open') {
          this.summary.lostLease++;
          this.log('job.abandoned', { id: job.id, worker: c.lease.id, reason: 'lease not fresh at finish' });
          // Only a dead lease is recovered: give it up (and take a new one) so that siblings settle the job.
          if (!c.lease.isLost) this.loseLease(c.lease);
          return;
        }
        let r;
        try {
          r = await finishJob(c, job, next, this.fsyncs, (err) => this.log('job.reopen.failed', {
            id: job.id, group: job.postprocessOf?.gid, error: err.message, note: 'a member was retried while it ran: it should run again; `zcq recover` re-opens it',
          }));
        } catch (err) {
          const code = errnoOf(err);
          if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM' && !isMountGone(err)) throw err;
          if (!waiting) {
            waiting = true;
            this.unrecorded++;
            this.log('job.unrecorded', { id: job.id, worker: c.lease.id, error: (err as Error).message, retryMs: pause, note: 'no new job is taken until it is recorded' });
          }
          if (this.stopping && this.holding.size > 0 && pause > 8000) { this.log('job.abandoned', { id: job.id, reason: 'shutting down with the outcome unrecorded; recovery settles it' }); return; }
          await new Promise((res) => setTimeout(res, pause));
          pause = Math.min(pause * 2, 10_000);
          continue;
        }
        if (r !== 'moved') {
          this.summary.lostLease++;
          this.log('job.abandoned', { id: job.id, worker: c.lease.id, reason: r === 'taken' ? 'its file was moved away while it ran (by hand?)' : 'lease taken before the result was recorded' });
          return;
        }
        break;
      }
    } finally {
      if (waiting) { this.unrecorded--; if (this.unrecorded === 0) this.log('spool.writable', { worker: c.lease.id }); }
    }
    if (next.to === 'done' || next.to === 'failed') this.cancelDrops.dropSoon(job.id);
    if (next.to === 'done') this.summary.done++;
    else if (next.to === 'failed') this.summary.failed++;
    else if (next.to !== 'waiting') this.summary.retried++;
    const event = next.to === 'done' ? 'job.done' : next.to === 'failed' ? 'job.failed' : next.to === 'waiting' ? 'job.waiting' : 'job.retry';
    this.log(event, {
      id: job.id, fn: job.fn, queue: job.queue, attempt: job.attempts, ms,
      reason: next.to === 'failed' ? next.reason : undefined,
      error: job.failure && next.to !== 'done' ? `${job.failure.name}: ${job.failure.message}`.slice(0, 300) : undefined,
      due: next.to === 'deferred' ? new Date(next.dueMs).toISOString() : undefined,
      awaits: next.to === 'waiting' ? (job.awaits ?? job.after?.join(' ')) : undefined,
    });
    this.watchdog.jobRecorded(job.id);
  }

  /** Abort a running job: its AbortSignal now, its host (thread, process) after `graceMs`. */
  private abortJob(entry: Running, why: StopReason, graceMs: number): void {
    if (entry.stop && entry.stop !== 'timeout') return;
    entry.stop = why;
    const hosts = this.hosts!;
    hosts.abort(entry.id, why);
    const kill = () => hosts.kill(entry.id);
    if (graceMs <= 0 || !hosts.canSignal) kill();
    else { if (entry.killTimer) clearTimeout(entry.killTimer); entry.killTimer = setTimeout(kill, graceMs); }
  }

  private loseLease(lease: Lease): void {
    lease.markLost();
    this.log('lease.lost', { worker: lease.id, running: this.running.size });
    for (const r of this.running.values()) if (r.claim.lease === lease) this.abortJob(r, 'lease lost', this.opts.killGraceMs);
    this.wake();
  }

  private async replaceLease(): Promise<void> {
    const old = this.lease;
    this.lease = await this.newLease();
    this.log('lease.new', { worker: this.lease.id, previous: old.id });
  }

  private periodicRunning = false;
  /** When this worker next settles the jobs in waiting/ (release.ts sweepWaiting): a slow pass, it reads each. */
  private nextSweep = Date.now() + COMPOSITE.sweepMs;
  /** Where the next sweep starts (QUEUE/ID): each pass settles a slice, round the folder. */
  private sweepFrom = '';

  /**
   * Each poll: see which queues exist and which are paused, promote due deferred jobs, adopt loose files,
   * recover dead leases, run extra duties (cron). Each duty is isolated: an error is logged and the next
   * duty runs.
   */
  /** One line for each forward jump of the file server's clock seen since the last call (server-clock.ts). */
  private logClockJumps(): void {
    const fresh = this.clock.jumpsSeen - this.clockJumpsLogged;
    if (fresh <= 0) return;
    this.clockJumpsLogged = this.clock.jumpsSeen;
    for (const j of this.clock.jumps.slice(-Math.min(fresh, this.clock.jumps.length))) {
      this.log('clock.jumped', { worker: this.lease.id, jumpMs: j.jumpMs, note: "the file server's clock went further than this machine's: a stepped clock or a frozen machine; leases get the jump as grace for one lease time" });
    }
  }

  private clockJumpsLogged = 0;

  private async periodic(): Promise<void> {
    if (this.periodicRunning) return;
    this.periodicRunning = true;
    this.mountFailedThisPass = false;
    try {
      await this.duty('config', async () => { this.readSettings(); });
      await this.duty('queues', async () => { this.claimer.refreshQueues(); this.lookAtQuotas(); });
      await this.duty('promote', async () => {
        const rep = await promoteDue(this.layout, await this.clock.now(), this.durable);
        const adopted = await adoptLoose(this.layout, this.durable);
        for (const e of [...rep.errors, ...adopted.errors]) this.log('worker.duty.error', { duty: 'promote', path: e.path, error: e.error });
        for (const q of [...rep.setAside, ...adopted.setAside]) this.log('job.quarantined', { path: q.path, to: q.to, reason: q.reason });
        this.summary.quarantined += rep.quarantined + adopted.quarantined;
        if (rep.promoted + adopted.adopted > 0) this.wake();
      });
      this.logClockJumps();
      // A lease is judged only through a mount that answers (a heartbeat we cannot read is not an old one).
      if (!this.stopping && !this.mountFailedThisPass && this.mountDownSince === null && this.lease.freshToJudge()) {
        await this.duty('recover', async () => {
          const n = await recoverDeadLeases(this.layout, this.clock, this.lease, (e) => {
            if (e.event === 'lease.expired') this.nextAudit = 0; // its folder may not have gone away whole
            this.log(e.event, { ...e, event: undefined });
          }, this.leaseLooks);
          if (n > 0) { this.summary.recovered += n; this.wake(); }
        });
        // Every few heartbeats, and after a pass that took a lease: nothing may sit in our folder that we do not run.
        if (Date.now() >= this.nextAudit && this.lease.freshToJudge()) {
          this.nextAudit = Date.now() + this.opts.heartbeatMs * WORKER_DEFAULTS.auditBeats;
          await this.duty('audit', async () => {
            const n = await this.leaseAudit.run(this.layout, this.lease, (p) => this.claimPaths.has(p), (e) => this.log(e.event, { ...e, event: undefined }));
            if (n > 0) { this.summary.recovered += n; this.wake(); }
          });
        }
      }
      for (const duty of this.duties) await this.duty('cron', () => duty(this));
      if (!this.stopping && Date.now() >= this.nextSweep) {
        this.nextSweep = Date.now() + COMPOSITE.sweepMs;
        await this.duty('waiting', async () => {
          const r = await sweepWaiting(this.layout, this.durable, { limit: COMPOSITE.sweepSlice, from: this.sweepFrom });
          this.sweepFrom = r.next;
          if (r.quarantined > 0) { this.summary.quarantined += r.quarantined; this.log('waiting.quarantined', { worker: this.lease.id, quarantined: r.quarantined }); }
          if (r.released > 0) { this.log('waiting.released', { worker: this.lease.id, released: r.released }); this.wake(); }
        });
      }
      this.reportBrokenFolders();
      if (!this.mountFailedThisPass) this.mountBack();
    } finally {
      this.periodicRunning = false;
    }
  }

  private readonly brokenReported = new Set<string>();

  /** One line per folder found broken alone (spool/queues.ts brokenAlone): skipped, the rest served. */
  private reportBrokenFolders(): void {
    for (const [path, error] of brokenFolders()) {
      if (this.brokenReported.has(path)) continue;
      this.brokenReported.add(path);
      this.log('folder.unreadable', { worker: this.lease?.id, path, error, note: 'skipped while the rest of the spool is served; on GlusterFS a folder in gfid split-brain (docs/nfs.md)' });
    }
  }

  // A mount gone (EIO, ENOTCONN...: errors.ts isMountGone). Every duty and every claim pass then fails the
  // same way: one line when it starts, one when the mount answers again; meanwhile the loop claims nothing
  // and waits longer each time, and no lease is judged. Our own lease is renewed as soon as the mount is
  // back; if it stayed away longer than the lease, siblings that still see the spool recover our jobs.

  /** performance.now() when the spool's mount began to fail, or null while it answers. */
  private mountDownSince: number | null = null;
  private mountWaitMs = 0;
  private mountFailedThisPass = false;

  /** Called with an error isMountGone() accepted; also by the watchdog for a heartbeat that could not be written. */
  mountGone(err: unknown): void {
    this.mountFailedThisPass = true;
    if (this.mountDownSince !== null) return;
    this.mountDownSince = performance.now();
    this.log('spool.unreachable', { worker: this.lease?.id, error: (err as Error).message, note: 'the mount fails; no claim and no lease judged until it answers' });
  }

  private mountBack(): void {
    if (this.mountDownSince === null) return;
    this.log('spool.reachable', { worker: this.lease?.id, downMs: Math.round(performance.now() - this.mountDownSince) });
    this.mountDownSince = null;
    this.mountWaitMs = 0;
  }

  /** The next wait of the main loop while the mount fails: the poll interval, doubling, at most 30 s. */
  private mountBackoff(): number {
    this.mountWaitMs = Math.min(Math.max(this.mountWaitMs * 2, this.opts.pollMs, 250), 30_000);
    return this.mountWaitMs;
  }

  private readonly dutyErrors = new Map<string, string>();
  /** Passes in a row each duty failed with a transient error (errors.ts isTransient). */
  private readonly dutyTransient = new Map<string, number>();

  /**
   * Run one duty; an error is logged once per distinct message, and cleared when the duty works again.
   * A transient error (a GlusterFS handle on a brick that just went down, EINTR, EBUSY) is the duty's
   * next pass's to retry: it is logged only when it fails that way WORKER_DEFAULTS.dutyTransientPasses passes in a row.
   */
  private async duty(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      this.dutyTransient.delete(name);
      if (this.dutyErrors.delete(name)) this.log('worker.duty.ok', { duty: name });
    } catch (err) {
      if (isMountGone(err)) { this.mountGone(err); return; }
      if (isTransient(err)) {
        const n = (this.dutyTransient.get(name) ?? 0) + 1;
        this.dutyTransient.set(name, n);
        if (n < WORKER_DEFAULTS.dutyTransientPasses) return;
      }
      const msg = (err as Error).message;
      if (this.dutyErrors.get(name) !== msg) { this.dutyErrors.set(name, msg); this.log('worker.duty.error', { duty: name, error: msg }); }
    }
  }

  /** The housekeeping pass under way, if any: a pass that outlasts the interval is not started again. */
  private housekeepingPass?: Promise<void>;
  /** The retention problems last logged: each distinct set is logged once. */
  private retentionProblems = '';

  /**
   * Each housekeeping interval, at most one pass in the whole spool: clean crash leftovers, then prune finished records by
   * the spool's retention settings (spool/retention.ts). Pruning goes a slice of names at a time with the
   * event loop free in between, so claims and heartbeats go on during a long prune; it stops early when
   * the worker stops.
   */
  private housekeeping(): Promise<void> {
    this.housekeepingPass ??= (async () => {
      try {
        // One worker of the whole spool takes each window's pass (spool/housekeeping.ts takeHousekeepingTurn).
        let mine = false;
        await this.duty('housekeeping', async () => { mine = this.clock.local || takeHousekeepingTurn(this.layout, await this.clock.now(), this.opts.housekeepingMs); });
        if (!mine || this.stopping) return;
        await this.duty('housekeeping', async () => {
          await cleanLeftovers(this.layout, this.clock, { log: this.log, tmpAgeMs: this.opts.leftoverAgeMs, workerAgeMs: this.opts.goneWorkerAgeMs });
          removeEmptyBuckets(this.layout, await this.clock.now());
        });
        if (this.stopping) return;
        await this.duty('retention', async () => {
          const { config, problems } = readRetention(this.layout);
          const key = problems.join('\n');
          if (key !== this.retentionProblems) {
            this.retentionProblems = key;
            for (const problem of problems) this.log('retention.invalid', { problem, note: 'the default applies in its place' });
          }
          const started = performance.now();
          // Small slices, and a turn of the event loop every few ms: a claim waits for the slice under way
          // (bench section prune measures put->start during a pass).
          const rep = await applyRetention(this.layout, await this.clock.now(), config, { collect: false, slice: WORKER_PRUNE_SLICE, shouldStop: () => this.stopping });
          for (const e of rep.errors) this.log('retention.skipped', { path: e.path, error: e.error });
          if (rep.count > 0) this.log('retention.pruned', { worker: this.lease.id, removed: rep.count, ms: Math.round(performance.now() - started) });
        });
      } finally {
        this.housekeepingPass = undefined;
      }
    })();
    return this.housekeepingPass;
  }
}

function show(v: unknown): string {
  return v === null ? '*' : Array.isArray(v) ? v.join(',') : String(v);
}
