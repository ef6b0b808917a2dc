/**
 * Cleaning what crashes leave behind, after a safe age judged by the server's clock: temp files in tmp/
 * (a put or a rewrite that died before publishing: never a published job; spare and quota-slot inodes
 * only when their lease is gone), quota wait marks of gone leases, `.nfs*` silly-rename leftovers (NFS rule 10), the `.mkdir.NAME`
 * locks of folder makers that died holding them, heartbeats of workers gone for a day with
 * no lease folder, cancel requests for jobs long finished, and progress annotations not updated for a
 * day. Nothing here touches a published job file.
 *
 * Where `.nfs*` leftovers sit: a silly rename happens in the folder of the unlinked file, so in format 2
 * inside pending/QUEUE/, done/QUEUE/, failed/QUEUE/, hold/QUEUE/ and claimed/LEASE/ (format 1: right in
 * pending/, done/, failed/, claimed/). Both levels are looked at; only *real* folders are descended into
 * (lstat: a symlinked "queue folder" pointing at someone's home is never listed, let alone cleaned).
 *
 * A hostile co-user of a shared spool (see fsops.ts) may leave symlinks, FIFOs, sockets and odd names:
 * - ages come from lstat for anything that is not a regular file (never an open that could block on a
 *   FIFO or follow a symlink) and from open(O_NOFOLLOW|O_NONBLOCK)+fstat for regular files (fresh on NFS);
 * - special files (FIFO, socket, device) and symlinks found in tmp/, workers/, cancel/, progress/ are not
 *   ours to keep: removed once older than the leftover age (tmpAgeMs), like any temp leftover;
 * - removal is unlink (or rm -r for a folder in tmp/), which acts on a symlink itself, never on its
 *   target; and it happens only if the name still is the inode whose age was judged (lstat again);
 * - each folder and each entry is its own step: an EACCES, an odd entry or a vanished folder is logged
 *   once per pass (`spool.housekeeping.skipped`) and skipped; the pass goes on.
 */
import { lstat, rm, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import * as fsSync from 'node:fs';
import { errnoOf, isGone, isNoSpace } from '../errors.js';
import type { Logger } from '../log.js';
import { listEntries, openExclusiveSync, unlinkQuietly, type EntryKind } from './fsops.js';
import type { Layout } from './layout.js';
import type { ServerClock } from './server-clock.js';
import { WAIT_MARK, slotInodeLease } from './quota.js';
import { QUOTA_WAIT_MARK_TTL_MS } from '../defaults.js';

export interface LeftoverReport {
  path: string;
  what: string;
  ageMs: number;
  /** What the entry is, by lstat (absent in reports made before kinds were recorded). */
  kind?: EntryKind;
  /** Set by cleanLeftovers: whether it was removed (false: it changed meanwhile, or removing it failed). */
  removed?: boolean;
}

export interface HousekeepingOptions {
  log?: Logger;
  /** Temp files, `.nfs*` leftovers and special files older than this are leftovers (default 1 h). */
  tmpAgeMs?: number;
  /** Heartbeats of gone workers, cancel requests and progress annotations (default 1 day). */
  workerAgeMs?: number;
}

interface Found extends LeftoverReport { ino: number; dev: number; kind: EntryKind }

/** Folders whose queue subfolders (format 2) or top level (format 1) may hold `.nfs*` leftovers. */
const NFS_DIRS = ['pending', 'done', 'failed', 'hold', 'claimed'] as const;

function isSpecial(kind: EntryKind): boolean {
  return kind !== 'file' && kind !== 'folder';
}

class Pass {
  readonly out: Found[] = [];
  private readonly logged = new Set<string>();

  constructor(private readonly clock: ServerClock, private readonly log: Logger | undefined) {}

  /** Log a skipped step once per pass (per folder or entry and error code). */
  skip(path: string, err: unknown): void {
    const code = errnoOf(err) ?? (err as Error)?.message ?? String(err);
    const key = `${path}\0${code}`;
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.log?.('spool.housekeeping.skipped', { path, error: code });
  }

  /** The entries of a real folder, [] when gone, not a real folder, or unreadable (logged). */
  async entries(dir: string): Promise<{ name: string; kind: EntryKind }[]> {
    try {
      const list = await listEntries(dir);
      if (list === null) { this.skip(dir, new Error('not a real folder (a symbolic link or a file); not descended into')); return []; }
      return list;
    } catch (err) {
      if (!isGone(err)) this.skip(dir, err);
      return [];
    }
  }

  /**
   * Judge one entry: report it when older than `minAge`. Regular files: open+fstat (fresh mtime, NFS rule 7;
   * O_NOFOLLOW|O_NONBLOCK). Anything else: lstat (never opened). Errors are logged once and skipped.
   */
  async consider(path: string, what: string, minAge: number): Promise<void> {
    try {
      const st = await lstat(path);
      const kind: EntryKind = st.isFile() ? 'file' : st.isDirectory() ? 'folder' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'unknown';
      let age: number | null;
      if (kind === 'file') age = await this.clock.ageOf(path); // null: gone, or swapped for a non-file meanwhile
      else age = (await this.clock.now()) - st.mtimeMs;
      if (age === null || age <= minAge) return;
      this.out.push({ path, what: isSpecial(kind) ? `${what} (${kind})` : what, ageMs: Math.round(age), kind, ino: st.ino, dev: st.dev });
    } catch (err) {
      if (!isGone(err)) this.skip(path, err);
    }
  }
}

async function find(layout: Layout, clock: ServerClock, opts: HousekeepingOptions): Promise<{ pass: Pass; found: Found[] }> {
  const tmpAge = opts.tmpAgeMs ?? 3_600_000;
  const workerAge = opts.workerAgeMs ?? 86_400_000;
  const pass = new Pass(clock, opts.log);
  const leases = new Set((await pass.entries(layout.claimed)).filter((e) => e.kind === 'folder').map((e) => e.name));

  for (const e of await pass.entries(layout.tmp)) {
    // A live lease's spare inode keeps the mtime of the job file it came from, however old: not a leftover.
    const spareOf = /^\.spare-(.+)-\d+$/.exec(e.name)?.[1];
    if (spareOf !== undefined && leases.has(spareOf) && e.kind === 'file') continue;
    // Likewise a live lease's quota-slot inode (transitions/quota-take.ts): in its pool or linked as a held
    // slot. One of a gone lease serves no take again: it goes once QUOTA_WAIT_MARK_TTL_MS old (a lease made
    // after claimed/ was listed has young inodes), not after the hour of other temp files.
    const slotOf = slotInodeLease(e.name);
    if (slotOf !== null && e.kind === 'file') {
      if (!leases.has(slotOf)) await pass.consider(join(layout.tmp, e.name), 'quota slot inode of a gone lease', Math.min(tmpAge, QUOTA_WAIT_MARK_TTL_MS));
      continue;
    }
    await pass.consider(join(layout.tmp, e.name), isSpecial(e.kind) ? 'special file in tmp/' : 'orphan temp file', tmpAge);
  }

  // Wait marks (quotas/NAME/w.LEASE, spool/quota.ts) of a gone lease: a hint for nobody now. Its worker or
  // its recoverer removes it; this is for the ones a crash left. A live lease's mark stays, however old.
  for (const q of await pass.entries(layout.quotas)) {
    if (q.kind !== 'folder') continue;
    const dir = join(layout.quotas, q.name);
    for (const e of await pass.entries(dir)) {
      if (!e.name.startsWith(WAIT_MARK) || leases.has(e.name.slice(WAIT_MARK.length))) continue;
      await pass.consider(join(dir, e.name), 'wait mark of a gone lease', Math.min(tmpAge, QUOTA_WAIT_MARK_TTL_MS));
    }
  }

  // `.nfs*` leftovers, and the `.mkdir.NAME` turn locks of folder makers that died between the lock and
  // its removal (spool/modes.ts; a lease folder or a queue folder is made once, so no later maker of that
  // name would ever clear it): at the top of each state folder (format 1) and one level down, in real queue
  // or lease folders only (format 2).
  const leftoverWhat = (name: string) => (name.startsWith('.nfs') ? 'NFS silly-rename leftover' : name.startsWith('.mkdir.') ? 'folder maker\'s lock left by a crash' : null);
  for (const state of NFS_DIRS) {
    const top = join(layout.root, state);
    for (const e of await pass.entries(top)) {
      const what = leftoverWhat(e.name);
      if (what) { await pass.consider(join(top, e.name), what, tmpAge); continue; }
      if (e.kind !== 'folder') continue;
      const sub = join(top, e.name);
      for (const f of await pass.entries(sub)) {
        const w = leftoverWhat(f.name);
        if (w) await pass.consider(join(sub, f.name), w, tmpAge);
      }
    }
  }

  for (const e of await pass.entries(layout.workers)) {
    const path = join(layout.workers, e.name);
    if (isSpecial(e.kind)) await pass.consider(path, 'special file in workers/', tmpAge);
    else if (e.kind === 'file' && e.name.endsWith('.json') && !leases.has(e.name.slice(0, -5))) await pass.consider(path, 'heartbeat of a gone worker', workerAge);
  }
  for (const e of await pass.entries(layout.cancel)) {
    const path = join(layout.cancel, e.name);
    if (isSpecial(e.kind)) await pass.consider(path, 'special file in cancel/', tmpAge);
    else if (e.kind === 'file') await pass.consider(path, 'old cancel request', workerAge);
  }
  // A progress annotation not updated for a day belongs to a job long finished (or silent: its next
  // update writes it again).
  for (const e of await pass.entries(layout.progress)) {
    const path = join(layout.progress, e.name);
    if (isSpecial(e.kind)) await pass.consider(path, 'special file in progress/', tmpAge);
    else if (e.kind === 'file') await pass.consider(path, 'old progress annotation', workerAge);
  }
  return { pass, found: pass.out };
}

function report(f: Found): LeftoverReport {
  return { path: f.path, what: f.what, ageMs: f.ageMs, kind: f.kind };
}

export async function findLeftovers(layout: Layout, clock: ServerClock, opts: HousekeepingOptions = {}): Promise<LeftoverReport[]> {
  return (await find(layout, clock, opts)).found.map(report);
}

/**
 * Remove what findLeftovers finds, and report all of it (`removed` says which went). Each removal checks
 * first that the name still is the inode that was judged (a fresh file that took the name meanwhile is
 * not a leftover), and is its own step.
 */
export async function cleanLeftovers(layout: Layout, clock: ServerClock, opts: HousekeepingOptions = {}): Promise<LeftoverReport[]> {
  const { pass, found } = await find(layout, clock, opts);
  const out: LeftoverReport[] = [];
  for (const f of found) {
    const r = report(f);
    r.removed = false;
    out.push(r);
    try {
      const st = await lstat(f.path);
      if (st.ino !== f.ino || st.dev !== f.dev) continue;
      // rm on a real folder in tmp/ (never follows the symlinks inside); unlink for everything else,
      // a symlink included (unlink removes the link).
      if (st.isDirectory()) {
        // A folder named .nfs* in a queue folder is no silly rename: reported, left for a person.
        if (!f.path.startsWith(layout.tmp + sep)) { pass.skip(f.path, new Error('a folder outside tmp/; not removed')); continue; }
        await rm(f.path, { recursive: true, force: true });
      } else {
        await unlink(f.path);
      }
      opts.log?.('spool.cleaned', { path: f.path, what: f.what, ageMs: f.ageMs });
      r.removed = true;
    } catch (err) {
      if (!isGone(err)) pass.skip(f.path, err);
    }
  }
  return out;
}

/**
 * Whether this caller takes the spool-wide housekeeping pass of the current window: the first to create
 * tmp/.turn-housekeeping-INTERVAL-W (O_CREAT|O_EXCL|O_NOFOLLOW), W being the window of `intervalMs` on the
 * file server's clock, takes it. Every worker used to scan and prune the whole spool each interval: with N
 * workers on N machines that is N full listings of done/ and failed/ a minute over the network for one
 * pass's worth of work. Of racing creators exactly one wins (O_EXCL, NFS rule 3). A winner that dies
 * mid-pass leaves the rest to the next window's winner: housekeeping is idempotent. A name a co-user planted
 * ahead of its window (so that nobody would take it) is older than the window and is not honoured. A spool that cannot
 * take the turn file for want of room (ENOSPC, EDQUOT) gets the pass anyway — pruning is what frees room;
 * the winner removes the last window's turn file, and any other is a temp leftover, removed after the leftover age.
 */
export function takeHousekeepingTurn(layout: Layout, serverNowMs: number, intervalMs: number): boolean {
  const interval = Math.max(1000, Math.round(intervalMs));
  const window = Math.floor(serverNowMs / interval);
  const path = join(layout.tmp, `${TURN_PREFIX}${interval}-${window}`);
  for (let attempt = 0; ; attempt++) {
    try {
      fsSync.closeSync(openExclusiveSync(path, layout.modes.fileMode));
      // The last window's file has done its work (its window is over): one turn file stays, not one per window.
      unlinkQuietly(join(layout.tmp, `${TURN_PREFIX}${interval}-${window - 1}`));
      return true;
    } catch (err) {
      if (isNoSpace(err)) return true;
      if (errnoOf(err) !== 'EEXIST') throw err;
      // A name made before its window began (by the file server's clock, less 2 s for whole-second stamps) was
      // planted, not taken: it is removed (unlink acts on a symlink itself) and the turn asked for once more.
      if (attempt > 0 || !plantedBefore(path, window * interval - 2000)) return false;
      unlinkQuietly(path);
    }
  }
}

function plantedBefore(path: string, ms: number): boolean {
  try { return fsSync.lstatSync(path).mtimeMs < ms; } catch { return false; }
}

/** The name prefix of housekeeping turn files in tmp/. */
export const TURN_PREFIX = '.turn-housekeeping-';
