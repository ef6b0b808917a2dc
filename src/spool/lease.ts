/**
 * A lease: the right to hold claimed jobs. A lease is the folder `claimed/LEASE/` plus the heartbeat
 * `workers/LEASE.json`, rewritten every heartbeat (transitions/renew.ts) so that its mtime — stamped by
 * the file server — says when the holder was last alive. `judgeLease` is the one rule for whether a lease
 * is alive; recovery, doctor and status all ask it.
 *
 * Fencing: every change a holder makes to a claimed job goes through a path inside its own lease folder.
 * A recoverer takes a dead lease by renaming the whole folder away (one rename, one winner), so a holder
 * that was only frozen finds its folder gone: its renames into `claimed/LEASE/` fail with ENOENT instead
 * of overwriting a newer attempt. A holder never re-creates its folder; it takes a new lease instead.
 * The folder's inode is remembered, and checked with lstat before a final record is published into it, so
 * a co-user who swaps the folder for a symlink cannot make the holder write elsewhere.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errnoOf, isGone, LeaseLostError } from '../errors.js';
import { newWorkerId, parseLeaseName } from './ids.js';
import { FOLDER_KEEP_MS, stateFolderIsOnlyOurs, type Layout } from './layout.js';
import { makeDir } from './modes.js';
import { claimedName, runToken, DEAD_SUFFIX } from './names.js';
import type { ServerClock } from './server-clock.js';
import { onNetworkFileSystem, remadeIfGone, unlinkQuietly } from './fsops.js';
import { renewLease } from './transitions/renew.js';
import { dropLeaseQuotaFiles } from './transitions/quota-take.js';

export interface LeaseInfo {
  kind: 'worker' | 'client';
  host: string;
  pid: number;
  started: string;
  leaseMs: number;
  concurrency?: number;
  queues?: string[] | null;
  name?: string;
}

/** Bounds on a lease time read from a heartbeat (untrusted): outside them the reader's own lease judges. */
export const MIN_LEASE_MS = 1000;
export const MAX_LEASE_MS = 86_400_000;

export class Lease {
  readonly dir: string;
  readonly heartbeatFile: string;
  /** performance.now() of the last heartbeat that reached the spool. */
  lastRenewed = -Infinity;
  private lost = false;
  private seq = 0;
  /** dev:ino of our folder, taken when we made it. */
  private folderKey = '';

  private constructor(readonly layout: Layout, readonly id: string, readonly info: LeaseInfo, readonly durable: boolean) {
    this.dir = join(layout.claimed, id);
    this.heartbeatFile = join(layout.workers, `${id}.json`);
  }

  /** Heartbeat first, folder second: a folder never exists without a heartbeat to judge it by. */
  static async acquire(layout: Layout, info: Omit<LeaseInfo, 'host' | 'pid' | 'started'>, durable: boolean): Promise<Lease> {
    const full: LeaseInfo = { host: hostname(), pid: process.pid, started: new Date().toISOString(), ...info };
    const lease = new Lease(layout, newWorkerId(info.kind), full, durable);
    await renewLease(lease);
    try {
      makeDir(layout.modes, lease.dir);
    } catch (err) {
      // claimed/ removed by hand, every lease with it: made again (fsops.ts remadeIfGone).
      if (errnoOf(err) !== 'ENOENT' || !remadeIfGone(layout.claimed)) throw err;
      makeDir(layout.modes, lease.dir);
    }
    const st = fs.lstatSync(lease.dir);
    lease.folderKey = `${st.dev}:${st.ino}`;
    lease.spareInodes = !onNetworkFileSystem(lease.dir);
    return lease;
  }

  get isLost(): boolean { return this.lost; }

  /** True while the last successful heartbeat is recent enough that no sibling may have judged us dead. */
  fresh(marginMs = 0): boolean {
    return !this.lost && performance.now() - this.lastRenewed < this.info.leaseMs - marginMs;
  }

  /**
   * Fresh enough to judge other leases: a holder that is itself close to expiry may be the stale one.
   * The margin scales with the lease (a fixed 1 s margin made a 1 s lease never fit to recover anything).
   */
  freshToJudge(): boolean {
    return this.fresh(Math.min(1000, this.info.leaseMs / 3));
  }

  /** The next claim's name in our folder, and its run token. */
  nextClaim(id: string): { path: string; token: string } {
    const seq = ++this.seq;
    return { path: `${this.dir}/${claimedName(seq, id)}`, token: runToken(this.id, seq) };
  }

  /**
   * Whether our folder is still ours: there, a real folder, the one we made. A "gone" answer is asked
   * again twice, a little later, when `patient`: a network file system's caches can briefly answer ENOENT
   * for a folder that exists (seen on sshfs under load), and a false "lost" would abort live jobs.
   */
  async folderStillOurs(patient = true): Promise<boolean> {
    for (let i = 0; ; i++) {
      try {
        const st = fs.lstatSync(this.dir);
        return st.isDirectory() && `${st.dev}:${st.ino}` === this.folderKey;
      } catch (err) {
        if (!isGone(err) && errnoOf(err) !== 'ENOTDIR') throw err;
        if (!patient || i >= 2) return false;
        await new Promise((r) => setTimeout(r, 100 * (i + 1)));
      }
    }
  }

  /**
   * The synchronous fence before a claim is renamed into the folder and before a final record is published
   * there: false when the folder is not ours. `sameTurn`: a yes found earlier in this same run of synchronous
   * code (claims and finishes done together, before the event loop turns) is answered again without a
   * second lstat — nothing of ours ran in between, and a recoverer that took the folder meanwhile is still
   * fenced by the rename itself (ENOENT). Where claimed/ belongs to our user and neither group nor others
   * may write it (a private spool), a yes is also answered again for FOLDER_KEEP_MS: only this user or root
   * can put anything in the folder's place there, and a recoverer that takes it is fenced by the rename as
   * above (on a network mount, where a finish ends in a turn of its own, the lstat was one round trip a
   * job). A no is never remembered: the next call looks again.
   */
  folderIsOurs(sameTurn = false): boolean {
    if (sameTurn && (this.checkedThisTurn || this.keptUntil > performance.now())) return true;
    let ours: boolean;
    try {
      const st = fs.lstatSync(this.dir);
      ours = st.isDirectory() && `${st.dev}:${st.ino}` === this.folderKey;
    } catch {
      ours = false;
    }
    if (ours && !this.checkedThisTurn) {
      this.checkedThisTurn = true;
      queueMicrotask(() => { this.checkedThisTurn = false; });
    }
    const now = performance.now();
    this.keptUntil = ours && stateFolderIsOnlyOurs(this.layout, 'claimed', now) ? now + FOLDER_KEEP_MS : 0;
    return ours;
  }

  /** folderIsOurs found the folder ours in the synchronous run under way (cleared at its end). */
  private checkedThisTurn = false;
  /** Until when (performance.now()) a yes of folderIsOurs holds in a private spool without another look. */
  private keptUntil = 0;

  markLost(): void {
    this.checkedThisTurn = false;
    this.keptUntil = 0;
    if (this.lost) return;
    this.lost = true;
    this.dropSpares();
    dropLeaseQuotaFiles(this.layout, this.id);
    unlinkQuietly(this.heartbeatFile);
  }

  /** Throws LeaseLostError once lost. */
  assertHeld(): void { if (this.lost) throw new LeaseLostError(this.id); }

  /**
   * Spare inodes for outcomes (transitions/finish.ts). Creating a file costs far more than rewriting one
   * on some file systems, and every outcome replaces a job file whose inode would be freed: before the
   * replace, the old inode gets a second name in tmp/ (a hard link, cheap), and a later outcome is written
   * into it. A spare is used only while it has no other name and is ours (nlink 1, our uid, checked on the
   * open descriptor before it is truncated), so a live job file is never written through one.
   */
  readonly spares: string[] = [];
  /**
   * Whether outcomes keep spare inodes: not on a networked file system, where a create is one round trip
   * like any other call, and a spare costs three (link, open, fstat) where a new file costs two (the
   * exclusive create, and an lstat that the claimed file is still there).
   */
  spareInodes = true;
  private spareSeq = 0;
  spareName(): string { return `${this.layout.tmp}/.spare-${this.id}-${++this.spareSeq}`; }

  dropSpares(): void {
    for (const s of this.spares.splice(0)) unlinkQuietly(s);
  }

  /** Give up the lease: remove the (empty) folder and the heartbeat. */
  async end(): Promise<void> {
    this.lost = true;
    this.dropSpares();
    dropLeaseQuotaFiles(this.layout, this.id);
    try { fs.rmdirSync(this.dir); } catch (err) { if (!isGone(err) && errnoOf(err) !== 'ENOTEMPTY' && errnoOf(err) !== 'EEXIST') throw err; }
    unlinkQuietly(this.heartbeatFile);
  }
}

export interface HolderInfo { worker: string; host: string; pid: number; leaseMs: number; kind: 'worker' | 'client' }

/** Who held a lease: from its heartbeat's content when readable (untrusted: bounded), else from the lease id. */
export function holderInfoFrom(worker: string, heartbeat: string | undefined, defaultLeaseMs: number): HolderInfo {
  const m = parseLeaseName(worker);
  const info: HolderInfo = { worker, host: m?.host ?? '?', pid: m?.pid ?? 0, leaseMs: defaultLeaseMs, kind: m?.kind ?? 'worker' };
  try {
    const hb = JSON.parse(heartbeat ?? '');
    if (typeof hb.host === 'string') info.host = hb.host.slice(0, 255);
    if (Number.isInteger(hb.pid)) info.pid = hb.pid;
    if (Number.isInteger(hb.leaseMs) && hb.leaseMs >= MIN_LEASE_MS && hb.leaseMs <= MAX_LEASE_MS) info.leaseMs = hb.leaseMs;
    if (hb.kind === 'client') info.kind = 'client';
  } catch { /* gone or torn: judge by defaults */ }
  return info;
}

export interface LeaseJudgement {
  info: HolderInfo;
  /** The heartbeat's age by the file server's clock (the folder's when there is no heartbeat); null when not known. */
  ageMs: number | null;
  expired: boolean;
  /** Set when the heartbeat's age could not be read this time (its name kept leading to a file just replaced): not judged. */
  unsettled?: string;
}

/**
 * Whether a lease is alive: the one rule. A lease is dead when its heartbeat's age, by the file server's
 * clock, exceeds the holder's own lease time (read from the heartbeat; `defaultLeaseMs` when unreadable).
 * A lease without a heartbeat is judged by its folder's age (it never lacks both for long), but only when
 * the heartbeat is really gone: before that verdict it is looked for again past the mount's entry cache.
 * A heartbeat whose name kept leading to a file another mount had just replaced (server-clock.ts readAged:
 * `unsettled`) is being renewed: that lease is not judged this time. (Taking either for "no heartbeat"
 * judged live idle workers by their folders' age, the time of their last claim: on GlusterFS, idle
 * workers' leases were taken 16-42 s after their last claim.) For one lease time after the server's clock
 * was seen to jump forward, an age is taken as shorter by the jump (server-clock.ts jumpAllowance): a
 * stepped clock or a frozen machine must not condemn a holder that has not yet had the time to beat again.
 */
export async function judgeLease(layout: Layout, clock: ServerClock, worker: string, defaultLeaseMs: number): Promise<LeaseJudgement> {
  const heartbeat = join(layout.workers, `${worker}.json`);
  const folder = join(layout.claimed, worker);
  let hb = await clock.readAged(heartbeat);
  if (hb === null) {
    // No heartbeat found: before the folder's age condemns the lease, look for the heartbeat again past the
    // mount's entry cache (a name being renamed over can look missing through another mount for a moment).
    const folderAge = await clock.ageOf(folder, defaultLeaseMs);
    if (folderAge === null || folderAge <= defaultLeaseMs) return { info: holderInfoFrom(worker, undefined, defaultLeaseMs), ageMs: folderAge, expired: false };
    hb = await clock.readAged(heartbeat, 'always');
    if (hb === null) {
      const ageMs = await clock.ageOf(folder, defaultLeaseMs);
      return { info: holderInfoFrom(worker, undefined, defaultLeaseMs), ageMs, expired: ageMs !== null && ageMs > defaultLeaseMs };
    }
  }
  if ('unsettled' in hb) return { info: holderInfoFrom(worker, undefined, defaultLeaseMs), ageMs: null, expired: false, unsettled: hb.unsettled };
  const info = holderInfoFrom(worker, hb.text, defaultLeaseMs);
  const ageMs = hb.ageMs - clock.jumpAllowance(hb.mtimeMs, info.leaseMs);
  return { info, ageMs, expired: ageMs > info.leaseMs };
}

/**
 * How long a judgement that found a lease alive stays good: half of what was left of it. A lease cannot
 * expire before the rest of it has passed (its age is a duration on the file server's clock, the wait one on
 * ours); waiting only half leaves room for a server clock stepped forward meanwhile, and the looks close in as
 * the lease nears its end, so a recoverer that looks every poll still finds a dead lease within a poll of its
 * expiry. 0 (look at every pass) for a lease expired, unknown or unsettled.
 */
export function judgeAgainAfterMs(j: LeaseJudgement): number {
  if (j.expired || j.ageMs === null || j.unsettled !== undefined) return 0;
  return Math.max(0, (j.info.leaseMs - j.ageMs) / 2);
}

/** The lease a `LEASE.dead` folder name stands for. */
export function deadLeaseOf(name: string): string | null {
  return name.endsWith(DEAD_SUFFIX) ? name.slice(0, -DEAD_SUFFIX.length) : null;
}
