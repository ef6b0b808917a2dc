/**
 * put: publish new jobs, one or many.
 *
 *   (nothing)  ->  pending/QUEUE/ID.json            due now, priority 5 (the default)
 *   (nothing)  ->  pending/QUEUE/pN/ID.json         due now, priority N != 5 (the claimer reads p0 first, p9 last)
 *   (nothing)  ->  deferred/QUEUE/BUCKET/DUEMS.ID.json   due later
 *
 * Before: each job was validated whole (client/prepare.ts: the one validator); its id is new and unique.
 * Steps, for a batch (a single put is a batch of one):
 *   1. make missing queue and bucket folders (with the spool's modes), remembering each new folder's
 *      parent, which must be fsynced too or a power cut could lose the folder with its jobs;
 *   2. create every file in tmp/ under a fresh random name (O_EXCL|O_NOFOLLOW), write it, fsync it
 *      (durable mode; a batch's fsyncs run together on the thread pool so the journal commits them at once),
 *      close it with its error checked (NFS reports write errors at close);
 *   3. rename each into place, in order (a target folder found gone — removed by hand since 1, or looked up
 *      stale on GlusterFS while other machines made it — is made again and the rename tried again: publishOne);
 *   4. fsync each target folder, and each new folder's parent, once.
 * Crash after 1: empty folders, harmless (workers' housekeeping removes empty buckets once past). After 2: temporaries in
 *   tmp/, removed after the leftover age; nothing published. During 3: a prefix of the batch is published
 *   and may already run; the caller reports which (PartialPutError.enqueued) rather than roll back.
 *   After 3, before 4 (durable mode): published, but a power cut may still lose them.
 * Fence: none needed — the names are new; readers never see a half-written file.
 *
 * putOnce is the variant for cron ticks: the job is published by link() from its run marker, which only
 * one scheduler can create, so a tick makes at most one job however many schedulers race for it.
 *   0. write the job into an exclusive temporary in tmp/;
 *   1. link it as the run marker (EEXIST: another scheduler made this tick's; ENOENT: the marker's folder
 *      went, `zcq cron rm` removing the schedule — the caller tells which);
 *   2. link the marker into pending/QUEUE/ (publishMarker), fsync the folder (durable).
 * Crash after 0: a temporary, removed by housekeeping. After 1: the marker stands without its job; every
 *   other scheduler loses the tick at its link, so that tick does not run (at most one job a tick: a
 *   marker cannot tell a job never published from one already run).
 */
import * as fs from 'node:fs';
import { errnoOf } from '../../errors.js';
import { dirname, join } from 'node:path';
import { createExclusiveOpenSync, createExclusiveSync, fsyncDirSync, isRealDir, pauseSync, renameOrGoneSync, unlinkQuietly } from '../fsops.js';
import { REPLACED_PAUSES_MS } from '../server-clock.js';
import { makeDir, type SpoolModes } from '../modes.js';
import { pendingDir, queueDir, type Layout } from '../layout.js';
import { bucketOf, deferredName, jobName } from '../names.js';
import { step } from './steps.js';

/** A job file to publish: `dir/name` is its target; `parents` are the folders above `dir` up to the state folder, outermost first (created when missing). */
export interface Outgoing {
  id: string;
  text: string;
  dir: string;
  name: string;
  parents?: string[];
}

/** fsyncs in flight at once: more than the pool's threads (4) keep it busy; the bound caps open files. */
const FSYNC_WINDOW = 32;

/** publish() stopped: the first `published` files are in place (renamed), the others were not; their temporaries are removed. */
export class PublishError extends Error {
  constructor(readonly published: number, readonly path: string, override readonly cause: NodeJS.ErrnoException) {
    super(`${path}: ${cause.message}`);
  }
}

/** Write `files` in `tmpDir`, fsync them (durable), rename each to its target, fsync each target folder once. */
export async function publish(tmpDir: string, files: readonly Outgoing[], durable: boolean, modes: SpoolModes): Promise<void> {
  const folders = new Set<string>();
  for (const f of files) folders.add(f.dir);
  // Folders first, so that a failure here leaves nothing to undo.
  const ready = new Set<string>();
  for (const f of files) {
    if (ready.has(f.dir)) continue;
    try {
      const chain = chainOf(f);
      // The first is a state folder, in the spool root that no co-user may write (modes.ts rootModeFor): once
      // the folder below it is a real folder, it needs no look of its own (a put into a queue that exists: one
      // lstat, not two; a round trip on a network mount). Every folder below it is looked at: a co-user may
      // have put a symlink in place of a queue folder.
      if (chain.length > 1 && !ready.has(chain[0]!) && isRealDir(chain[1]!)) { ready.add(chain[0]!); ready.add(chain[1]!); }
      for (const d of chain) {
        if (ready.has(d)) continue;
        makeFolder(modes, d, folders);
        ready.add(d);
      }
    } catch (err) {
      throw new PublishError(0, f.dir, err as NodeJS.ErrnoException);
    }
  }
  step('put', 1);

  const tmps: string[] = [];
  let failed: { path: string; err: NodeJS.ErrnoException } | undefined;
  const inflight = new Set<Promise<void>>();
  let at = tmpDir;
  try {
    for (const f of files) {
      const { fd, path: tmp } = createExclusiveOpenSync(tmpDir, `.put-${f.id}.`, modes.fileMode);
      at = tmp;
      tmps.push(tmp);
      try {
        fs.writeFileSync(fd, f.text);
        if (durable && files.length === 1) fs.fsyncSync(fd);
      } catch (err) {
        try { fs.closeSync(fd); } catch { /* already failing */ }
        throw err;
      }
      if (!durable || files.length === 1) { fs.closeSync(fd); continue; }
      const p: Promise<void> = fsyncAndClose(fd)
        .catch((err: NodeJS.ErrnoException) => { failed ??= { path: tmp, err }; })
        .finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= FSYNC_WINDOW) await Promise.race(inflight);
      if (failed) break;
    }
    await Promise.all(inflight);
    if (failed) throw failed.err;
  } catch (err) {
    await Promise.all(inflight);
    for (const t of tmps) unlinkQuietly(t);
    throw new PublishError(0, failed?.path ?? at, err as NodeJS.ErrnoException);
  }

  step('put', 2);
  let n = 0;
  try {
    for (; n < files.length; n++) {
      const f = files[n]!;
      if (n > 0) step('put', 3, files[n - 1]!.id);
      publishOne(tmps[n]!, f, modes, folders);
    }
  } catch (err) {
    for (let i = n; i < files.length; i++) unlinkQuietly(tmps[i]!);
    // Those already in place are published (a worker may be running them): make them durable if we can.
    if (durable) for (const dir of new Set(files.slice(0, n).map((f) => f.dir))) { try { fsyncDirSync(dir); } catch { /* reported below */ } }
    throw new PublishError(n, join(files[n]!.dir, files[n]!.name), err as NodeJS.ErrnoException);
  }

  step('put', 3, files[files.length - 1]?.id);
  if (!durable) return;
  for (const dir of folders) {
    try { fsyncDirSync(dir); } catch (err) { throw new PublishError(files.length, dir, err as NodeJS.ErrnoException); }
  }
}

/**
 * Step 3 for one file: rename its temporary into place. A rename that fails with ENOENT or ESTALE while the
 * temporary is still there met the target folder gone — a person's `rm -rf pending/QUEUE` since step 1, or,
 * on GlusterFS, a queue folder that other machines were making at the same moment, looked up stale through
 * this client's cache (the rig: three machines putting into the same new queues at once, replica 2). The
 * folders are then looked at again (made if missing, their parents fsynced at step 4 in durable mode) after
 * the pauses a replaced name needs, and the rename tried again. Throws ENOENT when the temporary itself is gone, or the folder stays unreachable.
 */
function publishOne(tmp: string, f: Outgoing, modes: SpoolModes, fsyncs: Set<string>): void {
  const target = join(f.dir, f.name);
  for (let attempt = 1; ; attempt++) {
    if (renameOrGoneSync(tmp, target)) return;
    if (!fs.existsSync(tmp)) throw Object.assign(new Error(`ENOENT: ${tmp} vanished before it was published`), { code: 'ENOENT' });
    if (attempt === REPLACED_PAUSES_MS.length) throw Object.assign(new Error(`ENOENT: ${f.dir} answered ENOENT to every rename into it`), { code: 'ENOENT' });
    pauseSync(REPLACED_PAUSES_MS[attempt]!);
    for (const d of chainOf(f)) makeFolder(modes, d, fsyncs);
  }
}

/** The folders from `f`'s state folder down to its own, outermost first. */
function chainOf(f: Outgoing): string[] {
  return [...(f.parents ?? []), f.dir];
}

/** makeDir; a folder made new adds its parent to `fsyncs`, or a power cut could lose the folder with its jobs (step 4). */
function makeFolder(modes: SpoolModes, dir: string, fsyncs: Set<string>): void {
  if (makeDir(modes, dir)) fsyncs.add(dirname(dir));
}

/** fsync then close (always), on the thread pool; the first error wins. Close is checked: NFS reports write errors there. */
function fsyncAndClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (syncErr) => fs.close(fd, (closeErr) => {
      const e = syncErr ?? closeErr;
      if (e) reject(e); else resolve();
    }));
  });
}

/** Where a new job goes: pending/QUEUE/ (or its priority folder pN/) when due now, else its deferred bucket (promote files it by priority). */
export function placeNewJob(l: Layout, queue: string, id: string, text: string, dueMs: number | null, priority?: number): Outgoing {
  if (dueMs === null) {
    const dir = pendingDir(l, queue, priority);
    const q = queueDir(l, 'pending', queue);
    return { id, text, dir, name: jobName(id), parents: dir === q ? [l.pending] : [l.pending, q] };
  }
  const q = queueDir(l, 'deferred', queue);
  return { id, text, dir: join(q, bucketOf(dueMs)), name: deferredName(dueMs, id), parents: [l.deferred, q] };
}

/**
 * Publish one job exactly once per `marker` (a cron tick): write it in tmp/, link it as `marker` (EEXIST:
 * another creator won), then link the marker into pending/QUEUE/ID.json. Returns false when another
 * creator won. Crash after the first link: the marker exists and the job is not pending; the creator that
 * finds the marker without the job (see CronStore) links it in (EEXIST there is success).
 */
export function putOnce(l: Layout, queue: string, id: string, text: string, marker: string, durable: boolean): boolean {
  const tmp = createExclusiveSync(l.tmp, `.once-${id}-`, text, { durable: durable, mode: l.modes.fileMode });
  try {
    step('putOnce', 0, id);
    if (!linkOnce(tmp, marker)) return false;
    step('putOnce', 1, id);
  } finally {
    unlinkQuietly(tmp);
  }
  publishMarker(l, queue, id, marker, durable);
  return true;
}

/**
 * link(tmp, marker): true when this call made the marker, false when another creator's marker is there
 * (EEXIST). After an ESTALE (see linkLookingAgain) an EEXIST counts as ours when the marker is our own
 * inode: the stale try had made it.
 */
function linkOnce(tmp: string, marker: string): boolean {
  const r = linkLookingAgain(tmp, marker);
  return r.linked || (r.afterStale && sameInode(tmp, marker));
}

/**
 * link(from, to), where ESTALE means "look again": GlusterFS and NFS return it when a handle the call used
 * went stale under another client's change. The link is tried again after the pauses a replaced name needs
 * (server-clock.ts), so that a look past the client's 1 s entry cache sees the folder as it is. A folder
 * that is really gone (`zcq cron rm` removing runs/NAME) stays gone: the last look throws, and the caller
 * tells that case from an error. `linked` false: `to` was there (EEXIST); `afterStale`: a try before the
 * one that answered failed with ESTALE, and may have made `to` itself.
 */
function linkLookingAgain(from: string, to: string): { linked: boolean; afterStale: boolean } {
  for (let attempt = 0; ; attempt++) {
    const pauseMs = REPLACED_PAUSES_MS[attempt]!;
    if (pauseMs > 0) pauseSync(pauseMs);
    try {
      fs.linkSync(from, to);
      return { linked: true, afterStale: attempt > 0 };
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EEXIST') return { linked: false, afterStale: attempt > 0 };
      if (code !== 'ESTALE' || attempt === REPLACED_PAUSES_MS.length - 1) throw err;
    }
  }
}

function sameInode(a: string, b: string): boolean {
  try { const x = fs.lstatSync(a); const y = fs.lstatSync(b); return x.dev === y.dev && x.ino === y.ino; } catch { return false; }
}

/** The second half of putOnce, also run to complete one a crash interrupted: link the marker into pending/QUEUE/. */
export function publishMarker(l: Layout, queue: string, id: string, marker: string, durable: boolean): void {
  const dir = queueDir(l, 'pending', queue);
  const made = makeDir(l.modes, dir);
  linkLookingAgain(marker, join(dir, jobName(id))); // EEXIST: already published (completing a crashed putOnce)
  if (durable) { fsyncDirSync(dir); if (made) fsyncDirSync(l.pending); }
}
