/**
 * cancel: stop a job for good; it ends in failed/ with reason "cancelled".
 *
 *   pending/QUEUE/ID.json, deferred/QUEUE/BUCKET/DUEMS.ID.json, hold/QUEUE/ID.json, waiting/QUEUE/ID.json
 *       ->  claimed/CLIENT/SEQ.ID.json  ->  failed/QUEUE/ID.json            (not running)
 *   claimed/LEASE/SEQ.ID.json  +  cancel/ID.TOKEN  ->  (its worker)  ->  failed/QUEUE/ID.json   (running)
 *
 * Before: the caller holds a client lease (kind "client": recovery puts its jobs back uncounted).
 * Steps, not running:
 *   1. claim the file into the client lease — ONE rename; ENOENT means it moved (a worker claimed it a
 *      moment ago: the caller asks that worker instead);
 *   2. read it; build the failure record {reason: "cancelled"} through the policy (job/policy.ts);
 *   3. finish it to failed/ (transitions/finish.ts), which reports a lease lost on the way honestly.
 * Steps, running: create cancel/ID.TOKEN exclusively; the worker reads the requests at its next heartbeat,
 *   aborts the job's signal, records the cancel through finish, and removes the requests for the job.
 *   A job that ends (done or failed) before its worker read a request has its requests removed by whoever
 *   recorded the end (dropCancelRequests; a worker through CancelRequestDrops, which lists cancel/ only
 *   when its lstat changed), and the client drops its own request when it then finds the job
 *   finished: a request left behind would cancel the job's next life, a `zcq retry` that promises a fresh start.
 * Crash after 1: the job sits in the client's lease; when it expires, recovery returns it to pending/
 *   uncounted (a client never ran it) — cancel again; one taken from waiting/ goes back there when a worker
 *   claims it while what it waits for is still open (worker/composite.ts). After 3: cancelled, and its
 *   composite hooks ran in finish (ended.ts): a cancelled member arrives in its group like any other end.
 * Fence: the client's lease folder, as for a worker (finish.ts).
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { isGone } from '../../errors.js';
import { join } from 'node:path';
import { parseJob, JobFormatError } from '../../job/format.js';
import { recordError } from '../../job/policy.js';
import { MAX_JOB_BYTES, readRegularFileSync, renameOrGoneSync, createExclusiveSync, unlinkQuietly } from '../fsops.js';
import { idOfCancelRequest } from '../names.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import type { Lease } from '../lease.js';
import { finishJob, type FinishResult } from './finish.js';
import { step } from './steps.js';

export type CancelOutcome = FinishResult | 'moved-away' | 'unreadable';

/** Cancel a job nobody runs, found at `from`. */
export async function cancelJob(lease: Lease, from: string, queue: string, id: string): Promise<CancelOutcome> {
  const { path, token } = lease.nextClaim(id);
  if (!renameOrGoneSync(from, path)) return 'moved-away';
  step('cancel', 1, id);
  let job;
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if ('bad' in r) throw new JobFormatError(r.bad);
    job = parseJob(r.text, id);
  } catch (err) {
    // Gone from our lease between the claim and the read: taken from us (a person), or our folder was.
    if (isGone(err)) { if (lease.folderIsOurs()) return 'taken'; lease.markLost(); return 'lost'; }
    if (!(err instanceof JobFormatError)) throw err;
    // Not ours to judge: back where it was found, for the worker to quarantine with its reason.
    renameOrGoneSync(path, from);
    return 'unreadable';
  }
  job.queue = queue;
  const now = new Date().toISOString();
  job.attempts += 1;
  const next = recordError(job, { attempt: job.attempts, worker: lease.id, host: hostname(), pid: process.pid, start: now }, { name: 'Cancelled', message: `cancelled by ${hostname()} pid ${process.pid}` }, 'cancelled', now, Date.now());
  job.attempts -= 1; // a cancel is not an attempt
  const r = await finishJob({ id, queue, path, token, lease }, job, next);
  // A request made while it ran before (its worker died, it went back to pending) ends here too.
  if (r === 'moved') dropCancelRequests(lease.layout, id);
  return r;
}

/** Ask the worker running `id` to cancel it: a request file its heartbeat reads. */
export function requestCancel(l: Layout, id: string, durable: boolean): void {
  makeDir(l.modes, l.cancel);
  createExclusiveSync(l.cancel, `${id}.`, new Date().toISOString() + '\n', { durable: durable, mode: l.modes.fileMode });
}

/** The job's life ended (done or failed): requests to cancel it are moot, and left behind they would cancel a retry. */
export function dropCancelRequests(l: Layout, id: string): void {
  let names: string[];
  // A co-user's symlink in place of cancel/ is never listed or removed through.
  try { if (!fs.lstatSync(l.cancel).isDirectory()) return; names = fs.readdirSync(l.cancel); } catch { return; }
  for (const f of names) if (idOfCancelRequest(f) === id) unlinkQuietly(join(l.cancel, f));
}

/** How much older than the server's clock cancel/'s mtime must be for a listing of it to be reused. */
const CANCEL_RACY_MS = 2000;

/**
 * dropCancelRequests for a worker, which ends job after job while cancel/ nearly never changes: one lstat
 * of the folder a job instead of a listing (open, fstat, two getdents, close: each a round trip on a
 * network mount). The folder is listed again when its lstat (inode, mtime, ctime, size, links) differs
 * from the one taken just before the last listing; a listing is reused only when the folder's mtime was
 * then CANCEL_RACY_MS older than the server's clock (a request made within the same timestamp tick as that
 * lstat would not have changed it). A mount that caches attributes (GlusterFS 1 s, NFS actimeo) can hide a
 * request made through another mount within that time, as an NFS listing would too: the client that made
 * it drops it itself when it then finds the job ended (client/spool.ts cancel), and housekeeping removes
 * requests older than a day.
 */
export class CancelRequestDrops {
  private last: { key: string; names: string[] } | null = null;
  private soon: string[] = [];

  constructor(private readonly l: Layout, private readonly serverNow: () => number) {}

  /**
   * drop(id) once the jobs ending in this turn of the event loop are recorded: jobs that finish together
   * (a group fsync wakes them at once) share one lstat. The look still follows each job's record.
   */
  dropSoon(id: string): void {
    if (this.soon.push(id) === 1) setImmediate(() => this.flush());
  }

  /** The drops dropSoon has not made yet, now (a worker stopping). */
  flush(): void {
    const ids = this.soon;
    this.soon = [];
    if (ids.length > 0) this.drop(...ids);
  }

  drop(...ids: string[]): void {
    let st: fs.Stats;
    try { st = fs.lstatSync(this.l.cancel); } catch { this.last = null; return; } // no folder: no request
    // Not a folder (a co-user's symlink in its place): never listed through, nothing removed through it.
    if (!st.isDirectory()) { this.last = null; return; }
    const key = `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.nlink}`;
    let names: string[];
    if (this.last !== null && this.last.key === key) names = this.last.names;
    else {
      try { names = fs.readdirSync(this.l.cancel); } catch { this.last = null; return; }
      this.last = st.mtimeMs < this.serverNow() - CANCEL_RACY_MS ? { key, names } : null;
    }
    const ended = new Set(ids);
    const mine = names.filter((f) => ended.has(idOfCancelRequest(f) ?? ''));
    if (mine.length === 0) return;
    this.last = null;
    for (const f of mine) unlinkQuietly(join(this.l.cancel, f));
  }
}
