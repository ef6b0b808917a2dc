/**
 * hold and release: a person sets a job aside, and puts it back.
 *
 *   hold:     pending/QUEUE/ID.json                ->  hold/QUEUE/ID.json
 *             deferred/QUEUE/BUCKET/DUEMS.ID.json  ->  hold/QUEUE/ID.json
 *   release:  hold/QUEUE/ID.json  ->  pending/QUEUE/ID.json (pending/QUEUE/pN/ for a priority N other than 5),
 *             or its deferred bucket while its "notBefore" is still ahead by the file server's clock
 *
 * Before: the job is where the caller found it; no lease is needed (the job is not held by anyone).
 * Steps: 1. (release) read the file's "notBefore" and "priority" (bounded, untrusted: an unreadable file goes to pending/,
 *   where the claimer quarantines it); 2. make the target folder if missing; 3. ONE rename; the loser of
 *   a race (a worker that claimed it first, another hold) gets ENOENT; 4. fsync the target folder (durable).
 * `mv` by hand does the same; a job in hold/ is never taken by a worker. A running job cannot be held
 *   (cancel it, or wait).
 * Crash after 3: moved; before it: not moved. Nothing to complete.
 * Fence: none needed (one rename of a job nobody holds).
 */
import { dirname, join } from 'node:path';
import { MAX_JOB_BYTES, fsyncDirSync, readRegularFileSync, renameStrictSync } from '../fsops.js';
import { makeQueueFolders, pendingDir, queueDir, type Layout } from '../layout.js';
import { MAX_PRIORITY } from '../../job/format.js';
import { deferredPath, jobName } from '../names.js';
import { step } from './steps.js';

export function holdJob(l: Layout, from: string, queue: string, id: string, durable: boolean): boolean {
  const dir = queueDir(l, 'hold', queue);
  const made = makeQueueFolders(l, 'hold', dir);
  step('hold', 2, id);
  if (!renameStrictSync(from, join(dir, jobName(id)))) return false;
  step('hold', 3, id);
  if (durable) { fsyncDirSync(dir); for (const p of made) fsyncDirSync(p); }
  return true;
}

/** Where release sends the job: 'pending' or 'deferred'; false when it was no longer there. */
export function releaseJob(l: Layout, from: string, queue: string, id: string, serverNowMs: number, durable: boolean): 'pending' | 'deferred' | false {
  let dueMs: number | null = null;
  let priority: number | undefined;
  try {
    const r = readRegularFileSync(from, MAX_JOB_BYTES);
    if ('text' in r) {
      const o = JSON.parse(r.text) as { notBefore?: unknown; priority?: unknown };
      const t = typeof o.notBefore === 'string' ? Date.parse(o.notBefore) : NaN;
      if (Number.isFinite(t) && t > serverNowMs) dueMs = t;
      // Untrusted: only a valid priority picks a folder (the claimer checks the whole record).
      if (Number.isInteger(o.priority) && (o.priority as number) >= 0 && (o.priority as number) <= MAX_PRIORITY) priority = o.priority as number;
    }
  } catch { /* unreadable: pending/, where the claimer quarantines it */ }
  const to = dueMs === null ? join(pendingDir(l, queue, priority), jobName(id)) : deferredPath(l, queue, dueMs, id);
  const made = makeQueueFolders(l, dueMs === null ? 'pending' : 'deferred', dirname(to));
  step('release', 2, id);
  if (!renameStrictSync(from, to)) return false;
  step('release', 3, id);
  if (durable) { fsyncDirSync(dirname(to)); for (const p of made) fsyncDirSync(p); }
  return dueMs === null ? 'pending' : 'deferred';
}
