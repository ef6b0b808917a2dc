/**
 * The file server's clock, the only clock every machine on a shared mount agrees on (NFS rule 6). The
 * server stamps a file's mtime when it performs a write, so writing a probe file and reading its mtime back
 * (fstat, rule 7) tells "server now"; between probes we add local *monotonic* time, which no wall-clock
 * jump or skew can move. Lease ages and due times are judged with this clock only; a machine's own
 * `Date.now()` is never compared with a time another machine wrote.
 *
 * Hostile co-users (see fsops.ts): the probe is created once, O_CREAT|O_EXCL|O_NOFOLLOW under a random
 * name in tmp/, and kept open; every sample writes through that descriptor and fstat()s it, so no sample
 * ever opens a name a co-user could have swapped for a symlink or a FIFO. Ages are read by opening with
 * O_NOFOLLOW|O_NONBLOCK and fstat: a symlink, FIFO or socket at a heartbeat's name gives null (or "not a
 * regular file") at once instead of following it or blocking.
 *
 * A name being renamed over (a heartbeat, every beat) can lead, through another machine's mount, to the
 * file it named a moment ago: GlusterFS's FUSE client keeps a name's entry for its entry timeout (1 s by
 * default) and lets open() succeed on the old file, whose fstat or read then says ENOENT (distributed) or
 * ESTALE (replica); on a distributed volume open() itself now and then says ENOENT while the name is being
 * renamed over. Looking again at once finds the same old entry (measured: 3 immediate looks all fail; one
 * after the entry timeout reads the new file). So a heartbeat (readAged) that a look found leading to a
 * file is looked up again after pauses that outlast that cache (REPLACED_PAUSES_MS), and when no look read
 * it, the answer is `unsettled`, never "gone": a name that is being replaced is not missing. A heartbeat
 * not found at all is looked for again after the same pauses before a lease is judged by its folder
 * (lease.ts judgeLease), and only then.
 *
 * Read-only spools: when the probe cannot be created or written (EROFS: a read-only mount; EACCES/EPERM:
 * a reader without write permission; ENOSPC/EDQUOT: a full disk) the clock falls back to this machine's
 * clock and says so: `local === true`, `localReason` the one-line why. Reading commands (ls, status,
 * show) then work. A local clock must never judge another machine's lease (its skew is unknown): recovery
 * skips while `local` is true. A local clock retries the probe at most every 30 s (a disk that was full
 * may have room again); a read-only or permission fallback stays local.
 *
 * Jumps: between two samples the server's clock should advance as our monotonic clock does. When it
 * advances more (JUMP_MIN_MS or over), either the file server's clock was stepped forward or this machine
 * was frozen (a paused or migrated VM, whose monotonic clock did not count the pause) while the server's
 * went on. Either way every heartbeat written before the jump now looks older by the jump than the time its
 * holder has had to renew it: a live holder whose lease has less slack than the jump would be judged dead
 * (seen in a CI run: a 5.5 s step, a 2 s lease taken 1 s after its last beat). So a jump is remembered, and
 * for one lease time of our monotonic clock after it was seen, an age judged against a time written before
 * it is taken as shorter by the jump (`jumpAllowance`; lease.ts judgeLease) — time enough for every live
 * holder to beat again after it. It only ever delays a recovery, by at most the jump. A process whose first
 * sample comes after the jump cannot see it (docs/nfs.md: keep the file server's clock slewed, not stepped).
 */
import { open } from 'node:fs/promises';
import * as fss from 'node:fs';
import { performance } from 'node:perf_hooks';
import { errnoOf, isGone, isNoSpace, isReadOnly } from '../errors.js';
import { DEFAULT_FILE_MODE, createExclusiveOpenSync, describeKind, isRealDir, kindOfStats } from './fsops.js';

const O_READ_SAFE = fss.constants.O_RDONLY | fss.constants.O_NOFOLLOW | fss.constants.O_NONBLOCK;
/** A heartbeat is a few hundred bytes; a co-user's huge file is not read whole. */
const MAX_AGED_TEXT = 64 * 1024;
const LOCAL_RETRY_MS = 30_000;
/**
 * Pauses before each new look at a heartbeat that a look found gone (see the header): 1.6 s in all, past
 * GlusterFS's default entry timeout of 1 s. Other ages look again twice at once (a file that vanished
 * between a listing and its age is common and just gone).
 */
export const REPLACED_PAUSES_MS: readonly number[] = [0, 100, 400, 1100];

/**
 * The least forward jump of the server's clock against our monotonic clock that counts as one (see the
 * header): far above the few ms a kernel's coarse timestamp lags the clock it reads, and small beside any
 * lease's slack (lease − heartbeat), which absorbs a smaller jump anyway.
 */
export const JUMP_MIN_MS = 250;
/** Jumps remembered: more than this in one lease time is a clock no lease can be judged by anyway. */
const MAX_JUMPS = 16;

/** A forward jump of the server's clock (see the header). */
export interface ClockJump {
  /** How much further the server's clock went than our monotonic clock between the two samples (at most). */
  jumpMs: number;
  /** The server time of the sample that saw it: every time written before it may be shifted. */
  serverAt: number;
  /** Our monotonic clock when it was seen. */
  seenAt: number;
}

/**
 * How hard a read looks again at a name it found gone: 'none', twice at once; 'seen', after pauses once a
 * look found the name leading to a file (a heartbeat being replaced); 'always', after pauses from the first
 * look (before a lease is judged by its folder because its heartbeat looked missing).
 */
export type Patience = 'none' | 'seen' | 'always';

/** What one look at a name found: its age (and text), a wrong kind of entry, an answer not settled yet, or null: gone. */
type Inspected = { ageMs: number; mtimeMs: number; text?: string } | { bad: string } | { unsettled: string } | null;

/**
 * A heartbeat's age could not be read because its name kept leading to a file another mount had just
 * replaced (GlusterFS's entry cache): the holder is renewing it, so the lease is not judged this time.
 */
export interface Unsettled { unsettled: string }

export interface ClockOptions {
  /** The probe's mode (the spool's file mode). */
  mode?: number;
  /**
   * This machine's monotonic clock in ms (performance.now). Tests give one that stands still for a while,
   * as a frozen VM's does, to meet a jump of the server's clock without stepping the machine's own.
   */
  monotonic?: () => number;
}

export class ServerClock {
  private serverMs = 0;
  private monoAt = -Infinity;
  /** Our monotonic clock just before the last sample's write (its stamp came between this and monoAt). */
  private monoBefore = -Infinity;
  private fd: number | null = null;
  private probePath: string | null = null;
  private localSince = -Infinity;
  private localSticky = false;
  /** True while the clock is this machine's own (the probe could not be written): see the header. */
  local = false;
  /** Why the clock is local, one line naming the folder; null while it is the server's. */
  localReason: string | null = null;
  /** Forward jumps seen, oldest first, the last MAX_JUMPS (see the header). */
  readonly jumps: ClockJump[] = [];
  /** How many jumps were ever seen (a worker logs each new one). */
  jumpsSeen = 0;

  private readonly mono: () => number;

  constructor(private readonly tmpDir: string, private readonly owner: string, private readonly maxAgeMs = 2_000, private readonly opts: ClockOptions = {}) {
    this.mono = opts.monotonic ?? (() => performance.now());
  }

  /** The probe's path (random, made at the first sample), or null before it / when local. */
  get probe(): string | null { return this.probePath; }

  /** Write the probe through its descriptor and read back the server's time of that write. */
  async sample(): Promise<number> {
    if (this.local && (this.localSticky || this.mono() - this.localSince < LOCAL_RETRY_MS)) return this.sampleLocal();
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.fd === null) this.createProbe();
        const before = this.mono();
        fss.writeSync(this.fd!, `${process.pid} ${before}\n`, 0);
        const st = fss.fstatSync(this.fd!);
        const after = this.mono();
        if (!this.local && this.monoAt !== -Infinity) this.noteJump(st.mtimeMs - this.serverMs, before - this.monoAt, after - this.monoBefore, st.mtimeMs, this.serverMs);
        this.serverMs = st.mtimeMs;
        this.monoAt = after;
        this.monoBefore = before;
        this.local = false;
        this.localReason = null;
        return this.serverMs;
      } catch (err) {
        const code = errnoOf(err);
        if (isReadOnly(err) || code === 'EACCES' || code === 'EPERM' || isNoSpace(err)) {
          this.closeProbe(true);
          this.goLocal(`${this.tmpDir}: cannot write the clock probe (${code}); using this machine's clock`, !isNoSpace(err));
          return this.sampleLocal();
        }
        // ESTALE: another client removed the probe on the server; EBADF after a forced close: make a new one.
        if ((isGone(err) || code === 'EBADF') && attempt === 0) { this.closeProbe(false); continue; }
        // tmp/ itself gone (removed by hand): this machine's clock until it is back, so that `zcq doctor`
        // can still run and make it again.
        if (isGone(err) && !isRealDir(this.tmpDir)) {
          this.closeProbe(true);
          this.goLocal(`${this.tmpDir}: missing, cannot write the clock probe; using this machine's clock (zcq doctor --repair makes it again)`, false);
          return this.sampleLocal();
        }
        throw err;
      }
    }
  }

  /**
   * Two samples' stamps were `serverMs` apart on the server's clock, and between `minMs` and `maxMs` apart
   * on ours (each stamp came somewhere within its write and fstat). A jump counts only when even the
   * longest time ours allows leaves JUMP_MIN_MS unexplained — a slow write is never taken for one — and the
   * grace is the most it can have been.
   */
  private noteJump(serverMs: number, minMs: number, maxMs: number, serverAt: number, previous: number): void {
    // Whole-second mtimes (sshfs, NFSv3 on some servers) make each stamp up to 1 s early: two stamps can be
    // a second further apart than the writes were.
    const coarse = serverAt % 1000 === 0 || previous % 1000 === 0 ? 1000 : 0;
    if (!(serverMs - maxMs - coarse >= JUMP_MIN_MS)) return;
    this.jumps.push({ jumpMs: Math.ceil(serverMs - minMs + coarse), serverAt, seenAt: this.mono() });
    this.jumpsSeen++;
    if (this.jumps.length > MAX_JUMPS) this.jumps.shift();
  }

  /**
   * How much shorter to take the age of a time `writtenMs` (server clock) than it reads: the jumps seen
   * within the last `windowMs` of our monotonic clock that came after it was written (see the header).
   */
  jumpAllowance(writtenMs: number, windowMs: number): number {
    let ms = 0;
    const now = this.mono();
    for (const j of this.jumps) if (now - j.seenAt < windowMs && writtenMs < j.serverAt) ms += j.jumpMs;
    return ms;
  }

  private createProbe(): void {
    const safeOwner = this.owner.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
    const { fd, path } = createExclusiveOpenSync(this.tmpDir, `.probe-${safeOwner}-`, this.opts.mode ?? DEFAULT_FILE_MODE);
    this.fd = fd;
    this.probePath = path;
  }

  private goLocal(reason: string, sticky: boolean): void {
    this.local = true;
    this.localReason = reason;
    this.localSticky = sticky;
    this.localSince = this.mono();
  }

  private sampleLocal(): number {
    this.serverMs = Date.now();
    this.monoAt = this.mono();
    this.monoBefore = this.monoAt;
    return this.serverMs;
  }

  /** Server time now (estimate: last sample + monotonic time since). Resamples when the sample is old. */
  async now(): Promise<number> {
    if (this.mono() - this.monoAt > this.maxAgeMs) await this.sample();
    return this.serverMs + (this.mono() - this.monoAt);
  }

  /** Estimate without I/O; valid once `sample()` ran. */
  nowCached(): number {
    return this.serverMs + (this.mono() - this.monoAt);
  }

  /**
   * Age by the server's clock of the regular file or real folder at `path` (fresh mtime via open+fstat);
   * null when it is gone, or is a symlink, FIFO, socket or device (never followed, never waited on), or
   * its name kept leading to a file just replaced (unsettled, see readAged).
   */
  async ageOf(path: string, jumpWindowMs = 0): Promise<number | null> {
    const r = await this.inspect(path, false);
    return r && 'ageMs' in r ? r.ageMs - (jumpWindowMs > 0 ? this.jumpAllowance(r.mtimeMs, jumpWindowMs) : 0) : null;
  }

  /**
   * Age and content (at most 64 KiB) of a small regular file (a heartbeat) with one open; null when it is
   * gone or not a regular file; `{ unsettled }` when the name kept leading to a file that another mount
   * had just replaced (see inspect): the file is being rewritten, its age is not known this time.
   * `patience` 'always' also looks again after pauses when the name was not found at all (default 'seen').
   */
  async readAged(path: string, patience: Patience = 'seen'): Promise<{ ageMs: number; mtimeMs: number; text: string } | Unsettled | null> {
    const r = await this.inspect(path, true, patience);
    if (r && 'unsettled' in r) return r;
    return r && 'ageMs' in r ? { ageMs: r.ageMs, mtimeMs: r.mtimeMs, text: r.text ?? '' } : null;
  }

  /** readAged that says why an entry was not read: `{ bad: "is a FIFO, not a regular file" }`. */
  async readAgedChecked(path: string): Promise<{ ageMs: number; text: string } | { bad: string } | Unsettled | null> {
    const r = await this.inspect(path, true, 'seen');
    if (r === null || 'bad' in r || 'unsettled' in r) return r;
    return { ageMs: r.ageMs, text: r.text ?? '' };
  }

  private async inspect(path: string, withText: boolean, patience: Patience = 'none'): Promise<Inspected> {
    // ENOENT/ESTALE from open, or from fstat/read of the handle (another machine replaced or removed the
    // file meanwhile; with patience, EIO from the handle too, see below): look the name up again at once
    // (NFS rule 9); null only when the name is really gone.
    // With patience (heartbeats, which another machine renames over every beat), once a look found the
    // name leading to a file ('seen') or from the first look ('always'), look again after pauses that
    // outlast a FUSE client's entry cache, and answer `unsettled`, never null, when no look read a file the
    // name was seen leading to (see the header: on GlusterFS both errors come and go while a name is replaced).
    let quick = 0;
    let paused = 0;
    let sawFile = false;
    const again = async (): Promise<boolean> => {
      if (patience === 'always' || (patience === 'seen' && sawFile)) {
        if (paused >= REPLACED_PAUSES_MS.length) return false;
        const ms = REPLACED_PAUSES_MS[paused++]!;
        if (ms > 0) await new Promise((r) => setTimeout(r, ms));
        return true;
      }
      return quick++ < 2;
    };
    const goneAnswer = (err: unknown): Inspected =>
      patience !== 'none' && sawFile ? { unsettled: `${path}: the name keeps leading to a file that was replaced or removed (${errnoOf(err) ?? 'gone'})` } : null;
    for (;;) {
      let fh;
      try {
        fh = await open(path, O_READ_SAFE);
      } catch (err) {
        if (isGone(err)) { if (await again()) continue; return goneAnswer(err); }
        const code = errnoOf(err);
        if (code === 'ELOOP' || code === 'EMLINK') return { bad: 'is a symbolic link, not a regular file' };
        if (code === 'ENXIO' || code === 'ENODEV') return { bad: 'is a FIFO or a socket, not a regular file' };
        throw err;
      }
      let st: fss.Stats;
      let text: string | undefined;
      try {
        st = await fh.stat();
        if (!st.isFile() && !(st.isDirectory() && !withText)) return { bad: `${describeKind(kindOfStats(st))}, not a regular file` };
        if (withText) {
          const buf = Buffer.alloc(Math.min(st.size, MAX_AGED_TEXT));
          const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
          text = buf.toString('utf8', 0, bytesRead);
        }
      } catch (err) {
        // EIO from the handle, with patience: GlusterFS's distributed volume answers it for a file another
        // machine has just renamed over (seen by a recoverer judging heartbeats in the CI dry run). A mount
        // that is failing fails the next open too, which is thrown as it comes.
        if (!isGone(err) && !(patience !== 'none' && errnoOf(err) === 'EIO')) throw err;
        sawFile = true;
        if (await again()) continue;
        return goneAnswer(err);
      } finally {
        await fh.close().catch(() => undefined);
      }
      // "Server now" is read after the file: a probe error is the probe's, never taken for this file's.
      return { ageMs: (await this.now()) - st.mtimeMs, mtimeMs: st.mtimeMs, text };
    }
  }

  /**
   * Close the probe and remove it — only if the name still is our probe (same inode as our descriptor):
   * a co-user may have renamed something else over it, and that is not ours to delete.
   */
  private closeProbe(unlinkIt: boolean): void {
    const fd = this.fd;
    const path = this.probePath;
    this.fd = null;
    this.probePath = null;
    if (fd === null) return;
    try {
      if (unlinkIt && path !== null) {
        const mine = fss.fstatSync(fd);
        const there = fss.lstatSync(path);
        if (mine.ino === there.ino && mine.dev === there.dev) fss.unlinkSync(path);
      }
    } catch { /* gone already, or not removable: a leftover for housekeeping */ }
    try { fss.closeSync(fd); } catch { /* closing a probe: nothing to report */ }
  }

  disposeSync(): void {
    this.closeProbe(true);
  }

  async dispose(): Promise<void> {
    this.closeProbe(true);
  }
}
