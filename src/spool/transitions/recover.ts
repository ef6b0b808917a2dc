/**
 * recover: settle the jobs of a dead lease.
 *
 *   claimed/DEAD/SEQ.ID.json  ->  claimed/ME/DEAD.dead/SEQ.ID.json  ->  each job by its policy:
 *       a final record of this claim (run = DEAD/SEQ)   ->  done/QUEUE/ or failed/QUEUE/ (the move the holder missed)
 *       a retry record of this claim (run = DEAD/SEQ)   ->  deferred/QUEUE/ at its notBefore, else pending/QUEUE/, uncounted
 *       a record that awaits a composite (run = DEAD/SEQ) ->  waiting/QUEUE/ (the move the holder missed)
 *       a claim by a client (cancel, hold) never run    ->  deferred/QUEUE/ at its notBefore, else pending/QUEUE/, uncounted
 *       a job that was running                          ->  its interrupt policy: pending/QUEUE/ (counted) or failed/QUEUE/ ("worker lost")
 *       a finished record moved back by hand            ->  reset as a retry first (as the claim would have), then as above
 *       not a job (corrupt, a symlink, a FIFO)          ->  quarantine/
 *
 * Before: DEAD's heartbeat is older than DEAD's own lease time by the file server's clock (lease.ts
 *   judgeLease, the one rule), and the recoverer's own lease is fresh enough to judge (a recoverer that
 *   was itself stalled may be the stale one). Any live process may recover; there is no reaper. A worker
 *   reads a sibling's heartbeat again only once its last judgement may have run out (LeaseLooks: after half
 *   of what was then left of the lease), so a dead lease is still found within a pass of its expiry.
 * Steps:
 *   1. check with lstat that claimed/DEAD is a real folder (a symlink or file there is quarantined as the
 *      entry itself, never followed), then rename it into our own lease as DEAD.dead — one rename, one
 *      winner among recoverers, and the frozen holder is fenced out (its renames now fail with ENOENT);
 *   1b. release every quota slot whose token names DEAD (transitions/quota-release.ts): a slot held by a
 *      worker that died comes back when its lease is recovered, not later;
 *   2. for each job in it: read and check it, then finish it through transitions/finish.ts under our
 *      lease, with the dead claim's token — ONE rename out, after its new record was written in place;
 *   3. remove the emptied folder and DEAD's heartbeat. A folder that will not go (ENOTEMPTY) although every
 *      name listed was settled is listed again and what appears is settled (a few passes): a GlusterFS
 *      distributed volume can list a folder just renamed as empty. What still remains is left in our
 *      lease, where our own audit (transitions/audit.ts) settles it again.
 * Crash after 1, 1b or during 2: the jobs sit in our lease, inside DEAD.dead; when our lease dies in turn, the
 *   next recoverer takes our folder and settles DEAD.dead like any nested folder (a record we had already
 *   finalised carries run = DEAD/SEQ, so it is moved, not run again). After 3: nothing left.
 * Fence: the rename of step 1 is the fence for the dead holder; our own writes go through our lease folder,
 *   so a recoverer that is itself taken over stops with ENOENT. On GlusterFS the fence is late: a holder
 *   still alive goes on renaming into claimed/DEAD/ through its client's cached name for some hundreds of
 *   ms, and those files land in DEAD.dead after step 2 listed it (docs/nfs.md); step 3's re-listing and
 *   our own lease's audit (transitions/audit.ts) settle them.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, isGone } from '../../errors.js';
import { parseJob, JobFormatError, type Job } from '../../job/format.js';
import { recordInterrupt, recordUntouched, type Next } from '../../job/policy.js';
import { MAX_JOB_BYTES, isRealDir, listNames, readRegularFileSync, renameOrGoneSync, unlinkQuietly } from '../fsops.js';
import { QUEUE_NAME, type Layout } from '../layout.js';
import { deadLeaseOf, holderInfoFrom, judgeAgainAfterMs, judgeLease, type HolderInfo, type Lease } from '../lease.js';
import { DEAD_SUFFIX, parseClaimedName, runToken } from '../names.js';
import { quarantine } from '../quarantine.js';
import type { ServerClock } from '../server-clock.js';
import { dropCancelRequests } from './cancel.js';
import { startRun } from './claim.js';
import { finishJob } from './finish.js';
import { releaseLeaseSlots } from './quota-release.js';
import { step } from './steps.js';

/** Listings of a dead lease folder that would not go away (settleDeadFolder): the first and this many more. */
const RECOVER_RELIST_PASSES = 3;

export interface RecoveryEvent { event: 'lease.expired' | 'job.recovered' | 'job.quarantined' | 'recovery.skipped'; worker: string; id?: string; to?: string; ageMs?: number; reason?: string }

/**
 * When each lease a recoverer found alive is next worth judging (performance.now), by judgeAgainAfterMs.
 * A worker runs a recovery pass every poll: without this, each of N workers read every other worker's
 * heartbeat every poll — N² reads a poll on the file server (four round trips each on a network mount),
 * where a few a lease are enough.
 */
export class LeaseLooks {
  private readonly next = new Map<string, number>();

  due(worker: string): boolean { return (this.next.get(worker) ?? -Infinity) <= performance.now(); }

  judged(worker: string, againAfterMs: number): void {
    if (againAfterMs > 0) this.next.set(worker, performance.now() + againAfterMs); else this.next.delete(worker);
  }

  /** Forget the leases no longer in claimed/. */
  keepOnly(workers: readonly string[]): void {
    const listed = new Set(workers);
    for (const w of this.next.keys()) if (!listed.has(w)) this.next.delete(w);
  }
}

/**
 * One pass over claimed/: take and settle every dead lease. Each lease is isolated: one bad entry does not
 * end the pass. With `looks` (a worker's, kept across its passes), a lease found alive is judged again only
 * once its judgement may have run out.
 */
export async function recoverDeadLeases(layout: Layout, clock: ServerClock, me: Lease, log: (e: RecoveryEvent) => void, looks?: LeaseLooks): Promise<number> {
  let recovered = 0;
  // Ages need the file server's clock: a recoverer that could not write its probe (a read-only spool)
  // judges nobody.
  if (clock.local) return 0;
  const workers = await listNames(layout.claimed);
  looks?.keepOnly(workers);
  for (const worker of workers) {
    if (worker === me.id || worker.startsWith('.')) continue;
    if (looks && !looks.due(worker)) continue;
    try {
      const judgement = await judgeLease(layout, clock, worker, me.info.leaseMs);
      looks?.judged(worker, judgeAgainAfterMs(judgement));
      const { info, ageMs, expired } = judgement;
      if (!expired || ageMs === null) continue;
      if (!me.freshToJudge()) break; // we might be the stale one: do not judge others
      recovered += await takeDeadLease(layout, me, worker, info, Math.round(ageMs), log);
    } catch (err) {
      log({ event: 'recovery.skipped', worker, reason: (err as Error).message });
    }
  }
  return recovered;
}

/** Steps 1–3 for one expired lease. */
export async function takeDeadLease(layout: Layout, me: Lease, worker: string, info: HolderInfo, ageMs: number, log: (e: RecoveryEvent) => void): Promise<number> {
  const src = join(layout.claimed, worker);
  if (!isRealDir(src)) {
    const to = await quarantine(layout, src, worker, 'not a lease folder (a symbolic link, file or special file in claimed/)');
    if (to) log({ event: 'job.quarantined', worker, reason: 'not a lease folder' });
    return 0;
  }
  const taken = join(me.dir, `${worker}${DEAD_SUFFIX}`);
  if (!renameOrGoneSync(src, taken)) return 0; // another recoverer won
  step('recover', 1, worker);
  log({ event: 'lease.expired', worker, ageMs });
  const n = await settleDeadFolder(layout, me, taken, info, log);
  forgetHeartbeat(layout, me, taken, worker);
  return n;
}

/** Settle every job in a dead lease folder (and nested DEAD.dead folders a dead recoverer was settling). */
export async function settleDeadFolder(layout: Layout, me: Lease, dir: string, holder: HolderInfo, log: (e: RecoveryEvent) => void): Promise<number> {
  if (!isRealDir(dir)) {
    // Gone rather than odd when our own lease was taken meanwhile (the folder moved on with it): nothing
    // was quarantined then, and the log must not say so.
    const to = await quarantine(layout, dir, holder.worker, 'not a lease folder (a symbolic link or file where a folder was)');
    if (to) log({ event: 'job.quarantined', worker: holder.worker, reason: 'not a lease folder' });
    return 0;
  }
  // 1b. the quota slots its runs held come back now (transitions/quota-release.ts), before its jobs are settled.
  releaseLeaseSlots(layout, holder.worker);
  let n = 0;
  const endIso = new Date().toISOString(); // a record for people, never compared across machines
  for (let pass = 1; ; pass++) {
    for (const name of await listNames(dir)) {
      if (me.isLost) return n; // our own lease was taken: whoever took it settles the rest
      const path = join(dir, name);
      const inner = deadLeaseOf(name);
      if (inner !== null) {
        n += await settleNestedLease(layout, me, path, inner, holder.leaseMs, log);
        continue;
      }
      if (name.startsWith('.')) continue; // .nfs* silly renames: the client removes them
      const r = await settleClaimedFile(layout, me, path, name, holder, holder.kind === 'client', endIso, `found in the lease of dead worker ${holder.worker}`);
      if (r.kind === 'lost') return n;
      if (r.kind === 'quarantined') log({ event: 'job.quarantined', worker: holder.worker, id: r.id, reason: r.reason });
      if (r.kind !== 'moved') continue;
      n++;
      step('recover', 2, r.id);
      log({ event: 'job.recovered', worker: holder.worker, id: r.id, to: r.to });
    }
    try {
      fs.rmdirSync(dir);
      return n;
    } catch (err) {
      // Not empty although every name listed was settled: a .nfs* file the client will remove, or names the
      // listing missed — a GlusterFS distributed volume can list a folder just renamed as empty. List it
      // again and settle what appears, a few times; what still remains is our own lease's audit's
      // (transitions/audit.ts) to settle, or the next recoverer's.
      const code = errnoOf(err);
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || pass >= RECOVER_RELIST_PASSES || me.isLost) return n;
      await new Promise((res) => setTimeout(res, 50 * pass));
    }
  }
}

/**
 * A nested DEAD.dead folder (a dead recoverer's, or one of our own that a pass left): settle it, judged by
 * DEAD's own heartbeat where still readable, then drop that heartbeat once the folder is gone.
 */
export async function settleNestedLease(layout: Layout, me: Lease, path: string, inner: string, defaultLeaseMs: number, log: (e: RecoveryEvent) => void): Promise<number> {
  const text = (() => { try { const r = readRegularFileSync(join(layout.workers, `${inner}.json`), 64 * 1024); return 'text' in r ? r.text : undefined; } catch { return undefined; } })();
  const n = await settleDeadFolder(layout, me, path, holderInfoFrom(inner, text, defaultLeaseMs), log);
  forgetHeartbeat(layout, me, path, inner);
  return n;
}

export type SettleResult =
  | { kind: 'moved'; id: string; to: Next['to'] }
  | { kind: 'quarantined'; id?: string; reason: string }
  /** Gone before it was read, or taken from under the move: nothing done here. */
  | { kind: 'skipped' }
  /** Our own lease was taken: its taker settles the file. */
  | { kind: 'lost' };

/**
 * Step 2 for one entry `name` of a folder in our lease (a dead lease's, or our own for audit.ts): read and
 * check it, then finish it under our lease with the token HOLDER/SEQ — a record of that claim is moved
 * where it says; any other job goes by `untouched` (never run: back uncounted, job/policy.ts
 * recordUntouched) or by its interrupt policy. Not a job: quarantine/, the reason ending with `foundIn`.
 */
export async function settleClaimedFile(layout: Layout, me: Lease, path: string, name: string, holder: HolderInfo, untouched: boolean, endIso: string, foundIn: string): Promise<SettleResult> {
  const claim = parseClaimedName(name);
  let job: Job;
  try {
    if (!claim) throw new JobFormatError('not a claimed job name (SEQ.ID.json)');
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if ('bad' in r) throw new JobFormatError(r.bad);
    job = parseJob(r.text, claim.id);
  } catch (err) {
    if (isGone(err)) return { kind: 'skipped' };
    const reason = err instanceof JobFormatError ? err.message : String((err as Error).message ?? err);
    const to = await quarantine(layout, path, claim ? `${claim.id}.json` : name, `${reason} (${foundIn})`);
    return to ? { kind: 'quarantined', id: claim?.id, reason } : { kind: 'skipped' };
  }
  const token = runToken(holder.worker, claim.seq);
  let next: Next;
  if (job.run === token) {
    // The holder wrote the record of this claim but died before the move: finish the move for it.
    const due = job.notBefore === null ? NaN : Date.parse(job.notBefore);
    next = job.finished ? (job.failure ? { to: 'failed', reason: job.failure.reason } : { to: 'done' })
      : job.awaits ? { to: 'waiting' }
      : Number.isFinite(due) ? { to: 'deferred', dueMs: due } : { to: 'pending' };
  } else {
    if (!QUEUE_NAME.test(job.queue)) job.queue = 'default';
    startRun(job, job.queue);
    next = untouched ? recordUntouched(job) : recordInterrupt(job, holder, endIso);
  }
  const r = await finishJob({ id: claim.id, queue: job.queue, path, token, lease: me, level: '' }, job, next);
  if (r === 'lost') return { kind: 'lost' };
  if (r !== 'moved') return { kind: 'skipped' };
  if (next.to === 'done' || next.to === 'failed') dropCancelRequests(layout, job.id);
  return { kind: 'moved', id: job.id, to: next.to };
}

/**
 * Step 3's heartbeat removal, only once the dead lease's jobs are all settled (its folder gone) and by a
 * recoverer that still holds its own folder: one taken over mid-way leaves the heartbeat for the next
 * recoverer, which judges the rest by it (a client's jobs go back uncounted, a worker's are counted).
 */
function forgetHeartbeat(layout: Layout, me: Lease, dir: string, worker: string): void {
  if (me.folderIsOurs() && !isRealDir(dir)) unlinkQuietly(join(layout.workers, `${worker}.json`));
}
