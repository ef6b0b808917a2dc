/**
 * The spool's modes: who may read and write what zcq creates. The marker zcq-spool.json says it:
 *   private spool (default):       {"group": null,   "dirMode": "0755", "fileMode": "0644"}
 *   shared, `zcq init --group G`:  {"group": "G",    "dirMode": "2775", "fileMode": "0664"}
 * A shared spool's folders are setgid (the 2 in 2775), so every entry made inside gets the spool's group
 * whoever creates it; group write on folders lets every member rename jobs between states.
 *
 * Invariant: whatever the creating process's umask (077 for a cautious user, 022 by default), everything
 * zcq creates gets exactly the spool's modes. A file's or folder's mode at creation is `mode & ~umask`,
 * so when the umask would strip bits (computed once per process, fsops.processUmask), the fresh entry is
 * chmod-ed explicitly — through a descriptor opened O_NOFOLLOW and fstat-checked, never through a name a
 * co-user could have swapped for a symlink to one of our own files in between.
 * (Linux mkdir(2) also ignores the setgid bit of its mode argument; new folders inherit it from a setgid
 * parent, and the explicit fchmod covers the rest.)
 */
import * as fss from 'node:fs';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { COMPOSITE, MKDIR_LOCK_WAIT_MS } from '../defaults.js';
import { ZcqError, errnoOf, isGone } from '../errors.js';
import { describeKind, isRealDir, kindOfStats, pauseSync, processUmask, unlinkQuietly, type EntryKind } from './fsops.js';

export interface SpoolModes {
  /** The group every entry gets (chgrp at init, setgid folders after), or null for a private spool. */
  group: string | null;
  /** Folder mode, e.g. 0o2775 (shared) or 0o755 (private). */
  dirMode: number;
  /** File mode, e.g. 0o664 (shared) or 0o644 (private). */
  fileMode: number;
}

export const PRIVATE_MODES: Readonly<SpoolModes> = Object.freeze({ group: null, dirMode: 0o755, fileMode: 0o644 });

/** The modes `zcq init --group NAME` writes into the marker. */
export function sharedModes(group: string): SpoolModes {
  return { group, dirMode: 0o2775, fileMode: 0o664 };
}

/** The marker's fields for these modes: {"group", "dirMode": "2775", "fileMode": "0664"}. */
export function markerFields(modes: SpoolModes): { group: string | null; dirMode: string; fileMode: string } {
  return { group: modes.group, dirMode: octal(modes.dirMode), fileMode: octal(modes.fileMode) };
}

function octal(m: number): string {
  return m.toString(8).padStart(4, '0');
}

const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

function badMarker(where: string, why: string): ZcqError {
  return new ZcqError('ZCQ_BAD_MARKER', `${where}: ${why}; fix it or run 'zcq doctor --repair'`, 2);
}

function parseMode(v: unknown, field: string, where: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || !/^[0-7]{3,4}$/.test(v)) throw badMarker(where, `${field} ${JSON.stringify(v)} is not an octal mode like "2775"`);
  return parseInt(v, 8);
}

/**
 * The modes a marker declares. Accepts the marker's text or its parsed object; a format-1 marker (no mode
 * fields) is a private spool. Refuses modes zcq could not work with (the owner must be able to read and
 * write, folders must be searchable), and setuid or executable files: a one-line error naming the marker.
 */
export function modesFromMarker(marker: unknown, where = 'zcq-spool.json'): SpoolModes {
  let m: unknown = marker;
  if (typeof marker === 'string') {
    try { m = JSON.parse(marker); } catch { throw badMarker(where, 'is not valid JSON'); }
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw badMarker(where, 'is not a JSON object');
  const o = m as Record<string, unknown>;
  const group = o.group ?? null;
  if (group !== null && (typeof group !== 'string' || !GROUP_NAME.test(group))) throw badMarker(where, `group ${JSON.stringify(group)} is not a group name`);
  const shared = group !== null;
  const dirMode = parseMode(o.dirMode, 'dirMode', where, shared ? 0o2775 : PRIVATE_MODES.dirMode);
  const fileMode = parseMode(o.fileMode, 'fileMode', where, shared ? 0o664 : PRIVATE_MODES.fileMode);
  if ((dirMode & 0o700) !== 0o700) throw badMarker(where, `dirMode ${octal(dirMode)} must give the owner rwx`);
  if ((dirMode & 0o5000) !== 0) throw badMarker(where, `dirMode ${octal(dirMode)} must not set setuid or sticky (sticky folders stop recovery by another user)`);
  if ((fileMode & 0o600) !== 0o600) throw badMarker(where, `fileMode ${octal(fileMode)} must give the owner rw`);
  if ((fileMode & 0o7111) !== 0) throw badMarker(where, `fileMode ${octal(fileMode)} must not set execute, setuid, setgid or sticky bits`);
  return { group, dirMode, fileMode };
}

/** The mode for files zcq creates in this spool (pass as `mode` to createExclusive / writeReplace). */
export function fileModeFor(modes: SpoolModes): number {
  return modes.fileMode;
}

export function dirModeFor(modes: SpoolModes): number {
  return modes.dirMode;
}

/** Whether a fresh folder needs an explicit chmod: the umask strips bits, or setgid is wanted (mkdir ignores it). */
function dirNeedsChmod(mode: number): boolean {
  const perm = mode & 0o777;
  return (perm & ~processUmask()) !== perm || (mode & 0o7000) !== 0;
}

/**
 * chmod (and chgrp when `gid` is given) the entry at `path` through a descriptor: opened O_NOFOLLOW|O_NONBLOCK
 * (a symlink is refused, a FIFO does not block), fstat-checked to be a real folder (or regular file) owned
 * by us — so a co-user who swapped the name cannot make us chmod one of our own files elsewhere.
 */
function fchmodChecked(path: string, want: 'folder' | 'file', mode: number, gid: number | null): void {
  const flags = fss.constants.O_RDONLY | fss.constants.O_NOFOLLOW | fss.constants.O_NONBLOCK | (want === 'folder' ? fss.constants.O_DIRECTORY : 0);
  let fd: number;
  try {
    fd = fss.openSync(path, flags);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ELOOP' || code === 'EMLINK') throw new ZcqError('ZCQ_UNSAFE_FILE', `${path}: is a symbolic link; its mode was not changed`, 1);
    if (code === 'ENOTDIR') throw new ZcqError('ZCQ_UNSAFE_FILE', `${path}: is not a folder; its mode was not changed`, 1);
    throw err;
  }
  try {
    const st = fss.fstatSync(fd);
    const kind = kindOfStats(st);
    if (kind !== want) throw new ZcqError('ZCQ_UNSAFE_FILE', `${path}: ${describeKind(kind)}, not a ${want === 'folder' ? 'folder' : 'regular file'}; its mode was not changed`, 1);
    if (gid !== null && st.gid !== gid) fss.fchownSync(fd, -1, gid);
    if ((st.mode & 0o7777) !== mode || (gid !== null && st.gid !== gid)) fss.fchmodSync(fd, mode); // chown clears setgid: chmod after
  } finally {
    fss.closeSync(fd);
  }
}

/**
 * mkdir `path` with the spool's folder mode, whatever the umask. Returns true when it made the folder,
 * false when a real folder was there already (its mode is left alone: doctor reports it). Throws EEXIST
 * when something else is at `path` (a symlink, a file).
 *
 * Two machines must not mkdir one name at the same moment. On a GlusterFS replica volume that can give the
 * folder a different gfid on each brick: with cluster.favorite-child-policy the heal keeps one and moves the
 * other, with whatever a put had already renamed into it, to the brick's landfill — a put that succeeded
 * and whose job is gone (three machines putting into 40 new queues at once lost a job in 4 of 6 runs on a
 * loaded machine); without the policy the folder answers EIO for good (docs/nfs.md). An exclusive create
 * of one name is safe there (a race has one winner, the others get EEXIST), so the makers of `path` take
 * turns through a lock file beside it, `.mkdir.NAME` (a dot-name: every reader skips it). Whoever finds the
 * lock taken waits for the folder, up to MKDIR_LOCK_WAIT_MS; a lock held longer (its maker died between
 * create and unlink, or a co-user planted it) is removed and the folder made without it, and one that is
 * not a regular file (a planted FIFO or symlink: never opened, never followed) is removed at once.
 *
 * A folder another machine is making at the same moment may still answer "look again" for a while: on a
 * GlusterFS distributed volume mkdir then fails with ESTALE, or with EEXIST while a lookup still says
 * ENOENT or ESTALE (both seen: three machines putting into one new queue). Either is tried again, with
 * growing pauses, for up to COMPOSITE.staleLookupMs (synchronous pauses: it is rare and short).
 */
export function mkdirModeSync(path: string, modes: SpoolModes): boolean {
  const lock = join(dirname(path), `.mkdir.${basename(path)}`);
  let locked = takeMkdirLock(lock);
  // Two rounds: two makers that both removed a dead lock take turns again; a third at once is not waited for.
  for (let round = 0; locked === 'busy' && round < 2; round++) {
    if (madeByOtherMaker(lock, path)) return false;
    locked = takeMkdirLock(lock);
  }
  try {
    return mkdirRetryingSync(path, modes);
  } finally {
    if (locked === 'ours') unlinkQuietly(lock);
  }
}

/**
 * Create `lock` exclusively (never following a planted symlink, never opening what is there): 'ours', or
 * 'busy' when it exists (another maker has it). Any other error (a read-only or missing parent) is left to
 * the mkdir, which meets it too and names it: 'none'.
 */
function takeMkdirLock(lock: string): 'ours' | 'busy' | 'none' {
  try {
    fss.closeSync(fss.openSync(lock, fss.constants.O_WRONLY | fss.constants.O_CREAT | fss.constants.O_EXCL | fss.constants.O_NOFOLLOW, 0o600));
    return 'ours';
  } catch (err) {
    return errnoOf(err) === 'EEXIST' ? 'busy' : 'none';
  }
}

/**
 * `lock` was taken: wait up to MKDIR_LOCK_WAIT_MS for its maker's folder at `path` (true once it is there).
 * A lock held longer, or one that is not a regular file, is removed (false: make the folder).
 */
function madeByOtherMaker(lock: string, path: string): boolean {
  let kind: 'lock' | 'odd' | 'gone' = 'gone';
  try { kind = fss.lstatSync(lock).isFile() ? 'lock' : 'odd'; } catch { /* let go meanwhile */ }
  if (kind === 'gone') return isRealDir(path);
  if (kind === 'lock') {
    const until = Date.now() + MKDIR_LOCK_WAIT_MS;
    for (let pauseMs = 5; Date.now() < until; pauseMs = Math.min(pauseMs * 2, 100)) {
      pauseSync(pauseMs);
      if (isRealDir(path)) return true;
    }
  }
  unlinkQuietly(lock);
  return false;
}

function mkdirRetryingSync(path: string, modes: SpoolModes): boolean {
  const until = Date.now() + COMPOSITE.staleLookupMs;
  for (let pauseMs = 10; ; pauseMs = Math.min(pauseMs * 2, 200)) {
    try {
      fss.mkdirSync(path, modes.dirMode & 0o1777);
      break;
    } catch (err) {
      if (errnoOf(err) === 'ESTALE' && Date.now() < until) { pauseSync(pauseMs); continue; }
      if (errnoOf(err) !== 'EEXIST') throw err;
      let st: fss.Stats | null = null;
      let lookErr: unknown = null;
      try { st = fss.lstatSync(path); } catch (e) { lookErr = e; }
      if (st?.isDirectory()) return false;
      if (st === null && isGone(lookErr) && Date.now() < until) { pauseSync(pauseMs); continue; }
      throw Object.assign(new Error(`${path}: exists and ${st ? describeKind(kindOfStats(st)) : 'cannot be examined'}, not a folder`), { code: 'EEXIST', path });
    }
  }
  if (dirNeedsChmod(modes.dirMode)) fchmodChecked(path, 'folder', modes.dirMode, null);
  return true;
}

/**
 * mkdir -p below `base` (which must exist): every missing folder from `base` down to `path` gets the spool's
 * folder mode (a queue folder pending/Q, a bucket deferred/Q/B). An existing component that is a symlink
 * is refused (EEXIST with a message), never descended through. A component already there costs one lstat
 * (makeDir), not the makers' lock: the cron pass runs this every second, and on a network mount the lock's
 * create and unlink are two round trips that change the folder, per component.
 */
export async function mkdirModeRecursive(base: string, path: string, modes: SpoolModes): Promise<void> {
  const rel = relative(base, path);
  if (rel === '') return;
  if (rel.startsWith('..') || rel.startsWith(sep)) throw new TypeError(`mkdirModeRecursive: ${path} is not below ${base}`);
  let cur = base;
  for (const part of rel.split(sep)) {
    cur = join(cur, part);
    makeDir(modes, cur);
  }
}

/** Resolve a group name to its gid: /etc/group, else `getent group` (NSS: LDAP, sssd). Null when unknown. */
export function resolveGroup(name: string): number | null {
  if (!GROUP_NAME.test(name)) return null;
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch { /* no /etc/group: ask NSS */ }
  try {
    const out = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 });
    const gid = out.split(':')[2];
    if (gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  } catch { /* unknown group */ }
  return null;
}

function gidFor(modes: SpoolModes): number | null {
  if (modes.group === null) return null;
  const gid = resolveGroup(modes.group);
  if (gid === null) throw new ZcqError('ZCQ_NO_GROUP', `group '${modes.group}' (from zcq-spool.json) does not exist on this machine`, 2);
  return gid;
}

/**
 * Give the entry at `path` the spool's mode (and group), for `zcq init --group` on the root and
 * `zcq doctor --repair` on what checkModes found. Folders get dirMode, regular files fileMode; symlinks,
 * FIFOs and the like are refused (a one-line error naming the path), never followed. chgrp needs the
 * caller to be the owner and a member of the group (or root).
 */
export async function fixMode(path: string, modes: SpoolModes): Promise<void> {
  const st = await lstat(path);
  const kind = kindOfStats(st);
  if (kind !== 'folder' && kind !== 'file') throw new ZcqError('ZCQ_UNSAFE_FILE', `${path}: ${describeKind(kind)}; its mode was not changed (quarantine or remove it)`, 1);
  fchmodChecked(path, kind, kind === 'folder' ? modes.dirMode : modes.fileMode, gidFor(modes));
}

export interface ModeProblem {
  path: string;
  kind: EntryKind;
  /** What is wrong, one line: "mode 0700, want 2775", "group 0, want zcq (1001)", "is a symbolic link". */
  why: string;
}

/** State folders whose children are queue folders (format 2). */
const QUEUE_PARENTS = ['pending', 'deferred', 'done', 'failed', 'hold', 'waiting'];

/**
 * Entries of the spool whose mode or group differ from the spool's: the root, the folders right under
 * it, the queue folders under the state folders, and the marker. (Deeper folders are made by zcq with
 * mkdirModeSync, and job files by createExclusive with the spool's mode: checking a million job files would
 * cost a million round trips on NFS.) By lstat: a symlink where a folder should be is reported, not
 * followed. Unreadable folders are reported once and skipped.
 */
export async function checkModes(root: string, modes: SpoolModes): Promise<ModeProblem[]> {
  const out: ModeProblem[] = [];
  const gid = modes.group === null ? null : resolveGroup(modes.group);
  const check = async (path: string, expect: 'folder' | 'file'): Promise<boolean> => {
    let st: fss.Stats;
    try { st = await lstat(path); } catch (err) {
      if (isGone(err)) return false;
      out.push({ path, kind: 'unknown', why: `cannot be examined (${errnoOf(err) ?? (err as Error).message})` });
      return false;
    }
    const kind = kindOfStats(st);
    if (kind !== expect) {
      out.push({ path, kind, why: `${describeKind(kind)}, not a ${expect === 'folder' ? 'folder' : 'regular file'}` });
      return false;
    }
    const want = expect === 'folder' ? modes.dirMode : modes.fileMode;
    if ((st.mode & 0o7777) !== want) out.push({ path, kind, why: `mode ${octal(st.mode & 0o7777)}, want ${octal(want)}` });
    if (modes.group !== null && gid === null) out.push({ path, kind, why: `group '${modes.group}' does not exist on this machine` });
    else if (gid !== null && st.gid !== gid) out.push({ path, kind, why: `group ${st.gid}, want ${modes.group} (${gid})` });
    return true;
  };
  const children = async (dir: string): Promise<string[]> => {
    try { return (await readdir(dir)).filter((n) => !n.startsWith('.')); } catch (err) {
      if (!isGone(err)) out.push({ path: dir, kind: 'folder', why: `cannot be listed (${errnoOf(err) ?? (err as Error).message})` });
      return [];
    }
  };
  if (!(await check(root, 'folder'))) return out;
  await check(join(root, 'zcq-spool.json'), 'file');
  for (const top of await children(root)) {
    if (top === 'zcq-spool.json') continue;
    const p = join(root, top);
    if (!(await check(p, 'folder'))) continue;
    if (!QUEUE_PARENTS.includes(top)) continue;
    for (const q of await children(p)) {
      // Format 1 kept job files right in pending/, done/, failed/: only folders are queue folders here.
      const qp = join(p, q);
      const st = await lstat(qp).catch(() => null);
      if (st && !st.isFile()) await check(qp, 'folder');
    }
  }
  // A gid that cannot be resolved is reported once, not once per path.
  return dedupeGroupMissing(out);
}

function dedupeGroupMissing(list: ModeProblem[]): ModeProblem[] {
  let seen = false;
  return list.filter((p) => {
    if (!p.why.includes('does not exist on this machine')) return true;
    if (seen) return false;
    seen = true;
    return true;
  });
}

/**
 * Make one folder (not its parents) unless a real folder is there. False when it existed. lstat first:
 * on the hot paths (a job's queue folder in done/, nearly always there) that is one call, not two.
 * `existing` hears the lstat of a folder that was there (finish keeps its descriptor for fsyncs by it).
 */
export function makeDir(modes: SpoolModes, dir: string, existing?: (st: fss.Stats) => void): boolean {
  try {
    const st = fss.lstatSync(dir);
    if (st.isDirectory()) { existing?.(st); return false; }
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  return mkdirModeSync(dir, modes);
}

/** makeDir for each folder, parents first. */
export function makeDirs(modes: SpoolModes, dirs: readonly string[]): void {
  for (const d of dirs) makeDir(modes, d);
}

/** Whether a file created with `mode` needs an explicit fchmod (the umask strips some of its bits). */
export function umaskStrips(mode: number): boolean {
  return ((mode & 0o777) & ~processUmask()) !== (mode & 0o777) || (mode & 0o7000) !== 0;
}

/** fixMode, synchronously (init: the root folder gets the group and setgid before anything is made in it). */
export function fixModeSync(path: string, modes: SpoolModes): void {
  const kind = kindOfStats(fss.lstatSync(path));
  if (kind !== 'folder' && kind !== 'file') throw new ZcqError('ZCQ_UNSAFE_FILE', `${path}: ${describeKind(kind)}; its mode was not changed (quarantine or remove it)`, 1);
  fchmodChecked(path, kind, kind === 'folder' ? modes.dirMode : modes.fileMode, gidFor(modes));
}

/**
 * The spool root's mode: the folder mode without group write. Members never need to create or rename
 * entries at the top (they work inside the state folders), and a member who could would be able to swap
 * a whole state folder (done/) for a symlink to somewhere else. Only the owner re-runs init or migrate.
 */
export function rootModeFor(modes: SpoolModes): number {
  return modes.dirMode & ~0o022;
}
