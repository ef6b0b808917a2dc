/**
 * The defaults and the accepted ranges of every tunable a worker or a job has, in one place: the worker
 * library, the job format and the command line (its help text and its checks) read them from here, so a
 * default shown by `zcq worker --help` is the default the worker uses.
 *
 * Durations are milliseconds. A range is inclusive. Why the ranges: below a minimum a worker would spin
 * (poll, housekeeping) or lose its lease to ordinary scheduling delays (lease, heartbeat); above a maximum
 * a mistyped unit (`--lease 30d` for 30s) would leave jobs stuck for days before anyone noticed.
 */

export interface Range { readonly min: number; readonly max: number }

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const WORKER_DEFAULTS = {
  leaseMs: 30 * SECOND,
  /** The heartbeat is leaseMs / heartbeatDivisor unless given (see defaultHeartbeatMs). */
  heartbeatDivisor: 6,
  pollMs: 1 * SECOND,
  graceMs: 10 * SECOND,
  killGraceMs: 5 * SECOND,
  leftoverAgeMs: 1 * HOUR,
  goneWorkerAgeMs: 1 * DAY,
  housekeepingMs: 60 * SECOND,
  runtime: 'threads',
  /** A duty failing with a transient error this many passes in a row is logged (worker.duty.error). */
  dutyTransientPasses: 3,
  /** A worker audits its own lease folder every this many heartbeats (transitions/audit.ts). */
  auditBeats: 3,
  /**
   * The self-fence's safety margin (worker/self-fence.ts): a worker whose last renewal is older than its lease
   * less this (at most a quarter of the lease) claims and starts nothing until a renewal succeeds.
   */
  selfFenceMarginMs: 2 * SECOND,
} as const;

export const WORKER_BOUNDS = {
  leaseMs: { min: 1 * SECOND, max: 1 * DAY },
  /** Also at most half the lease: a lease must survive one late heartbeat (see maxHeartbeatMs). */
  heartbeatMs: { min: 100, max: DAY / 2 },
  pollMs: { min: 50, max: 1 * HOUR },
  housekeepingMs: { min: 1 * SECOND, max: 1 * DAY },
  graceMs: { min: 0, max: 1 * DAY },
  killGraceMs: { min: 0, max: 1 * HOUR },
  concurrency: { min: 1, max: 1024 },
  threads: { min: 1, max: 256 },
  maxJobs: { min: 1, max: 1e9 },
  leftoverAgeMs: { min: 1 * MINUTE, max: 365 * DAY },
  goneWorkerAgeMs: { min: 1 * MINUTE, max: 365 * DAY },
} as const satisfies Record<string, Range>;

/**
 * Live worker configuration (config/workers/*.json, spool/config.ts): how many queue names a `queues`
 * list and how many patterns an `fn` list may hold, and how long one pattern may be. `concurrency` has
 * WORKER_BOUNDS.concurrency.
 */
export const CONFIG_BOUNDS = {
  queues: { min: 1, max: 64 },
  fnPatterns: { min: 1, max: 32 },
  fnPatternChars: { min: 1, max: 256 },
} as const satisfies Record<string, Range>;

/** The heartbeat a worker uses when none is given: a sixth of the lease, at least the minimum heartbeat. */
export function defaultHeartbeatMs(leaseMs: number): number {
  return Math.max(WORKER_BOUNDS.heartbeatMs.min, Math.floor(leaseMs / WORKER_DEFAULTS.heartbeatDivisor));
}

/** The longest heartbeat a lease allows: half of it. */
export function maxHeartbeatMs(leaseMs: number): number {
  return Math.min(WORKER_BOUNDS.heartbeatMs.max, Math.floor(leaseMs / 2));
}

export const JOB_DEFAULTS = {
  queue: 'default',
  retries: 0,
  maxInterrupts: 9,
  onInterrupt: 'retry',
  /** 0 is taken first, 9 last (pending/QUEUE/pN/; 5 is pending/QUEUE/ itself). */
  priority: 5,
  /** Exponential backoff with equal jitter from baseMs, doubling, capped at maxMs. */
  backoff: { kind: 'exponential', baseMs: 1 * SECOND, maxMs: 1 * HOUR },
} as const;

export const JOB_BOUNDS = {
  priority: { min: 0, max: 9 },
  /** Quotas one job may hold (`--quota`, repeatable). */
  quotasPerJob: { min: 0, max: 8 },
  retries: { min: 0, max: 10_000 },
  maxInterrupts: { min: 0, max: 10_000 },
  timeoutMs: { min: 1, max: 365 * DAY },
  backoffMs: { min: 0, max: 365 * DAY },
} as const satisfies Record<string, Range>;

/**
 * How long finished records are kept (config/retention.json's built-in default; see spool/retention.ts):
 * done 7 days, failed 30 days (a failure is what someone comes back to look at), and at most 100,000 per
 * queue and state, so that one busy queue cannot fill a folder with millions of names. null: no limit.
 */
export const RETENTION_DEFAULTS: { readonly doneMs: number | null; readonly failedMs: number | null; readonly max: number | null } = { doneMs: 7 * DAY, failedMs: 30 * DAY, max: 100_000 };

/** Ranges of a retention policy's values. */
export const RETENTION_BOUNDS = {
  ageMs: { min: 0, max: 100 * 365 * DAY },
  max: { min: 0, max: 1e9 },
} as const satisfies Record<string, Range>;

/** Bytes of a job's output file (output/ID.log) kept over all its attempts; the rest is counted and dropped. */
export const OUTPUT_CAP_BYTES = 1 << 20;

/** Defaults of `zcq cron add` that the schedule store does not fill in itself. */
export const CRON_DEFAULTS = { cap: 10 } as const;

/** Ranges of the other commands' options. */
export const CLI_BOUNDS = {
  /** `zcq wait --timeout`: 0 looks once. */
  waitTimeoutMs: { min: 0, max: 365 * DAY },
  /** `zcq ls --limit`. */
  limit: { min: 1, max: 1e9 },
  /** `zcq cron add --cap`: catch-up runs after an outage with --missed all. */
  cronCap: { min: 1, max: 1000 },
} as const satisfies Record<string, Range>;

/** Whether `v` is a whole number within `r`. */
export function inRange(v: number, r: Range): boolean {
  return Number.isInteger(v) && v >= r.min && v <= r.max;
}

/**
 * `zcq dashboard`: where it listens and how often it looks at the spool (port 0: any free port, printed).
 * Every 2 s (Sidekiq Web polls every 5 s): a look while jobs move re-lists the folders that changed, which a
 * worker draining on the same cores pays for; 1 s doubles that (see bench/results-dashboard.md).
 */
export const DASHBOARD_DEFAULTS = { host: '127.0.0.1', port: 8080, refreshMs: 2 * SECOND } as const;
export const DASHBOARD_BOUNDS = {
  port: { min: 0, max: 65535 },
  refreshMs: { min: 200, max: 1 * MINUTE },
} as const satisfies Record<string, Range>;

/** Composite jobs (issue 12). */
export const COMPOSITE = {
  /**
   * How long a lookup of a file known to exist may fail from a stale client cache (NFS lookupcache=all,
   * FUSE negative_timeout), and how long a worker looks again before it believes a dependency is still
   * open: longer than any attribute or lookup cache the spool is mounted with (docs/nfs.md).
   */
  staleLookupMs: 5_000,
  /** Every worker settles the jobs in waiting/ this often: what a crash or a stale view left waiting is released. */
  sweepMs: 15_000,
  /** At most this many waiting jobs per sweep (each costs a read and a look for each dependency). */
  sweepSlice: 200,
} as const;

/**
 * Quotas (quotas/NAME/, spool/quota.ts): a quota's limit is how many jobs holding it may run at once across
 * every machine; each running job holds one slot file, so the limit bounds the slot files too. A rate
 * (`zcq rate set`) is COUNT starts per WINDOW, windows counted on the file server's clock.
 */
export const QUOTA_BOUNDS = {
  limit: { min: 0, max: 10_000 },
  rateCount: { min: 1, max: 100_000 },
  rateWindowMs: { min: 1 * SECOND, max: 1 * DAY },
} as const satisfies Record<string, Range>;

/**
 * How long a maker of a spool folder waits for another maker holding its `.mkdir.NAME` lock (spool/modes.ts)
 * before it removes the lock and makes the folder itself. The holder's turn is one lookup and one mkdir;
 * the wait is synchronous (a worker's finish makes done/QUEUE in line), so it is kept short.
 */
export const MKDIR_LOCK_WAIT_MS = 1 * SECOND;

/**
 * Taking a quota slot (transitions/quota-take.ts). A worker process remembers which slot numbers it freed
 * and tries one of them first, with one exclusive create and no listing; it lists the quota folder again
 * (the full check: how many slots are held, none numbered over the limit) at most QUOTA_RELIST_MS after the
 * last listing, and at once when the limit changed or the remembered slot was taken. A lowered limit is
 * thus applied to new starts within a poll plus this much.
 */
export const QUOTA_RELIST_MS = 1 * SECOND;
/**
 * A wait mark (quotas/NAME/w.LEASE, made by a taker that found no free slot) counts for the fair share
 * only while its mtime changed within this long, as the reader sees it on its own monotonic clock: a
 * waiter touches its mark each time it is refused a slot, so a mark left by a worker that stopped
 * waiting (but lives on) stops counting after this long.
 */
export const QUOTA_WAIT_MARK_TTL_MS = 10 * SECOND;
/** The fair share between machines is worked out only for limits up to this (it reads every slot's holder). */
export const QUOTA_FAIR_SHARE_MAX_LIMIT = 64;
