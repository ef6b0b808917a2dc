/**
 * A lease: the right to hold claimed jobs. A lease is the folder `claimed/<leaseId>/` plus the heartbeat
 * file `workers/<leaseId>.json`, rewritten every heartbeat so that its mtime — stamped by the file
 * server — says when the holder was last alive.
 *
 * Invariant (fencing): every change a holder makes to a claimed job goes through a path inside its own
 * lease folder. A recoverer takes a dead lease by renaming the whole folder away (one atomic rename, one
 * winner), so a holder that was only frozen and wakes up later finds its folder gone: its rename of new
 * content into `claimed/<leaseId>/<id>.json`, and its move to done/ or failed/, fail with ENOENT instead of
 * overwriting a newer attempt. A holder never re-creates its folder; it takes a new lease instead.
 */
import { mkdir, open, rename, rmdir, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errnoOf, isGone, LeaseLostError } from '../errors.js';
import { newWorkerId } from './ids.js';
import type { Layout } from './layout.js';
import { fsyncDirSync, fsyncOnPool, renameOrGoneSync, unlinkQuietly, writeFileDurableOnPool, writeFileSyncDurable } from './fsops.js';
import * as fss from 'node:fs';
import { serializeJob, type Job } from '../job/format.js';
import type { GroupSync } from './group-sync.js';

/** Spare inodes kept per lease: one per job finishing at once is enough. */
const MAX_SPARES = 64;

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

export class Lease {
  readonly dir: string;
  readonly heartbeatFile: string;
  /** performance.now() of the last heartbeat that reached the spool. */
  lastRenewed = -Infinity;
  private lost = false;

  private constructor(readonly layout: Layout, readonly id: string, readonly info: LeaseInfo, readonly durable: boolean) {
    this.dir = join(layout.claimed, id);
    this.heartbeatFile = join(layout.workers, `${id}.json`);
  }

  /** Heartbeat first, folder second: a folder never exists without a heartbeat to judge it by. */
  static async acquire(layout: Layout, info: Omit<LeaseInfo, 'host' | 'pid' | 'started'>, durable: boolean): Promise<Lease> {
    const full: LeaseInfo = { host: hostname(), pid: process.pid, started: new Date().toISOString(), ...info };
    const lease = new Lease(layout, newWorkerId(), full, durable);
    await lease.heartbeat();
    await mkdir(lease.dir);
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

  /**
   * Renew: rewrite the heartbeat (a write, so the server stamps a fresh mtime; utimes would carry our own
   * clock), then check that our folder is still ours. Throws LeaseLostError when it was taken.
   */
  async heartbeat(extra: Record<string, unknown> = {}): Promise<void> {
    if (this.lost) throw new LeaseLostError(this.id);
    const started = performance.now();
    const tmp = join(this.layout.tmp, `.hb-${this.id}`);
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(JSON.stringify({ id: this.id, ...this.info, ...extra, beat: new Date().toISOString() }) + '\n');
    } finally {
      await fh.close();
    }
    await rename(tmp, this.heartbeatFile);
    if (this.lastRenewed !== -Infinity && !(await this.folderStillOurs())) {
      this.markLost();
      throw new LeaseLostError(this.id);
    }
    // Count from when the write started: the server may have stamped it then.
    this.lastRenewed = started;
  }

  /**
   * Whether our lease folder is still in claimed/. A "gone" answer is asked again twice, a little later:
   * a network file system's caches can briefly answer ENOENT for a folder that exists (seen on sshfs
   * under load), and a false "lost" would abort live jobs. A folder a recoverer took stays gone.
   */
  private async folderStillOurs(): Promise<boolean> {
    for (let i = 0; ; i++) {
      try {
        const d = await open(this.dir, 'r');
        await d.close();
        return true;
      } catch (err) {
        if (!isGone(err) && errnoOf(err) !== 'ENOTDIR') throw err;
        if (i >= 2) return false;
        await new Promise((r) => setTimeout(r, 100 * (i + 1)));
      }
    }
  }

  markLost(): void {
    if (this.lost) return;
    this.lost = true;
    this.dropSpares();
    unlink(this.heartbeatFile).catch(() => undefined);
  }

  pathOf(id: string): string { return join(this.dir, `${id}.json`); }

  /** Claim `pending/<name>`: false when another claimer won (normal). */
  claim(srcPath: string, id: string): boolean {
    if (this.lost) return false;
    return renameOrGoneSync(srcPath, this.pathOf(id));
  }

  /**
   * Replace the content of a job we hold. Fenced: fails with LeaseLostError when our folder is gone.
   * Written in tmp/ and fsynced first, so the claimed file is always a whole job.
   */
  rewrite(job: Job, path = this.pathOf(job.id)): void {
    // `path` is inside our lease folder (the job's own file, or one in a dead lease we are settling).
    const tmp = this.tmpFor(job.id);
    writeFileSyncDurable(tmp, serializeJob(job), this.durable, false);
    this.publish(tmp, path);
  }

  /**
   * Record `job` (with its outcome) and move it out of the lease to `toPath` (in done/ or failed/, or
   * pending/ or a deferred bucket). Returns false when the lease was lost (the job is someone else's now;
   * nothing was written over their attempt).
   */
  release(job: Job, toPath: string): boolean {
    try {
      this.rewrite(job);
    } catch (err) {
      if (err instanceof LeaseLostError) return false;
      throw err;
    }
    if (!this.moveOut(job.id, toPath)) return false;
    if (this.durable) fsyncDirSync(dirname(toPath));
    return true;
  }

  /**
   * `release` for a worker finishing many jobs at once: the fsyncs run on libuv's pool while the event
   * loop goes on, the file fsyncs of jobs finishing together share the journal's commits, and the folder
   * fsync is shared through `group`. Resolves once the move is durable.
   */
  async releaseGrouped(job: Job, toPath: string, group: GroupSync): Promise<boolean> {
    const own = this.pathOf(job.id);
    const text = serializeJob(job);
    let tmp = this.spares.pop();
    if (tmp && !(await writeSpare(tmp, text, this.durable))) tmp = undefined;
    if (!tmp) {
      tmp = this.tmpFor(job.id);
      await writeFileDurableOnPool(tmp, text, this.durable);
    }
    // The job's current inode is about to be replaced: give it a second name first and keep it as the
    // spare for a later outcome (see `spares`).
    const spare = this.spares.length < MAX_SPARES ? this.linkSpare(own) : null;
    try {
      this.publish(tmp, own);
    } catch (err) {
      // Not replaced: the spare still names the live job's inode (now maybe in a recoverer's lease).
      if (spare) unlinkQuietly(spare);
      if (err instanceof LeaseLostError) return false;
      throw err;
    }
    if (spare) this.spares.push(spare);
    if (!this.moveOut(job.id, toPath)) return false;
    if (this.durable) await group.sync(dirname(toPath));
    return true;
  }

  /**
   * Spare inodes for outcomes. Creating a file costs far more than rewriting one on some file systems
   * (ext4 on this project's VMs: 0.5–1.5 ms of kernel time against ~40 µs), and every outcome replaces a
   * job file whose inode would be freed. So before the replace, the old inode gets a second name in tmp/
   * (a hard link, cheap), and the next outcome is written into it. A spare is used only while it has no
   * other name (nlink 1, checked before it is truncated), so a live job file is never written through one.
   * A spare keeps its job file's mtime, so housekeeping leaves spares alone while their lease folder
   * exists; after a crash they are temp leftovers like any other.
   */
  private spares: string[] = [];
  private spareSeq = 0;

  private linkSpare(path: string): string | null {
    const spare = join(this.layout.tmp, `.spare-${this.id}-${++this.spareSeq}`);
    try { fss.linkSync(path, spare); return spare; } catch { return null; }
  }

  private dropSpares(): void {
    for (const s of this.spares.splice(0)) unlinkQuietly(s);
  }

  /** The temp name is ours alone (job id + lease id), so truncating a leftover is safe. */
  private tmpFor(id: string): string { return join(this.layout.tmp, `${id}.${this.id}.json`); }

  /** Rename new content into our lease folder: the fence (ENOENT once a recoverer took the folder). */
  private publish(tmp: string, path: string): void {
    try {
      fss.renameSync(tmp, path);
    } catch (err) {
      unlinkQuietly(tmp);
      if (isGone(err) || errnoOf(err) === 'ENOTDIR') { this.markLost(); throw new LeaseLostError(this.id); }
      throw err;
    }
  }

  private moveOut(id: string, toPath: string): boolean {
    // One rename, never link+unlink: with a two-step move a holder killed in between would leave the job
    // in pending/ AND in its lease, and recovery would publish the second copy while the first ran.
    // Job ids are unique and only the holder of the single copy moves it, so the target name is free.
    const moved = renameOrGoneSync(this.pathOf(id), toPath);
    if (!moved) this.markLost();
    return moved;
  }

  /** Give up the lease: remove the (empty) folder and the heartbeat. */
  async end(): Promise<void> {
    this.lost = true;
    this.dropSpares();
    await rmdir(this.dir).catch((err) => { if (!isGone(err) && errnoOf(err) !== 'ENOTEMPTY') throw err; });
    await unlink(this.heartbeatFile).catch(() => undefined);
    await unlink(join(this.layout.tmp, `.hb-${this.id}`)).catch(() => undefined);
  }
}

/**
 * Write `text` into the spare `path` (see Lease's spares), fsynced in durable mode, only if nothing else
 * names it (checked before truncating, so a file still named elsewhere is never touched). False, with the
 * spare removed, when it cannot be used; throws on a write error.
 */
export async function writeSpare(path: string, text: string, durable: boolean): Promise<boolean> {
  let fd: number;
  try { fd = fss.openSync(path, fss.constants.O_RDWR | fss.constants.O_NOFOLLOW); } catch { return false; }
  let ok = false;
  try {
    const st = fss.fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return false;
    fss.ftruncateSync(fd, 0);
    fss.writeFileSync(fd, text);
    if (durable) await fsyncOnPool(fd);
    ok = true;
  } finally {
    fss.closeSync(fd);
    if (!ok) unlinkQuietly(path);
  }
  return true;
}
