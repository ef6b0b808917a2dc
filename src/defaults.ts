/**
 * Defaults and bounds of the worker's settings: the one source the CLI's help, the CLI's checks, the
 * worker library and housekeeping all read.
 */
export const WORKER_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 1000,
  graceMs: 10_000,
  killGraceMs: 5_000,
  leftoverAgeMs: 3_600_000,
  goneWorkerAgeMs: 86_400_000,
  housekeepingMs: 60_000,
} as const;

/** Heartbeats per lease time, by default. */
export const HEARTBEATS_PER_LEASE = 6;
