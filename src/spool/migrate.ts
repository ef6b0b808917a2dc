/**
 * `zcq migrate`: convert a format-1 spool to format 2 in place (see docs/migrate.md and SPEC-format2).
 *
 * Every job changes place by ONE rename(2), checked first with lstat(2) so that nothing is ever renamed
 * over an existing name; a file is therefore always in exactly one place, and a migration killed at any
 * instant (kill -9, power cut) is finished by running it again. The marker says how far it got:
 *
 *   phase 0   (marker still format 1) strays — anything in a state folder that is neither a dot-name nor
 *             a job file name, and any folder where format 1 keeps only files — go to quarantine/. After
 *             this, a folder at the top of pending/, done/ or failed/ can only be a format-2 queue folder,
 *             which is what lets a rerun tell the two formats apart.
 *   step 1    marker {"format":2,"migrating":true,...}: no format-1 zcq opens the spool any more, and a
 *             format-2 zcq refuses it until migration ends.
 *   step 2    move every job to its format-2 name, state by state (pending, deferred, done, failed,
 *             claimed); fsync each touched folder once at the end of each state.
 *   step 3    remove emptied format-1 buckets, add hold/ and paused/, marker {"format":2,...}.
 *
 * Files that are not jobs (not JSON, bad queue, symlink, FIFO, folder, bad name, over 1 MiB) go to
 * quarantine/NAME with a one-line NAME.reason; nothing is deleted. A dry run plans the same moves and
 * writes nothing (except the clock probe needed to judge leases, a file in tmp/ removed at once).
 */
import * as fs from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { errnoOf, isGone, NotASpoolError, ZcqError } from '../errors.js';
import { fsyncDirSync, readRegularFileSync } from './fsops.js';
import { ServerClock } from './server-clock.js';

const MARKER = 'zcq-spool.json';
const MAX_JOB_BYTES = 1 << 20;
const STATES = ['pending', 'deferred', 'done', 'failed', 'claimed'] as const;
type State = (typeof STATES)[number];

// Format-2 name rules, exactly as in SPEC-format2 (kept private here: the lead owns layout.ts).
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/;
const BUCKET = /^\d{8}T\d{4}$/;
const DEFERRED_V1 = /^(\d{13})\.(.+)\.json$/;
/** The claim counter migrated jobs get in their lease folder (format 2: claimed/LEASE/SEQ.ID.json). */
const MIGRATED_SEQ = '0';
const DEFAULT_LEASE_MS = 30_000; // format 1's default, for a heartbeat that does not say
const DEFAULT_DIR_MODE = 0o775; // format 1 had no modes: group-writable folders, set regardless of umask
const DEFAULT_FILE_MODE = 0o664;

/** The UTC minute of a due time, `YYYYMMDDTHHMM` (format 2's BUCKET). */
function bucketV2(dueMs: number): string {
  const d = new Date(dueMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}
/** Format 2's deferred name: 15-digit zero-padded epoch ms, then the id. */
function deferredNameV2(dueMs: number, id: string): string {
  return `${String(dueMs).padStart(15, '0')}.${id}.json`;
}
function idOfName(name: string): string | null {
  if (!name.endsWith('.json')) return null;
  const id = name.slice(0, -5);
  return JOB_ID.test(id) ? id : null;
}

export interface MigrateMove {
  /** Paths relative to the spool root. */
  from: string;
  to: string;
  why: string;
  state: State;
}
export interface MigrateQuarantine {
  from: string;
  /** quarantine/NAME; the reason is in quarantine/NAME.reason. */
  to: string;
  reason: string;
}
export interface LeaseJudgement {
  lease: string;
  /** Age of its heartbeat (or, without one, of its folder) by the file server's clock; null when neither exists. */
  ageMs: number | null;
  leaseMs: number;
  live: boolean;
}
export interface MigrateReport {
  dir: string;
  dryRun: boolean;
  /** The marker's format when this run started: 1, or 2 (a spool already converted or being converted). */
  startFormat: 1 | 2;
  /** True when the marker said "migrating": an interrupted run was finished. */
  resumed: boolean;
  /** True when the spool was already format 2 and nothing was to be done. */
  alreadyFormat2: boolean;
  moves: MigrateMove[];
  quarantined: MigrateQuarantine[];
  /** Folders created (relative), and emptied format-1 folders removed. */
  created: string[];
  removed: string[];
  /** Leases found; with `force`, live ones were migrated anyway. */
  leases: LeaseJudgement[];
  counts: { moved: number; quarantined: number; byState: Record<State, number>; created: number; removed: number };
}

export type MigrateLog = (event: string, fields: Record<string, unknown>) => void;
export interface MigrateOptions { dryRun?: boolean; force?: boolean; log?: MigrateLog }

/**
 * Why migrate refused (exit 2): ZCQ_MIGRATE_FORMAT (the marker is not format 1 or 2), ZCQ_MIGRATE_LIVE_LEASE
 * (a format-1 lease is live), ZCQ_MIGRATE_LAYOUT (a file stands where a format-2 folder must be).
 */
export class MigrateError extends ZcqError {
  constructor(code: 'ZCQ_MIGRATE_FORMAT' | 'ZCQ_MIGRATE_LIVE_LEASE' | 'ZCQ_MIGRATE_LAYOUT', message: string) { super(code, message, 2); }
}

type Marker = Record<string, unknown>;

export async function migrate(dir: string, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const root = resolve(dir);
  const marker = readMarker(root);
  const format = marker.format;
  const report: MigrateReport = {
    dir: root, dryRun: Boolean(opts.dryRun), startFormat: format === 1 ? 1 : 2, resumed: format === 2 && marker.migrating === true,
    alreadyFormat2: false, moves: [], quarantined: [], created: [], removed: [], leases: [],
    counts: { moved: 0, quarantined: 0, byState: { pending: 0, deferred: 0, done: 0, failed: 0, claimed: 0 }, created: 0, removed: 0 },
  };
  if (format !== 1 && format !== 2) {
    throw new MigrateError('ZCQ_MIGRATE_FORMAT', `${root}: ${MARKER} has format ${JSON.stringify(format)}; zcq migrate converts format 1 to format 2`);
  }
  if (format === 2 && marker.migrating !== true) {
    report.alreadyFormat2 = true;
    opts.log?.('migrate.noop', { dir: root, why: 'already format 2' });
    return report;
  }

  report.leases = await judgeLeases(root);
  const live = report.leases.filter((l) => l.live);
  if (live.length > 0) {
    const l = live[0]!;
    const what = `lease ${l.lease} is live (heartbeat ${Math.round((l.ageMs ?? 0) / 1000)} s old, lease ${l.leaseMs / 1000} s)${live.length > 1 ? ` and ${live.length - 1} more` : ''}`;
    if (!opts.force) throw new MigrateError('ZCQ_MIGRATE_LIVE_LEASE', `${root}: ${what}; stop every format-1 zcq first, or use --force if they are gone`);
    opts.log?.('migrate.forced', { dir: root, live: live.map((x) => x.lease) });
  }

  // Refuse before writing anything when a file stands where a format-2 folder must be.
  for (const d of ['tmp', 'quarantine', 'hold', 'paused', ...STATES]) {
    const st = lstatOrNull(join(root, d));
    if (st && !st.isDirectory()) throw new MigrateError('ZCQ_MIGRATE_LAYOUT', `${join(root, d)}: not a folder; move it away and run zcq migrate again`);
  }
  const m = new Migration(root, marker, report, opts);
  m.removeOwnLeftovers();
  if (format === 1) m.quarantineStrays();
  if (!report.resumed) m.writeMarker(true);
  m.movePending('pending');
  m.moveDeferred();
  m.movePending('done');
  m.movePending('failed');
  m.moveClaimed();
  m.finish();
  return report;
}

/** The marker, read without following a symlink and at most 1 MiB. */
function readMarker(root: string): Marker {
  let r: ReturnType<typeof readRegularFileSync>;
  try {
    r = readRegularFileSync(join(root, MARKER), MAX_JOB_BYTES);
  } catch (err) {
    if (isGone(err)) throw new NotASpoolError(root, `no ${MARKER}`);
    if (errnoOf(err) === 'ENOTDIR') throw new NotASpoolError(root, 'it is a file');
    throw err;
  }
  if ('bad' in r) throw new MigrateError('ZCQ_MIGRATE_FORMAT', `${root}: ${MARKER} ${r.bad}`);
  let v: unknown;
  try { v = JSON.parse(r.text); } catch { throw new MigrateError('ZCQ_MIGRATE_FORMAT', `${root}: ${MARKER} is not valid JSON`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MigrateError('ZCQ_MIGRATE_FORMAT', `${root}: ${MARKER} is not a JSON object`);
  return v as Marker;
}

/**
 * Every lease (a folder in claimed/, or a heartbeat in workers/) with its age by the file server's clock:
 * a probe written in tmp/ gives "server now", compared only with mtimes the same server stamped.
 */
async function judgeLeases(root: string): Promise<LeaseJudgement[]> {
  const ids = new Set<string>();
  for (const n of list(join(root, 'claimed'))) if (!n.startsWith('.') && lstatOrNull(join(root, 'claimed', n))?.isDirectory()) ids.add(n);
  for (const n of list(join(root, 'workers'))) if (!n.startsWith('.') && n.endsWith('.json')) ids.add(n.slice(0, -5));
  if (ids.size === 0) return [];
  const clock = new ServerClock(join(root, 'tmp'), `migrate-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    await clock.sample();
    const out: LeaseJudgement[] = [];
    for (const lease of [...ids].sort()) {
      const hb = fstatNoFollow(join(root, 'workers', `${lease}.json`), true);
      let leaseMs = DEFAULT_LEASE_MS;
      try {
        const v = JSON.parse(hb?.text ?? '');
        if (Number.isInteger(v.leaseMs) && v.leaseMs >= 1000 && v.leaseMs <= 86_400_000) leaseMs = v.leaseMs;
      } catch { /* no heartbeat, or torn: the default */ }
      const mtime = hb?.isFile ? hb.mtimeMs : fstatNoFollow(join(root, 'claimed', lease), false)?.mtimeMs;
      const ageMs = mtime === undefined ? null : clock.nowCached() - mtime;
      out.push({ lease, ageMs: ageMs === null ? null : Math.round(ageMs), leaseMs, live: ageMs !== null && ageMs <= leaseMs });
    }
    return out;
  } finally {
    await clock.dispose();
  }
}

/** Fresh metadata (open + fstat, never following a symlink nor blocking on a FIFO); text of a small file. */
function fstatNoFollow(path: string, withText: boolean): { mtimeMs: number; isFile: boolean; text?: string } | null {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    let text: string | undefined;
    if (withText && st.isFile() && st.size <= 65_536) {
      const buf = Buffer.alloc(st.size);
      const n = fs.readSync(fd, buf, 0, st.size, 0);
      text = buf.toString('utf8', 0, n);
    }
    return { mtimeMs: st.mtimeMs, isFile: st.isFile(), text };
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function list(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return [];
    throw err;
  }
}

function lstatOrNull(path: string): fs.Stats | null {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return null;
    throw err;
  }
}

type JobRead = { ok: true; obj: Record<string, unknown>; queue: string } | { ok: false; reason: string } | null;

/**
 * Read a job file for migration: never follows a symlink, never opens anything but a regular file (a
 * FIFO or device is refused from lstat, and the open is O_NOFOLLOW|O_NONBLOCK with fstat), at most 1 MiB.
 * Checks only what migration needs (a JSON object, its id, its queue); the format-2 worker checks the rest
 * when it takes the job. null when the file is gone.
 */
function readJob(path: string, id: string): JobRead {
  const st = lstatOrNull(path);
  if (st === null) return null;
  if (st.isSymbolicLink()) return { ok: false, reason: 'is a symbolic link' };
  if (st.isDirectory()) return { ok: false, reason: 'is a folder, not a job file' };
  if (!st.isFile()) return { ok: false, reason: `is not a regular file (${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device'})` };
  let r: ReturnType<typeof readRegularFileSync>;
  try {
    r = readRegularFileSync(path, MAX_JOB_BYTES);
  } catch (err) {
    if (isGone(err)) return null;
    return { ok: false, reason: `unreadable (${errnoOf(err) ?? (err as Error).message})` };
  }
  if ('bad' in r) return { ok: false, reason: r.bad };
  let v: unknown;
  try { v = JSON.parse(r.text); } catch (err) { return { ok: false, reason: `not valid JSON (${(err as Error).message})` }; }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  if (o.zcq !== undefined && o.zcq !== 1) return { ok: false, reason: `job format ${JSON.stringify(o.zcq)} is not 1` };
  if (o.id !== undefined && o.id !== id) return { ok: false, reason: `"id" is ${JSON.stringify(o.id)} but the file is named for ${JSON.stringify(id)}` };
  const queue = o.queue ?? 'default';
  if (typeof queue !== 'string' || !QUEUE_NAME.test(queue)) return { ok: false, reason: `"queue" ${JSON.stringify(queue).slice(0, 80)} is not a queue name ([A-Za-z0-9._-], at most 64 characters)` };
  return { ok: true, obj: o, queue };
}

/** The state of one run: what was planned or done, which folders were touched, the test hook. */
class Migration {
  private readonly dry: boolean;
  private readonly dirMode: number;
  private readonly fileMode: number;
  /** Sources moved away (or planned to be, in a dry run): a listing taken earlier skips them. */
  private readonly gone = new Set<string>();
  /** Targets taken (or planned): a dry run sees its own planned moves. */
  private readonly taken = new Set<string>();
  private readonly madeDirs = new Set<string>();
  private touched = new Set<string>();
  private renames = 0;
  private tmpSeq = 0;
  /**
   * TEST HOOK (crash-safety tests only): ZCQ_MIGRATE_KILL_AFTER=N makes this process SIGKILL itself right
   * after its Nth rename, so that a test can check that a rerun converges. Never set it in production.
   */
  private readonly killAfter: number;

  constructor(private readonly root: string, private readonly marker: Marker, private readonly report: MigrateReport, private readonly opts: MigrateOptions) {
    this.dry = Boolean(opts.dryRun);
    this.dirMode = modeOf(marker.dirMode, DEFAULT_DIR_MODE);
    this.fileMode = modeOf(marker.fileMode, DEFAULT_FILE_MODE);
    const k = Number(process.env.ZCQ_MIGRATE_KILL_AFTER);
    this.killAfter = Number.isInteger(k) && k > 0 ? k : 0;
  }

  private rel(p: string): string { return relative(this.root, p); }
  private log(event: string, fields: Record<string, unknown>): void { this.opts.log?.(event, fields); }

  private rename(from: string, to: string): void {
    fs.renameSync(from, to);
    this.renames++;
    if (this.killAfter > 0 && this.renames === this.killAfter) process.kill(process.pid, 'SIGKILL');
  }

  /** Write `text` to a new file in tmp/ (O_EXCL|O_NOFOLLOW), fsync, close; returns its path. */
  private writeTemp(label: string, text: string): string {
    const tmpDir = join(this.root, 'tmp');
    if (!this.ensureDir(tmpDir)) throw new MigrateError('ZCQ_MIGRATE_LAYOUT', `${tmpDir}: not a folder; move it away and run zcq migrate again`);
    for (;;) {
      const p = join(tmpDir, `.zcq-migrate-${label}-${process.pid}-${++this.tmpSeq}-${Math.random().toString(36).slice(2, 8)}`);
      let fd: number;
      try {
        fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, this.fileMode);
      } catch (err) {
        if (errnoOf(err) === 'EEXIST') continue;
        throw err;
      }
      try {
        fs.writeFileSync(fd, text);
        fs.fchmodSync(fd, this.fileMode);
        fs.fsyncSync(fd);
      } catch (err) {
        try { fs.closeSync(fd); } catch { /* already failing */ }
        try { fs.unlinkSync(p); } catch { /* gone */ }
        throw err;
      }
      fs.closeSync(fd); // a write error reported at close (NFS) throws here
      return p;
    }
  }

  /**
   * Temporaries an earlier, killed run left in tmp/ (a reason or marker written but not yet renamed): they
   * are only ever written by migrate, and two migrations of one spool at once are not supported.
   */
  removeOwnLeftovers(): void {
    if (this.dry) return;
    const tmpDir = join(this.root, 'tmp');
    for (const n of list(tmpDir)) {
      if (n.startsWith('.zcq-migrate-')) { try { fs.unlinkSync(join(tmpDir, n)); } catch { /* gone */ } }
    }
  }

  /** Marker: write in tmp/, fsync, rename over the marker, fsync the root. */
  writeMarker(migrating: boolean): void {
    const { format: _f, migrating: _m, created, group, dirMode, fileMode, ...rest } = this.marker;
    const next = {
      format: 2, ...(migrating ? { migrating: true } : {}),
      created: created ?? new Date().toISOString(), group: group ?? null,
      dirMode: dirMode ?? this.dirMode.toString(8).padStart(4, '0'), fileMode: fileMode ?? this.fileMode.toString(8).padStart(4, '0'),
      ...rest,
    };
    this.log('migrate.marker', { migrating });
    if (this.dry) return;
    const tmp = this.writeTemp('marker', JSON.stringify(next) + '\n');
    this.rename(tmp, join(this.root, MARKER));
    fsyncDirSync(this.root);
  }

  /** Make a folder with the spool's mode (chmod after mkdir: umask and setgid are not left to chance). False when something else is in the way. */
  private ensureDir(path: string): boolean {
    if (this.madeDirs.has(path)) return true;
    const st = lstatOrNull(path);
    if (st) {
      if (!st.isDirectory()) return false;
      this.madeDirs.add(path);
      return true;
    }
    const parent = dirname(path);
    if (parent !== this.root && path !== this.root && !this.ensureDir(parent)) return false;
    if (!this.dry) {
      try {
        fs.mkdirSync(path, { mode: this.dirMode });
        fs.chmodSync(path, this.dirMode);
      } catch (err) {
        const c = errnoOf(err);
        if (c === 'ENOTDIR') return false;
        if (c !== 'EEXIST') throw err;
        if (!lstatOrNull(path)?.isDirectory()) return false;
      }
      this.touched.add(dirname(path));
    }
    this.madeDirs.add(path);
    this.report.created.push(this.rel(path));
    this.report.counts.created++;
    this.log('migrate.mkdir', { dir: this.rel(path) });
    return true;
  }

  /** Whether a name is free: lstat (so a dangling symlink counts as taken) plus this run's planned targets. */
  private free(path: string): boolean {
    return !this.taken.has(path) && (this.gone.has(path) || lstatOrNull(path) === null);
  }

  /** One job's move: ONE rename, never over an existing name; a taken target quarantines the source. */
  private move(state: State, from: string, to: string, why: string): void {
    if (!this.ensureDir(dirname(to))) {
      this.quarantine(from, `cannot move to ${this.rel(to)}: ${this.rel(dirname(to))} is not a folder`);
      return;
    }
    if (!this.free(to)) {
      this.quarantine(from, `${this.rel(to)} already exists and is kept (a format-2 name wins; a second copy of one job comes from a retried move, or from a job format 1 had in two folders)`);
      return;
    }
    if (!this.dry) {
      try {
        this.rename(from, to);
      } catch (err) {
        if (isGone(err) && lstatOrNull(from) === null) return; // gone meanwhile: nothing to move
        throw err;
      }
      this.touched.add(dirname(from));
      this.touched.add(dirname(to));
    }
    this.gone.add(from);
    this.taken.add(to);
    const mv: MigrateMove = { from: this.rel(from), to: this.rel(to), why, state };
    this.report.moves.push(mv);
    this.report.counts.moved++;
    this.report.counts.byState[state]++;
    this.log('migrate.move', { ...mv });
  }

  /**
   * quarantine/NAME and NAME.reason. The reason is published first (tmp/ then rename), the file second, so a
   * kill between leaves the file in place with an orphan reason, and the rerun picks the same NAME again
   * (the first NAME not taken by a file) and replaces that reason: the result is the same as one clean run.
   */
  private quarantine(from: string, reason: string): void {
    const qdir = join(this.root, 'quarantine');
    const base = from.slice(from.lastIndexOf('/') + 1).replace(/^\.+/, '') || 'unnamed';
    let to = join(qdir, base);
    for (let i = 1; !this.free(to) || this.taken.has(`${to}.reason`); i++) to = join(qdir, `${base}.${i}`);
    const line = `${reason} (was ${this.rel(from)})`.replace(/[\r\n]+/g, ' ');
    if (!this.dry) {
      if (!this.ensureDir(qdir)) throw new MigrateError('ZCQ_MIGRATE_LAYOUT', `${qdir}: not a folder; move it away and run zcq migrate again`);
      const tmp = this.writeTemp('reason', `${new Date().toISOString()} ${line}\n`);
      this.rename(tmp, `${to}.reason`);
      try {
        this.rename(from, to);
      } catch (err) {
        if (isGone(err) && lstatOrNull(from) === null) { try { fs.unlinkSync(`${to}.reason`); } catch { /* gone */ } return; }
        throw err;
      }
      this.touched.add(dirname(from));
      this.touched.add(qdir);
    }
    this.gone.add(from);
    this.taken.add(to);
    this.taken.add(`${to}.reason`);
    const q: MigrateQuarantine = { from: this.rel(from), to: this.rel(to), reason };
    this.report.quarantined.push(q);
    this.report.counts.quarantined++;
    this.log('migrate.quarantine', { ...q });
  }

  /** fsync every folder this state's moves touched, once. */
  private syncTouched(): void {
    if (!this.dry) {
      for (const d of this.touched) {
        try { fsyncDirSync(d); } catch (err) { if (!isGone(err)) throw err; } // a nested .dead folder removed since
      }
    }
    this.touched = new Set();
  }

  /** Entries of a folder still there for this run: not dot-names, not moved away already. */
  private entries(dir: string): { name: string; path: string; st: fs.Stats }[] {
    const out: { name: string; path: string; st: fs.Stats }[] = [];
    for (const name of list(dir)) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      if (this.gone.has(path)) continue;
      const st = lstatOrNull(path);
      if (st) out.push({ name, path, st });
    }
    return out;
  }

  /**
   * Phase 0, while the marker still says format 1: whatever format 1 would not hold in a state folder goes
   * to quarantine. Afterwards a folder at the top of pending/, done/, failed/ (or a non-bucket folder at the
   * top of deferred/) is a format-2 queue folder, and a rerun never mistakes one for the other.
   */
  quarantineStrays(): void {
    for (const state of ['pending', 'done', 'failed'] as const) {
      for (const e of this.entries(join(this.root, state))) {
        if (e.st.isDirectory()) this.quarantine(e.path, `a folder in ${state}/, where format 1 keeps only job files`);
        else if (idOfName(e.name) === null) this.quarantine(e.path, `not a job file name (ID.json) in ${state}/`);
      }
    }
    for (const e of this.entries(join(this.root, 'deferred'))) {
      if (!e.st.isDirectory() || !BUCKET.test(e.name)) { this.quarantine(e.path, 'not a deferred bucket (YYYYMMDDTHHMM folder)'); continue; }
      for (const f of this.entries(e.path)) {
        if (f.st.isDirectory()) this.quarantine(f.path, 'a folder in a deferred bucket, where format 1 keeps only job files');
        else if (!parseDeferredV1(f.name)) this.quarantine(f.path, 'not a deferred job file name (13-digit DUEMS.ID.json)');
      }
    }
    for (const e of this.entries(join(this.root, 'claimed'))) {
      if (!e.st.isDirectory()) { this.quarantine(e.path, 'a file directly in claimed/ (only lease folders belong there)'); continue; }
      this.strayLeaseEntries(e.path);
    }
    this.syncTouched();
  }

  private strayLeaseEntries(dir: string): void {
    for (const f of this.entries(dir)) {
      if (f.st.isDirectory()) {
        if (f.name.endsWith('.dead')) this.strayLeaseEntries(f.path);
        else this.quarantine(f.path, 'a folder in a lease folder that is not a dead lease (LEASE.dead)');
      } else if (idOfName(f.name) === null) {
        this.quarantine(f.path, 'not a job file name (ID.json) in a lease folder');
      }
    }
  }

  /** pending/ID.json -> pending/QUEUE/ID.json (and the same for done/ and failed/). Folders are queues. */
  movePending(state: 'pending' | 'done' | 'failed'): void {
    const dir = join(this.root, state);
    for (const e of this.entries(dir)) {
      if (e.st.isDirectory()) continue; // a format-2 queue folder (phase 0 removed every other folder)
      const id = idOfName(e.name);
      if (id === null) { this.quarantine(e.path, `not a job file name (ID.json) in ${state}/`); continue; }
      const job = readJob(e.path, id);
      if (job === null) continue;
      if (!job.ok) { this.quarantine(e.path, job.reason); continue; }
      this.move(state, e.path, join(dir, job.queue, e.name), `queue ${job.queue}`);
    }
    this.syncTouched();
  }

  /** deferred/BUCKET/DUEMS13.ID.json -> deferred/QUEUE/BUCKET/DUEMS15.ID.json. */
  moveDeferred(): void {
    const dir = join(this.root, 'deferred');
    for (const e of this.entries(dir)) {
      if (!e.st.isDirectory()) { this.quarantine(e.path, 'not a deferred bucket (YYYYMMDDTHHMM folder)'); continue; }
      if (!BUCKET.test(e.name)) continue; // a format-2 queue folder
      // A format-1 bucket (or a format-2 queue whose name looks like one: its entries are bucket folders).
      for (const f of this.entries(e.path)) {
        if (f.st.isDirectory()) {
          if (!BUCKET.test(f.name)) this.quarantine(f.path, 'a folder in a deferred bucket, where format 1 keeps only job files');
          continue;
        }
        const p = parseDeferredV1(f.name);
        if (!p) { this.quarantine(f.path, 'not a deferred job file name (13-digit DUEMS.ID.json)'); continue; }
        const job = readJob(f.path, p.id);
        if (job === null) continue;
        if (!job.ok) { this.quarantine(f.path, job.reason); continue; }
        const to = join(dir, job.queue, bucketV2(p.dueMs), deferredNameV2(p.dueMs, p.id));
        this.move('deferred', f.path, to, `queue ${job.queue}, due ${new Date(p.dueMs).toISOString()}`);
      }
    }
    this.syncTouched();
  }

  /**
   * claimed/LEASE/ID.json (and LEASE/OTHER.dead/.../ID.json, flattened): a job whose holder wrote its final
   * record ("finished", last history entry by that holder) goes to done/ or failed/ (format 1's rule);
   * any other to claimed/LEASE/0.ID.json, for format-2 recovery to settle by its interrupt policy.
   */
  moveClaimed(): void {
    for (const e of this.entries(join(this.root, 'claimed'))) {
      if (!e.st.isDirectory()) { this.quarantine(e.path, 'a file directly in claimed/ (only lease folders belong there)'); continue; }
      this.settleLease(e.path, e.name, e.path);
    }
    this.syncTouched();
  }

  private settleLease(dir: string, holder: string, leaseDir: string): void {
    for (const f of this.entries(dir)) {
      if (f.st.isDirectory()) {
        if (!f.name.endsWith('.dead')) { this.quarantine(f.path, 'a folder in a lease folder that is not a dead lease (LEASE.dead)'); continue; }
        this.settleLease(f.path, f.name.slice(0, -5), leaseDir);
        this.removeIfEmpty(f.path);
        continue;
      }
      if (dir === leaseDir && f.st.isFile() && this.isMigratedClaim(f.path, f.name)) continue;
      const id = idOfName(f.name);
      if (id === null) { this.quarantine(f.path, 'not a job file name (ID.json) in a lease folder'); continue; }
      const job = readJob(f.path, id);
      if (job === null) continue;
      if (!job.ok) { this.quarantine(f.path, `${job.reason} (found in the lease of dead worker ${holder})`); continue; }
      const o = job.obj;
      const last = Array.isArray(o.history) ? (o.history[o.history.length - 1] as { worker?: unknown } | undefined) : undefined;
      if (o.finished && typeof last === 'object' && last !== null && last.worker === holder) {
        const to = o.failure ? 'failed' : 'done';
        this.move('claimed', f.path, join(this.root, to, job.queue, f.name), `final record written by ${holder}, which died before the move`);
      } else {
        this.move('claimed', f.path, join(leaseDir, `${MIGRATED_SEQ}.${id}.json`), `held by dead lease ${holder}: format-2 recovery settles it`);
      }
    }
  }

  /**
   * Whether claimed/LEASE/0.X.json is this migration's own output (format 2's SEQ.ID.json) rather than a
   * format-1 job whose id is "0.X": the file's "id" field tells (X, or 0.X). A file without an id field is
   * format 1 on a run that started from format 1 (no format-2 name existed yet), else taken as migrated.
   */
  private isMigratedClaim(path: string, name: string): boolean {
    const m = /^0\.(.+)\.json$/.exec(name);
    if (!m || !JOB_ID.test(m[1]!)) return false;
    let r: ReturnType<typeof readRegularFileSync>;
    try { r = readRegularFileSync(path, MAX_JOB_BYTES); } catch { return false; }
    if ('bad' in r) return false;
    let id: unknown;
    try { id = (JSON.parse(r.text) as Record<string, unknown>)?.id; } catch { return false; }
    if (id === m[1]) return true;
    if (id === undefined) return this.report.startFormat === 2;
    return false;
  }

  private removeIfEmpty(dir: string): void {
    if (this.dry) {
      // Empty once the planned moves are done: no entry left, and no folder planned inside it.
      const planned = [...this.madeDirs].some((d) => d.startsWith(dir + '/'));
      if (!planned && this.entries(dir).length === 0 && list(dir).every((n) => !n.startsWith('.'))) this.noteRemoved(dir);
      return;
    }
    try {
      fs.rmdirSync(dir);
      this.touched.add(dirname(dir));
      this.noteRemoved(dir);
    } catch (err) {
      const c = errnoOf(err);
      if (c !== 'ENOTEMPTY' && c !== 'EEXIST' && !isGone(err)) throw err;
    }
  }

  private noteRemoved(dir: string): void {
    this.report.removed.push(this.rel(dir));
    this.report.counts.removed++;
    this.log('migrate.rmdir', { dir: this.rel(dir) });
  }

  /** Step 3: remove emptied format-1 buckets, add hold/ and paused/, write the format-2 marker. */
  finish(): void {
    const deferred = join(this.root, 'deferred');
    for (const name of list(deferred)) {
      if (BUCKET.test(name) && lstatOrNull(join(deferred, name))?.isDirectory()) this.removeIfEmpty(join(deferred, name));
    }
    for (const d of ['hold', 'paused', 'quarantine', 'tmp']) {
      if (!this.ensureDir(join(this.root, d))) throw new MigrateError('ZCQ_MIGRATE_LAYOUT', `${join(this.root, d)}: not a folder; move it away and run zcq migrate again`);
    }
    this.syncTouched();
    this.writeMarker(false);
    this.log('migrate.done', { dir: this.root, moved: this.report.counts.moved, quarantined: this.report.counts.quarantined });
  }
}

function parseDeferredV1(name: string): { dueMs: number; id: string } | null {
  const m = DEFERRED_V1.exec(name);
  if (!m || !JOB_ID.test(m[2]!)) return null;
  return { dueMs: Number(m[1]), id: m[2]! };
}

function modeOf(v: unknown, dflt: number): number {
  return typeof v === 'string' && /^[0-7]{3,4}$/.test(v) ? parseInt(v, 8) : dflt;
}
