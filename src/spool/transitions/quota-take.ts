/**
 * quota-take: a claimed job takes one slot of each quota it names, before it runs.
 *
 *   (nothing)  ->  quotas/NAME/K   holding the claim's run token LEASE/SEQ, one per quota of the job
 *
 * Before: the holder claimed the job (transitions/claim.ts step 1) and read it (step 2); it has not started.
 *   Quotas are taken in name order. A quota without a limit (no quotas/NAME/limit.json) takes no slot.
 * Steps, per quota:
 *   1. read its limit (bounded, O_NOFOLLOW; a worker uses what it read at most a poll ago) and its slot
 *      names (one readdir); when N or more slot files
 *      exist (the limit was lowered, or every slot is held) there is no slot for us;
 *   2. create quotas/NAME/K with O_CREAT|O_EXCL|O_NOFOLLOW for the first K < N not listed, writing the run
 *      token; EEXIST (another worker took K since the readdir) tries the next K. Of two takers of one K,
 *      exactly one succeeds, on any NFS version that zcq supports (exclusive create is atomic from NFSv3).
 *   When a quota has no free slot, the slots this job took already are released (quota-release.ts) and the
 *   holder puts the job back (transitions/unclaim.ts) and skips it until a slot of that quota frees (no
 *   claim loop: worker/claimer.ts quotaFreed, looked at each poll and whenever the worker frees one itself).
 * Crash after 1: nothing written. After 2 (some slots taken): the job and its slots are held under our
 *   lease; when our lease is recovered, recovery releases every slot holding LEASE/... (recover.ts step 1b)
 *   and settles the job by its policy.
 * Fence: the slot holds LEASE/SEQ; release removes only a slot still holding that token, so a stale holder
 *   never frees a slot recovery handed on to another job.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { quotaDir, readLimit, slotsOf } from '../quota.js';
import { releaseSlots } from './quota-release.js';
import { step } from './steps.js';

export interface Slot { quota: string; path: string }

export type TakeResult = { slots: Slot[] } | { blocked: string; limit: number };

/**
 * Take a slot of each of `quotas` for the run `token`; all or none. `limitOf` gives a quota's limit (a
 * worker passes limits it read at most a poll ago; default: read limit.json now).
 */
export function takeSlots(l: Layout, quotas: readonly string[], token: string, limitOf: (quota: string) => number | null = (q) => readLimit(l, q).limit): TakeResult {
  const taken: Slot[] = [];
  for (const quota of [...new Set(quotas)].sort()) {
    const limit = limitOf(quota);
    if (limit === null) continue;
    const held = new Set(slotsOf(l, quota));
    step('quota-take', 1, quota);
    let slot: Slot | null = null;
    // The folder must be a real one (lstat; slotsOf just did it when it found slots): a symlink planted
    // in its place would have us create files elsewhere.
    if (held.size < limit && (held.size > 0 || realDirMade(l, quotaDir(l, quota)))) {
      const dir = quotaDir(l, quota);
      for (let k = 0; k < limit && slot === null; k++) {
        if (held.has(k)) continue;
        const path = join(dir, String(k));
        if (createSlot(l, path, token)) slot = { quota, path };
      }
    }
    if (slot === null) {
      releaseSlots(taken, token);
      return { blocked: quota, limit };
    }
    taken.push(slot);
    step('quota-take', 2, quota);
  }
  return { slots: taken };
}

/** Whether `dir` is a real folder, made (with the spool's modes) when missing; false for anything else at the name. */
function realDirMade(l: Layout, dir: string): boolean {
  if (isRealDir(dir)) return true;
  try { fs.lstatSync(dir); return false; } catch { /* missing: make it */ }
  makeDir(l.modes, l.quotas);
  makeDir(l.modes, dir);
  return isRealDir(dir);
}

/** Exclusive create of one slot file holding `token`. False when it exists (another taker has it) or the folder went. */
function createSlot(l: Layout, path: string, token: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, l.modes.fileMode);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST' || errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
  writeToken(fd, path, token);
  return true;
}

function isRealDir(p: string): boolean {
  try { return fs.lstatSync(p).isDirectory(); } catch { return false; }
}

/**
 * The slot is ours from the create on: a write that fails leaves an empty slot file, which still counts as
 * held and is released by recovery like any (release reads the token: an empty one is not ours, so the
 * holder unlinks it here at once).
 */
function writeToken(fd: number, path: string, token: string): void {
  try {
    fs.writeFileSync(fd, token + '\n');
    fs.closeSync(fd);
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.unlinkSync(path); } catch { /* recovery releases it */ }
    throw err;
  }
}
