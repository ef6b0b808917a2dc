/**
 * callback: a job that ended puts its `then` (done) or `catch` (failed for good) callback, exactly once.
 *
 *   (nothing)  ->  callbacks/CBID  ->  pending/QUEUE/CBID.json        CBID = PARENT.then or PARENT.catch
 *
 * Before: the parent's final record is in place in its claim (finish.ts step 4): callbacks are put inside
 *   finish, between its steps 4 and 5, by whoever finishes the parent (worker, recovery, cancel). The
 *   callback's spec (fn, queue, retries) comes from the parent's `then` / `catch` field, checked as
 *   untrusted; its queue is the parent's unless given, its retries 5 unless given (zc.async retries
 *   callbacks harder than jobs). It is called `fn(result, PARENT)` or `fn(failure, PARENT)`.
 * Steps (transitions/put.ts putOnce, as for a cron tick):
 *   1. write the callback job in tmp/ and link it as callbacks/CBID — the run marker, EEXIST: already put
 *      by an earlier finish of the same record (a recovery re-running finish), stop;
 *   2. link the marker into pending/QUEUE/CBID.json.
 * Crash after 1: the marker exists, the job is not pending; the finish that runs again (recovery) finds
 *   the marker and, when CBID is nowhere in the spool, completes step 2. The id is derived from the parent's,
 *   so no second callback can be put for one parent record, however often the hook runs.
 * Fence: none needed: the marker's exclusive link is the one winner.
 * A parent run again by `zcq retry` ends anew: its callback markers are removed by the retry
 *   (client: forgetCallbacks) so that the new end puts its callback again.
 */
import { join } from 'node:path';
import { newJob, serializeJob, type Job } from '../../job/format.js';
import { unlinkQuietly } from '../fsops.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { findExact } from '../scan.js';
import { callbackId } from '../names.js';
import { publishMarker, putOnce } from './put.js';

export { callbackId };
import { step } from './steps.js';

/** Callback jobs retry this often unless their spec says otherwise. */
export const CALLBACK_RETRIES = 5;

/** Steps 1–2 for a parent that ended in `state`. Returns the callback's id, or null when it has none. */
export function putCallback(l: Layout, parent: Job, state: 'done' | 'failed', durable: boolean): string | null {
  const kind = state === 'done' ? 'then' : 'catch';
  const spec = parent[kind];
  if (!spec) return null;
  const id = callbackId(parent.id, kind);
  const queue = spec.queue ?? parent.queue;
  const job = newJob({ id, fn: spec.fn, args: [state === 'done' ? (parent.result ?? null) : (parent.failure ?? null), parent.id], queue, retries: spec.retries ?? CALLBACK_RETRIES });
  job.parent = parent.id;
  makeDir(l.modes, l.callbacks);
  const marker = join(l.callbacks, id);
  if (!putOnce(l, queue, id, serializeJob(job), marker, durable)) {
    // Put before: complete step 2 only if a crash stopped it (the callback is nowhere yet).
    if (findExact(l, id).length === 0) publishMarker(l, queue, id, marker, durable);
  }
  step('callback', 2, id);
  return id;
}

/** Before a parent runs again (`zcq retry`): its next end puts its callbacks anew. */
export function forgetCallbacks(l: Layout, parent: string): void {
  for (const kind of ['then', 'catch'] as const) unlinkQuietly(join(l.callbacks, callbackId(parent, kind)));
}
