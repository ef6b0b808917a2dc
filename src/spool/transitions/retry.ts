/**
 * retry: run a finished job again, with a fresh set of attempts.
 *
 *   failed/QUEUE/ID.json  ->  pending/QUEUE/ID.json   (pending/QUEUE/pN/ID.json for a priority N other than 5)
 *   done/QUEUE/ID.json    ->  pending/QUEUE/ID.json
 *   done|failed/QUEUE/POST.json  ->  waiting/QUEUE/POST.json   a group's postprocess, when a member is retried
 *
 * Before: the job is in failed/ or done/ (the caller found it there).
 * Steps: 1. make pending/QUEUE (and its priority folder, from the record the caller read) if missing; 2. rename the file into it — ONE rename, so that of two retries
 *   (or a retry and a person's `mv`) exactly one wins and the other gets ENOENT; 3. fsync pending/QUEUE
 *   (durable).
 * The file is not rewritten: a finished record in pending/ is a retry by definition, and the claimer
 *   resets its attempts, interrupts, deadline and due time before running it (claim.ts, job/policy.ts).
 *   So `mv failed/Q/ID.json pending/Q/` by hand is exactly `zcq retry`.
 * A postprocess whose group a retried member re-opens goes back to waiting/ instead (reopenPostprocess), the
 *   same way: one rename; it runs again once the group completes again (arrive.ts).
 * Crash after 2: the job is pending (or waiting) and will run; before it, still finished. Nothing else to complete.
 * Fence: none needed. Retry never unlinks anything, so it cannot remove a record a worker wrote meanwhile.
 */
import { join } from 'node:path';
import { fsyncDirSync, renameStrictSync } from '../fsops.js';
import { jobPath, makeQueueFolders, pendingDir, queueDir, type Layout } from '../layout.js';
import { jobName } from '../names.js';
import { step } from './steps.js';

/** False when the file was no longer at `from` (someone else moved it first). */
export function retryJob(l: Layout, from: string, queue: string, id: string, durable: boolean, priority?: number): boolean {
  const dir = pendingDir(l, queue, priority);
  const made = makeQueueFolders(l, 'pending', dir);
  if (!renameStrictSync(from, join(dir, jobName(id)))) return false;
  step('retry', 2, id);
  if (durable) { fsyncDirSync(dir); for (const p of made) fsyncDirSync(p); }
  return true;
}

/** A finished postprocess back to waiting/QUEUE/ (its group was re-opened by a retried member). False when it moved meanwhile. */
export function reopenPostprocess(l: Layout, from: string, queue: string, id: string, durable: boolean): boolean {
  const dir = queueDir(l, 'waiting', queue);
  const made = makeQueueFolders(l, 'waiting', dir);
  if (!renameStrictSync(from, jobPath(l, 'waiting', queue, id))) return false;
  step('retry', 2, id);
  if (durable) { fsyncDirSync(dir); for (const p of made) fsyncDirSync(p); }
  return true;
}
