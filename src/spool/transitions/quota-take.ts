/**
 * quota-take: a claimed job takes one slot of each quota it names, before it runs.
 *
 *   (nothing)  ->  quotas/NAME/K   holding the claim's run token LEASE/SEQ, one per quota of the job
 *
 * Before: the holder claimed the job (transitions/claim.ts step 1) and read it (step 2); it has not started.
 *   Quotas are taken in name order. A quota without a limit (no quotas/NAME/limit.json) takes no slot.
 * Steps, per quota:
 *   1. know its limit (a worker uses what it read at most a poll ago) and which slot K to try: the fast
 *      path, a slot number this process freed (or saw free) within QUOTA_RELIST_MS of a listing that found
 *      fewer than N slots and none numbered N or more, with the same limit; else a listing (one readdir;
 *      a slot it names that an open found gone within QUOTA_RELIST_MS counts as free: spool/quota.ts
 *      freeSlotsNow, for a listing a network client's cache keeps stale):
 *      when N or more slot files exist (the limit was lowered, or every slot is held) there is no slot for
 *      us, nor when workers of another machine wait (their marks, below) and ours hold a fair share
 *      already: ceil(N / machines holding or waiting);
 *   2. link(2) the run's own inode (tmp/.qslot-LEASE-…, written with the run token first; see "Own
 *      inodes" below) as quotas/NAME/K, or, when no own inode can be had, create K with
 *      O_CREAT|O_EXCL|O_NOFOLLOW and write the token; EEXIST (another worker took K) goes to the listing,
 *      then tries the next K not listed. Of two takers of one K exactly one succeeds, on any NFS version
 *      that zcq supports (link and exclusive create are atomic from NFSv3), so at most N slots numbered
 *      below N exist whatever any worker remembers.
 *   When a quota has no slot for us, the slots this job took already are released (quota-release.ts), we
 *   make or touch our wait mark quotas/NAME/w.LEASE (removed at our next take of NAME), and the holder
 *   puts the job back (transitions/unclaim.ts) and skips it until a slot of that quota frees (no claim
 *   loop: worker/claimer.ts quotaFreed, looked at each poll and whenever the worker frees one itself).
 * Crash after 1: nothing written (but perhaps a wait mark: a hint, removed with our lease's recovery,
 *   or by the next lister or housekeeping once our lease folder is gone). After 2 (some slots taken): the
 *   job and its slots are held under our lease; when our lease is recovered, recovery releases every slot
 *   holding LEASE/... (recover.ts step 1b) and settles the job by its policy.
 * Fence: the slot holds LEASE/SEQ; release removes only a slot still holding that token, so a stale holder
 *   never frees a slot recovery handed on to another job.
 * Fairness: the machine whose workers free a slot sees it first and would take it again at once, so one
 *   machine could keep every slot while others wait (they see it only after a poll and their directory
 *   cache). A worker refused a slot leaves a wait mark; while live marks of another machine exist, a
 *   machine takes a slot only below its fair share. A mark counts while its lease folder exists and its
 *   mtime moved within QUOTA_WAIT_MARK_TTL_MS (on the reader's clock: no clocks are compared).
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf } from '../../errors.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { QUOTA_FAIR_SHARE_MAX_LIMIT, QUOTA_RELIST_MS, QUOTA_WAIT_MARK_TTL_MS } from '../../defaults.js';
import { SAFE_NAME } from '../../job/format.js';
import { createExclusiveOpenSync, isRealDir, refusedAsExisting, unlinkQuietly } from '../fsops.js';
import { SLOT_INODE_PREFIX, WAIT_MARK, dropWaitMarksOf, hostOfLease, quotaDir, quotaEntries, readLimit, slotHolder, takerState, type TakerState } from '../quota.js';
import { releaseSlots } from './quota-release.js';
import { step } from './steps.js';

export interface Slot {
  quota: string;
  path: string;
  /** The run's own inode (tmp/.qslot-LEASE-…) that the slot is a second name of; back to the pool at release. */
  own?: string;
}

export type TakeResult = { slots: Slot[] } | { blocked: string; limit: number };

/**
 * Take a slot of each of `quotas` for the run `token`; all or none. `limitOf` gives a quota's limit (a
 * worker passes limits it read at most a poll ago; default: read limit.json now).
 */
export function takeSlots(l: Layout, quotas: readonly string[], token: string, limitOf: (quota: string) => number | null = (q) => readLimit(l, q).limit): TakeResult {
  const taken: Slot[] = [];
  // One inode of our own holds the token; each slot of the run is a hard link to it (see ownInode).
  let own: string | null | undefined;
  const tryK = (path: string): boolean => {
    if (own === undefined) own = ownInode(l, token);
    if (own !== null) {
      const r = linkSlot(own, path);
      if (r !== 'own-gone') return r === 'linked';
      own = null;
    }
    return createSlot(l, path, token);
  };
  const slotAt = (quota: string, path: string): Slot => (own ? { quota, path, own } : { quota, path });
  for (const quota of [...new Set(quotas)].sort()) {
    const limit = limitOf(quota);
    if (limit === null) continue;
    const dir = quotaDir(l, quota);
    const st = takerState(dir);
    // The folder must be a real one (one lstat a take): a symlink planted in its place would have us
    // create files elsewhere.
    const real = realDirMade(l, dir);
    let slot: Slot | null = null;
    let stepped = false;
    if (real && st.limit === limit && !st.shared && performance.now() - st.listedAt < QUOTA_RELIST_MS) {
      const k = st.free.pop();
      if (k !== undefined && k < limit) {
        step('quota-take', 1, quota);
        stepped = true;
        if (tryK(join(dir, String(k)))) slot = slotAt(quota, join(dir, String(k)));
      }
    }
    if (slot === null && real) {
      const path = takeListed(l, dir, limit, token, st, tryK, () => { if (!stepped) { stepped = true; step('quota-take', 1, quota); } });
      if (path !== null) slot = slotAt(quota, path);
    }
    if (!stepped) step('quota-take', 1, quota);
    if (slot === null) {
      releaseSlots(taken, token);
      if (taken.length === 0 && own) returnOwn(token, own);
      if (real) markWaiting(l, dir, st, token);
      return { blocked: quota, limit };
    }
    const mark = st.marked.get(leaseOfToken(token));
    if (mark !== undefined) { unlinkQuietly(mark); st.marked.delete(leaseOfToken(token)); }
    taken.push(slot);
    step('quota-take', 2, quota);
  }
  return { slots: taken };
}

/** The full check: list the folder, refuse when full or over the fair share, else take the first free K (its path). */
function takeListed(l: Layout, dir: string, limit: number, token: string, st: TakerState, tryK: (path: string) => boolean, step1: () => void): string | null {
  const now = performance.now();
  const { slots, marks } = quotaEntries(dir);
  const held = new Set(slots);
  const over = slots.some((k) => k >= limit);
  // Slots this listing names that an open found gone a moment ago (freeSlotsNow: a stale directory cache):
  // tried as free. A slot taken again meanwhile refuses the link, as any taken slot does.
  if (!over && held.size >= limit && st.gone.length > 0 && now - st.goneAt < QUOTA_RELIST_MS) for (const k of st.gone) held.delete(k);
  st.gone = [];
  st.limit = limit;
  st.listedAt = held.size < limit && !over ? now : -Infinity;
  st.shared = false;
  st.free = [];
  if (held.size >= limit) { step1(); return null; }
  const myHost = hostOfLease(token);
  const others = marks.length === 0 || limit > QUOTA_FAIR_SHARE_MAX_LIMIT ? new Set<string>() : otherMachinesWaiting(l, dir, marks, myHost, st, now);
  if (others.size > 0) {
    st.shared = true;
    let mine = 0;
    const machines = new Set([myHost, ...others]);
    for (const k of slots) {
      const t = slotHolder(join(dir, String(k)));
      if (t === null) continue;
      machines.add(hostOfLease(t));
      if (hostOfLease(t) === myHost) mine++;
    }
    if (mine >= Math.ceil(limit / machines.size)) { step1(); return null; }
  }
  step1();
  let slot: string | null = null;
  for (let k = 0; k < limit; k++) {
    if (held.has(k)) continue;
    if (slot !== null) {
      // Free at this listing: the next takes of this process try them first (lowest first).
      if (st.free.length < 8) st.free.unshift(k); else break;
      continue;
    }
    const path = join(dir, String(k));
    if (tryK(path)) slot = path;
  }
  return slot;
}

/**
 * The hosts of the live wait marks in `marks` not of `myHost`. A mark whose lease folder is gone is
 * removed; one whose mtime has not moved for QUOTA_WAIT_MARK_TTL_MS (as this process saw it) is left out.
 */
function otherMachinesWaiting(l: Layout, dir: string, marks: string[], myHost: string, st: TakerState, now: number): Set<string> {
  const hosts = new Set<string>();
  if (st.markSeen.size > 1000) st.markSeen.clear();
  for (const m of marks) {
    const lease = m.slice(WAIT_MARK.length);
    const host = hostOfLease(lease);
    if (host === myHost) continue;
    const path = join(dir, m);
    if (!isRealDir(join(l.claimed, lease))) { unlinkQuietly(path); st.markSeen.delete(m); continue; }
    let mtimeMs: number;
    try { mtimeMs = fs.lstatSync(path).mtimeMs; } catch { continue; }
    const seen = st.markSeen.get(m);
    if (!seen || seen.mtimeMs !== mtimeMs) st.markSeen.set(m, { mtimeMs, at: now });
    else if (now - seen.at > QUOTA_WAIT_MARK_TTL_MS) continue;
    hosts.add(host);
  }
  return hosts;
}

/** Make or touch (O_TRUNC moves its mtime, on the file server's clock) our wait mark. A hint: failures are ignored. */
function markWaiting(l: Layout, dir: string, st: TakerState, token: string): void {
  const lease = leaseOfToken(token);
  // A run that outlived its lease leaves no mark: nobody would remove it.
  if (!SAFE_NAME.test(lease) || endedLeases.has(lease)) return;
  const path = join(dir, WAIT_MARK + lease);
  try {
    // O_NONBLOCK: a FIFO planted at the name fails (ENXIO) instead of hanging the worker.
    fs.closeSync(fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, l.modes.fileMode));
    if (st.marked.size >= 100) st.marked.clear();
    st.marked.set(lease, path);
  } catch { /* a hint only */ }
}

/*
 * Own inodes. Creating a file costs far more than linking one on some file systems (ext4 here: ~250 µs a
 * create against ~20 µs a link, bench/PROFILE.md), and a slot lives only as long as its job. So a run's
 * slots are hard links to one inode of the taking process, tmp/.qslot-LEASE-RANDOM, written with the
 * run token first: link(2) is as exclusive as O_EXCL (EEXIST when K exists, atomic on NFS), and a slot is
 * never seen without its token. Released, the inode goes back to the process's pool and is written again
 * for its next run, only while no other name links to it (nlink 1 on the open descriptor) and it is a
 * regular file of ours. The pool goes with its lease: removed when the lease ends (dropLeaseQuotaFiles),
 * by the recovery of a lease whose worker died (quota-release.ts releaseLeaseSlots), else by housekeeping
 * once the lease folder is gone.
 */
const pools = new Map<string, string[]>();
const POOL_MAX = 64;
/** Leases of this process that ended (dropLeaseQuotaFiles): their runs pool no inode and leave no wait mark. */
const endedLeases = new Set<string>();
/** This process's uid, asked once (a system call a take otherwise). */
const MY_UID = process.getuid?.();

function poolOf(tmpDir: string, token: string): string[] | null {
  const lease = leaseOfToken(token);
  if (!SAFE_NAME.test(lease) || endedLeases.has(lease)) return null;
  const key = `${tmpDir}\0${lease}`;
  let pool = pools.get(key);
  if (!pool) {
    if (pools.size >= 100) pools.clear();
    pool = [];
    pools.set(key, pool);
  }
  return pool;
}

/** An inode of ours holding `token` (from the pool, else made now); null when none can be had (then slots are created). */
function ownInode(l: Layout, token: string): string | null {
  const pool = poolOf(l.tmp, token);
  if (pool === null) return null;
  while (pool.length > 0) {
    const path = pool.pop()!;
    if (rewriteOwn(path, token)) return path;
  }
  try {
    const { fd, path } = createExclusiveOpenSync(l.tmp, `${SLOT_INODE_PREFIX}${leaseOfToken(token)}-`, l.modes.fileMode);
    try { fs.writeSync(fd, token + '\n', 0); } finally { fs.closeSync(fd); }
    return path;
  } catch { return null; }
}

/**
 * Give an own inode back to the pool of `token`'s lease (released slots, or a take that found none); its
 * name goes at once when the lease has ended (a run that outlived its lease) or the pool is full.
 */
export function returnOwn(token: string, path: string): void {
  const pool = poolOf(dirname(path), token);
  if (pool === null) { unlinkQuietly(path); return; }
  if (pool.includes(path)) return;
  if (pool.length >= POOL_MAX) { unlinkQuietly(path); return; }
  pool.push(path);
}

/**
 * Lease `leaseId` of this process ended (Lease.end, Lease.markLost): the names of its pooled inodes in
 * tmp/ and its wait marks go now, not an hour later with housekeeping. Only names are removed: an inode
 * still linked as a held slot lives on under that name, and its run unlinks its own name at release
 * (returnOwn). A lease of ours that died with the process is settled by recovery instead
 * (quota-release.ts releaseLeaseSlots).
 */
export function dropLeaseQuotaFiles(l: Layout, leaseId: string): void {
  if (endedLeases.size >= 1000) endedLeases.clear();
  endedLeases.add(leaseId);
  const key = `${l.tmp}\0${leaseId}`;
  for (const path of pools.get(key) ?? []) unlinkQuietly(path);
  pools.delete(key);
  dropWaitMarksOf(leaseId);
}

/** Write `token` into own inode `path`, only while it is a regular file of ours with no other name. */
function rewriteOwn(path: string, token: string): boolean {
  let fd: number;
  try { fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK); } catch { return false; }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1 || (MY_UID !== undefined && st.uid !== MY_UID)) { unlinkQuietly(path); return false; }
    // Padded to the old length instead of a truncate (one call less): readers trim the token.
    const text = token + '\n';
    fs.writeSync(fd, st.size > text.length ? text + ' '.repeat(st.size - text.length) : text, 0);
    return true;
  } catch {
    unlinkQuietly(path);
    return false;
  } finally {
    try { fs.closeSync(fd); } catch { /* written or given up */ }
  }
}

/** Link own inode `own` as slot `path`: 'taken' when the slot exists or the folder went; 'own-gone' when our inode did. */
function linkSlot(own: string, path: string): 'linked' | 'taken' | 'own-gone' {
  try {
    fs.linkSync(own, path);
    return 'linked';
  } catch (err) {
    const code = errnoOf(err);
    if (refusedAsExisting(err, path)) {
      // NFS: a LINK retransmitted after a lost reply answers EEXIST although the first one made it (open(2),
      // O_EXCL): it is ours when the slot is our inode.
      try {
        const a = fs.lstatSync(own), b = fs.lstatSync(path);
        if (a.ino === b.ino && a.dev === b.dev) return 'linked';
      } catch { /* either went: not ours */ }
      return 'taken';
    }
    if (code === 'ENOENT') {
      try { fs.lstatSync(own); } catch { return 'own-gone'; }
      return 'taken';
    }
    throw err;
  }
}

/** LEASE of a run token LEASE/SEQ. */
function leaseOfToken(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash < 0 ? token : token.slice(0, slash);
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
    if (errnoOf(err) === 'ENOENT' || refusedAsExisting(err, path)) return false;
    throw err;
  }
  writeToken(fd, path, token);
  return true;
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
