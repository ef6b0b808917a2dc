/**
 * The watchdog: keeps the worker's lease alive (transitions/renew.ts), notices when it is not — a
 * heartbeat not renewed within the lease time means siblings may already judge us dead, so the jobs are
 * aborted and a new lease is taken — and reads cancel requests for the jobs it runs (a cancel reaches a
 * running job at the next heartbeat).
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { LeaseLostError, isMountGone } from '../errors.js';
import type { Logger } from '../log.js';
import type { Layout } from '../spool/layout.js';
import type { Lease } from '../spool/lease.js';
import { unlinkQuietly } from '../spool/fsops.js';
import { idOfCancelRequest } from '../spool/names.js';
import { renewLease } from '../spool/transitions/renew.js';
import { fenceState } from './self-fence.js';

export interface WatchdogHost {
  readonly lease: Lease;
  runningIds(): Iterable<string>;
  runningCount(): number;
  loseLease(lease: Lease): void;
  cancelRunning(id: string): void;
  heartbeatExtra(): Record<string, unknown>;
  /** The mount fails (isMountGone): the worker logs that once, not every heartbeat. */
  mountGone?(err: unknown): void;
}

export class Watchdog {
  private beating = false;
  /** Cancel request files seen per running job, removed once the job is recorded. */
  private readonly cancelFiles = new Map<string, string[]>();

  constructor(private readonly layout: Layout, private readonly host: WatchdogHost, private readonly log: Logger) {}

  /** One heartbeat: renew the lease, or give it up when it went stale; then read cancel requests. */
  async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const lease = this.host.lease;
      if (!lease.isLost && fenceState(lease) === 'expired') {
        this.log('lease.stale', { worker: lease.id, reason: 'heartbeat not renewed within the lease time', sinceRenewMs: Math.round(performance.now() - lease.lastRenewed), leaseMs: lease.info.leaseMs });
        this.host.loseLease(lease);
      }
      if (!lease.isLost) {
        try {
          await renewLease(lease, this.host.heartbeatExtra());
        } catch (err) {
          if (err instanceof LeaseLostError) this.host.loseLease(lease);
          else if (isMountGone(err) && this.host.mountGone) this.host.mountGone(err);
          else this.log('lease.renew.failed', { worker: lease.id, error: (err as Error).message });
        }
      }
      this.readCancelRequests();
    } finally {
      this.beating = false;
    }
  }

  private readCancelRequests(): void {
    if (this.host.runningCount() === 0) return;
    let names: string[];
    try { names = fs.readdirSync(this.layout.cancel); } catch { return; }
    const running = new Set(this.host.runningIds());
    for (const f of names) {
      const id = idOfCancelRequest(f);
      if (id === null || !running.has(id)) continue;
      const list = this.cancelFiles.get(id) ?? [];
      if (list.includes(f)) continue;
      list.push(f);
      this.cancelFiles.set(id, list);
      this.log('job.cancel', { id });
      this.host.cancelRunning(id);
    }
  }

  /** The job was recorded: its cancel requests are answered (each a name we read; none is shared). */
  jobRecorded(id: string): void {
    const list = this.cancelFiles.get(id);
    if (!list) return;
    this.cancelFiles.delete(id);
    for (const f of list) unlinkQuietly(join(this.layout.cancel, f));
  }
}
