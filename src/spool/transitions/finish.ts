/**
 * finish: record an attempt's outcome and move the job on.
 *
 *   claimed/LEASE/SEQ.ID.json  ->  done/QUEUE/ID.json                  succeeded
 *                              ->  failed/QUEUE/ID.json                failed for good (or cancelled)
 *                              ->  deferred/QUEUE/BUCKET/DUEMS.ID.json  a retry after a backoff
 *                              ->  pending/QUEUE/[pN/]ID.json          a retry now, or put back uncounted (pN: its priority)
 *
 * Before: the holder's lease is fresh (the caller checked: a holder that may already be judged dead must
 *   leave the job to recovery), and the job object holds the new record (job/policy.ts decided `next`).
 * Steps:
 *   1. the record gets `run: LEASE/SEQ`, this claim's token — a final one (done, failed) and a retry's alike,
 *      so that recovery can tell the record of this claim's attempt from the file as it was claimed;
 *   2. write the record into a spare inode of ours (nlink 1, our uid) or a new exclusive temp in tmp/,
 *      fsynced in durable mode;
 *   3. give the claimed file's current inode a second name in tmp/ (the next spare) — a hard link, which
 *      also proves the claimed file is still there: ENOENT means it was taken from us (a person moved it,
 *      or a recoverer took the lease), and we stop. On a networked file system (Lease.spareInodes) an
 *      lstat proves it instead and no spare is kept: there a create costs one round trip like a link;
 *   4. check with lstat that our lease folder is still the one we made (once for the claims and finishes
 *      done in one run of synchronous code, and in a private spool once a second: Lease.folderIsOurs),
 *      then rename the record over
 *      claimed/LEASE/SEQ.ID.json — the fence: ENOENT once a recoverer has taken the folder;
 *   5. make the target queue folder if missing (with the spool's modes; the state folder too, should a person
 *      have removed it), rename the file to its target. The folder is looked at with lstat before the move,
 *      or, in a spool whose state folders only we may write, once a second (layout.ts makeQueueFoldersKept:
 *      a move that then fails with ENOENT looks again before it calls the lease lost);
 *   6. fsync the target folder (durable; shared by jobs finishing together through GroupSync, which keeps
 *      its descriptor open while the look of step 5 finds the same folder there), and at the
 *      same time the group folder a member's arrival stopped in (ended.ts, arrive.ts), so a member pays
 *      one wait for the disk, not two in a row. The arrival reaches the disk no later than the move: the
 *      file systems the spool is meant for keep metadata operations in order (ext4 and XFS commit their
 *      journal in order, an NFS server makes each operation stable before it answers); on one that does
 *      not (btrfs logs only the folder fsynced), a power cut during step 6 may keep the move and lose the
 *      arrival, which `zcq recover` completes (release.ts sweepWaiting).
 *   Finish reports a durable job only after both fsyncs.
 *   Between 4 and 5 a final record's composite hooks run (ended.ts: group arrival, callback, dependents),
 *   so that recovery, which completes step 5, runs them again; a record into waiting/ is settled after 5.
 *   A postprocess whose group a member's retry re-opened after its gate read the entries (the group's
 *   `reopened` mark) goes back to waiting/ after 5, to run again with the new entry (reopenIfStale).
 * Crash after 2 or 3: a temporary or spare in tmp/, removed by housekeeping; the job is claimed under a
 *   dead lease and recovery settles it by its interrupt policy. After 4: the claimed file is the record;
 *   recovery sees its `run` equal to the claim it sits under and completes the move (step 5) — a final
 *   record is never run again, a retry goes to its due time with no interrupt counted. A record moved
 *   back by hand carries an older token and is a retry.
 *   After 5: done; a power cut before 6 may undo the move (durable mode then reports nothing yet).
 * Fence: steps 3–5 work only on names inside our own lease folder, which a recoverer takes by renaming it;
 *   a stale holder's renames then fail with ENOENT and it reports the job lost, never overwriting the
 *   attempt that recovery started. Each job leaves a lease by ONE rename (never link+unlink), so a holder
 *   killed between steps leaves exactly one copy.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { errnoOf, isGone } from '../../errors.js';
import { serializeJob, type Job } from '../../job/format.js';
import type { Next } from '../../job/policy.js';
import { checkOwnedRegular, createExclusiveOpenSync, fsyncDirOnPool, fsyncDirSync, fsyncOnPool, renameOrGoneSync, unlinkQuietly } from '../fsops.js';
import { forgetQueueFolder, jobPath, makeQueueFolders, makeQueueFoldersKept, pendingDir, type Layout } from '../layout.js';
import type { Lease } from '../lease.js';
import { deferredPath, jobName } from '../names.js';
import type { ClaimedJob } from './claim.js';
import { folderKey, type GroupSync } from './group-sync.js';
import { onFinalRecord, onWaitingRecord } from './ended.js';
import { reopenEndedPostprocess } from './arrive.js';
import { step } from './steps.js';

/** Spare inodes kept per lease: one per job finishing at once is enough. */
const MAX_SPARES = 64;

export type FinishResult = 'moved' | 'lost' | 'taken';

/** Where `next` sends a job of `queue`. */
export function targetOf(l: Layout, job: Job, next: Next): string {
  switch (next.to) {
    case 'done': return jobPath(l, 'done', job.queue, job.id);
    case 'failed': return jobPath(l, 'failed', job.queue, job.id);
    // Back in the folder of its priority (untrusted field, already checked by parseJob: 0..9).
    case 'pending': return `${pendingDir(l, job.queue, job.priority)}/${jobName(job.id)}`;
    case 'deferred': return deferredPath(l, job.queue, next.dueMs, job.id);
    case 'waiting': return jobPath(l, 'waiting', job.queue, job.id);
  }
}

/**
 * Record `job` and move it where `next` says. 'moved' once done (durable when the spool is), 'lost' when
 * our lease was taken (the job is someone else's now; nothing was written over their attempt), 'taken'
 * when the claimed file was moved away by someone else while we held it. `onReopenError` hears why a
 * postprocess that should go back to waiting/ after its move could not (reopenIfStale): the job is moved
 * all the same, and `zcq recover` re-opens it later.
 */
export async function finishJob(c: ClaimedJob, job: Job, next: Next, group?: GroupSync, onReopenError?: (err: Error) => void): Promise<FinishResult> {
  const lease = c.lease;
  if (lease.isLost) return 'lost';
  job.run = c.token;
  const text = serializeJob(job);
  const l = lease.layout;
  // 2. the record, in a spare or a new temporary
  let tmp: string | undefined;
  while (tmp === undefined && lease.spares.length > 0) {
    const spare = lease.spares.pop()!;
    if (await writeSpare(spare, text, lease.durable)) tmp = spare;
  }
  if (tmp === undefined) {
    const t = createExclusiveOpenSync(l.tmp, `.fin-${job.id}-`, l.modes.fileMode);
    try {
      fs.writeFileSync(t.fd, text);
      if (lease.durable) await fsyncOnPool(t.fd);
    } catch (err) {
      try { fs.closeSync(t.fd); } catch { /* already failing */ }
      unlinkQuietly(t.path);
      throw err;
    }
    fs.closeSync(t.fd);
    tmp = t.path;
  }
  step('finish', 2, job.id);
  // 3. the current inode becomes a spare; its link proves the claimed file is still ours to replace
  let spare: string | null = null;
  try {
    if (lease.spareInodes && lease.spares.length < MAX_SPARES) {
      spare = lease.spareName();
      fs.linkSync(c.path, spare);
    } else {
      fs.lstatSync(c.path);
    }
  } catch (err) {
    // EEXIST, EMLINK, EPERM: no spare this time (the name is taken — perhaps planted by a co-user —, too
    // many links, or a file protected_hardlinks will not let us link). link(2) reports them only after
    // finding the source, so the claimed file is still there, and the record in `tmp` is still needed.
    spare = null;
    const code = errnoOf(err);
    if (code !== 'EEXIST' && code !== 'EMLINK' && code !== 'EPERM') {
      unlinkQuietly(tmp);
      if (isGone(err)) return lease.folderIsOurs() ? 'taken' : lost(lease);
      throw err;
    }
  }
  step('finish', 3, job.id);
  // 4. the fence, then the record replaces the claimed file
  try {
    if (!lease.folderIsOurs(true)) throw Object.assign(new Error('lease folder taken'), { code: 'ENOENT' });
    fs.renameSync(tmp, c.path);
  } catch (err) {
    unlinkQuietly(tmp);
    if (spare) unlinkQuietly(spare);
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return lost(lease);
    throw err;
  }
  if (spare) lease.spares.push(spare);
  step('finish', 4, job.id);
  // The composite hooks (transitions/ended.ts) run on the final record in place, so recovery re-runs them.
  // A group arrival's folder is fsynced at step 6, beside the target folder (see the header).
  const alsoSync: string[] = [];
  if (next.to === 'done' || next.to === 'failed') onFinalRecord(l, job, next.to, c.path, lease.durable, (d) => alsoSync.push(d));
  // 5. out of the lease, by one rename
  const to = targetOf(l, job, next);
  const dir = dirname(to);
  let dirKey: string | undefined;
  // The state folder too when a person removed it (`rm -rf done` to clear old records): without it the move
  // failed with ENOENT, which reads as a lease taken (layout.ts makeQueueFolders).
  const keep = (st: fs.Stats) => { dirKey = folderKey(st); };
  const madeParent = makeQueueFoldersKept(l, next.to, dir, keep);
  if (!renameOrGoneSync(c.path, to)) {
    // Moved into a folder kept from an earlier look, which a person has removed since: look again.
    if (!forgetQueueFolder(l, dir)) return lost(lease);
    madeParent.push(...makeQueueFolders(l, next.to, dir, keep));
    if (!renameOrGoneSync(c.path, to)) return lost(lease);
  }
  step('finish', 5, job.id);
  if (next.to === 'waiting') onWaitingRecord(l, job, lease.durable);
  else if ((next.to === 'done' || next.to === 'failed') && job.postprocessOf) {
    const err = reopenIfStale(l, job, to, lease.durable);
    if (err) onReopenError?.(err);
  }
  // 6. durable
  if (lease.durable) {
    if (alsoSync.length === 0) { if (group) await group.sync(dir, dirKey); else fsyncDirSync(dir); }
    else await Promise.all([dir, ...alsoSync].map((d) => (group ? group.sync(d, d === dir ? dirKey : undefined) : fsyncDirOnPool(d))));
    for (const p of madeParent) fsyncDirSync(p);
  }
  return 'moved';
}

/**
 * A postprocess whose group a member's retry re-opened after its gate read the entries (the group's
 * `reopened` mark, arrive.ts) goes back to waiting/, to run again with the member's new record — the
 * retry itself re-opens only a postprocess it finds ended. Checked after the move, so that a retry either
 * finds the postprocess ended or left its mark before this look. Also when recovery completes the move
 * (finish step 4 done before a crash). A cancelled postprocess stays cancelled. A crash between the move
 * and this check is completed by the member's next arrival at the root, or by `zcq recover`. An error (an
 * odd entry where the group or waiting/QUEUE was, a disk full) leaves it as it ended and is returned: the
 * move is done and must not be reported as failed.
 */
function reopenIfStale(l: Layout, job: Job, at: string, durable: boolean): Error | null {
  if (job.failure?.reason === 'cancelled') return null;
  try { reopenEndedPostprocess(l, job.postprocessOf!.gid, job.queue, job.id, durable, at); } catch (err) { return err as Error; }
  return null;
}

function lost(lease: Lease): FinishResult {
  lease.markLost();
  return 'lost';
}

/**
 * Write `text` into the spare `path` (fsynced in durable mode), only if it is a regular file of ours with
 * no other name — checked on the open descriptor before truncating, so nothing else is ever written
 * through it. False, with the spare removed, when it cannot be used.
 */
export async function writeSpare(path: string, text: string, durable: boolean): Promise<boolean> {
  let fd: number;
  try { fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK); } catch { unlinkQuietly(path); return false; }
  let ok = false;
  try {
    let had: number;
    try { had = checkOwnedRegular(fd, path).size; } catch { return false; }
    // Written over from offset 0, then cut to length — not truncated to 0 first: ext4 (auto_da_alloc) starts
    // writing back a file truncated to 0 and rewritten when it is closed, and close() waits for it (~0.3 ms
    // a job in relaxed mode; bench/PROFILE.md). Cut only when it was longer: a record is nearly always
    // longer than the job file whose inode it reuses, and on a network mount the cut is one more round trip.
    const len = Buffer.byteLength(text);
    fs.writeFileSync(fd, text);
    if (had > len) fs.ftruncateSync(fd, len);
    if (durable) await fsyncOnPool(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) unlinkQuietly(path);
  }
  return true;
}
