/**
 * ended: what a job's end sets going — the composite hooks of finish.
 *
 *   claimed/LEASE/SEQ.ID.json (its final record, finish step 4)  ->  group arrival, callback, dependents
 *   claimed/LEASE/SEQ.ID.json (a record that awaits a composite)  ->  waiting/QUEUE/ID.json, then settled
 *
 * Before: finish.ts wrote the job's record over its claim (step 4) and has not moved it yet; for every
 *   final record (done or failed), whoever finishes it — worker, recovery, cancel — calls onFinalRecord.
 * Steps (each idempotent, so running them again after a crash is harmless):
 *   1. a group member arrives in its group (arrive.ts), the last one releasing the postprocess;
 *   2. its `then` or `catch` callback is put (callback.ts), at most once;
 *   3. every job waiting on it is settled (release.ts settleDependents);
 *   4. its own edges (deps/DEPID/QUEUE~ID for each of its `after`) are removed, with the folders they
 *      emptied: a released job's are gone already (release step 3), but a job that ends without being
 *      released — cancelled while it waited — would leave them behind for good. O(its own dependencies).
 *   Then finish moves the record out (step 5). A record that awaits a composite (the job returned one)
 *   is moved into waiting/ by finish, and settled once it is there (onWaitingRecord): its postprocess may
 *   have ended before.
 * An odd entry in the way of a step (a file or symbolic link where its folder should be) skips that step:
 *   it never keeps a job from ending.
 * Crash after 1, 2 or 3: the final record is still in the claim; recovery sees its run token, completes
 *   finish, and so runs these steps again: an arrival replaces the same leaf and converges, a callback's
 *   marker exists, a released dependent is no longer in waiting/, an edge removed is not there to remove.
 *   After finish step 5 (waiting record, before
 *   its settle): the workers' sweep of waiting/ (and `zcq recover`) settles it (release.ts sweepWaiting).
 * Fence: finish's own (the lease folder, step 4): a stale holder never reaches step 4, so it never runs
 *   these hooks for a record that is not the current one.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Job } from '../../job/format.js';
import type { Layout } from '../layout.js';
import { isRealDir } from '../fsops.js';
import { arriveInGroup } from './arrive.js';
import { forgetCallbacks, putCallback } from './callback.js';
import { dropEdges, settleDependents, settleWaiting } from './release.js';
import { step } from './steps.js';

/**
 * Steps 1–3 for a final record of `job` at `record` (its claim), going to `state`. `syncLater` takes the
 * folders (an arrival's group) that must be fsynced before the record leaves its claim; without it they
 * are fsynced here.
 */
export function onFinalRecord(l: Layout, job: Job, state: 'done' | 'failed', record: string, durable: boolean, syncLater?: (dir: string) => void): void {
  if (job.group) { tolerant(() => arriveInGroup(l, job, state, record, durable, syncLater)); step('ended', 1, job.id); }
  if (job.then || job.catch) { tolerant(() => putCallback(l, job, state, durable)); step('ended', 2, job.id); }
  tolerant(() => settleDependents(l, job.id, state, durable));
  step('ended', 3, job.id);
  if (job.after?.length) { tolerant(() => dropEdges(l, job.after!, job.queue, job.id)); step('ended', 4, job.id); }
}

/**
 * An odd entry where a hook works (a file or a symbolic link where a folder of groups/, deps/ or
 * callbacks/ should be: someone else's doing, for `zcq doctor`) skips that hook instead of keeping the job
 * from ever ending. Any other error (no space, I/O, permissions) stops finish, which is tried again.
 */
function tolerant(fn: () => unknown): void {
  try { fn(); } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'ELOOP' && code !== 'EISDIR') throw err;
  }
}

/**
 * A finished record was pruned: what composite jobs keep for its id goes with it — the group whose
 * postprocess it was (groups/ID/: entries and fan-in), its callbacks' run markers, the edges of jobs that
 * waited on it (all released long since: it ended before it could be pruned), its children's index.
 * Five names looked up; nothing read.
 */
export function forgetCompositeOf(l: Layout, id: string): void {
  for (const dir of [join(l.groups, id), join(l.deps, id), join(l.children, id)]) {
    if (isRealDir(dir)) fs.rmSync(dir, { recursive: true, force: true });
  }
  forgetCallbacks(l, id);
}

/** A record now in waiting/ (it awaits a composite): settle it once, in case what it awaits has ended already. */
export function onWaitingRecord(l: Layout, job: Job, durable: boolean): void {
  settleWaiting(l, job.queue, job.id, durable);
}
