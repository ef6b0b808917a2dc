/**
 * quota-release: give back the quota slots of a run.
 *
 *   quotas/NAME/K (holding LEASE/SEQ)  ->  (nothing)
 *
 * Two callers: the worker, once the job's outcome is recorded (or the job was put back); and recovery,
 * for every slot held by a dead lease (releaseLeaseSlots, recover.ts), before it settles the lease's jobs.
 * Before: the run is over, or its lease is dead and fenced (its folder renamed away by recovery step 1).
 * Steps:
 *   1. per slot, unlink it when it still holds the run token: known without reading it while the
 *      holder's lease folder is still its own (lstat; recovery takes the folder before it releases
 *      anything), else read it (bounded, O_NOFOLLOW) and compare. The slot's number is remembered by this process as
 *      the first to try at its next take of the quota (quota-take.ts, the fast path).
 *   2. (recovery only) remove the dead lease's wait marks (quotas/NAME/w.DEAD) and the names of its slot
 *      inodes in tmp/ (.qslot-DEAD-…): they served its next takes, which will not come. Only names go: an
 *      inode is a regular file holding a run token, whatever else still names it.
 * Crash before or after 1: a slot left held by a worker that died is released when its lease is recovered;
 *   a slot left by a recoverer that died goes with the recoverer's own lease (its token names the dead
 *   lease, which the next recoverer finds nested as DEAD.dead in the recoverer's folder and releases too).
 *   Crash before 2: the marks count for nothing once the lease folder is gone (quota-take.ts), and
 *   housekeeping removes them and the inodes (housekeeping.ts, leftovers of a gone lease).
 * Fence: only a slot holding our token is removed. Between the read and the unlink a slot could change
 *   hands only through a release by someone else first — recovery of our lease, which happens only once
 *   our lease is dead — so a live holder never removes another run's slot.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { unlinkQuietly } from '../fsops.js';
import type { Layout } from '../layout.js';
import { WAIT_MARK, quotaEntries, slotFreed, slotHolder, slotInodeLease } from '../quota.js';
import { QUOTA_NAME } from '../../job/format.js';
import { step } from './steps.js';
import { returnOwn, type Slot } from './quota-take.js';

/**
 * Release `slots` still holding `token`; returns the quotas of the slots released. `leaseHeld`, when
 * given, says (one lstat) that the run's lease folder is still the holder's: recovery has not taken it,
 * so the slots cannot have changed hands and are removed without reading them.
 */
export function releaseSlots(slots: readonly Slot[], token: string, leaseHeld?: () => boolean): string[] {
  const freed: string[] = [];
  const held = slots.length > 0 && leaseHeld !== undefined && leaseHeld();
  for (const s of slots) {
    if (held || slotHolder(s.path) === token) { unlinkQuietly(s.path); slotFreed(s.path); freed.push(s.quota); }
    step('quota-release', 1, s.quota);
  }
  // The run's own inode (quota-take.ts) serves the next run; it is written again only once no slot links it.
  const own = slots.find((s) => s.own !== undefined)?.own;
  if (own !== undefined) returnOwn(token, own);
  return freed;
}

/**
 * Release every slot held by a run of lease `leaseId` (its token is LEASE/SEQ), reading each slot file
 * once; then (step 2) remove what the lease kept for its next takes: its wait marks (quotas/NAME/w.LEASE,
 * seen in the same listings) and its slot inodes in tmp/ (one more listing).
 */
export function releaseLeaseSlots(l: Layout, leaseId: string): number {
  let quotas: string[];
  try { quotas = fs.readdirSync(l.quotas); } catch { quotas = []; }
  let n = 0;
  const prefix = `${leaseId}/`;
  const marks: string[] = [];
  for (const quota of quotas) {
    if (!QUOTA_NAME.test(quota)) continue;
    const dir = join(l.quotas, quota);
    // Never through a symlink planted in the folder's place.
    try { if (!fs.lstatSync(dir).isDirectory()) continue; } catch { continue; }
    const entries = quotaEntries(dir);
    for (const k of entries.slots) {
      const path = join(dir, String(k));
      const t = slotHolder(path);
      if (t !== null && t.startsWith(prefix) && !t.slice(prefix.length).includes('/')) { unlinkQuietly(path); n++; step('quota-release', 1, quota); }
    }
    if (entries.marks.includes(WAIT_MARK + leaseId)) marks.push(join(dir, WAIT_MARK + leaseId));
  }
  for (const m of marks) unlinkQuietly(m);
  for (const name of safeNames(l.tmp)) if (slotInodeLease(name) === leaseId) unlinkQuietly(join(l.tmp, name));
  step('quota-release', 2, leaseId);
  return n;
}

function safeNames(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}
