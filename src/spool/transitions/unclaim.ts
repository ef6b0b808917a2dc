/**
 * unclaim: give back a job this worker claimed but will not run (its function does not match the
 * worker's `fn` filter, spool/config.ts; or a quota it needs has no free slot, transitions/quota-take.ts).
 *
 *   claimed/LEASE/SEQ.ID.json  ->  pending/QUEUE/[pN/]ID.json   the folder it was claimed from
 *
 * Before: the holder claimed the file (transitions/claim.ts step 1) and read it (step 2); nothing was
 *   written to it, and it has not started (a retry found in pending/ was reset in memory only, so the
 *   file goes back as it came and the next claimer resets it the same way).
 * Steps:
 *   1. check with lstat that claimed/LEASE is still our folder, make pending/QUEUE[/pN] if missing, and rename
 *      the file back — ONE rename; the job is pending again with its attempts untouched.
 * The holder remembers the name (worker/claimer.ts) and does not claim it again while its filter and the
 *   file are unchanged, so a job nobody's filter matches waits in pending/ without a claim loop.
 * No fsync: both places are valid states. A crash (or a power cut that loses the rename) leaves the job in
 *   our lease, where recovery settles it by its interrupt policy as for a crash after claim step 1.
 * Fence: the rename's source is inside our lease folder: a recoverer that took the folder makes it fail
 *   with ENOENT (the recoverer settles the job); a folder swapped for a symlink is refused by the lstat.
 */
import { join } from 'node:path';
import { renameOrGoneSync } from '../fsops.js';
import { makeQueueFolders, queueDir } from '../layout.js';
import { jobName } from '../names.js';
import type { ClaimedJob } from './claim.js';
import { step } from './steps.js';

/** Put a claimed job back in pending/QUEUE/. False when the file was no longer ours to move. */
export function unclaimJob(c: ClaimedJob): boolean {
  if (!c.lease.folderIsOurs()) return false;
  const q = queueDir(c.lease.layout, 'pending', c.queue);
  const dir = c.level ? join(q, c.level) : q;
  makeQueueFolders(c.lease.layout, 'pending', dir);
  if (!renameOrGoneSync(c.path, join(dir, jobName(c.id)))) return false;
  step('unclaim', 1, c.id);
  return true;
}
