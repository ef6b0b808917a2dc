/**
 * release: a waiting job whose dependencies ended becomes pending.
 *
 *   waiting/QUEUE/ID.json  ->  pending/QUEUE/ID.json
 *   deps/DEPID/QUEUE~ID    the reverse edge: ID waits for DEPID (made before ID is published in waiting/)
 *
 * Who waits: a job put with `after` (its dependencies; serial members after the previous member), a
 *   group's postprocess (until every member arrived: arrive.ts), a job that returned a composite
 *   (`awaits` its postprocess).
 * Before: the job's file is in waiting/QUEUE/; for `after`, an edge deps/DEPID/QUEUE~ID exists for each
 *   dependency (put makes the edges first, then publishes the job in waiting/, then settles it once).
 * Steps (settle, run by the putter once after publishing, and by the finisher of each dependency between
 *   its finish steps 4 and 5, for every edge it lists — O(dependents) per ending job):
 *   1. read the waiting job; decide: ready when every dependency has ended (done/, failed/, or a final
 *      record of its claim still in claimed/), or one failed and `afterAnyOutcome` is not set; a
 *      postprocess is ready when its group's root marker exists, or when the members its gate sent it
 *      back to wait for (its `after`, members a retry re-opened) have ended;
 *   2. release: ONE rename into pending/QUEUE/ (made if missing), which only one settler wins; ENOENT means
 *      another settler (or a cancel) moved it first;
 *   3. remove the job's edges (and the emptied edge folders).
 *   The job itself judges a failed dependency when a worker claims it (worker: a job whose dependency
 *   failed or was cancelled ends in failed/ with reason "dependency failed" naming it — "cancelled" for a
 *   serial member — without running; a job that awaits a composite takes its postprocess's outcome).
 *   So release never decides a job's fate: it only says "look now", and it is safe to release twice.
 * Why no wakeup is lost: the finisher lists the edges after its final record is in place (step 4), the
 *   putter looks at the dependency after making its edge; whichever comes second sees the other.
 * Crash after 1: nothing changed. After 2: the job is pending; leftover edges are harmless (a released
 *   job is no longer in waiting/, so a later settle finds nothing). A putter that died between publishing
 *   and settling, a finisher whose record moved on before its settle ran, or a settle that saw a stale view
 *   (an NFS or FUSE client cache), leaves a job waiting whose dependencies all ended: every worker settles
 *   every waiting job every 15 s (sweepWaiting; worker.ts), and so does `zcq recover`, which also lets the
 *   ended members of a waiting postprocess's group that have no entry arrive again (arrive.ts
 *   reArriveEnded: an arrival a power cut lost, finish.ts step 6). The sweep sets a
 *   file that is not a job aside in quarantine/ with its reason; the other waiting jobs go on.
 * Fence: none needed: the release is one rename of a job nobody holds.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, isGone } from '../../errors.js';
import { JobFormatError, parseJob, type Job } from '../../job/format.js';
import { MAX_JOB_BYTES, fsyncDirSync, isRealDir, readRegularFileSync, renameStrictSync, unlinkQuietly } from '../fsops.js';
import { jobPath, makeQueueFolders, pendingDir, queueDir, type Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { edgeName, jobName, parseEdge, runToken } from '../names.js';
import { findExact, scanState } from '../scan.js';
import { listQueues } from '../queues.js';
import { SAFE_NAME } from '../ids.js';
import { groupComplete, reArriveEnded } from './arrive.js';
import { quarantine } from './quarantine.js';
import { step } from './steps.js';

export type DepState = 'done' | 'failed' | 'open' | 'missing';

/** Make the reverse edges of `id` (of `queue`) on each of `deps`. Before the job is published in waiting/. */
export function addEdges(l: Layout, deps: readonly string[], queue: string, id: string): void {
  makeDir(l.modes, l.deps);
  for (const d of deps) {
    const dir = join(l.deps, d);
    // A settle removes a folder it emptied: one made here a moment before may vanish; make it again.
    for (let tries = 0; ; tries++) {
      makeDir(l.modes, dir);
      try {
        fs.closeSync(fs.openSync(join(dir, edgeName(queue, id)), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, l.modes.fileMode));
        break;
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'EEXIST') break;
        if (code !== 'ENOENT' || tries >= 3) throw err;
      }
    }
  }
}

/**
 * Note `ids` as children of `parent` (children/PARENT/ID, empty files): an index for `zcq show`, made before
 * the children are published; nothing depends on it for correctness.
 */
export function addChildren(l: Layout, parent: string, ids: readonly string[]): void {
  makeDir(l.modes, l.children);
  const dir = join(l.children, parent);
  makeDir(l.modes, dir);
  for (const id of ids) {
    try {
      fs.closeSync(fs.openSync(join(dir, id), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, l.modes.fileMode));
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
  }
}

/**
 * Where a job stands as a dependency: ended (done/failed, or a final record still in its claim), open, or
 * nowhere. Its claim is looked at before done/ and failed/: a record moves from the one to the other, so a
 * record gone from the claim when we look there is in done/ or failed/ when we look there next.
 */
export function dependencyState(l: Layout, id: string): { state: DepState; job?: Job } {
  for (const x of scanState(l, 'claimed')) {
    if (x.id !== id || x.worker === undefined || x.seq === undefined) continue;
    const job = readJob(x.path, id);
    if (job && typeof job.finished === 'string' && job.run === runToken(x.worker, x.seq)) return { state: job.failure ? 'failed' : 'done', job };
  }
  const locs = findExact(l, id);
  if (locs.length === 0) return { state: 'missing' };
  const ended = locs.find((x) => x.state === 'done' || x.state === 'failed');
  if (ended) return { state: ended.state as DepState, job: readJob(ended.path, id) };
  return { state: 'open' };
}

function readJob(path: string, id: string): Job | undefined {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    return 'text' in r ? parseJob(r.text, id) : undefined;
  } catch { return undefined; }
}

/** Whether a waiting job may go: see the header, step 1. `known` gives states already known (the finisher's own job). */
export function isReady(l: Layout, job: Job, known?: ReadonlyMap<string, DepState>): boolean {
  // A postprocess's `after` lists the members its gate found re-opened by a retry (worker/composite.ts): it
  // is looked at again once they have all ended, or when the group completes.
  if (job.postprocessOf && groupComplete(l, job.postprocessOf.gid, job.postprocessOf.size)) return true;
  const deps = job.after ?? [];
  if (job.postprocessOf && deps.length === 0) return false;
  let allEnded = true;
  for (const d of deps) {
    const s = known?.get(d) ?? dependencyState(l, d).state;
    if (s === 'open') allEnded = false;
    else if ((s === 'failed' || s === 'missing') && !job.afterAnyOutcome) return true;
  }
  return allEnded;
}

/** Step 2: one rename out of waiting/. False when the job was not there (released or cancelled already). */
export function releaseWaiting(l: Layout, queue: string, id: string, durable: boolean, priority?: number): boolean {
  const dir = pendingDir(l, queue, priority);
  const made = makeQueueFolders(l, 'pending', dir);
  if (!renameStrictSync(jobPath(l, 'waiting', queue, id), join(dir, jobName(id)))) return false;
  step('release', 2, id);
  if (durable) { fsyncDirSync(dir); for (const p of made) fsyncDirSync(p); }
  return true;
}

/** A waiting file read: the job, gone (moved meanwhile), or why it is not a job (for quarantine). */
function readWaitingJob(path: string, id: string): Job | 'gone' | { bad: string } {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if ('bad' in r) return { bad: r.bad };
    return parseJob(r.text, id);
  } catch (err) {
    if (err instanceof JobFormatError) return { bad: err.message };
    if (isGone(err)) return 'gone';
    throw err;
  }
}

/** Steps 1–3 for one waiting job. 'unreadable': the file is not a job (the sweep quarantines it). */
export function settleWaiting(l: Layout, queue: string, id: string, durable: boolean, known?: ReadonlyMap<string, DepState>): 'released' | 'waiting' | 'gone' | 'unreadable' {
  const job = readWaitingJob(jobPath(l, 'waiting', queue, id), id);
  if (job === 'gone') return 'gone';
  if ('bad' in job) return 'unreadable';
  if (!isReady(l, job, known)) return 'waiting';
  step('release', 1, id);
  if (!releaseWaiting(l, queue, id, durable, job.priority)) return 'gone';
  // 3. the edges are spent
  dropEdges(l, job.after ?? [], queue, id);
  step('release', 3, id);
  return 'released';
}

/** Remove the edges of `id` (of `queue`) on each of `deps`, and the edge folders that emptied. */
export function dropEdges(l: Layout, deps: readonly string[], queue: string, id: string): void {
  for (const d of deps) {
    if (!SAFE_NAME.test(d) || !isRealDir(join(l.deps, d))) continue;
    unlinkQuietly(join(l.deps, d, edgeName(queue, id)));
    try { fs.rmdirSync(join(l.deps, d)); } catch { /* others still wait on d, or gone */ }
  }
}

/** The ending job `id` (its final record in place) settles every job waiting on it. O(its dependents). */
export function settleDependents(l: Layout, id: string, state: 'done' | 'failed', durable: boolean): number {
  const dir = join(l.deps, id);
  if (!isRealDir(dir)) return 0; // no dependents (or a planted symlink: never followed)
  let names: string[];
  try { names = fs.readdirSync(dir); } catch (err) { if (isGone(err) || errnoOf(err) === 'ENOTDIR') return 0; throw err; }
  const known = new Map<string, DepState>([[id, state]]);
  let n = 0;
  for (const name of names) {
    const e = parseEdge(name);
    if (e && settleWaiting(l, e.queue, e.id, durable, known) === 'released') n++;
  }
  return n;
}

/**
 * Settle the jobs in waiting/ (`zcq recover`: all; a worker's sweep: a slice): completes whatever a crash
 * or a stale view left between an end and its settle. `limit` settles at most that many jobs, starting after
 * `from` (QUEUE/ID, in name order) and coming round again at the end: a worker's pass costs a bounded time
 * however many jobs wait (a settle reads the job and looks for each of its dependencies). `next` is where
 * the following pass starts. An entry of a queue folder that is not a job — a name other than ID.json, a
 * folder, a symbolic link or special file, a file that does not parse as job ID — is set aside in
 * quarantine/ with its reason (transitions/quarantine.ts), never deleted, and the pass goes on with the
 * others. Names starting with a dot are left alone (an NFS client's .nfsXXXX of a file still open).
 */
export async function sweepWaiting(l: Layout, durable: boolean, opts: { limit?: number; from?: string } = {}): Promise<{ released: number; quarantined: number; next: string }> {
  const all: string[] = [];
  const odd: { path: string; name: string; why: string }[] = [];
  for (const q of listQueues(l.waiting).queues) {
    let names: string[];
    try { names = fs.readdirSync(queueDir(l, 'waiting', q)); } catch { continue; }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const id = name.endsWith('.json') ? name.slice(0, -5) : '';
      if (SAFE_NAME.test(id)) all.push(`${q}/${id}`);
      else odd.push({ path: join(queueDir(l, 'waiting', q), name), name, why: `not a job file name (ID.json) in waiting/${q}/` });
    }
  }
  all.sort();
  const limit = opts.limit ?? all.length;
  let start = opts.from ? all.findIndex((k) => k > opts.from!) : 0;
  if (start < 0) start = 0;
  let released = 0;
  let next = '';
  for (let n = 0; n < Math.min(limit, all.length); n++) {
    const key = all[(start + n) % all.length]!;
    const [q, id] = key.split('/') as [string, string];
    let r: ReturnType<typeof settleWaiting>;
    try { r = settleWaiting(l, q, id, durable); } catch { r = 'waiting'; } // one job's trouble (EIO, EACCES) stops no other
    if (r === 'waiting' && opts.limit === undefined) {
      // `zcq recover` (the full sweep): a group whose ended members lost their arrival (arrive.ts reArriveEnded).
      const job = readWaitingJob(jobPath(l, 'waiting', q, id), id);
      if (typeof job === 'object' && !('bad' in job) && job.postprocessOf) {
        let again = { arrived: 0, released: false };
        try { again = reArriveEnded(l, job.postprocessOf.gid, job.postprocessOf.size, durable); } catch { /* as any settle's trouble */ }
        if (again.released) r = 'released';
        else if (again.arrived > 0) { try { r = settleWaiting(l, q, id, durable); } catch { r = 'waiting'; } }
      }
    }
    if (r === 'released') released++;
    else if (r === 'unreadable') {
      const path = jobPath(l, 'waiting', q, id);
      const got = readWaitingJob(path, id);
      if (typeof got === 'object' && 'bad' in got) odd.push({ path, name: `${id}.json`, why: `${got.bad} (found in waiting/${q}/)` });
    }
    next = key;
  }
  let quarantined = 0;
  for (const o of odd) {
    if (await quarantine(l, o.path, o.name, o.why, { mode: l.modes.fileMode, durable }).catch(() => null)) quarantined++;
  }
  return { released, quarantined, next };
}
