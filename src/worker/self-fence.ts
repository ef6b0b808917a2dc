/**
 * The self-fence: a worker's own judgement of its lease, by its own monotonic clock, before it claims or
 * starts a job.
 *
 * Why: the spool's fence is the lease folder (spool/lease.ts): a recoverer renames `claimed/LEASE/` away and
 * the holder's later renames into it fail. On GlusterFS that fence is late — a holder's renames into a folder
 * another machine just moved kept succeeding for up to ~300 ms (docs/nfs.md), and its `lstat` of the folder
 * can answer from a 1 s entry cache — so a worker that was stalled (SIGSTOP, a VM pause, swap, a blocked event
 * loop) past its lease could, on waking, claim and start jobs whose lease a sibling had already judged dead
 * and was settling: one job run twice at once. On any file system a stalled worker that wakes before anyone
 * recovered it would start work under a lease that the next recovery pass takes away.
 *
 * The rule (one place; the watchdog, the claim loop, a job's start and its finish all ask it):
 * - `open`: the last successful heartbeat (Lease.lastRenewed, taken when its write began) is younger than the
 *   lease less a safety margin (WORKER_DEFAULTS.selfFenceMarginMs, at most a quarter of the lease). The margin
 *   covers what can make a sibling see our heartbeat older than it is: whole-second mtimes (NFSv3, sshfs) and
 *   the error of its estimate of the file server's clock.
 * - `closed`: older than that, but younger than the lease: no sibling can have judged us dead yet, but one
 *   may soon. Claim nothing, start nothing; renew at once (not at the next interval). A renewal that
 *   succeeds opens the fence again.
 * - `expired`: older than the lease (or the lease is already lost): a sibling may already have taken it.
 *   The worker gives the lease up (`lease.stale`), which aborts the jobs running under it at once (their
 *   AbortSignal, the thread or process after --kill-grace) and records none of their outcomes: recovery
 *   settles them by each job's interrupt policy. It then takes a new lease.
 * Monotonic time (performance.now) keeps running while the process is stopped, so the first thing a woken
 * worker does — whichever of its timers or file events runs first — sees how long it was away.
 * What it cannot close: a stop between the check and the rename it guards (the same turn of the event loop,
 * microseconds). The folder fence, recovery's re-listing and the audit of one's own lease folder
 * (transitions/audit.ts) remain behind it.
 */
import { performance } from 'node:perf_hooks';
import { WORKER_DEFAULTS } from '../defaults.js';
import type { Lease } from '../spool/lease.js';
import type { ClaimedJob } from '../spool/transitions/claim.js';
import { unclaimJob } from '../spool/transitions/unclaim.js';

export type FenceState = 'open' | 'closed' | 'expired';

/** The safety margin for a lease of `leaseMs`: WORKER_DEFAULTS.selfFenceMarginMs, at most a quarter of the lease. */
export function fenceMarginMs(leaseMs: number): number {
  return Math.min(WORKER_DEFAULTS.selfFenceMarginMs, leaseMs / 4);
}

/** Where `lease` stands by this process's monotonic clock (see the header). */
export function fenceState(lease: Lease, now = performance.now()): FenceState {
  if (lease.isLost) return 'expired';
  const since = now - lease.lastRenewed;
  if (since >= lease.info.leaseMs) return 'expired';
  return since >= lease.info.leaseMs - fenceMarginMs(lease.info.leaseMs) ? 'closed' : 'open';
}

export interface SelfFenceHost {
  /** The lease the worker claims under now. */
  readonly lease: Lease;
  /** Give a lease up: mark it lost and abort the jobs running under it. */
  loseLease(lease: Lease): void;
  /** Renew the lease now (a heartbeat out of turn; none when one is under way). */
  renewNow(): void;
  log(event: string, fields: Record<string, unknown>): void;
}

export class SelfFence {
  /** The lease whose closing was last logged: one `lease.fenced` line per lease and closing. */
  private closedLogged: Lease | null = null;

  constructor(private readonly host: SelfFenceHost) {}

  /**
   * Whether the worker may claim now. Closed: a renewal is started at once. Expired: the lease is given up
   * here (the caller's loop then takes a new one).
   */
  mayClaim(): boolean {
    return this.settle(this.host.lease) === 'open';
  }

  /**
   * Before a claimed job starts: true when its lease is open; while it is closed, a renewal is tried and the
   * answer waits for it (at most until the lease would expire). False: do not start the job.
   */
  async mayStart(lease: Lease): Promise<boolean> {
    for (;;) {
      const s = this.settle(lease);
      if (s !== 'closed') return s === 'open';
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * A claimed job the fence kept from starting goes back to pending/ untouched (transitions/unclaim.ts), while
   * its lease folder is still ours; otherwise it is the recoverer's, who settles it. True when put back.
   */
  putBack(c: ClaimedJob): boolean {
    const back = unclaimJob(c);
    this.host.log('job.fenced', { id: c.id, queue: c.queue, worker: c.lease.id, reason: back ? 'its lease was not renewed in time: put back in pending/ unstarted' : 'its lease was not renewed in time: not started; recovery settles it' });
    return back;
  }

  /** The state of `lease`, acted on: closed → renew now (logged once); expired → give the lease up. */
  private settle(lease: Lease): FenceState {
    const s = fenceState(lease);
    if (s === 'open') { if (this.closedLogged === lease) this.closedLogged = null; return s; }
    if (lease.isLost) return 'expired';
    const sinceMs = Math.round(performance.now() - lease.lastRenewed);
    if (s === 'expired') {
      this.host.log('lease.stale', { worker: lease.id, reason: 'heartbeat not renewed within the lease time', sinceRenewMs: sinceMs, leaseMs: lease.info.leaseMs });
      this.host.loseLease(lease);
      return s;
    }
    if (this.closedLogged !== lease) {
      this.closedLogged = lease;
      this.host.log('lease.fenced', { worker: lease.id, sinceRenewMs: sinceMs, leaseMs: lease.info.leaseMs, note: 'no claim and no start until a heartbeat is renewed' });
    }
    this.host.renewNow();
    return s;
  }
}
