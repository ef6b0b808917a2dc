/**
 * promote: deferred jobs that are due become pending; loose job files put straight into pending/ are filed
 * under their queue.
 *
 *   deferred/QUEUE/BUCKET/DUEMS.ID.json  ->  pending/QUEUE/[pN/]ID.json  when DUEMS <= now (file server's clock); pN by its priority
 *   pending/ID.json (loose, by hand)     ->  pending/QUEUE/[pN/]ID.json  QUEUE and N from the file's "queue" and "priority"
 *
 * Before: any process with a sample of the file server's clock; no lease needed — each move is one rename
 *   of a job nobody holds, and names are unique.
 * Steps (promote), per queue folder and per bucket at or before now's minute, oldest first:
 *   1. make pending/QUEUE if missing; 2. read each due file's "priority" (bounded; an unreadable or bad
 *      file counts as 5 and is quarantined by its claimer), make pending/QUEUE/pN if missing, and rename
 *      the file into the folder of its priority (ENOENT: another promoter won);
 *   3. fsync pending/QUEUE once per pass (durable); 4. remove emptied buckets older than two minutes.
 * Steps (adopt): read and check the loose file (bounded, O_NOFOLLOW|O_NONBLOCK), then rename it into its
 *   queue folder; a file that is not a job, a symlink or a special file goes to quarantine/ with its reason.
 * Crash at any point: each job is in exactly one place, due or pending; the next pass goes on.
 * Fence: none needed (one rename per job, unique names). Reading only the bucket names and the due
 *   buckets keeps a pass O(due jobs), however many jobs are deferred for later.
 * Isolation: a bucket or queue entry that is not a real folder is quarantined, and an error in one queue
 *   is reported and skipped: the rest of the pass goes on.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import { MAX_PRIORITY, parseJob, JobFormatError } from '../../job/format.js';
import { MAX_JOB_BYTES, fsyncDirSync, readRegularFileSync, renameOrGoneSync } from '../fsops.js';
import { makeQueueFolders, pendingDir, queueDir, type Layout } from '../layout.js';
import { BUCKET, bucketOf, idFromName, jobName, parseDeferredName } from '../names.js';
import { quarantine } from '../quarantine.js';
import { listEntries, listQueues } from '../queues.js';
import { step } from './steps.js';

export interface PromoteReport {
  promoted: number; adopted: number; quarantined: number; errors: { path: string; error: string }[];
  /** What was quarantined, for the caller's log. */
  setAside: { path: string; to: string; reason: string }[];
}

export interface DueEntry { path: string; dueMs: number; id: string; queue: string; bucket: string }

/** Jobs of `queue` due at or before `nowMs`, reading only the buckets at or before now. */
export function dueIn(l: Layout, queue: string, nowMs: number, limit = 1000): { due: DueEntry[]; oddBuckets: string[] } {
  const qdir = queueDir(l, 'deferred', queue);
  const nowBucket = bucketOf(nowMs);
  const due: DueEntry[] = [];
  const oddBuckets: string[] = [];
  for (const e of listEntries(qdir).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.name.startsWith('.')) continue;
    if (e.kind !== 'dir' || !BUCKET.test(e.name)) { oddBuckets.push(join(qdir, e.name)); continue; }
    if (e.name > nowBucket) break;
    const names = fs.readdirSync(join(qdir, e.name)).sort();
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const p = parseDeferredName(name);
      if (!p) { oddBuckets.push(join(qdir, e.name, name)); continue; }
      if (p.dueMs > nowMs) break;
      due.push({ path: join(qdir, e.name, name), bucket: e.name, queue, ...p });
      if (due.length >= limit) return { due, oddBuckets };
    }
  }
  return { due, oddBuckets };
}

/** A deferred job's priority, from its file (untrusted: anything but an integer 0..9 is the default 5). */
function priorityOfFile(path: string): number | undefined {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if (!('text' in r)) return undefined;
    const p = (JSON.parse(r.text) as { priority?: unknown }).priority;
    return typeof p === 'number' && Number.isInteger(p) && p >= 0 && p <= MAX_PRIORITY ? p : undefined;
  } catch { return undefined; }
}

/** One promotion pass over every queue's deferred jobs (or only `queues`). */
export async function promoteDue(l: Layout, nowMs: number, durable: boolean, queues?: readonly string[] | null): Promise<PromoteReport> {
  const rep: PromoteReport = { promoted: 0, adopted: 0, quarantined: 0, errors: [], setAside: [] };
  const listed = listQueues(l.deferred);
  for (const odd of listed.odd) await setAside(l, join(l.deferred, odd.name), odd.name, 'not a queue folder in deferred/', rep);
  for (const queue of listed.queues) {
    if (queues && !queues.includes(queue)) continue;
    try {
      const { due, oddBuckets } = dueIn(l, queue, nowMs);
      for (const p of oddBuckets) await setAside(l, p, p.slice(l.deferred.length + 1).replace(/\//g, '_'), 'not a deferred bucket (YYYYMMDDTHHMM folder) or job name (DUEMS.ID.json)', rep);
      if (due.length === 0) continue;
      const pdir = queueDir(l, 'pending', queue);
      const touchedDirs = new Set<string>([pdir, ...makeQueueFolders(l, 'pending', pdir)]);
      step('promote', 1, queue);
      const touched = new Set<string>();
      for (const e of due) {
        const dir = pendingDir(l, queue, priorityOfFile(e.path));
        if (dir !== pdir) for (const p of makeQueueFolders(l, 'pending', dir)) touchedDirs.add(p);
        if (renameOrGoneSync(e.path, join(dir, jobName(e.id)))) { rep.promoted++; touchedDirs.add(dir); step('promote', 2, e.id); }
        touched.add(e.bucket);
      }
      if (durable) for (const d of touchedDirs) fsyncDirSync(d);
      step('promote', 3, queue);
      const old = bucketOf(nowMs - 120_000);
      for (const b of touched) {
        if (b < old) { try { fs.rmdirSync(join(queueDir(l, 'deferred', queue), b)); } catch (err) { if (!['ENOTEMPTY', 'ENOENT', 'EEXIST'].includes(errnoOf(err) ?? '')) throw err; } }
      }
    } catch (err) {
      rep.errors.push({ path: queueDir(l, 'deferred', queue), error: (err as Error).message });
    }
  }
  return rep;
}

/** File loose job files in pending/ under their queue folder; quarantine what is not a job or a queue folder. */
export async function adoptLoose(l: Layout, durable: boolean): Promise<PromoteReport> {
  const rep: PromoteReport = { promoted: 0, adopted: 0, quarantined: 0, errors: [], setAside: [] };
  const { odd } = listQueues(l.pending);
  for (const e of odd) {
    const path = join(l.pending, e.name);
    const id = idFromName(e.name);
    try {
      if (e.kind === 'dir') { await setAside(l, path, e.name, 'a folder in pending/ whose name is not a queue name', rep); continue; }
      if (id === null) { await setAside(l, path, e.name, 'not a job file name (ID.json) in pending/', rep); continue; }
      let queue: string;
      let priority: number | undefined;
      try {
        const r = readRegularFileSync(path, MAX_JOB_BYTES);
        if ('bad' in r) throw new JobFormatError(r.bad);
        ({ queue, priority } = parseJob(r.text, id));
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') continue;
        if (!(err instanceof JobFormatError)) throw err;
        await setAside(l, path, e.name, `${err.message} (put in pending/ by hand)`, rep);
        continue;
      }
      const dir = pendingDir(l, queue, priority);
      const made = makeQueueFolders(l, 'pending', dir);
      step('adopt', 1, id);
      if (renameOrGoneSync(path, join(dir, e.name))) { rep.adopted++; step('adopt', 2, id); }
      if (durable) { fsyncDirSync(dir); for (const p of made) fsyncDirSync(p); }
    } catch (err) {
      rep.errors.push({ path, error: (err as Error).message });
    }
  }
  return rep;
}

async function setAside(l: Layout, path: string, name: string, why: string, rep: PromoteReport): Promise<void> {
  try {
    const to = await quarantine(l, path, name, why);
    if (to) { rep.quarantined++; rep.setAside.push({ path, to, reason: why }); }
  } catch (err) {
    rep.errors.push({ path, error: (err as Error).message });
  }
}

/**
 * Remove empty buckets more than two minutes past (workers' housekeeping): a promoter that died after
 * emptying a bucket, or a put that died after making one, leaves it behind. Reads only bucket names.
 */
export function removeEmptyBuckets(l: Layout, nowMs: number): number {
  const old = bucketOf(nowMs - 120_000);
  let removed = 0;
  for (const queue of listQueues(l.deferred).queues) {
    const qdir = queueDir(l, 'deferred', queue);
    for (const e of listEntries(qdir)) {
      if (e.kind !== 'dir' || !BUCKET.test(e.name) || e.name >= old) continue;
      try { fs.rmdirSync(join(qdir, e.name)); removed++; } catch { /* not empty (due jobs for the next pass) or gone */ }
    }
  }
  return removed;
}
