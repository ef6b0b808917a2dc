/**
 * claim: take a pending job to run it.
 *
 *   pending/QUEUE/[pN/]ID.json  ->  claimed/LEASE/SEQ.ID.json
 *
 * Before: the claimer holds a fresh lease; QUEUE is not paused (the claimer checked paused/).
 * Steps:
 *   1. rename the file into our lease folder under the next claim number SEQ. Of several claimers one
 *      wins; the others get ENOENT, which is normal (no lock, no scan of other claimers);
 *   2. read it (O_NOFOLLOW|O_NONBLOCK, regular file, size- and depth-bounded) and check every field: a file
 *      that is not a job goes to quarantine/ with its reason (transitions/quarantine.ts);
 *   3. in memory only: the folder's queue is the job's queue (a person may `mv` a job between queue
 *      folders), and a finished record found in pending/ is a retry (`mv failed/Q/ID.json pending/Q/`, or
 *      `zcq retry`): it starts over with fresh attempts (job/policy.ts resetForRetry).
 * Nothing is written at claim: the claim is the rename. `LEASE/SEQ` is the run token the final record
 * will carry (transitions/finish.ts), which tells recovery a final record from an older one moved back.
 * Crash after 1: the job sits in a lease that stops beating; recovery settles it by its interrupt policy
 *   (a retry is reset first, as step 3 would have). After 2 (quarantined): nothing to complete.
 * The folder check before step 1 is one lstat per run of claims made together, and in a private spool at
 *   most one a second (Lease.folderIsOurs).
 * Fence: the rename is the claim; a claimer whose lease was taken meanwhile renamed into a folder that is
 *   no longer in claimed/ — ENOENT, a lost claim, never a second copy.
 */
import { isGone } from '../../errors.js';
import { parseJob, JobFormatError, type Job } from '../../job/format.js';
import { isRetry, resetForRetry } from '../../job/policy.js';
import { MAX_JOB_BYTES, readJustClaimedSync, renameOrGoneSync } from '../fsops.js';
import type { Lease } from '../lease.js';
import { queueDir } from '../layout.js';
import { idFromName } from '../names.js';
import { quarantine } from '../quarantine.js';
import { step } from './steps.js';

export interface ClaimedJob {
  id: string;
  queue: string;
  /** claimed/LEASE/SEQ.ID.json */
  path: string;
  /** LEASE/SEQ: the run token of this claim. */
  token: string;
  lease: Lease;
  /** The priority folder it was claimed from ('' for pending/QUEUE/ itself, else pN): unclaim puts it back there. */
  level?: string;
}

/** Step 1: rename pending/QUEUE/[LEVEL/]NAME into our lease. Null when another claimer won (or the name is not a job name). */
export function claimJob(lease: Lease, queue: string, name: string, level = ''): ClaimedJob | null {
  if (lease.isLost) return null;
  const id = idFromName(name);
  if (id === null) return null;
  // Joined by hand: the queue is a checked name and NAME a job's (idFromName), so path.join's normalising
  // (~1.7 µs a call, several a job) has nothing to do here.
  const dir = queueDir(lease.layout, 'pending', queue);
  const src = level === '' ? `${dir}/${name}` : `${dir}/${level}/${name}`;
  // Our folder, not a co-user's symlink in its place: the rename would follow it out of the spool.
  if (!lease.folderIsOurs(true)) { lease.markLost(); return null; }
  const { path, token } = lease.nextClaim(id);
  if (!renameOrGoneSync(src, path)) return null;
  step('claim', 1, id);
  return { id, queue, path, token, lease, level };
}

export type ClaimRead = { job: Job; retried: boolean } | { quarantined: string; reason: string } | { gone: true };

/** Steps 2 and 3: read and check the claimed file; quarantine it when it is not a job. */
export async function readClaimed(c: ClaimedJob): Promise<ClaimRead> {
  let job: Job;
  try {
    // A short read that parses is the whole file (fsops.ts readJustClaimedSync): no read to confirm the end.
    let parsed: Job | undefined;
    const r = readJustClaimedSync(c.path, MAX_JOB_BYTES, (text) => {
      try { parsed = parseJob(text, c.id); return true; } catch { return false; }
    });
    if ('bad' in r) throw new JobFormatError(r.bad);
    job = parsed ?? parseJob(r.text, c.id);
  } catch (err) {
    if (isGone(err)) return { gone: true };
    if (!(err instanceof JobFormatError)) throw err;
    const to = await quarantine(c.lease.layout, c.path, `${c.id}.json`, `${err.message} (claimed from pending/${c.queue}/)`);
    step('claim', 2, c.id);
    return { quarantined: to ?? c.path, reason: err.message };
  }
  return { job, retried: startRun(job, c.queue) };
}

/** Step 3, shared with recovery: the folder's queue wins, and a finished record starts over. True when it was a retry. */
export function startRun(job: Job, queue: string): boolean {
  job.queue = queue;
  if (!isRetry(job)) return false;
  resetForRetry(job);
  return true;
}
